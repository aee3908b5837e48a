"""The registry of pretrained weights: manifest, cache, download, verification, safe loading.

One job per module: :mod:`.manifest` (the registry and where files live), :mod:`.hashing`,
:mod:`.sidecars` (checkpoints trained here), :mod:`.download`, :mod:`.resolve`, :mod:`.verify`
and :mod:`.load`; every public name is importable from here.

Where a file is looked for, first hit wins (:func:`resolve_weights`):

1. an explicit path (the user's own weights: used as they are, the caller checks keys/shapes);
2. the ``weights_dir`` argument (a folder holding files under their registry file names);
3. the folder named by ``$VIOLENCE_DETECT_WEIGHTS``;
4. the user cache, ``$XDG_CACHE_HOME/violence-detect`` (else ``~/.cache/violence-detect``),
   whose files are verified against the manifest and fetched again when they do not match;
5. a download from the manifest's address (or from ``$VIOLENCE_DETECT_WEIGHTS_URL``, a
   folder URL that mirrors the files) to a temporary name in the cache, verified, renamed.

Files in folders the user names (2, 3) are used without the manifest check, like an explicit
path; ``violence-detect weights verify`` checks them. Every file loads with
``torch.load(weights_only=True)``: a checkpoint can never run code.
"""

from .download import DOWNLOAD_CAP_BYTES, DownloadResult, ProgressCallback, download_weights
from .hashing import SHORT_HASH, FileDigest, file_digest, file_sha256, integrity_problem, short_hash
from .load import archive_limit, check_archive_size, check_state_dict, check_tensors, load_state_dict
from .manifest import (
    CACHE_SUBDIR,
    WEIGHTS_ENV,
    WEIGHTS_URL_ENV,
    WeightsEntry,
    available_weights,
    cache_dir,
    get_entry,
    manifest_text,
    weight_names,
)
from .resolve import (
    LocatedWeights,
    ResolvedWeights,
    describe_weights,
    locate_weights,
    resolve_weight_files,
    resolve_weights,
)
from .sidecars import TRAINED_KIND, TRAINED_SUFFIX, describe_trained, trained_metadata, trained_record, trained_sidecar
from .verify import VERIFIED_FILE, WeightsCheck, verify_weights

__all__ = [
    "CACHE_SUBDIR",
    "DOWNLOAD_CAP_BYTES",
    "SHORT_HASH",
    "TRAINED_KIND",
    "TRAINED_SUFFIX",
    "VERIFIED_FILE",
    "WEIGHTS_ENV",
    "WEIGHTS_URL_ENV",
    "DownloadResult",
    "FileDigest",
    "LocatedWeights",
    "ProgressCallback",
    "ResolvedWeights",
    "WeightsCheck",
    "WeightsEntry",
    "archive_limit",
    "available_weights",
    "cache_dir",
    "check_archive_size",
    "check_state_dict",
    "check_tensors",
    "describe_trained",
    "describe_weights",
    "download_weights",
    "file_digest",
    "file_sha256",
    "get_entry",
    "integrity_problem",
    "load_state_dict",
    "locate_weights",
    "manifest_text",
    "resolve_weight_files",
    "resolve_weights",
    "short_hash",
    "trained_metadata",
    "trained_record",
    "trained_sidecar",
    "verify_weights",
    "weight_names",
]

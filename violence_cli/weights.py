"""The registry of pretrained weights: manifest, cache, download, verification, safe loading.

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

from __future__ import annotations

import hashlib
import http.client
import json
import os
import pickle
import re
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .atomic import atomic_path
from .atomic import write_text as atomic_write_text
from .errors import WeightsError

if TYPE_CHECKING:
    import torch

WEIGHTS_ENV = "VIOLENCE_DETECT_WEIGHTS"  # a folder holding the files under their registry file names
WEIGHTS_URL_ENV = "VIOLENCE_DETECT_WEIGHTS_URL"  # a folder URL (https://, http://, file://) mirroring them
CACHE_SUBDIR = "violence-detect"
CHUNK_BYTES = 1 << 20  # read size when hashing and downloading
SHORT_HASH = 12  # hex digits of a hash shown on the terminal (JSON keeps the full digest)
TRAINED_SUFFIX = ".json"  # sidecar of a checkpoint written by `train`: best.pt -> best.pt.json
TRAINED_KIND = "violence-detect trained checkpoint"
TIMEOUT_S = 60.0  # seconds a download may wait for data before it fails
DOWNLOAD_CAP_BYTES = 2 * 2**30  # bytes: a download of unknown size stops beyond this
VERIFIED_FILE = "verified.json"  # in the cache: full sha256 of every file `weights verify` passed
_VERIFIED_ABOUT = "sha256 of weights files when `violence-detect weights verify` last passed them; a change is reported"
ARCHIVE_SLACK_BYTES = 16 * 2**20  # bytes a checkpoint archive may declare beyond its expected size

ProgressCallback = Callable[[int, "int | None"], None]  # (bytes done, total bytes or None)

_REPO_MANIFEST = Path(__file__).resolve().parents[1] / "weights" / "manifest.json"
_PACKAGED_MANIFEST = "weights_manifest.json"  # the wheel's copy of weights/manifest.json


@dataclass(frozen=True)
class WeightsEntry:
    """One pretrained file: where it lives, how to check it, what it expects.

    Integrity fields that are not ``None`` must all match: ``sha256`` is the full digest,
    ``sha256_prefix`` its leading hex digits (all torchvggish publishes, in the file name),
    ``git_blob_sha1`` what ``git hash-object FILE`` prints (all GitHub trees give).
    """

    name: str
    filename: str
    url: str
    size: int | None  # bytes, checked when given
    sha256: str | None
    sha256_prefix: str | None
    git_blob_sha1: str | None
    source: str
    license: str
    metadata: dict[str, Any] = field(default_factory=dict, compare=False)
    approx_size: int | None = None  # bytes, an estimate shown where no exact size is published

    @property
    def shown_size(self) -> tuple[int | None, bool]:
        """(bytes, exact): the manifest's size, else its estimate."""
        return (self.size, True) if self.size is not None else (self.approx_size, False)

    def download_url(self) -> str:
        """The manifest's address, or the same file name under ``$VIOLENCE_DETECT_WEIGHTS_URL``."""
        mirror = os.environ.get(WEIGHTS_URL_ENV, "").strip()
        return f"{mirror.rstrip('/')}/{self.filename}" if mirror else self.url


@dataclass(frozen=True)
class FileDigest:
    size: int  # bytes
    sha256: str
    git_blob_sha1: str


@dataclass(frozen=True)
class LocatedWeights:
    """Where a registry file sits on disk, without downloading or verifying it."""

    entry: WeightsEntry
    path: Path | None  # None: not on disk
    origin: str | None  # "weights_dir", "env" ($VIOLENCE_DETECT_WEIGHTS) or "cache"
    searched: tuple[Path, ...] = ()  # the folders looked in, in order


@dataclass(frozen=True)
class DownloadResult:
    name: str
    path: Path
    downloaded: bool  # False: a verified copy was already there


@dataclass(frozen=True)
class ResolvedWeights:
    """A weights file found (or downloaded) once, at the edge, and hashed: what every layer below uses."""

    name: str  # registry name
    path: Path
    sha256: str
    verified: bool  # matches the registry's integrity data
    problem: str | None  # why not, when not verified
    trained: dict[str, Any] | None = None  # the sidecar of a checkpoint our `train` wrote


@dataclass(frozen=True)
class WeightsCheck:
    """The outcome of verifying one file on disk against the manifest."""

    name: str
    path: Path
    origin: str
    sha256: str
    verified: bool
    problem: str | None  # what does not match, when not verified


# --- the registry -------------------------------------------------------------------------


def manifest_text() -> tuple[str, str]:
    """(text, where) of the manifest: the wheel's packaged copy, else the checkout's file."""
    packaged = resources.files(__package__ or "violence_cli").joinpath(_PACKAGED_MANIFEST)
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8"), str(packaged)
    try:
        return _REPO_MANIFEST.read_text(encoding="utf-8"), str(_REPO_MANIFEST)
    except OSError as exc:
        raise WeightsError(f"{_REPO_MANIFEST}: weights manifest not readable ({exc.strerror})") from None


@lru_cache(maxsize=1)
def _registry() -> dict[str, WeightsEntry]:
    text, where = manifest_text()
    try:
        raw = json.loads(text)["weights"]
        entries = {name: _entry_from_json(name, item) for name, item in raw.items()}
    except (ValueError, KeyError, TypeError) as exc:
        raise WeightsError(f"{where}: malformed weights manifest ({type(exc).__name__}: {exc})") from None
    return entries


def _entry_from_json(name: str, item: Mapping[str, Any]) -> WeightsEntry:
    entry = WeightsEntry(
        name=name,
        filename=str(item["filename"]),
        url=str(item["url"]),
        size=None if item.get("size") is None else int(item["size"]),
        sha256=_lower(item.get("sha256")),
        sha256_prefix=_lower(item.get("sha256_prefix")),
        git_blob_sha1=_lower(item.get("git_blob_sha1")),
        source=str(item["source"]),
        license=str(item["license"]),
        metadata=dict(item.get("metadata") or {}),
        approx_size=None if item.get("approx_size") is None else int(item["approx_size"]),
    )
    if entry.size is None and entry.approx_size is None:
        raise ValueError(f"entry {name!r} has neither size nor approx_size")
    if not (entry.sha256 or entry.sha256_prefix or entry.git_blob_sha1):
        raise ValueError(f"entry {name!r} has no integrity data")
    return entry


def _lower(value: Any) -> str | None:
    return None if value is None else str(value).lower()


def available_weights() -> list[WeightsEntry]:
    """Every file the registry knows, in manifest order."""
    return list(_registry().values())


def weight_names() -> list[str]:
    return list(_registry())


def get_entry(name: str) -> WeightsEntry:
    registry = _registry()
    if name not in registry:
        raise WeightsError(f"unknown weights {name!r} (known: {', '.join(registry)})")
    return registry[name]


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/violence-detect``, else ``~/.cache/violence-detect``."""
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(base) if base else Path.home() / ".cache") / CACHE_SUBDIR


# --- hashing and verification ---------------------------------------------------------------

_digest_memo: dict[tuple[str, int, int, int], FileDigest] = {}


def file_digest(path: str | os.PathLike[str]) -> FileDigest:
    """Size, sha256 and git blob SHA-1 in one read (remembered while the file is unchanged)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    if key in _digest_memo:
        return _digest_memo[key]
    sha256 = hashlib.sha256()
    # git's object header, then the content (SHA-1 is what git publishes; the flag lets FIPS builds run it)
    blob = hashlib.sha1(b"blob %d\0" % st.st_size, usedforsecurity=False)
    size = 0
    with open(p, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            sha256.update(chunk)
            blob.update(chunk)
            size += len(chunk)
    if size != st.st_size:  # changed while being read: hash what a later reader will see
        return file_digest(p)
    digest = FileDigest(size=size, sha256=sha256.hexdigest(), git_blob_sha1=blob.hexdigest())
    _digest_memo[key] = digest
    return digest


def file_sha256(path: str | os.PathLike[str]) -> str:
    return file_digest(path).sha256


def short_hash(digest: str | None) -> str:
    """The first :data:`SHORT_HASH` hex digits (what the terminal shows; JSON has all of them)."""
    return "" if not digest else digest[:SHORT_HASH]


def integrity_problem(path: str | os.PathLike[str], entry: WeightsEntry) -> str | None:
    """What about ``path`` does not match the manifest's integrity data; None when all match.

    Hashes in the message are short (:func:`short_hash`); :func:`file_digest` has them in full.
    """
    d = file_digest(path)
    if entry.size is not None and d.size != entry.size:
        return f"size {d.size} bytes, expected {entry.size}"
    if entry.sha256 and d.sha256 != entry.sha256:
        return f"sha256 {short_hash(d.sha256)}, expected {short_hash(entry.sha256)}"
    if entry.sha256_prefix and not d.sha256.startswith(entry.sha256_prefix):
        return f"sha256 {short_hash(d.sha256)}, expected one starting with {entry.sha256_prefix}"
    if entry.git_blob_sha1 and d.git_blob_sha1 != entry.git_blob_sha1:
        return f"git blob SHA-1 {short_hash(d.git_blob_sha1)}, expected {short_hash(entry.git_blob_sha1)}"
    return None


def describe_weights(path: str | os.PathLike[str], name: str) -> dict[str, Any]:
    """name, path, sha256, verified (matches the manifest), problem (None when verified) and
    trained (the sidecar of a checkpoint our own ``train`` wrote, else None)."""
    problem = integrity_problem(path, get_entry(name))
    return {
        "name": name,
        "path": str(path),
        "sha256": file_sha256(path),
        "verified": problem is None,
        "problem": problem,
        "trained": None if problem is None else trained_metadata(path),
    }


# --- checkpoints trained here ---------------------------------------------------------------


def trained_sidecar(checkpoint: str | os.PathLike[str]) -> Path:
    """Where the metadata of a checkpoint written by ``train`` lives: ``best.pt`` -> ``best.pt.json``."""
    p = Path(checkpoint)
    return p.with_name(p.name + TRAINED_SUFFIX)


def trained_record(checkpoint: str | os.PathLike[str], **facts: Any) -> dict[str, Any]:
    """The sidecar document for ``checkpoint``: what made it (``facts``: data, epochs, AP...)
    bound to the file by its sha256, so the sidecar never vouches for another file."""
    return {"kind": TRAINED_KIND, "version": __version__, "file": Path(checkpoint).name,
            "sha256": file_sha256(checkpoint), **facts}  # fmt: skip


def trained_metadata(checkpoint: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The sidecar of a checkpoint written by our ``train`` when it describes this very file
    (same sha256); None otherwise (no sidecar, another file, unreadable)."""
    sidecar = trained_sidecar(checkpoint)
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("kind") != TRAINED_KIND:
        return None
    if data.get("sha256") != file_sha256(checkpoint):
        return None
    return data


def describe_trained(meta: Mapping[str, Any]) -> str:
    """One line on a checkpoint trained here: data, epoch, AP."""
    parts = []
    sources = [str(s) for s in meta.get("data") or [] if s]
    if sources:
        parts.append("on " + ", ".join(sources[:2]) + (" ..." if len(sources) > 2 else ""))
    if meta.get("train_videos") is not None:
        parts.append(f"{meta['train_videos']} videos")
    if meta.get("epoch") is not None:
        parts.append(f"epoch {meta['epoch']} of {meta.get('epochs', '?')}")
    if meta.get("ap") is not None:
        parts.append(f"validation AP {float(meta['ap']):.4f}")
    return f"trained with violence-detect {meta.get('version', '?')}" + (" " + ", ".join(parts) if parts else "")


# --- finding, downloading, resolving --------------------------------------------------------


def _search_folders(weights_dir: str | os.PathLike[str] | None) -> list[tuple[str, Path]]:
    folders: list[tuple[str, Path]] = []
    if weights_dir is not None:
        folders.append(("weights_dir", _existing_folder(Path(weights_dir).expanduser(), "weights folder")))
    env = os.environ.get(WEIGHTS_ENV, "").strip()
    if env:
        folders.append(("env", _existing_folder(Path(env).expanduser(), f"${WEIGHTS_ENV}")))
    folders.append(("cache", cache_dir()))
    return folders


def _existing_folder(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise WeightsError(f"{path}: {what} is not a folder")
    return path


def locate_weights(name: str, *, weights_dir: str | os.PathLike[str] | None = None) -> LocatedWeights:
    """The first folder (weights_dir, $VIOLENCE_DETECT_WEIGHTS, cache) holding the file."""
    entry = get_entry(name)
    folders = _search_folders(weights_dir)
    searched = tuple(folder for _, folder in folders)
    for origin, folder in folders:
        candidate = folder / entry.filename
        if candidate.is_file():
            return LocatedWeights(entry, candidate, origin, searched)
    return LocatedWeights(entry, None, None, searched)


def resolve_weights(
    name: str,
    path: str | os.PathLike[str] | None = None,
    *,
    weights_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    progress: ProgressCallback | None = None,
) -> Path:
    """The file to load for registry entry ``name`` (see the module docstring for the order).

    ``progress(bytes_done, total_or_None)`` is called while downloading.
    """
    entry = get_entry(name)
    if path is not None:
        explicit = Path(path).expanduser()
        if not explicit.is_file():
            raise WeightsError(f"{explicit}: {name} weights file not found")
        return explicit
    folders = _search_folders(weights_dir)
    for origin, folder in folders:
        candidate = folder / entry.filename
        if not candidate.is_file():
            continue
        if origin != "cache":
            return candidate  # a folder the user named: their files, used as they are
        problem = integrity_problem(candidate, entry)
        if problem is None:
            return candidate
        if not download:
            raise WeightsError(
                f"{candidate}: cached {name} weights fail verification ({problem})",
                hint=f"run `violence-detect weights download {name}` to fetch them again",
            )
        return download_weights(name, force=True, progress=progress).path
    if not download:
        raise _missing_error(entry, [folder for _, folder in folders])
    return download_weights(name, progress=progress).path


def resolve_weight_files(
    explicit: Mapping[str, str | os.PathLike[str] | None],
    *,
    weights_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    progress: ProgressCallback | None = None,
) -> dict[str, ResolvedWeights]:
    """Resolve and hash every file a command needs, once: registry name -> :class:`ResolvedWeights`.

    ``explicit`` maps each registry name to the user's file, or None for the registry's.
    """
    out: dict[str, ResolvedWeights] = {}
    for name, path in explicit.items():
        found = resolve_weights(name, path, weights_dir=weights_dir, download=download, progress=progress)
        described = describe_weights(found, name)
        out[name] = ResolvedWeights(
            name, found, described["sha256"], described["verified"], described["problem"], described["trained"]
        )
    return out


def _missing_error(entry: WeightsEntry, searched: list[Path]) -> WeightsError:
    where = ", ".join(str(folder) for folder in searched)
    return WeightsError(
        f"{entry.name} weights not found: {entry.filename} is not in {where} (download=False); "
        f"fetch it with `violence-detect weights download {entry.name}` (from "
        f"{entry.download_url()}) or put it in a folder named by ${WEIGHTS_ENV}",
        hint=f"offline: download on another machine with `violence-detect weights download --weights-dir DIR`, "
        f"copy DIR here and set {WEIGHTS_ENV}=DIR",
    )


def download_weights(
    name: str,
    dest_dir: str | os.PathLike[str] | None = None,
    *,
    force: bool = False,
    progress: ProgressCallback | None = None,
) -> DownloadResult:
    """Fetch ``name`` into ``dest_dir`` (default: the cache), verified, written atomically.

    A verified copy already there (or, with the default folder, in ``$VIOLENCE_DETECT_WEIGHTS``)
    is kept unless ``force``. The file streams to a temporary
    name in the same folder and is renamed only after it matches the manifest; on any
    failure the temporary file is removed.
    """
    entry = get_entry(name)
    folder = Path(dest_dir).expanduser() if dest_dir is not None else cache_dir()
    target = folder / entry.filename
    if not force:
        env = os.environ.get(WEIGHTS_ENV, "").strip()
        shared = Path(env).expanduser() / entry.filename if env and dest_dir is None else None
        for present in (target, shared):
            if present is not None and present.is_file() and integrity_problem(present, entry) is None:
                return DownloadResult(name, present, downloaded=False)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WeightsError(f"{folder}: cannot create the weights folder ({exc.strerror})") from None
    url = entry.download_url()
    try:
        with atomic_path(target) as tmp:  # renamed over target only once verified
            with open(tmp, "wb") as out:
                _fetch(url, out, entry.size, progress, label=f"{entry.name} weights ({entry.filename})")
            problem = integrity_problem(tmp, entry)
            if problem is not None:
                raise WeightsError(
                    f"{url}: downloaded {entry.filename} fails verification ({problem}); it was deleted",
                    hint="try again; if it keeps failing, the file at that address has changed",
                )
    except OSError as exc:
        raise WeightsError(f"{folder}: cannot write the weights folder ({exc.strerror or exc})") from None
    return DownloadResult(name, target, downloaded=True)


def _fetch(
    url: str, out: Any, expected_size: int | None, progress: ProgressCallback | None, *, label: str = "download"
) -> None:
    """Stream ``url`` into ``out``; ``label`` names the file in errors (which weights, not just the URL)."""
    request = urllib.request.Request(url, headers={"User-Agent": f"violence-detect/{__version__}"})
    hint = (
        f"download it elsewhere with `violence-detect weights download --weights-dir DIR` and set "
        f"{WEIGHTS_ENV}=DIR, or set {WEIGHTS_URL_ENV} to a folder URL that mirrors the files"
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else expected_size
            cap = expected_size if expected_size is not None else DOWNLOAD_CAP_BYTES
            if total is not None and total > cap:
                raise WeightsError(_too_big(label, url, f"announces {total:,} bytes", cap, expected_size))
            done = 0
            if progress is not None:
                progress(0, total)
            while chunk := response.read(CHUNK_BYTES):
                done += len(chunk)
                if done > cap:  # stop at once: an endless answer must not fill the disk
                    raise WeightsError(_too_big(label, url, f"sent more than {cap:,} bytes", cap, expected_size))
                out.write(chunk)
                if progress is not None:
                    progress(done, total)
    except urllib.error.HTTPError as exc:
        raise WeightsError(f"{label}: download failed from {url} (HTTP {exc.code} {exc.reason})", hint=hint) from None
    except urllib.error.URLError as exc:
        raise WeightsError(f"{label}: download failed from {url} ({exc.reason})", hint=hint) from None
    except (OSError, http.client.HTTPException) as exc:
        raise WeightsError(f"{label}: download failed from {url} ({type(exc).__name__}: {exc})", hint=hint) from None


def _too_big(label: str, url: str, what: str, cap: int, expected_size: int | None) -> str:
    reason = (
        f"the manifest says {expected_size:,}"
        if expected_size is not None
        else f"the cap for a file of unknown size is {cap:,}"
    )
    return f"{label}: download from {url} stopped: the server {what} ({reason}); nothing was kept"


def verify_weights(
    names: list[str] | None = None, *, weights_dir: str | os.PathLike[str] | None = None
) -> list[WeightsCheck]:
    """Check every registry file present in weights_dir, $VIOLENCE_DETECT_WEIGHTS and the cache.

    Beside the manifest (whose check is weak for some files: an 8-hex-digit sha256 prefix
    for VGGish), each file's full sha256 is recorded in :data:`VERIFIED_FILE` in the cache
    the first time it passes; a later verify reports a file whose content has changed
    since, even where the manifest's check would still pass.
    """
    checks: list[WeightsCheck] = []
    folders = _search_folders(weights_dir)
    record_path = cache_dir() / VERIFIED_FILE
    record = _read_verified(record_path)
    changed = False
    for name in names or weight_names():
        entry = get_entry(name)
        for origin, folder in folders:
            candidate = folder / entry.filename
            if candidate.is_file():
                problem = integrity_problem(candidate, entry)
                sha = file_sha256(candidate)
                key = str(candidate.resolve())
                known = record.get(key)
                if problem is None and known is not None and known != sha:
                    problem = f"changed since it was last verified (sha256 was {known}, now {sha})"
                elif problem is None and known is None:
                    record[key] = sha
                    changed = True
                checks.append(WeightsCheck(name, candidate, origin, sha, problem is None, problem))
    if changed:
        _write_verified(record_path, record)
    return checks


def _read_verified(path: Path) -> dict[str, str]:
    """The recorded sha256 of files verified before (path -> hex digest); {} if none or unreadable."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        files = raw["files"]
        return {str(k): str(v) for k, v in files.items() if re.fullmatch(r"[0-9a-f]{64}", str(v))}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _write_verified(path: Path, record: dict[str, str]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"schema_version": 1, "about": _VERIFIED_ABOUT, "files": record}, indent=2, sort_keys=True)
        atomic_write_text(path, text + "\n")
    except OSError:
        pass  # a read-only cache: verification itself still reported


# --- loading --------------------------------------------------------------------------------


def load_state_dict(
    path: str | os.PathLike[str], map_location: Any = "cpu", *, expected_bytes: int | None = None
) -> dict[str, torch.Tensor]:
    """A checkpoint's tensors by name, loaded with ``weights_only=True`` (no code can run).

    Accepts a plain state dict, one wrapped under ``state_dict`` or ``model``, DataParallel's
    ``module.`` prefix (stripped) and numpy arrays (converted, as torchvggish's PCA file holds).
    Every tensor must be of a real floating type (integers only for batch norm's
    ``num_batches_tracked`` counters) and hold no NaN or infinity. A torch zip archive that
    declares more data than :func:`archive_limit` allows (``expected_bytes``: what the
    model's tensors take in float32) is refused before anything is inflated. Anything
    else is a :class:`WeightsError` naming the file (and the first bad key).
    """
    import torch

    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"{p}: weights file not found")
    check_archive_size(p, expected_bytes)
    try:
        with torch.serialization.safe_globals(_numpy_array_globals()), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols; we report failures ourselves
            obj = torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if not re.search(r"GLOBAL|allowlisted|Can only build", str(exc)):  # damaged, not dangerous
            raise WeightsError(f"{p}: not a readable PyTorch checkpoint ({_unpickler_reason(exc)})") from None
        raise WeightsError(
            f"{p}: refused to load: it holds more than tensors ({_unpickler_reason(exc)})",
            hint="only plain state dicts load (torch.load with weights_only=True); "
            "re-save it with torch.save(model.state_dict(), PATH)",
        ) from None
    except Exception as exc:  # noqa: BLE001  (torch.load raises many types on a damaged or foreign file)
        reason = f"{type(exc).__name__}: {_first_line(exc)}"
        raise WeightsError(f"{p}: not a readable PyTorch checkpoint ({reason})") from None
    state = _as_state_dict(obj, p)
    check_tensors(state, p)
    return state


def archive_limit(file_size: int, expected_bytes: int | None) -> int:
    """Most bytes a torch zip archive may declare: 4x the expected float32 size (float64 and
    extra keys fit) or, when unknown, twice the file (torch stores tensors uncompressed);
    plus 16 MiB of slack either way."""
    if expected_bytes is not None:
        return 4 * expected_bytes + ARCHIVE_SLACK_BYTES
    return 2 * file_size + ARCHIVE_SLACK_BYTES


def check_archive_size(path: Path, expected_bytes: int | None = None) -> None:
    """Refuse a zip checkpoint whose members declare more than :func:`archive_limit`,
    reading only its directory (nothing is inflated)."""
    if not zipfile.is_zipfile(path):
        return  # legacy torch format, plain pickle: torch.load reports what it is
    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise WeightsError(f"{path}: not a readable PyTorch checkpoint (damaged zip archive: {exc})") from None
    limit = archive_limit(path.stat().st_size, expected_bytes)
    if declared > limit:
        raise WeightsError(
            f"{path}: refused to load: the archive declares {declared:,} bytes of data, "
            f"far more than the {limit:,} expected (a file that inflates to fill memory)"
        )


def check_tensors(state: Mapping[str, torch.Tensor], path: str | os.PathLike[str]) -> None:
    """Raise a WeightsError naming ``path`` and the first key whose tensor is not a real
    floating type (integer counters ``*num_batches_tracked`` excepted) or holds NaN/inf."""
    import torch

    for key, tensor in state.items():
        if tensor.is_floating_point():
            flat = tensor.reshape(-1)
            # in blocks of 2**20 values: the test's temporary stays small even for VGGish's 288 MB layer
            if not all(bool(torch.isfinite(block).all()) for block in flat.split(2**20)):
                bad = "NaN" if any(bool(torch.isnan(block).any()) for block in flat.split(2**20)) else "infinite values"
                raise WeightsError(
                    f"{path}: refused to load: {key} holds {bad}",
                    hint="the file is damaged or was saved from a diverged training run",
                )
        elif not (key.endswith("num_batches_tracked") and not tensor.is_complex() and tensor.dtype != torch.bool):
            raise WeightsError(f"{path}: refused to load: {key} is {tensor.dtype}, not a real floating type")


def _numpy_array_globals() -> list[Any]:
    """The globals a pickled numeric numpy array needs, under numpy 1.x and 2.x names."""
    import numpy as np

    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray  # type: ignore[no-redef]
    numeric_dtypes = {type(np.dtype(code)) for code in "?bhilqBHILQefd"}  # numpy 2: one class each
    return [
        np.ndarray,
        np.dtype,
        *sorted(numeric_dtypes - {np.dtype}, key=lambda t: t.__name__),
        (multiarray._reconstruct, "numpy._core.multiarray._reconstruct"),
        (multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
        (multiarray.scalar, "numpy._core.multiarray.scalar"),
        (multiarray.scalar, "numpy.core.multiarray.scalar"),
    ]


_TORCH_BOILERPLATE = ("Weights only load failed", "Check the documentation", "Please file an issue", "(1)", "(2)")


def _unpickler_reason(exc: Exception) -> str:
    """The one informative line of torch's long weights_only refusal (it varies by case)."""
    for line in str(exc).splitlines():
        line = line.strip().removeprefix("WeightsUnpickler error:").strip()
        if line and not line.startswith(_TORCH_BOILERPLATE):
            return line.split(". Please use")[0][:200]
    return _first_line(exc)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else "no detail"


def _as_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    import numpy as np
    import torch

    if isinstance(obj, Mapping) and not _all_tensors(obj):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{path}: not a state dict (the file holds a {type(obj).__name__})")
    if not obj:
        raise WeightsError(f"{path}: empty state dict")
    state: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            value = torch.from_numpy(np.array(value))
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise WeightsError(
                f"{path}: not a state dict (entry {key!r} is a {type(value).__name__}, expected a tensor)"
            )
        state[key] = value
    if all(key.startswith("module.") for key in state):
        state = {key[len("module.") :]: value for key, value in state.items()}
    return state


def _all_tensors(obj: Mapping[Any, Any]) -> bool:
    import torch

    return all(isinstance(v, torch.Tensor) for v in obj.values())


def check_state_dict(
    sd: Mapping[str, torch.Tensor],
    expected: Mapping[str, tuple[int, ...]],
    path: str | os.PathLike[str],
) -> None:
    """Raise a WeightsError naming ``path`` unless ``sd`` has exactly the expected keys and shapes."""
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    wrong = [
        f"{k} {tuple(sd[k].shape)} instead of {tuple(expected[k])}"
        for k in expected
        if k in sd and tuple(sd[k].shape) != tuple(expected[k])
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_few(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_few(unexpected)}")
    if wrong:
        problems.append(f"{len(wrong)} wrong shape(s): {_few(wrong)}")
    if problems:
        raise WeightsError(
            f"{path}: not the expected weights: {'; '.join(problems)}",
            hint="pass weights made for this network (see `violence-detect weights list`)",
        )


def _few(items: list[str], n: int = 3) -> str:
    shown = ", ".join(items[:n])
    return shown + (f", ... ({len(items) - n} more)" if len(items) > n else "")


__all__ = [
    "CACHE_SUBDIR",
    "WEIGHTS_ENV",
    "WEIGHTS_URL_ENV",
    "DownloadResult",
    "FileDigest",
    "LocatedWeights",
    "ResolvedWeights",
    "WeightsCheck",
    "WeightsEntry",
    "available_weights",
    "cache_dir",
    "archive_limit",
    "check_archive_size",
    "check_state_dict",
    "check_tensors",
    "describe_weights",
    "download_weights",
    "file_digest",
    "file_sha256",
    "get_entry",
    "short_hash",
    "trained_metadata",
    "trained_record",
    "trained_sidecar",
    "integrity_problem",
    "load_state_dict",
    "locate_weights",
    "resolve_weight_files",
    "resolve_weights",
    "verify_weights",
    "weight_names",
]

"""Features kept on disk: one format for ``extract --out`` and ``detect --output-dir``.

A video NAME's features are ``NAME__0.npy`` .. ``NAME__{C-1}.npy`` and ``NAME__vggish.npy``
(:mod:`violence_cli.xdfeatures`, the XD-Violence layout), then the sidecar
``NAME.extract.json``, written last: the resume record (input fingerprint, the I3D and VGGish
sha256, crops, streams, precision and, for a part of a video, its span), the snippet count,
the warnings of the extraction and the container facts a result reports (``media``), so
features read back score to a full result without opening the video. The folder's
``features.json`` (:mod:`violence_cli.provenance`) lists every sidecar with the weights used.

:func:`read_kept` gives the features back only when the sidecar's record equals the one a run
would write now and every file is whole; anything else (a changed input, other weights,
another crop count, a damaged file) is ``None``: the video is extracted again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import atomic
from ..errors import InputError
from ..protocol import AUDIO_DIM, I3D_WEIGHTS, RGB_DIM, SNIPPET_SECONDS, VGGISH_WEIGHTS
from .records import folder_lock, make_record

if TYPE_CHECKING:
    from ..features.extract import VideoFeatures
    from ..weights import ResolvedWeights

RECORD_SCHEMA = 1
SIDECAR_SUFFIX = ".extract.json"
FEATURE_WEIGHTS = (I3D_WEIGHTS, VGGISH_WEIGHTS)  # the files features depend on (not the model's)


def kept_bytes_per_hour(crops: int) -> float:
    """Disk the features of one hour of video take: float32, (crops x 1024 + 128) per snippet,
    1.5 snippets a second (the .npy headers, 128 bytes a file, aside)."""
    return 3600 / SNIPPET_SECONDS * (crops * RGB_DIM + AUDIO_DIM) * 4


def sidecar_path(out_dir: Path, name: str) -> Path:
    """``NAME.extract.json`` in ``out_dir`` (``name`` may hold subfolders: ``cam1/a``)."""
    return out_dir / f"{name}{SIDECAR_SUFFIX}"


def feature_files(out_dir: Path, name: str, crops: int) -> list[Path]:
    """The ``.npy`` files of ``name`` in ``out_dir``: the crops, then the audio."""
    from ..xdfeatures import xd_paths

    rel = Path(name)
    return xd_paths(out_dir / rel.parent, rel.name, crops)


def features_record(
    source: dict[str, int], weights: Mapping[str, ResolvedWeights], params: dict[str, Any]
) -> dict[str, Any]:
    """The record kept features carry: input fingerprint, the I3D / VGGish sha256, ``params``."""
    return make_record(source, {n: weights[n].sha256 for n in FEATURE_WEIGHTS if n in weights}, params)


def write_kept(
    out_dir: Path,
    name: str,
    features: VideoFeatures,
    video: str,
    record: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> tuple[list[Path], Path]:
    """Write ``features`` and then their sidecar (each file atomically): (npy files, sidecar).
    ``extra``: more sidecar fields (extract's ``precision_choice``)."""
    from ..xdfeatures import MAX_CROPS, write_xd_features

    files = feature_files(out_dir, name, features.crops)
    written = write_xd_features(features, files[0].parent, Path(name).name)
    for stale in feature_files(out_dir, name, MAX_CROPS)[features.crops : MAX_CROPS]:
        stale.unlink(missing_ok=True)  # crops of an earlier run with more: not these features
    media = {k: v for k, v in asdict(features.info).items() if k != "path"}
    doc = {
        "schema_version": RECORD_SCHEMA,
        "video": video,
        "record": record,
        "n_snippets": features.n_snippets,
        "n_frames": features.n_frames,
        "has_audio": features.has_audio,
        "duration": features.info.duration,
        "precision": features.precision,
        "start": features.start,
        "files": [p.name for p in written],
        "warnings": list(features.warnings),
        "media": media,
        **(extra or {}),
    }
    sidecar = sidecar_path(out_dir, name)
    atomic.write_text(sidecar, json.dumps(doc, indent=2) + "\n")  # last: the features are whole
    return written, sidecar


def read_sidecar(sidecar: Path) -> dict[str, Any] | None:
    """The sidecar's document; None when it is missing, damaged or not one."""
    try:
        doc = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("record"), dict) else None


def files_whole(files: list[Path], n_snippets: int) -> bool:
    """Every file there, of (n_snippets, width) float32, not cut short."""
    from ..xdfeatures import npy_rows

    widths = [RGB_DIM] * (len(files) - 1) + [AUDIO_DIM]
    return all(npy_rows(path, width) == n_snippets for path, width in zip(files, widths))


def read_kept(out_dir: Path, name: str, record: dict[str, Any], video_path: Path) -> tuple[VideoFeatures, Path] | None:
    """The features kept for ``name`` when their sidecar holds exactly ``record`` and the
    container facts, and every file is whole: (features, sidecar). Else None."""
    from ..features.extract import VideoFeatures
    from ..media import MediaInfo
    from ..xdfeatures import VideoEntry, load_entry

    sidecar = sidecar_path(out_dir, name)
    doc = read_sidecar(sidecar)
    if doc is None or doc["record"] != record:
        return None
    try:
        crops = int(record["params"]["crops"])
        t = int(doc["n_snippets"])
        media = dict(doc["media"])
        if set(media) != {f.name for f in fields(MediaInfo)} - {"path"}:
            return None  # written by another version: extract again rather than guess
        info = MediaInfo(path=video_path, **media)
        files = feature_files(out_dir, name, crops)
        if not files_whole(files, t):
            return None
        rgb, audio = load_entry(VideoEntry(name, files[:-1], files[-1]))
        features = VideoFeatures(
            rgb=np.ascontiguousarray(rgb.transpose(1, 0, 2)),  # (C, T, 1024) -> (T, C, 1024)
            audio=audio,
            info=info,
            n_frames=int(doc["n_frames"]),
            has_audio=bool(doc["has_audio"]),
            crops=crops,
            warnings=[str(w) for w in doc.get("warnings", [])],
            precision=str(doc["precision"]),
            start=float(doc.get("start", 0.0)),
        )
    except (KeyError, TypeError, ValueError, InputError):
        return None
    return features, sidecar


def update_manifest(out_dir: Path, weights: Mapping[str, ResolvedWeights], names: Iterable[str]) -> None:
    """Merge the sidecars of ``names`` into the folder's ``features.json`` (under the folder
    lock: shards and both commands share the file). A missing or damaged sidecar is left
    out: a rerun redoes that video and adds it."""
    from ..provenance import MANIFEST_FILE, merge_manifest, read_manifest

    videos: dict[str, dict[str, Any]] = {}
    for name in names:
        sidecar = sidecar_path(out_dir, name)
        doc = read_sidecar(sidecar)
        if doc is None or "n_snippets" not in doc:
            continue
        videos[name] = {
            "record_file": sidecar.relative_to(out_dir).as_posix(),
            "record": doc["record"],
            "n_snippets": doc["n_snippets"],
        }
    if not videos:
        return
    used = [
        {"name": w.name, "path": str(w.path), "sha256": w.sha256, "verified": w.verified}
        for n, w in weights.items()
        if n in FEATURE_WEIGHTS
    ]
    with folder_lock(out_dir):
        atomic.remove_stale(out_dir / MANIFEST_FILE)
        try:
            old = read_manifest(out_dir)
        except (OSError, ValueError, UnicodeDecodeError):
            old = None  # damaged or not ours: rebuilt from this run (the sidecars stay the truth)
        atomic.write_text(out_dir / MANIFEST_FILE, json.dumps(merge_manifest(old, used, videos), indent=2) + "\n")


__all__ = [
    "FEATURE_WEIGHTS",
    "SIDECAR_SUFFIX",
    "feature_files",
    "kept_bytes_per_hour",
    "features_record",
    "read_kept",
    "read_sidecar",
    "sidecar_path",
    "update_manifest",
    "write_kept",
]

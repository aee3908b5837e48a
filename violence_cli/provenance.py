"""Where feature files came from: ``features.json``, the manifest ``extract`` keeps beside them.

One per output folder (every ``--shard`` pointed at the folder merges into it, under the
runner's folder lock): the project version, the protocol's fixed parameters, every weights
file the folder's features were made with (name, sha256, verified or not) and, per video,
its resume record exactly as its ``NAME.extract.json`` sidecar holds it (source fingerprint,
weights sha256, crops/precision/streams) with the sidecar's name, so there is one record
format, not two. ``eval`` and ``train`` read it (:func:`read_provenance`) and report it; a
folder without one (XD-Violence's own downloads) has no provenance: ``None``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ._version import __version__
from .messages import count

MANIFEST_FILE = "features.json"
MANIFEST_SCHEMA = 1
MANIFEST_KIND = "violence-detect features"


def protocol_params() -> dict[str, Any]:
    """The extraction protocol's fixed parameters (what is the same for every video)."""
    from .features.vggish import EMBEDDING_DIM, NUM_BANDS, NUM_FRAMES
    from .protocol import AUDIO_RATE, CROP_NAMES, CROP_SIZE, RESIZE_SHORT, RGB_DIM, SNIPPET_FRAMES, VIDEO_FPS

    return {
        "fps": VIDEO_FPS,
        "snippet_frames": SNIPPET_FRAMES,
        "resize_short": RESIZE_SHORT,
        "crop_size": CROP_SIZE,
        "crop_order": list(CROP_NAMES),
        "rgb_dim": RGB_DIM,
        "vggish": {
            "sample_rate": AUDIO_RATE,
            "example_frames": NUM_FRAMES,
            "mel_bands": NUM_BANDS,
            "embedding_dim": EMBEDDING_DIM,
            "pca": False,
        },
    }


def merge_manifest(
    old: dict[str, Any] | None, weights: Sequence[dict[str, Any]], videos: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """``old`` (or nothing) with this run's ``weights`` (name, path, sha256, verified) and
    ``videos`` (name -> entry) merged in: a video's entry is replaced, weights are kept once
    per (name, sha256), and only those some video still refers to."""
    videos_all = dict(old.get("videos", {})) if old else {}
    videos_all.update(videos)
    known = {(w["name"], w["sha256"]): dict(w) for w in (old.get("weights", []) if old else [])}
    known.update({(w["name"], w["sha256"]): dict(w) for w in weights})
    used = {(n, s) for v in videos_all.values() for n, s in v.get("record", {}).get("weights", {}).items()}
    return {
        "schema_version": MANIFEST_SCHEMA,
        "kind": MANIFEST_KIND,
        "version": __version__,
        "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "protocol": protocol_params(),
        "weights": [w for key, w in sorted(known.items()) if key in used],
        "videos": dict(sorted(videos_all.items())),
    }


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest in ``folder``; None when there is none. ValueError when it is not ours or damaged."""
    try:
        text = (folder / MANIFEST_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    doc = json.loads(text)
    if not isinstance(doc, dict) or doc.get("kind") != MANIFEST_KIND or not isinstance(doc.get("videos"), dict):
        raise ValueError(f"not a {MANIFEST_KIND} manifest")
    return doc


@dataclass
class FeaturesProvenance:
    """What the manifests of some feature folders say, summed up for a report."""

    manifests: list[str]  # the features.json files read
    versions: list[str]  # project versions that wrote them
    weights: list[dict[str, Any]]  # name, sha256, verified (and path) of every weights file used
    precision: list[str]  # fp32 / bf16, every value seen
    crops: list[int]  # every crop count seen
    videos: int  # videos the manifests describe
    protocol: dict[str, Any] = field(default_factory=dict)

    @property
    def unverified(self) -> list[dict[str, Any]]:
        return [w for w in self.weights if not w.get("verified")]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_provenance(
    folders: Iterable[str | Path] | None, warn: Callable[[str], None] | None = None
) -> FeaturesProvenance | None:
    """The provenance of the features in ``folders`` from their manifests; None when none has
    one. A damaged manifest is reported through ``warn`` and otherwise ignored."""
    manifests: list[str] = []
    docs: list[dict[str, Any]] = []
    for folder in folders or ():
        path = Path(folder) / MANIFEST_FILE
        try:
            doc = read_manifest(Path(folder))
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            if warn is not None:
                warn(f"{path}: cannot read the features manifest ({exc}); provenance unknown")
            continue
        if doc is not None:
            manifests.append(str(path))
            docs.append(doc)
    if not docs:
        return None
    weights: dict[tuple[str, str], dict[str, Any]] = {}
    precision: set[str] = set()
    crops: set[int] = set()
    n_videos = 0
    for doc in docs:
        for w in doc.get("weights", []):
            if isinstance(w, dict) and "name" in w and "sha256" in w:
                weights[(str(w["name"]), str(w["sha256"]))] = w
        for entry in doc["videos"].values():
            params = entry.get("record", {}).get("params", {}) if isinstance(entry, dict) else {}
            n_videos += 1
            if params.get("precision") is not None:
                precision.add(str(params["precision"]))
            if params.get("crops") is not None:
                crops.add(int(params["crops"]))
    return FeaturesProvenance(
        manifests=manifests,
        versions=sorted({str(d.get("version")) for d in docs}),
        weights=[weights[k] for k in sorted(weights)],
        precision=sorted(precision),
        crops=sorted(crops),
        videos=n_videos,
        protocol=docs[0].get("protocol", {}),
    )


def describe(prov: FeaturesProvenance) -> str:
    """One line for a terminal: the weights (short hashes), verified or not, precision, crops."""
    from .weights import short_hash

    weights = ", ".join(
        f"{w['name']} {short_hash(str(w['sha256']))} ({'published' if w.get('verified') else 'unverified'})"
        for w in prov.weights
    )
    precision = "/".join(prov.precision) or "?"
    crops = count(prov.crops[0], "crop") if len(prov.crops) == 1 else f"{'/'.join(map(str, prov.crops)) or '?'} crops"
    return f"{weights or 'no weights recorded'}; {precision}; {crops}; {count(prov.videos, 'video')}"


def unverified_warning(prov: FeaturesProvenance) -> str | None:
    """The one warning for features made with weights that are not the published ones."""
    from .weights import short_hash

    bad = prov.unverified
    if not bad:
        return None
    names = ", ".join(f"{w['name']} (sha256 {short_hash(str(w['sha256']))})" for w in bad)
    return (
        f"features made with unverified weights: {names}, not the published files "
        f"(per {', '.join(prov.manifests)}); AP on them says nothing about the published protocol"
    )


__all__ = [
    "MANIFEST_FILE",
    "FeaturesProvenance",
    "describe",
    "merge_manifest",
    "protocol_params",
    "read_manifest",
    "read_provenance",
    "unverified_warning",
]

"""``detect --features DIR``: score feature files alone, without their videos.

The files are those of the XD-Violence layout (:mod:`violence_cli.xdfeatures`): written by
``extract``, kept by ``detect --output-dir``, or XD-Violence's released features (their split
folders together: ``RGBTest/`` + ``vggish-features/Test/``). Every export works; the HTML report
shows the timeline without a player. What the result says about the video (duration, size,
codecs, audio) and about the extraction (weights, precision) comes from the video's sidecar
``NAME.extract.json`` when there is one; without it (XD-Violence's files) the duration is
that of the snippets, the rest is unknown, and a warning says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ..protocol import MACIL_WEIGHTS, SNIPPET_FRAMES, SNIPPET_SECONDS, VIDEO_FPS
from .inputs import VideoInput
from .jobs import DetectJob, Progress, detect_outcome
from .kept import FEATURE_WEIGHTS, SIDECAR_SUFFIX, read_sidecar
from .records import DONE, Outcome, make_record

NO_RECORD_WARNING = (
    "features without a record of how they were made (no NAME.extract.json beside them, as for "
    "XD-Violence's released files): the video's facts, the extraction weights and precision are unknown"
)
UNKNOWN = "unknown"


def feature_inputs(entries: list[Any]) -> list[VideoInput]:
    """One run input per video of feature files (:class:`~violence_cli.xdfeatures.VideoEntry`):
    its name is the output name, its audio file the file that stands for it."""
    # ".npy" is there to be dropped: names such as "A.Beautiful.Mind.2001__#00-01" keep their dots
    return [
        VideoInput(e.audio_path, PurePosixPath(e.name + ".npy"), label=str(e.audio_path.parent / e.name))
        for e in entries
    ]


def entry_fingerprint(entry: Any) -> dict[str, int]:
    """Size and newest mtime of a video's feature files together: any rewritten file changes it."""
    stats = [p.stat() for p in (*entry.crop_paths, entry.audio_path)]
    return {"size": sum(s.st_size for s in stats), "mtime_ns": max(s.st_mtime_ns for s in stats)}


@dataclass
class FeaturesJob(DetectJob):
    """Score each video of ``entries`` (name -> ``VideoEntry``) from its feature files."""

    entries: dict[str, Any] = field(default_factory=dict)
    keep_features: bool = False  # they are on disk already

    def record(self, video: VideoInput, source: dict[str, int] | None = None) -> dict[str, Any]:
        entry = self.entries[video.name]
        params = {
            "features": True,
            "crops": len(entry.crop_paths),
            "threshold": self.threshold,
            "min_duration": self.min_duration,
            "merge_gap": self.merge_gap,
        }
        sha = {MACIL_WEIGHTS: self.weights[MACIL_WEIGHTS].sha256} if MACIL_WEIGHTS in self.weights else {}
        return make_record(source or entry_fingerprint(entry), sha, params)

    def load(self, device: Any) -> FeaturesWorker:
        return FeaturesWorker(self, device)


class FeaturesWorker:
    """The model alone (I3D and VGGish are never loaded), and what each video goes through."""

    def __init__(self, job: FeaturesJob, device: Any) -> None:
        from .. import pipeline

        self.job = job
        self.detector = pipeline.Detector(device=device, weights=job.weights, precision=job.precision, model=job.model)

    def process(self, video: VideoInput, progress: Progress | None = None) -> Outcome:
        import time

        job = self.job
        job.remove_leftovers(video)
        entry = job.entries[video.name]
        source = entry_fingerprint(entry)
        started = time.perf_counter()
        features, made_with, origin = load_features(entry, video.shown)
        result = self.detector.score(
            features,
            threshold=job.threshold,
            min_duration=job.min_duration,
            merge_gap=job.merge_gap,
            feature_weights=made_with,
        )
        work = time.perf_counter() - started
        result.record = job.record(video, source)
        result.features = {"reused": True, "from": str(origin), "alone": True}
        files = job.write_outputs(video, result)  # the report: the timeline without a player
        outcome = detect_outcome(video, result, DONE, files)
        outcome.decoded = False
        outcome.work_seconds = work
        return outcome


def load_features(entry: Any, shown: str) -> tuple[Any, list[Any] | None, Path]:
    """(``VideoFeatures``, the extraction weights when recorded, where they came from) of one
    video's feature files; the sidecar ``NAME.extract.json`` beside them, when there is one,
    gives the video's facts and how the features were made."""
    from ..features.extract import VideoFeatures
    from ..media import MediaInfo
    from ..xdfeatures import load_entry

    warnings: list[str] = []
    rgb, audio = load_entry(entry, warnings.append)  # (C, T, 1024), (T, 128)
    t = int(audio.shape[0])
    sidecar = entry.audio_path.parent / f"{entry.name}{SIDECAR_SUFFIX}"
    doc = read_sidecar(sidecar)
    media = doc.get("media") if doc is not None else None
    if doc is not None and isinstance(media, dict) and int(doc.get("n_snippets", -1)) == t:
        info = MediaInfo(path=Path(str(doc.get("video") or shown)), **media)
        n_frames, has_audio = int(doc["n_frames"]), bool(doc["has_audio"])
        precision, start = str(doc["precision"]), float(doc.get("start", 0.0))
        warnings = [str(w) for w in doc.get("warnings", [])] + warnings
        made_with = recorded_weights(doc["record"].get("weights", {}), sidecar.parent)
        origin = sidecar
    else:
        seconds = t * SNIPPET_SECONDS
        info = MediaInfo(
            path=Path(shown), duration=seconds, container=UNKNOWN, has_video=True, has_audio=True,
            video_stream=None, audio_stream=None, width=0, height=0, fps=float(VIDEO_FPS), rotation=0,
            video_codec=None, audio_codec=None, audio_sample_rate=0, audio_channels=0,
            n_video_streams=1, n_audio_streams=1,
        )  # fmt: skip
        n_frames, has_audio, precision, start = t * SNIPPET_FRAMES + 1, True, UNKNOWN, 0.0
        warnings.append(NO_RECORD_WARNING)
        made_with, origin = None, entry.audio_path.parent
    features = VideoFeatures(
        rgb=np.ascontiguousarray(rgb.transpose(1, 0, 2)),
        audio=audio,
        info=info,
        n_frames=n_frames,
        has_audio=has_audio,
        crops=int(rgb.shape[0]),
        warnings=warnings,
        precision=precision,
        start=start,
    )
    return features, made_with, origin


def recorded_weights(sha: dict[str, str], folder: Path) -> list[Any]:
    """The extraction weights a sidecar names (by sha256), with the path and verdict the
    folder's ``features.json`` gives, else checked against the registry here."""
    from ..provenance import read_manifest
    from ..schema import WeightsUsed

    try:
        listed = {(w["name"], w["sha256"]): w for w in (read_manifest(folder) or {}).get("weights", [])}
    except (OSError, ValueError, UnicodeDecodeError, KeyError, TypeError):
        listed = {}
    out = []
    for name in FEATURE_WEIGHTS:
        if name not in sha:
            continue
        known = listed.get((name, sha[name]), {})
        verified = bool(known["verified"]) if "verified" in known else _published(name, sha[name])
        out.append(WeightsUsed(name, str(known.get("path", UNKNOWN)), sha[name], verified))
    return out


def _published(name: str, sha256: str) -> bool:
    """``sha256`` is the registry's digest for ``name`` (or starts with its published prefix)."""
    from ..weights import get_entry

    entry = get_entry(name)
    if entry.sha256:
        return sha256 == entry.sha256
    return bool(entry.sha256_prefix) and sha256.startswith(str(entry.sha256_prefix))


__all__ = ["FeaturesJob", "feature_inputs", "load_features"]

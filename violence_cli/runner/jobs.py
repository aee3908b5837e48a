"""The two kinds of work a run does to one video: ``detect`` (scores, segments, exports) and
``extract`` (XD-Violence feature files).

A job is a small picklable description (what to compute, where the outputs go, which
weights files), so an engine can ship it to another process or machine; ``job.load(device)``
loads the networks once and returns a worker whose ``process(video)`` computes one video,
writes its outputs atomically (the resume record last) and returns its :class:`Outcome`.
``job.check_done(video)`` reads the record without loading anything.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import atomic
from ..models import DEFAULT_MODEL
from ..precision import FP32
from ..protocol import DEFAULT_CROPS, DEFAULT_THRESHOLD, I3D_WEIGHTS, VGGISH_WEIGHTS
from ..weights import ResolvedWeights
from .inputs import VideoInput
from .kept import (
    feature_files,
    features_record,
    files_whole,
    read_kept,
    read_sidecar,
    sidecar_path,
    update_manifest,
    write_kept,
)
from .records import DONE, SKIPPED, Outcome, fingerprint, make_record

INDEX_NAME = "index.html"  # detect's many-video page, beside the HTML reports
INDEX_STEM = "index"  # a video of this name gets index-2.html as its report
Progress = Callable[[int, "int | None"], None]  # (snippets done, total or None)


@dataclass
class Job:
    """What both jobs share: output folder, weights, the decode options."""

    out_dir: Path | None
    weights: dict[str, ResolvedWeights]
    crops: int = DEFAULT_CROPS
    batch_size: int | None = None
    video_stream: int | None = None
    audio_stream: int | None = None
    precision: str = FP32  # resolved (never auto) at the edge
    precision_asked: str | None = None  # what was asked (auto: the workers' record says why it resolved so)
    decode_workers: int = 0  # decode processes feeding the networks (features.decode_pool); 0: in-process
    kind = "job"

    def params(self) -> dict[str, Any]:
        """The parameters that change the result (a record with other values is not done)."""
        return {
            "crops": self.crops,
            "video_stream": self.video_stream,
            "audio_stream": self.audio_stream,
            "precision": self.precision,
        }

    def record(self, video: VideoInput, source: dict[str, int] | None = None) -> dict[str, Any]:
        sha = {name: w.sha256 for name, w in self.weights.items()}
        return make_record(source or fingerprint(video.path), sha, self.params())

    def record_path(self, video: VideoInput) -> Path:
        raise NotImplementedError

    def outputs(self, video: VideoInput) -> list[Path]:
        """Every file processing ``video`` may write."""
        raise NotImplementedError

    def remove_leftovers(self, video: VideoInput) -> None:
        """Before redoing ``video``: take away the temporary files a killed run left beside its
        outputs (this process owns them now: shards never share a video)."""
        for path in self.outputs(video):
            atomic.remove_stale(path)

    def check_done(self, video: VideoInput) -> Outcome | None:
        """The video's outcome from its record when its outputs are complete and current, else None."""
        if self.out_dir is None:
            return None
        try:
            doc = json.loads(self.record_path(video).read_text(encoding="utf-8"))
            if not isinstance(doc, dict) or doc.get("record") != self.record(video):
                return None
            return self._done_from(video, doc)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _done_from(self, video: VideoInput, doc: dict[str, Any]) -> Outcome | None:
        raise NotImplementedError

    def load(self, device: Any) -> Any:
        raise NotImplementedError

    def finish(self, outcomes: Sequence[Outcome]) -> None:
        """After the run (also an interrupted one): folder-wide bookkeeping; nothing by default."""


# --------------------------------------------------------------------------- detect


@dataclass
class DetectJob(Job):
    """Score each video; with ``out_dir``, write ``NAME.json`` (always: it is the record) and
    the other ``formats``; ``plot_dir``: one ``NAME.timeline.png`` each; ``output_files`` (one file
    per export, format from the extension) / ``plot``: for a run of one video."""

    formats: list[str] = field(default_factory=list)
    plot_dir: Path | None = None
    output_files: list[Path] = field(default_factory=list)  # -o FILE (repeatable)
    plot: Path | None = None
    threshold: float = DEFAULT_THRESHOLD
    min_duration: float = 0.0
    merge_gap: float = 0.0
    report_proxy: bool = False  # html: a browser-safe copy of a video browsers do not play
    start: float = 0.0  # s: score only this part of each video (with end)
    end: float | None = None
    model: str = DEFAULT_MODEL  # which model scores (violence_cli.models.MODEL_NAMES)
    keep_features: bool = True  # with out_dir: keep each video's features beside NAME.json
    kind = "detect"

    @property
    def index(self) -> Path | None:
        """``index.html`` in ``out_dir`` when HTML reports are written there."""
        return self.out_dir / INDEX_NAME if self.out_dir is not None and "html" in self.formats else None

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "threshold": self.threshold,
            "min_duration": self.min_duration,
            "merge_gap": self.merge_gap,
            **self._span(),
            # the resume record names the model; the kept features' record does not (any model rescores them)
            **({"model": self.model} if self.model != DEFAULT_MODEL else {}),
        }

    def _span(self) -> dict[str, Any]:
        # only when set: records of whole-video runs written before these options stay current
        return {**({"start": self.start} if self.start else {}), **({"end": self.end} if self.end is not None else {})}

    def features_record(self, video: VideoInput, source: dict[str, int]) -> dict[str, Any]:
        """The record of this video's kept features: what ``extract`` writes, plus the span."""
        return features_record(source, self.weights, {**Job.params(self), **self._span()})

    def finish(self, outcomes: Sequence[Outcome]) -> None:
        """Kept features: list them in the folder's ``features.json``, as ``extract`` does."""
        if self.out_dir is not None and self.keep_features:
            names = [o.name for o in outcomes if o.status in (DONE, SKIPPED)]
            update_manifest(self.out_dir, self.weights, names)

    def record_path(self, video: VideoInput) -> Path:
        assert self.out_dir is not None
        return self.out_dir / f"{video.name}.json"

    def exports(self, video: VideoInput) -> list[tuple[str, Path]]:
        """(format, path) of every export, JSON last (it is the record)."""
        from ..writers import format_for_path, get_writer

        out: list[tuple[str, Path]] = []
        out.extend((format_for_path(path), path) for path in self.output_files)
        if self.out_dir is not None:
            for f in self.formats:
                if f == "json":
                    continue
                stem = f"{video.name}-2" if f == "html" and video.name == INDEX_STEM else video.name  # not index.html
                out.append((f, self.out_dir / get_writer(f).file_name(stem)))
            out.append(("json", self.record_path(video)))
        return out

    def plot_path(self, video: VideoInput) -> Path | None:
        return self.plot_dir / f"{video.name}.timeline.png" if self.plot_dir is not None else self.plot

    def write_outputs(self, video: VideoInput, result: Any, html: Callable[[Path], Any] | None = None) -> list[Path]:
        """Write ``video``'s plot and exports (the JSON record last): the files written.
        ``html(target)``: the report's writer (default: the plain one, which plays nothing)."""
        from ..plot import plot_timeline
        from ..writers import HtmlWriter, get_writer

        files: list[Path] = []
        plot = self.plot_path(video)
        if plot is not None:
            plot.parent.mkdir(parents=True, exist_ok=True)
            files.append(plot_timeline(result, plot))
        for fmt, target in self.exports(video):
            target.parent.mkdir(parents=True, exist_ok=True)
            writer = html(target) if fmt == "html" and html is not None else get_writer(fmt)
            files.append(writer.write(result, target))
            if isinstance(writer, HtmlWriter) and writer.source_playback is not None:
                files.append(Path(writer.media))  # the proxy it plays: NAME.proxy.mp4
        return files

    def outputs(self, video: VideoInput) -> list[Path]:
        from ..report import proxy_path

        plot = self.plot_path(video)
        exports = self.exports(video)
        proxies = [proxy_path(p) for f, p in exports if f == "html" and self.report_proxy]
        kept = []
        if self.out_dir is not None and self.keep_features:
            kept = [*feature_files(self.out_dir, video.name, self.crops), sidecar_path(self.out_dir, video.name)]
        return [p for _, p in exports] + proxies + ([plot] if plot is not None else []) + kept

    def _done_from(self, video: VideoInput, doc: dict[str, Any]) -> Outcome | None:
        from ..schema import DetectionResult

        result = DetectionResult.from_dict(doc)
        plot = self.plot_path(video)
        files = [p for _, p in self.exports(video)] + ([plot] if plot is not None else [])
        if not all(p.is_file() for p in files):
            return None
        return detect_outcome(video, result, SKIPPED, files)

    def load(self, device: Any) -> DetectWorker:
        return DetectWorker(self, device)


def detect_outcome(video: VideoInput, result: Any, status: str, files: list[Path]) -> Outcome:
    return Outcome(
        path=video.shown,
        name=video.name,
        status=status,
        duration=result.video.duration,
        has_audio=result.video.has_audio,
        n_snippets=result.video.n_snippets,
        peak_score=result.max_score,
        violent_seconds=result.violent_seconds,
        segments=len(result.segments),
        verdict=result.verdict,
        precision=result.params.precision,
        files=[str(p) for p in files],
        warnings=list(result.warnings),
        result=result,
    )


class DetectWorker:
    """The networks, loaded once, and what each video goes through. ``detector``: networks
    already loaded for the job's options (``serve`` keeps one per worker for many jobs)."""

    def __init__(self, job: DetectJob, device: Any, detector: Any = None) -> None:
        from .. import pipeline

        self.job = job
        self._warnings: list[str] = []
        self.detector = detector or pipeline.Detector(
            device=device,
            crops=job.crops,
            batch_size=job.batch_size,
            precision=job.precision_asked or job.precision,
            model=job.model,
            weights=job.weights,
            decode_workers=job.decode_workers,
            defer_features=True,  # a run that only rescores kept features never loads I3D and VGGish
        )
        self.prefetch_depth = max(1, job.decode_workers)  # videos announced ahead

    def prefetch(self, video: VideoInput) -> None:
        """``video`` is next: its decoding starts while the current one's last batches run."""
        job = self.job
        if self._reusable(video):
            return  # its kept features will be rescored: nothing to decode ahead
        self.detector.extractor.prefetch(video.path, job.video_stream, job.audio_stream, start=job.start, end=job.end)

    def _reusable(self, video: VideoInput) -> bool:
        """Kept features of ``video`` whose record matches this job's (a cheap look at the sidecar)."""
        job = self.job
        if job.out_dir is None:
            return False
        doc = read_sidecar(sidecar_path(job.out_dir, video.name))
        return doc is not None and doc["record"] == job.features_record(video, fingerprint(video.path))

    def close(self) -> None:
        detector = self.detector  # a pipeline.Detector loads its extractor lazily (_extractor)
        extractor = detector._extractor if hasattr(detector, "_extractor") else getattr(detector, "extractor", None)
        if extractor is not None:  # never loaded when every video was rescored
            extractor.close()

    def process(self, video: VideoInput, progress: Progress | None = None) -> Outcome:
        job = self.job
        job.remove_leftovers(video)
        source = fingerprint(video.path)  # before reading: a file changed meanwhile is redone
        started = time.perf_counter()
        record = job.features_record(video, source)
        kept = read_kept(job.out_dir, video.name, record, video.path) if job.out_dir is not None else None
        if kept is not None:  # the same input, weights, crops, precision and span: nothing to decode
            features, origin = kept
        else:
            features = self.detector.features(
                video.path,
                video_stream=job.video_stream,
                audio_stream=job.audio_stream,
                progress=progress,
                start=job.start,
                end=job.end,
            )
        result = self.detector.score(
            features,
            threshold=job.threshold,
            min_duration=job.min_duration,
            merge_gap=job.merge_gap,
            start=job.start,
            end=job.end,
        )
        if kept is not None:
            result.features = {"reused": True, "from": str(origin)}
        elif job.out_dir is not None and job.keep_features:
            _, origin = write_kept(job.out_dir, video.name, features, video.shown, record)
            result.features = {"reused": False, "kept": str(origin)}
        work = time.perf_counter() - started
        result.video.path = video.shown  # a URL or "-", not the temporary copy read
        result.record = job.record(video, source)
        files = job.write_outputs(
            video, result, lambda target: html_writer(result, target, job.report_proxy, self._warnings.append, video)
        )
        outcome = detect_outcome(video, result, DONE, files)
        outcome.decoded = kept is None
        outcome.warnings += self._warnings
        self._warnings = []
        outcome.work_seconds = work
        return outcome


def html_writer(
    result: Any, target: Path, proxy: bool, warn: Callable[[str], None], video: VideoInput | None = None
) -> Any:
    """The report's writer: it plays the video itself when browsers can, else a browser-safe
    copy beside the report (``proxy``), else it plays nothing and ``warn`` says why. A URL or
    stdin (``video.label``) is read from its temporary copy, which is not kept: only a proxy
    can play it."""
    from ..report import check_playback, make_proxy, proxy_path
    from ..writers import HtmlWriter

    source = video.path if video is not None else Path(result.video.path)
    playback = check_playback(source, result.video.video_stream, info=getattr(result, "media", None))
    spooled = video is not None and video.label is not None
    if spooled and not proxy:
        warn(f"{video.label}: the report's player stays blank (the input is not kept; report_proxy=True keeps a copy)")
        return HtmlWriter(source, playback)
    if playback.safe and not spooled:
        return HtmlWriter(source, playback)
    if not proxy:
        warn(
            f"{source.name}: {playback.reason}; the report's player may stay blank "
            "(report_proxy=True writes a browser-safe copy beside the report)"
        )
        return HtmlWriter(source, playback)
    copy = make_proxy(source, proxy_path(target), result.video.video_stream, result.video.audio_stream)
    return HtmlWriter(copy, check_playback(copy), source_playback=playback)


# --------------------------------------------------------------------------- extract


@dataclass
class ExtractJob(Job):
    """Write each video's XD-Violence features into ``out_dir``: ``NAME__0.npy`` ..
    ``NAME__{C-1}.npy``, ``NAME__vggish.npy``, then the record ``NAME.extract.json``
    (:mod:`violence_cli.runner.kept`: the format ``detect --output-dir`` keeps too)."""

    kind = "extract"

    def record(self, video: VideoInput, source: dict[str, int] | None = None) -> dict[str, Any]:
        return features_record(source or fingerprint(video.path), self.weights, self.params())

    def record_path(self, video: VideoInput) -> Path:
        assert self.out_dir is not None
        return sidecar_path(self.out_dir, video.name)

    def files(self, video: VideoInput) -> list[Path]:
        assert self.out_dir is not None
        return feature_files(self.out_dir, video.name, self.crops)

    def outputs(self, video: VideoInput) -> list[Path]:
        return [*self.files(video), self.record_path(video)]

    def _done_from(self, video: VideoInput, doc: dict[str, Any]) -> Outcome | None:
        files = self.files(video)
        t = int(doc["n_snippets"])
        if not files_whole(files, t):
            return None  # missing, empty, damaged or cut short: not done
        return Outcome(
            path=str(video.path),
            name=video.name,
            status=SKIPPED,
            duration=doc.get("duration"),
            has_audio=doc.get("has_audio"),
            n_snippets=t,
            precision=doc.get("precision"),
            files=[str(p) for p in files],
        )

    def load(self, device: Any) -> ExtractWorker:
        return ExtractWorker(self, device)

    def finish(self, outcomes: Sequence[Outcome]) -> None:
        """Merge the videos done or skipped by this run into the folder's ``features.json``
        (see :mod:`violence_cli.provenance`), under the folder lock: shards share the file."""
        if self.out_dir is not None:
            update_manifest(self.out_dir, self.weights, [o.name for o in outcomes if o.status in (DONE, SKIPPED)])


class ExtractWorker:
    def __init__(self, job: ExtractJob, device: Any) -> None:
        from ..features import extract as features

        self.job = job
        self.extractor = features.FeatureExtractor(
            i3d_weights=job.weights[I3D_WEIGHTS].path,
            vggish_weights=job.weights[VGGISH_WEIGHTS].path,
            device=device,
            crops=job.crops,
            batch_size=job.batch_size,
            precision=job.precision_asked or job.precision,  # auto: the measured choice, cached
            download=False,
            decode_workers=job.decode_workers,
        )
        self.prefetch_depth = max(1, job.decode_workers)  # videos announced ahead

    def prefetch(self, video: VideoInput) -> None:
        """``video`` is next: its decoding starts while the current one's last batches run."""
        self.extractor.prefetch(video.path, self.job.video_stream, self.job.audio_stream)

    def close(self) -> None:
        self.extractor.close()

    def process(self, video: VideoInput, progress: Progress | None = None) -> Outcome:
        job = self.job
        job.remove_leftovers(video)
        assert job.out_dir is not None
        source = fingerprint(video.path)
        started = time.perf_counter()
        feats = self.extractor.extract(
            video.path, video_stream=job.video_stream, audio_stream=job.audio_stream, progress=progress
        )
        work = time.perf_counter() - started
        written, _ = write_kept(
            job.out_dir,
            video.name,
            feats,
            str(video.path),
            job.record(video, source),
            extra={"precision_choice": self.extractor.precision_choice.provenance()},
        )
        return Outcome(
            path=str(video.path),
            name=video.name,
            status=DONE,
            duration=feats.info.duration,
            has_audio=feats.has_audio,
            n_snippets=feats.n_snippets,
            precision=feats.precision,
            files=[str(p) for p in written],
            warnings=list(feats.warnings),
            work_seconds=work,
            decoded=True,
        )


__all__ = ["DetectJob", "ExtractJob", "Job"]

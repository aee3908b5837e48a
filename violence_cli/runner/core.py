"""Run a job over many videos: resume, failures, one outcome per video, engines.

:func:`run` plans first (a video whose record matches is skipped; one in ``failures.jsonl``
with the same input fingerprint is not retried unless ``retry_failed``), then hands the
pending videos to an engine: ``local`` (this process, networks loaded once, at the first
video that needs them) or ``ray`` (:mod:`violence_cli.runner.ray_engine`). Every video ends
with an :class:`~violence_cli.runner.records.Outcome`; any ``Exception`` while doing one is
recorded as its failure and the run goes on (KeyboardInterrupt and SystemExit are not
caught: the run records where it stopped, saves its tables and lets them through).
Library code: nothing is printed; :class:`RunEvents` reports progress.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ViolenceDetectError
from .inputs import VideoInput
from .jobs import Job
from .records import (
    DONE,
    FAILED,
    FAILED_BEFORE,
    SKIPPED,
    Outcome,
    RunFiles,
    failed_outcome,
    fingerprint,
    release_device_memory,
)

ENGINES = ("local", "ray")
FLUSH_EVERY = 2.0  # s: results.csv / failures.jsonl are rewritten at most this often (and at the end)


class RunEvents:
    """Progress callbacks of a run; every method is optional (override what you show)."""

    def planned(self, pending: Sequence[VideoInput], durations: dict[str, float] | None, skipped: int) -> None:
        """Before the first video: what will be done, seconds of video per name (when asked)."""

    def started(self, video: VideoInput) -> None:
        """A video starts (local engine only)."""

    def progress(self, video: VideoInput, done: int, total: int | None) -> None:
        """Snippets done within a video (local engine only)."""

    def loading(self, active: bool) -> None:
        """The networks are being loaded (True), or are loaded (False)."""

    def finished(self, outcome: Outcome) -> None:
        """A video is done, skipped or failed (``outcome.result`` is set for detect, for this call only)."""


@dataclass
class RunSummary:
    total: int = 0
    done: int = 0
    skipped: int = 0  # done before (their record matched)
    failed: int = 0
    failed_before: int = 0  # in failures.jsonl, not retried
    violent: int = 0  # among those done by this run (detect)
    rescored: int = 0  # among those done: scored from kept features, nothing decoded (detect)
    video_seconds: float = 0.0  # s of video processed by this run
    wall_seconds: float = 0.0
    work_seconds: float = 0.0  # of which decoding + networks
    interrupted_at: str | None = None  # the video the run stopped in, if interrupted
    outcomes: list[Outcome] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        outcome.result = None  # results are the caller's to keep: memory must not grow per video
        self.outcomes.append(outcome)
        self.total += 1
        if outcome.status == DONE:
            self.done += 1
            self.video_seconds += outcome.duration or 0.0
            self.work_seconds += outcome.work_seconds
        self.skipped += outcome.status == SKIPPED
        self.failed += outcome.status == FAILED
        self.failed_before += outcome.status == FAILED_BEFORE
        self.violent += outcome.status == DONE and outcome.verdict == "violent"
        self.rescored += outcome.status == DONE and outcome.decoded is False


class _Recorder:
    """Where outcomes go: the summary, the events, the run files."""

    def __init__(self, summary: RunSummary, events: RunEvents, files: RunFiles | None) -> None:
        self.summary, self.events, self.files = summary, events, files

    def __call__(self, outcome: Outcome, video: VideoInput | None = None) -> None:
        if self.files is not None:
            source = None
            if outcome.status == FAILED and video is not None:
                try:
                    source = fingerprint(video.path)
                except OSError:
                    source = None
            self.files.add(outcome, source)
            self.files.flush(every=FLUSH_EVERY)
        self.events.finished(outcome)
        self.summary.add(outcome)


def plan(
    videos: Sequence[VideoInput], job: Job, files: RunFiles | None, *, overwrite: bool, retry_failed: bool
) -> tuple[list[VideoInput], list[Outcome]]:
    """(pending videos, outcomes of those not to do: skipped, failed-before)."""
    failures = files.read_failures() if files is not None and not retry_failed else {}
    pending: list[VideoInput] = []
    settled: list[Outcome] = []
    for video in videos:
        done = None if overwrite else job.check_done(video)
        if done is not None:
            settled.append(done)
            continue
        entry = failures.get(video.name)
        if entry is not None:
            try:
                same = entry.get("source") == fingerprint(video.path)
            except OSError:
                same = False
            if same:
                settled.append(
                    Outcome(
                        str(video.path),
                        video.name,
                        FAILED_BEFORE,
                        error=entry.get("error"),
                        hint="failed in an earlier run; retry_failed=True tries it again",
                    )
                )
                continue
        pending.append(video)
    return pending, settled


def durations_of(videos: Sequence[VideoInput]) -> dict[str, float]:
    """Seconds of each video from its container (0 when it cannot be probed)."""
    from ..media import probe

    out: dict[str, float] = {}
    for video in videos:
        try:
            out[video.name] = max(0.0, float(probe(video.path).duration))
        except Exception:  # noqa: BLE001 - a video that cannot be probed fails later, with its reason
            out[video.name] = 0.0
    return out


def run(
    videos: Sequence[VideoInput],
    job: Job,
    *,
    device: Any = "cpu",
    engine: str = "local",
    overwrite: bool = False,
    retry_failed: bool = False,
    events: RunEvents | None = None,
    want_durations: bool = False,
    ray_address: str | None = None,
    actors: int | None = None,
) -> RunSummary:
    """Do ``job`` for every video; returns the :class:`RunSummary` (outcomes in order of completion).

    With ``job.out_dir`` set, done videos are skipped (unless ``overwrite``), and
    ``results.csv`` / ``failures.jsonl`` are kept in that folder as the run goes.
    """
    if engine not in ENGINES:
        raise ViolenceDetectError(f"engine {engine!r}: expected one of {', '.join(ENGINES)}")
    started = time.perf_counter()
    events = events or RunEvents()
    summary = RunSummary()
    files = RunFiles(job.out_dir) if job.out_dir is not None else None
    record = _Recorder(summary, events, files)
    pending, settled = plan(videos, job, files, overwrite=overwrite, retry_failed=retry_failed)
    events.planned(pending, durations_of(pending) if want_durations else None, len(settled))
    try:
        for outcome in settled:
            record(outcome)
        if pending and engine == "ray":
            from .ray_engine import run_ray

            run_ray(pending, job, record, summary, address=ray_address, actors=actors, device=device)
        elif pending:
            _run_local(pending, job, device, events, record, summary)
    except BaseException as exc:  # KeyboardInterrupt (SIGTERM too, see cli), SystemExit: say how far it got
        if not hasattr(exc, "run_summary"):
            exc.run_summary = summary  # type: ignore[attr-defined]
        raise
    finally:
        summary.wall_seconds = time.perf_counter() - started
        if files is not None:
            files.flush()
            job.finish(summary.outcomes)  # extract: the folder's features.json
    return summary


def _run_local(
    pending: Sequence[VideoInput], job: Job, device: Any, events: RunEvents, record: _Recorder, summary: RunSummary
) -> None:
    events.loading(True)
    worker = job.load(device)  # outside the per-video catch: a failure here concerns every video
    events.loading(False)
    try:
        _each_video(pending, worker, events, record, summary, device)
    finally:
        close = getattr(worker, "close", None)
        if close is not None:
            close()  # a prefetched video stops decoding


def _each_video(
    pending: Sequence[VideoInput], worker: Any, events: RunEvents, record: _Recorder, summary: RunSummary, device: Any
) -> None:
    prefetch = getattr(worker, "prefetch", None)
    depth = int(getattr(worker, "prefetch_depth", 1))  # with decode workers: one video ahead per worker
    announced = 0
    for i, video in enumerate(pending):
        while prefetch is not None and announced < min(len(pending), i + 1 + depth):
            if announced > i:
                prefetch(pending[announced])  # decodes while the videos before it run
            announced += 1
        events.started(video)
        t0 = time.perf_counter()
        try:
            outcome = worker.process(video, lambda done, total, v=video: events.progress(v, done, total))
        except Exception as exc:  # noqa: BLE001 - any failure of one video is recorded; the run goes on
            outcome = failed_outcome(video, exc)
            release_device_memory(device)
        except BaseException as exc:  # KeyboardInterrupt (SIGTERM too, see cli), SystemExit
            summary.interrupted_at = str(video.path)
            exc.run_summary = summary  # type: ignore[attr-defined]
            raise
        outcome.seconds = time.perf_counter() - t0
        record(outcome, video)


__all__ = ["ENGINES", "RunEvents", "RunSummary", "durations_of", "failed_outcome", "plan", "run"]

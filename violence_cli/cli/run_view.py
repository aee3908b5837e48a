"""How a many-video run looks on the terminal: a run-level bar (videos, seconds of video,
ETA) above the per-video bar, and the closing line. Shared by ``detect`` and ``extract``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .. import console
from ..console import bar_paused
from ..messages import count
from ..runner import RunEvents, RunSummary, run
from ..runner.inputs import VideoInput
from ..runner.records import Outcome
from ..timefmt import elapsed, span


class RunView(RunEvents):
    """Progress on a Rich ``bar`` (None: no bars); ``on_outcome`` gets every outcome."""

    def __init__(self, bar: Any, on_outcome: Callable[[Outcome], None]) -> None:
        self.bar = bar
        self.on_outcome = on_outcome
        self.durations: dict[str, float] = {}
        self.videos_task = self.seconds_task = self.video_task = self.loading_task = None

    def planned(self, pending: Sequence[VideoInput], durations: dict[str, float] | None, skipped: int) -> None:
        self.durations = durations or {}
        if self.bar is None or len(pending) < 2:
            return
        self.videos_task = self.bar.add_task("videos", total=len(pending))
        if durations:
            self.seconds_task = self.bar.add_task("seconds of video", total=round(sum(durations.values())))

    def loading(self, active: bool) -> None:
        if self.bar is None:
            return
        if active:
            self.loading_task = self.bar.add_task("loading the networks", total=None)
        elif self.loading_task is not None:
            self.bar.remove_task(self.loading_task)
            self.loading_task = None

    def started(self, video: VideoInput) -> None:
        if self.bar is not None:
            self.video_task = self.bar.add_task(str(video.rel), total=None)

    def progress(self, video: VideoInput, done: int, total: int | None) -> None:
        if self.bar is not None and self.video_task is not None:
            self.bar.update(self.video_task, completed=done, total=total)

    def finished(self, outcome: Outcome) -> None:
        if self.bar is not None:
            if self.video_task is not None:
                self.bar.remove_task(self.video_task)
                self.video_task = None
            if outcome.status in ("done", "failed") and self.videos_task is not None:
                self.bar.advance(self.videos_task)
                if self.seconds_task is not None:
                    self.bar.advance(self.seconds_task, round(self.durations.get(outcome.name, 0.0)))
        with bar_paused(self.bar):  # the outcome's lines (stdout or stderr) never share a line with a bar
            self.on_outcome(outcome)


def closing_line(summary: RunSummary, verb: str, extra_failed: int = 0) -> str:
    """``1,200 videos: 1,188 scored (54 violent, 1,000 rescored from kept features), 12 failed,
    212.4 h of video in 9 h 41 min`` (rescored: nothing decoded, the features kept by an earlier run)."""
    total = summary.total + extra_failed
    details = [f"{summary.violent:,} violent"] if verb == "scored" else []
    if summary.rescored:
        details.append(f"{summary.rescored:,} rescored from kept features")
    parts = [f"{summary.done:,} {verb}" + (f" ({', '.join(details)})" if details else "")]
    if summary.skipped:
        parts.append(f"{summary.skipped:,} skipped (done before)")
    parts.append(f"{summary.failed + extra_failed:,} failed")
    if summary.failed_before:
        parts.append(f"{summary.failed_before:,} failed before (not retried)")
    line = f"{count(total, 'video')}: {', '.join(parts)}, "
    line += f"{span(summary.video_seconds)} of video in {elapsed(summary.wall_seconds)}"
    if summary.interrupted_at:
        line += f"; interrupted in {summary.interrupted_at}"
    return line


def run_in_view(
    videos: Sequence[VideoInput],
    job: Any,
    bar: Any,
    on_outcome: Callable[[Outcome], None],
    *,
    verb: str,
    **options: Any,
) -> RunSummary:
    """``runner.run`` drawn on ``bar``; on Ctrl-C or SIGTERM, say how far the run got and how
    to go on (then re-raise)."""
    try:
        return run(videos, job, events=RunView(bar, on_outcome), **options)
    except KeyboardInterrupt as exc:
        stopped = getattr(exc, "run_summary", None)
        with bar_paused(bar):
            console.warn(stopped_line(stopped, verb, len(videos), resumable=getattr(job, "out_dir", None) is not None))
        raise


def stopped_line(summary: RunSummary | None, verb: str, planned: int, *, resumable: bool) -> str:
    """What an interrupted run says: how far it got, and that a rerun goes on from there."""
    if summary is None or not summary.total:
        line = f"stopped before the first of {count(planned, 'video')} was {verb}"
    else:
        line = f"stopped: {closing_line(summary, verb)}"
        left = planned - summary.total - (summary.interrupted_at is not None)  # the one stopped in is not counted
        if left > 0:
            line += f"; {left:,} not started"
    if resumable:
        return line + "; rerun the same command to go on (finished videos are skipped)"
    return line + "; rerun the same command to do them again (with --output-dir a rerun skips finished videos)"

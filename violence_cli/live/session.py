"""The live loop: source -> snippets -> causal scores -> alerts, as a stream of typed updates.

:class:`LiveMonitor` owns the reader thread, the scorer, the tracker and the optional hook
and clip recorder. :meth:`LiveMonitor.updates` yields a :class:`SnippetScore` per scored
snippet and a :class:`StatusUpdate` for everything else the user should hear about
(connected, reconnecting, a clip written, a hook that failed); it prints nothing. Leaving
the loop (end of stream, ``duration`` reached, Ctrl-C, an error) stops the reader, ends an
open segment (its event is in :attr:`LiveMonitor.final_events`), finishes the clips and
waits for the hooks.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..protocol import DEFAULT_THRESHOLD, SNIPPET_FRAMES
from .alerts import AlertEvent, AlertHook, ClipRecorder, SegmentTracker
from .scorer import DEFAULT_WINDOW, CausalScorer, SnippetAssembler, SnippetScore
from .source import (
    AUDIO_KEEP_SECONDS,
    DEFAULT_TIMEOUT,
    AudioBuffer,
    Failed,
    Frame,
    FrameQueue,
    LiveReader,
    SourceSpec,
    Status,
)

QUEUE_SNIPPETS = 2  # snippets of frames the queue holds before dropping the oldest


@dataclass
class LiveOptions:
    """``reconnect`` None: on for network sources and devices, off for files."""

    window: int = DEFAULT_WINDOW
    threshold: float = DEFAULT_THRESHOLD
    min_duration: float = 0.0
    duration: float | None = None  # s of watching (wall clock), None: until the source ends
    timeout: float = DEFAULT_TIMEOUT
    reconnect: bool | None = None
    rtsp_transport: str = "tcp"
    queue_frames: int = QUEUE_SNIPPETS * SNIPPET_FRAMES
    video_stream: int | None = None  # stream indices, as detect's (None: the best of each kind)
    audio_stream: int | None = None


@dataclass
class StatusUpdate:
    """``kind``: connected, disconnected, reconnecting, stalled, ended, lost, clip, warning."""

    kind: str
    message: str
    wall_time: float = field(default_factory=time.time)


@dataclass
class LiveSummary:
    snippets: int = 0
    skipped_snippets: int = 0  # too many of their frames dropped to be scored
    dropped_frames: int = 0
    reconnects: int = 0
    alerts: int = 0
    clips: list[str] = field(default_factory=list)
    seconds: float = 0.0  # wall time watched
    lost: bool = False  # the source went away and was not reconnected
    latencies: list[float] = field(default_factory=list, repr=False)


class LiveMonitor:
    """Watch ``spec`` with the networks of ``detector`` (a :class:`~violence_cli.pipeline.Detector`)."""

    def __init__(
        self,
        spec: SourceSpec,
        detector: Any,
        options: LiveOptions | None = None,
        *,
        hook: AlertHook | None = None,
        clips: ClipRecorder | None = None,
    ) -> None:
        self.spec, self.options = spec, options or LiveOptions()
        self.hook, self.clips = hook, clips
        reconnect = self.options.reconnect
        if reconnect is None:
            reconnect = spec.kind != "file"
        self.frames = FrameQueue(self.options.queue_frames, live=spec.live)
        keep = max(AUDIO_KEEP_SECONDS, clips.audio_seconds if clips is not None else 0.0)
        self.audio = AudioBuffer(keep)  # long enough for a clip's audio from before its segment
        if clips is not None:
            clips.audio = self.audio
        self.reader = LiveReader(
            spec,
            self.frames,
            self.audio,
            timeout=self.options.timeout,
            reconnect=reconnect,
            rtsp_transport=self.options.rtsp_transport,
            video_stream=self.options.video_stream,
            audio_stream=self.options.audio_stream,
        )
        self.scorer = CausalScorer(detector.extractor, detector.scorer, self.audio, self.options.window)
        self.assembler = SnippetAssembler()
        self.tracker = SegmentTracker(self.options.threshold, self.options.min_duration, spec.label)
        self.summary = LiveSummary()
        self.final_events: list[AlertEvent] = []
        self._notes: queue.Queue[StatusUpdate] = queue.Queue()  # from hook and clip threads

    def note(self, kind: str, message: str) -> None:
        """Thread-safe: report something from a helper thread through :meth:`updates`."""
        self._notes.put(StatusUpdate(kind, message))

    def updates(self) -> Iterator[SnippetScore | StatusUpdate]:
        self.scorer.warm_up()
        started = time.monotonic()
        self.reader.start()
        try:
            while True:
                yield from self._drain_notes()
                if self.options.duration is not None and time.monotonic() - started >= self.options.duration:
                    return
                if self.spec.live and self.reader.stalled():
                    yield StatusUpdate(
                        "stalled",
                        f"no frames for {self.options.timeout + 2:g} s and the reader did not return; reconnecting",
                    )
                    self.assembler.reset()
                    self.reader.restart()
                    continue
                item = self.frames.get(timeout=0.1)
                if item is None:
                    continue
                if isinstance(item, Failed):
                    raise item.error
                if isinstance(item, Status):
                    if item.has_audio is not None:
                        self.scorer.has_audio = item.has_audio
                    if item.kind in ("disconnected", "connected"):
                        self.assembler.reset()
                    yield StatusUpdate(item.kind, item.message)
                    if item.kind in ("ended", "lost"):
                        self.summary.lost = item.kind == "lost"
                        return
                    continue
                ready = self._take(item)
                yield from self._score(ready)
        finally:
            self._stop(started)

    def _take(self, frame: Frame) -> list:
        """Assemble ``frame``; when a snippet is ready, take what else is queued (catching up)."""
        ready = self._add(frame)
        while ready and len(ready) < self.scorer.max_batch and len(self.frames):
            more = self.frames.get()
            if not isinstance(more, Frame):
                self.frames.put_front(more)  # a status: handled on the next turn
                break
            ready += self._add(more)
        return ready

    def _add(self, frame: Frame) -> list:
        if self.clips is not None:
            self.clips.add_frame(frame.tick, frame.image)
        return self.assembler.add(frame)

    def _score(self, ready: list) -> Iterator[SnippetScore]:
        step = self.scorer.max_batch
        for i in range(0, len(ready), step):
            for snippet, av, audio, visual, context in self.scorer.score(ready[i : i + step]):
                now = time.time()
                events = self.tracker.update(snippet.start, snippet.end, av, now)
                for event in events:
                    self._dispatch(event)
                result = SnippetScore(
                    index=snippet.index,
                    start=snippet.start,
                    end=snippet.end,
                    score=av,
                    audio_score=audio,
                    visual_score=visual,
                    wall_time=now,
                    latency=time.monotonic() - snippet.last_arrival,
                    dropped_frames=self.frames.dropped,
                    window=context,
                    events=events,
                )
                self.summary.snippets += 1
                self.summary.latencies.append(result.latency)
                yield result

    def _dispatch(self, event: AlertEvent) -> None:
        if event.kind == "start":
            self.summary.alerts += 1
        if self.clips is not None:
            self.clips.on_event(event)
        if self.hook is not None:
            self.hook.submit(event)

    def _drain_notes(self) -> Iterator[StatusUpdate]:
        while True:
            try:
                yield self._notes.get_nowait()
            except queue.Empty:
                return

    def _stop(self, started: float) -> None:
        self.reader.stop()
        self.final_events = self.tracker.finish(time.time())
        for event in self.final_events:
            self._dispatch(event)
        if self.clips is not None:
            self.clips.close()
            self.summary.clips = [str(p) for p in self.clips.written]
        if self.hook is not None:
            self.hook.close()
        self.summary.dropped_frames = self.frames.dropped
        self.summary.skipped_snippets = self.assembler.skipped
        self.summary.reconnects = self.reader.reconnects
        self.summary.seconds = time.monotonic() - started

    def pending_notes(self) -> list[StatusUpdate]:
        """Notes that came in after :meth:`updates` ended (clips finished while stopping)."""
        return list(self._drain_notes())


__all__ = ["LiveMonitor", "LiveOptions", "LiveSummary", "StatusUpdate"]

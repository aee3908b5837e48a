"""Alerts on a live stream: violent segments opening and closing, hooks, and clips.

- :class:`SegmentTracker`: a segment *starts* once consecutive snippets at or above the
  threshold have lasted ``min_duration`` seconds (one snippet when 0), and *ends* at the
  first snippet below it (or when watching stops). One :class:`AlertEvent` each.
- :class:`AlertHook`: runs a command for each event, the event as JSON on its stdin, as an
  argument list (never through a shell), in its own thread so scoring never waits for it.
- :class:`ClipRecorder`: keeps the last seconds of frames in a ring buffer; a start event
  begins an MP4 from ``before`` seconds ahead of the segment and it closes ``after``
  seconds past the segment's end (or at ``max_seconds``); the audio of the same ticks
  (16 kHz mono, AAC) goes with the pictures when an audio buffer is given; encoded in its
  own thread and written atomically (a temporary name in the folder, then a rename).
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path
from ..protocol import AUDIO_RATE, VIDEO_FPS

HOOK_TIMEOUT = 30.0  # s a hook command may run before it is killed
CLIP_BEFORE, CLIP_AFTER = 3.0, 3.0  # s of video kept before a segment starts and after it ends
CLIP_MAX_SECONDS = 120.0  # s: a clip longer than this is closed (a segment that never ends)
CLIP_AUDIO_LAG = 1.0  # s: a clip takes its audio this far behind its newest frame (audio may come late)
_AAC_FRAME = 1024  # samples per AAC frame
_EPS = 1e-6


@dataclass
class AlertEvent:
    """``kind`` ``start`` or ``end`` of violent segment number ``segment`` (1, 2, ...).

    ``start``/``end``: stream seconds of the segment (``end`` None while it is open);
    ``peak``/``mean``: its scores so far; ``wall_time``: Unix time of the event; ``reason``
    for an end: ``score`` (fell below the threshold) or ``stopped``."""

    kind: str
    segment: int
    start: float
    end: float | None
    peak: float
    mean: float
    threshold: float
    wall_time: float
    source: str
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "alert",
            "event": self.kind,
            "segment": self.segment,
            "start": round(self.start, 6),
            "end": None if self.end is None else round(self.end, 6),
            "peak": round(self.peak, 6),
            "mean": round(self.mean, 6),
            "threshold": self.threshold,
            "wall_time": datetime.fromtimestamp(self.wall_time, timezone.utc).isoformat(timespec="milliseconds"),
            "source": self.source,
            "reason": self.reason,
        }


class SegmentTracker:
    """Scores in stream order -> start/end events (see the module docstring)."""

    def __init__(self, threshold: float, min_duration: float, source: str) -> None:
        self.threshold, self.min_duration, self.source = threshold, min_duration, source
        self.count = 0
        self.open = False
        self._run: list[float] = []
        self._run_start = 0.0
        self._last_end = 0.0

    def update(self, start: float, end: float, score: float, now: float) -> list[AlertEvent]:
        events: list[AlertEvent] = []
        if score >= self.threshold:
            if not self._run:
                self._run_start = start
            self._run.append(score)
            if not self.open and end - self._run_start + _EPS >= self.min_duration:
                self.open = True
                self.count += 1
                events.append(self._event("start", None, now))
        else:
            if self.open:
                events.append(self._event("end", self._last_end, now, "score"))
            self.open, self._run = False, []
        self._last_end = end
        return events

    def finish(self, now: float) -> list[AlertEvent]:
        """Watching stopped: end an open segment."""
        if not self.open:
            return []
        self.open = False
        return [self._event("end", self._last_end, now, "stopped")]

    def _event(self, kind: str, end: float | None, now: float, reason: str | None = None) -> AlertEvent:
        run = self._run or [0.0]
        return AlertEvent(
            kind,
            self.count,
            self._run_start,
            end,
            max(run),
            float(np.mean(run)),
            self.threshold,
            now,
            self.source,
            reason,
        )


class AlertHook:
    """Run ``argv`` once per event with the event's JSON on stdin, off the scoring thread.

    Failures (non-zero exit, timeout, command not found) go to ``on_error`` as one line, which
    names the hook by its parameter, ``on_alert``.
    """

    def __init__(self, argv: Sequence[str], on_error: Callable[[str], None], timeout: float = HOOK_TIMEOUT) -> None:
        if not argv:
            raise ValueError("empty hook command")
        self.argv, self.on_error, self.timeout = list(argv), on_error, timeout
        self.runs = 0
        self._queue: queue.Queue[AlertEvent | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="violence-detect-hook", daemon=True)
        self._thread.start()

    def submit(self, event: AlertEvent) -> None:
        self._queue.put(event)

    def close(self, wait: float = HOOK_TIMEOUT) -> None:
        """Run what is queued (up to ``wait`` seconds), then stop."""
        self._queue.put(None)
        self._thread.join(wait)

    def _work(self) -> None:
        while (event := self._queue.get()) is not None:
            data = json.dumps(event.to_dict()).encode() + b"\n"
            name = self.argv[0]
            try:
                done = subprocess.run(  # an argument list: no shell ever parses the command
                    self.argv, input=data, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=self.timeout
                )
            except FileNotFoundError:
                self.on_error(f"on_alert: command not found: {name}")
                continue
            except subprocess.TimeoutExpired:
                self.on_error(f"on_alert: {name} ran longer than {self.timeout:g} s and was stopped")
                continue
            except OSError as exc:
                self.on_error(f"on_alert: cannot run {name}: {exc.strerror or exc}")
                continue
            self.runs += 1
            if done.returncode:
                tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] if done.stderr else []
                self.on_error(f"on_alert: {name} exited with {done.returncode}" + (f": {tail[0]}" if tail else ""))


def _sample_of(tick: int) -> int:
    """The first audio sample (16 kHz) of 24 fps ``tick``."""
    return tick * AUDIO_RATE // VIDEO_FPS


class _ClipWriter:
    """One MP4 being written in its own thread from frames fed in tick order, with the
    audio of those ticks from ``audio`` (an AudioBuffer) when given."""

    def __init__(
        self, path: Path, first_tick: int, on_done: Callable[[Path | None, str | None], None], audio: Any = None
    ) -> None:
        self.path, self.first_tick, self.on_done = path, first_tick, on_done
        self.last_tick = first_tick - 1
        self.end_tick: int | None = None
        self.audio = audio
        self._audio_next = _sample_of(first_tick)  # the next sample to take from the buffer
        self._queue: queue.Queue[tuple | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="violence-detect-clip", daemon=True)
        self._thread.start()

    def feed(self, tick: int, image: np.ndarray) -> None:
        if tick > self.last_tick:
            self.last_tick = tick
            self._queue.put(("video", tick, image))
            self._take_audio(tick - round(CLIP_AUDIO_LAG * VIDEO_FPS))

    def _take_audio(self, upto_tick: int) -> None:
        """Queue the audio of the ticks up to ``upto_tick`` not queued yet."""
        stop = _sample_of(upto_tick + 1)
        if self.audio is None or stop <= self._audio_next:
            return
        samples = self.audio.window(self._audio_next, stop).astype(np.float32)  # zeros where none came
        self._queue.put(("audio", self._audio_next - _sample_of(self.first_tick), samples))
        self._audio_next = stop

    def finish(self) -> None:
        self._take_audio(self.last_tick)
        self._queue.put(None)

    def join(self, wait: float) -> None:
        self._thread.join(wait)

    def _work(self) -> None:
        import av

        try:
            with atomic_path(self.path) as tmp, av.open(str(tmp), mode="w", format="mp4") as out:
                stream = sound = None
                pending = np.zeros(0, np.float32)  # audio not yet in a whole AAC frame
                written = 0  # audio samples encoded
                while (item := self._queue.get()) is not None:
                    if item[0] == "audio":
                        if sound is None:
                            continue  # (the first item is always a frame)
                        pending = np.concatenate([pending, item[2]])
                        while len(pending) >= _AAC_FRAME:
                            written += self._encode_audio(out, sound, pending[:_AAC_FRAME], written)
                            pending = pending[_AAC_FRAME:]
                        continue
                    _, tick, image = item
                    h, w = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2  # yuv420p wants even sizes
                    if stream is None:
                        stream = out.add_stream("libx264", rate=VIDEO_FPS)
                        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
                        stream.codec_context.time_base = Fraction(1, VIDEO_FPS)
                        stream.options = {"preset": "ultrafast", "crf": "23"}
                        if self.audio is not None:
                            sound = out.add_stream("aac", rate=AUDIO_RATE)
                            sound.layout = "mono"
                    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:h, :w]), format="rgb24")
                    frame = frame.reformat(format="yuv420p")
                    frame.pts, frame.time_base = tick - self.first_tick, Fraction(1, VIDEO_FPS)
                    for packet in stream.encode(frame):
                        out.mux(packet)
                if stream is None:
                    raise RuntimeError("no frames")
                if sound is not None:
                    if len(pending):
                        self._encode_audio(out, sound, pending, written)
                    for packet in sound.encode():
                        out.mux(packet)
                for packet in stream.encode():
                    out.mux(packet)
        except Exception as exc:  # noqa: BLE001 - reported as one line, watching goes on
            self.on_done(None, f"clip {self.path.name} not written: {exc}")
            return
        self.on_done(self.path, None)

    @staticmethod
    def _encode_audio(out: Any, sound: Any, samples: np.ndarray, pts: int) -> int:
        import av

        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[None]), format="fltp", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = AUDIO_RATE, pts, Fraction(1, AUDIO_RATE)
        for packet in sound.encode(frame):
            out.mux(packet)
        return len(samples)


class ClipRecorder:
    """MP4 clips around alerts (see the module docstring). ``on_done(path, error)`` is called
    from the writer thread when a clip is written (error None) or failed (path None)."""

    def __init__(
        self,
        folder: str | Path,
        on_done: Callable[[Path | None, str | None], None],
        *,
        before: float = CLIP_BEFORE,
        after: float = CLIP_AFTER,
        reach: float = 0.0,
        max_seconds: float = CLIP_MAX_SECONDS,
    ) -> None:
        """``reach``: seconds between a segment's start and its start event (min duration
        plus latency), so the ring buffer still holds ``before`` seconds ahead of it."""
        self.folder, self.on_done = Path(folder), on_done
        self.before, self.after, self.max_ticks = before, after, round(max_seconds * VIDEO_FPS)
        self.ring: deque[tuple[int, np.ndarray]] = deque(maxlen=round((before + reach + 10.0) * VIDEO_FPS))
        self.audio: Any = None  # the live audio (an AudioBuffer): clips carry it when set
        self.audio_seconds = before + reach + 10.0 + CLIP_AUDIO_LAG  # what that buffer must keep
        self.active: dict[int, _ClipWriter] = {}
        self.written: list[Path] = []
        self._all: list[_ClipWriter] = []

    def add_frame(self, tick: int, image: np.ndarray) -> None:
        self.ring.append((tick, image))
        for segment, writer in list(self.active.items()):
            writer.feed(tick, image)
            limit = writer.first_tick + self.max_ticks
            if (writer.end_tick is not None and tick >= writer.end_tick) or tick >= limit:
                writer.finish()
                del self.active[segment]

    def on_event(self, event: AlertEvent) -> Path | None:
        """Start or schedule the end of a clip; returns the path a start will write."""
        if event.kind == "start":
            stamp = datetime.fromtimestamp(event.wall_time, timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            path = self.folder / f"violence-{stamp}-segment{event.segment}.mp4"
            first = max(0, round((event.start - self.before) * VIDEO_FPS))
            writer = _ClipWriter(path, first, self._done, self.audio)
            for tick, image in self.ring:
                if tick >= first:
                    writer.feed(tick, image)
            self.active[event.segment] = writer
            self._all.append(writer)
            return path
        writer = self.active.get(event.segment)
        if writer is not None and event.end is not None:
            writer.end_tick = round((event.end + self.after) * VIDEO_FPS)
            if event.reason == "stopped":
                writer.finish()
                del self.active[event.segment]
        return None

    def close(self, wait: float = 30.0) -> None:
        """Finish every clip with what it has and wait for the writers."""
        for writer in self.active.values():
            writer.finish()
        self.active.clear()
        for writer in self._all:
            writer.join(wait)

    def _done(self, path: Path | None, error: str | None) -> None:
        if path is not None:
            self.written.append(path)
        self.on_done(path, error)


__all__ = ["CLIP_AFTER", "CLIP_BEFORE", "AlertEvent", "AlertHook", "ClipRecorder", "SegmentTracker"]

"""Open a live source with PyAV and decode it in a thread into a bounded, drop-oldest queue.

Sources: network URLs (:data:`NETWORK_SCHEMES`), a Linux capture device (``/dev/videoN``
through PyAV's ``v4l2`` input) or a media file (played at its own pace with ``realtime``,
else as fast as it decodes, without drops).

Every blocking read has a deadline: PyAV's ``timeout=(open, read)`` interrupts FFmpeg when
opening or one read takes longer (and ``rw_timeout`` is set for the protocols that honour
it). Beyond that, :meth:`LiveReader.stalled` lets the consumer act as a watchdog: when no
frame came for longer than the timeout plus a grace period the reader is abandoned (its
thread is a daemon whose output is ignored from then on) and a new one connects.

Decoding is :mod:`violence_cli.media`'s: a file is read through :func:`media.open_video`
(the frames, the grid, the rotation and the audio ``detect`` sees, bit for bit); a network
source or a device is opened here (timeouts, capture options) and then uses media's stream
choice (:func:`media.select_streams`), its rotation (:func:`media.upright_rgb`) and its
rounding (:func:`media.round_near`). What is live lives here: reconnects with backoff,
real-time pacing, the watchdog and the bounded queues.

Time line: t = 0 is the first video frame of the first connection (a file: the start of its
video stream, as in ``detect``); frames are placed on the 24 fps grid by their timestamps
(FFmpeg ``fps`` filter rules: a frame fills the ticks until the next one is due). After a
reconnect the grid goes on from the next 16-frame boundary after the wall-clock gap, so
snippets never straddle two connections; audio is placed on the same time line at 16 kHz.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import av
import numpy as np
import torch

from .. import media
from ..errors import InputError, UsageError
from ..features.extract import resize_frames, resized_size
from ..protocol import AUDIO_RATE, SNIPPET_FRAMES, VIDEO_FPS

NETWORK_SCHEMES = frozenset({"rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "srt", "tcp", "rtp"})
DEVICE_PREFIX = "/dev/video"  # Linux capture devices, opened with PyAV's v4l2 input
DEFAULT_TIMEOUT = 10.0  # s: opening, and silence before a source counts as stalled
WATCHDOG_GRACE = 2.0  # s beyond the timeout before a reader that did not return is abandoned
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 10.0  # s: reconnect delays double from the first to the max
ANALYZE_SECONDS = 1.0  # s of a network stream FFmpeg reads to find its streams (start-up delay)
AUDIO_KEEP_SECONDS = 20.0  # s of audio kept for the snippets still to score
AUDIO_AHEAD = 3.0  # s a file's audio is decoded ahead of its pictures
_PENDING_AUDIO_FRAMES = 256  # audio frames kept until the first video frame fixes t = 0


@dataclass(frozen=True)
class SourceSpec:
    """A parsed SOURCE: ``url`` as given, ``kind`` ``network``, ``device`` or ``file``."""

    url: str
    kind: str
    realtime: bool = False

    @property
    def live(self) -> bool:
        """Frames come at the source's pace (drop the oldest when scoring falls behind)."""
        return self.kind != "file" or self.realtime

    @property
    def label(self) -> str:
        """The URL without user:password."""
        parts = urlsplit(self.url)
        if parts.password is None and parts.username is None:
            return self.url
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        return parts._replace(netloc=host).geturl()


def parse_source(text: str, realtime: bool = False) -> SourceSpec:
    """Classify SOURCE; raises :class:`UsageError`/:class:`InputError` with one line."""
    scheme = urlsplit(text).scheme.lower() if "://" in text else ""
    if scheme in NETWORK_SCHEMES:
        if realtime:
            raise UsageError(f"realtime=True is for files; {scheme}:// sources are live already", params=("realtime",))
        return SourceSpec(text, "network")
    if scheme:
        known = ", ".join(f"{s}://" for s in sorted(NETWORK_SCHEMES))
        raise UsageError(
            f"{text}: unsupported source scheme {scheme!r}", hint=f"use one of {known}, /dev/videoN or a file"
        )
    if text.startswith(DEVICE_PREFIX):
        if not Path(text).exists():
            raise InputError(f"{text}: no such capture device")
        return SourceSpec(text, "device")
    path = Path(text)
    if not path.exists():
        raise InputError(f"{text}: no such file (and not a URL or /dev/videoN device)")
    if not path.is_file():
        raise InputError(f"{text}: not a regular file")
    return SourceSpec(str(path), "file", realtime)


def open_arguments(spec: SourceSpec, timeout: float, rtsp_transport: str = "tcp") -> dict[str, Any]:
    """Keyword arguments for ``av.open`` (format, options, timeout) for this source."""
    if spec.kind == "file":
        return {}
    options = {"analyzeduration": str(int(ANALYZE_SECONDS * 1e6)), "probesize": "1000000"}
    if spec.kind == "device":
        return {"format": "v4l2", "options": options, "timeout": (timeout, timeout)}
    scheme = urlsplit(spec.url).scheme.lower()
    if scheme != "udp":  # udp's own "timeout" is in another unit; PyAV's interrupt covers it
        options["rw_timeout"] = str(int(timeout * 1e6))  # µs, per read or write
    if scheme in ("rtsp", "rtsps"):
        options["rtsp_transport"] = rtsp_transport
    return {"options": options, "timeout": (timeout, timeout)}


# --------------------------------------------------------------------------- what the reader hands over


@dataclass
class Frame:
    """One frame of the 24 fps grid: ``tick`` from t = 0, ``image`` (h, w, 3) uint8 already
    resized to the shorter side 256 (shared by repeated ticks: do not modify), ``arrived``:
    ``time.monotonic()`` when the reader handed it over."""

    tick: int
    image: np.ndarray
    arrived: float


@dataclass
class Status:
    """A change the user should hear about: ``kind`` connected, disconnected, reconnecting,
    ended (end of stream, no reconnect) or lost (disconnect or stall, no reconnect)."""

    kind: str
    message: str
    has_audio: bool | None = None


@dataclass
class Failed:
    error: BaseException


class FrameQueue:
    """A bounded queue of frames that drops the oldest frame when full (``live``), or makes
    the producer wait (a file read as fast as possible). Status items are never dropped."""

    def __init__(self, max_frames: int, live: bool = True) -> None:
        self.max_frames = max(1, max_frames)
        self.live = live
        self.dropped = 0
        self._items: deque[Any] = deque()
        self._frames = 0
        self._cond = threading.Condition()

    def put(self, item: Any, stop: threading.Event | None = None) -> None:
        with self._cond:
            if isinstance(item, Frame):
                while self._frames >= self.max_frames:
                    if self.live:
                        self._drop_oldest()
                    elif stop is not None and stop.is_set():
                        return
                    else:
                        self._cond.wait(0.1)
                self._frames += 1
            self._items.append(item)
            self._cond.notify_all()

    def _drop_oldest(self) -> None:
        for i, old in enumerate(self._items):
            if isinstance(old, Frame):
                del self._items[i]
                self._frames -= 1
                self.dropped += 1
                return

    def get(self, timeout: float | None = None) -> Any:
        """The oldest item, or None when nothing came within ``timeout`` (None: don't wait)."""
        with self._cond:
            if not self._items and timeout:
                self._cond.wait(timeout)
            if not self._items:
                return None
            item = self._items.popleft()
            if isinstance(item, Frame):
                self._frames -= 1
            self._cond.notify_all()
            return item

    def put_front(self, item: Any) -> None:
        """Give back a non-frame item taken too early: it comes out next."""
        with self._cond:
            self._items.appendleft(item)
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


class AudioBuffer:
    """The last :data:`AUDIO_KEEP_SECONDS` of 16 kHz mono audio on the global time line."""

    def __init__(self, keep_seconds: float = AUDIO_KEEP_SECONDS) -> None:
        self.keep = int(keep_seconds * AUDIO_RATE)
        self.start = 0  # global sample index of data[0]
        self.data = np.zeros(0, np.float32)
        self._lock = threading.Lock()

    @property
    def end(self) -> int:
        """One past the last sample received."""
        with self._lock:
            return self.start + len(self.data)

    def write(self, at: int, samples: np.ndarray) -> None:
        """Place ``samples`` from global sample ``at`` (a gap becomes silence, an overlap is skipped)."""
        with self._lock:
            end = self.start + len(self.data)
            if not len(self.data):
                self.start, end = at, at
            if at > end:
                samples = np.concatenate([np.zeros(at - end, np.float32), samples])
            elif at < end:
                samples = samples[end - at :]
            if len(samples):
                self.data = np.concatenate([self.data, samples.astype(np.float32, copy=False)])
            if len(self.data) > self.keep:
                cut = len(self.data) - self.keep
                self.data, self.start = self.data[cut:], self.start + cut

    def window(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) as float64, zeros where nothing was received."""
        out = np.zeros(stop - start, np.float64)
        with self._lock:
            lo, hi = max(start, self.start), min(stop, self.start + len(self.data))
            if hi > lo:
                out[lo - start : hi - start] = self.data[lo - self.start : hi - self.start]
        return out


# --------------------------------------------------------------------------- the reader


@dataclass
class _Session:
    """Time line of one connection."""

    base_tick: int  # global tick of this connection's t = 0
    t0: Fraction | None = None  # stream time (s) of its first video frame
    wall0: float | None = None  # monotonic time of its first video frame (realtime pacing)
    target: tuple[int, int] | None = None  # resized (h, w)
    next_tick: int = 0  # local tick to fill next
    held: Any = None  # (local tick, image) waiting for the next frame
    audio_next: int | None = None  # global sample where the next resampled audio goes
    pending_audio: list[Any] = field(default_factory=list)
    frames: int = 0
    done: bool = False  # the pictures ended (a file's audio thread stops waiting)


class LiveReader:
    """Decode ``spec`` in a daemon thread into ``queue`` (frames, :class:`Status`,
    :class:`Failed`) and ``audio``. ``reconnect``: reopen after a disconnect, a stall or
    the end of the stream (with backoff); the first connection failing is an error.
    """

    def __init__(
        self,
        spec: SourceSpec,
        queue: FrameQueue,
        audio: AudioBuffer,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        reconnect: bool = True,
        rtsp_transport: str = "tcp",
        clock: Callable[[], float] = time.monotonic,
        video_stream: int | None = None,
        audio_stream: int | None = None,
    ) -> None:
        """``video_stream``/``audio_stream``: streams by container index (as ``detect``'s),
        by default the best of each kind."""
        self.spec, self.queue, self.audio = spec, queue, audio
        self.video_stream, self.audio_stream = video_stream, audio_stream
        self.timeout, self.reconnect, self.rtsp_transport = timeout, reconnect, rtsp_transport
        self.clock = clock
        self.reconnects = 0
        self.last_frame = clock()  # watchdog: when the last frame was handed over
        self.connected = False
        self._stop = threading.Event()
        self._generation = 0
        self._next_tick = 0  # global tick after the last one handed over
        self._last_wall: float | None = None  # monotonic time of the last frame (gap on reconnect)
        self._ever_connected = False
        self._thread: threading.Thread | None = None

    # -- control (consumer side)

    def start(self) -> None:
        self._generation += 1
        self.last_frame = self.clock()
        self._thread = threading.Thread(
            target=self._run, args=(self._generation,), name="violence-detect-source", daemon=True
        )
        self._thread.start()

    def stop(self, wait: float = 2.0) -> None:
        self._stop.set()
        self._generation += 1
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(wait)

    def stalled(self) -> bool:
        """True when connected and no frame came for longer than the timeout plus a grace."""
        return self.connected and self.clock() - self.last_frame > self.timeout + WATCHDOG_GRACE

    def restart(self) -> None:
        """Watchdog: abandon the current thread (its output is ignored) and connect anew."""
        self.connected = False
        self.reconnects += 1
        self.start()

    # -- the thread

    def _emit(self, generation: int, item: Any) -> bool:
        if generation != self._generation or self._stop.is_set():
            return False
        self.queue.put(item, self._stop)
        return True

    def _run(self, generation: int) -> None:
        torch.set_num_threads(1)  # resizing here must not compete with the networks' threads
        attempt = 0
        while generation == self._generation and not self._stop.is_set():
            try:
                container = self._connect()
            except InputError as exc:  # a file that is no usable video: nothing to retry
                self._emit(generation, Failed(exc))
                return
            except (av.error.FFmpegError, OSError) as exc:
                if not self._ever_connected:
                    self._emit(generation, Failed(self._open_error(exc)))
                    return
                delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2**attempt)
                attempt += 1
                self._emit(
                    generation, Status("reconnecting", f"could not reconnect ({_why(exc)}); retrying in {delay:.1f} s")
                )
                if self._stop.wait(delay):
                    return
                continue
            self._ever_connected = True
            try:
                if isinstance(container, media.MediaFile):
                    reason, frames = self._read_file(container, generation)
                else:
                    reason, frames = self._read(container, generation)
            except InputError as exc:
                self._emit(generation, Failed(exc))
                return
            finally:
                if generation == self._generation:  # an abandoned thread must not touch the new one's state
                    self.connected = False
                container.close()
            if generation != self._generation or self._stop.is_set():
                return
            if not self.reconnect:
                self._emit(generation, Status("ended" if reason == "end of stream" else "lost", reason))
                return
            attempt = 0 if frames else attempt + 1
            delay = 0.0 if frames else min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (attempt - 1))
            self.reconnects += 1
            self._emit(
                generation, Status("disconnected", f"{reason}; reconnecting" + (f" in {delay:.1f} s" if delay else ""))
            )
            if delay and self._stop.wait(delay):
                return

    def _connect(self) -> Any:
        """A file through the decode layer (:class:`media.MediaFile`), else an open container."""
        if self.spec.kind == "file":
            return media.open_video(self.spec.url, self.video_stream, self.audio_stream)
        return av.open(self.spec.url, mode="r", **open_arguments(self.spec, self.timeout, self.rtsp_transport))

    def _open_error(self, exc: BaseException) -> InputError:
        if isinstance(exc, av.error.ExitError):
            return InputError(
                f"{self.spec.label}: no answer within {self.timeout:g} s",
                hint="check the address and that the source is sending; a longer timeout waits longer",
                params=("timeout",),
            )
        return InputError(f"{self.spec.label}: cannot open ({_why(exc)})")

    def _read(self, container: Any, generation: int) -> tuple[str, int]:
        """Decode one connection; returns (why it ended, frames handed over)."""
        video, audio = media.select_streams(container, self.video_stream, self.audio_stream, self.spec.label)
        if video is None:
            raise InputError(f"{self.spec.label}: no video stream")
        video.codec_context.thread_type = "AUTO"
        session = self._new_session()
        resampler = av.AudioResampler(format="fltp", layout=None, rate=AUDIO_RATE) if audio is not None else None
        self.connected = True
        self.last_frame = self.clock()
        self._emit(generation, _connected(self.spec.label, video.index, audio.index if audio is not None else None))
        streams = [video] + ([audio] if audio is not None else [])
        try:
            for packet in container.demux(streams):
                if generation != self._generation or self._stop.is_set():
                    return "stopped", session.frames
                try:
                    decoded = packet.decode()
                except av.error.FFmpegError:
                    continue  # a damaged packet: live streams lose some, go on
                for frame in decoded:
                    if packet.stream is video:
                        self._video_frame(frame, session, generation)
                    else:
                        self._audio_frame(frame, session, resampler)
        except av.error.ExitError:
            return f"no data for {self.timeout:g} s (stalled)", session.frames
        except (av.error.FFmpegError, OSError) as exc:
            return f"connection lost ({_why(exc)})", session.frames
        self._flush(session, generation)
        return "end of stream", session.frames

    def _read_file(self, source: media.MediaFile, generation: int) -> tuple[str, int]:
        """Play a file through the decode layer: ``detect``'s frames (grid, rotation, streams)
        and audio, paced in real time with ``realtime``; returns (why it ended, frames)."""
        info = source.info
        if not info.has_video:
            raise InputError(f"{self.spec.label}: no video stream")
        session = self._new_session()
        self.connected = True
        self.last_frame = self.clock()
        self._emit(generation, _connected(self.spec.label, info.video_stream, info.audio_stream))

        def warn(message: str) -> None:
            self._emit(generation, Status("warning", message))

        frames = source.frames(on_warning=warn, rgb_threads=1)
        audio_thread = None
        if info.has_audio:
            chunks = source.audio(on_warning=warn, chunk_seconds=0.25)
            audio_thread = threading.Thread(
                target=self._file_audio, args=(chunks, session, generation), name="violence-detect-audio", daemon=True
            )
            audio_thread.start()
        try:
            with closing(frames):
                for n, rgb in enumerate(frames):
                    if generation != self._generation or self._stop.is_set():
                        return "stopped", session.frames
                    if session.target is None:
                        session.target = resized_size(rgb.shape[0], rgb.shape[1])
                        session.wall0 = time.monotonic()
                    if self.spec.realtime:  # play the file at its own pace
                        delay = session.wall0 + n / VIDEO_FPS - time.monotonic()
                        if delay > 0 and self._stop.wait(delay):
                            return "stopped", session.frames
                    self._hand_over(session.base_tick + n, self._resized(rgb, session), generation)
                    session.next_tick = n + 1
                    session.frames += 1
        finally:
            session.done = True
            if audio_thread is not None:
                audio_thread.join(5.0)
        return "end of stream", session.frames

    def _file_audio(self, chunks: Any, s: _Session, generation: int) -> None:
        """Thread: a file's audio (from its own opening), at most :data:`AUDIO_AHEAD` seconds
        ahead of the pictures handed over."""
        origin = round(s.base_tick / VIDEO_FPS * AUDIO_RATE)  # this connection's t = 0
        at = origin
        with closing(chunks):
            try:
                for block in chunks:
                    while not s.done and (at - origin) / AUDIO_RATE > s.next_tick / VIDEO_FPS + AUDIO_AHEAD:
                        if generation != self._generation or self._stop.wait(0.02):
                            return
                    if generation != self._generation or self._stop.is_set():
                        return
                    self.audio.write(at, block)
                    at += len(block)
            except InputError:
                return

    def _new_session(self) -> _Session:
        base = self._next_tick
        if self._last_wall is not None:  # leave the wall-clock gap on the time line
            base += round((time.monotonic() - self._last_wall) * VIDEO_FPS)
        base = -(-base // SNIPPET_FRAMES) * SNIPPET_FRAMES  # next snippet boundary
        return _Session(base_tick=base)

    def _video_frame(self, frame: Any, s: _Session, generation: int) -> None:
        if frame.pts is not None and frame.time_base:
            t = Fraction(frame.pts) * frame.time_base
        else:
            t = (s.t0 or Fraction(0)) + Fraction(s.next_tick + 1, VIDEO_FPS)
        if s.t0 is None:
            s.t0, s.wall0 = t, time.monotonic()
            rgb = media.upright_rgb(frame)
            s.target = resized_size(rgb.shape[0], rgb.shape[1])
            for pending in s.pending_audio:
                self._audio_frame(pending[0], s, pending[1])
            s.pending_audio.clear()
        if self.spec.realtime and s.wall0 is not None:  # play at its own pace
            delay = s.wall0 + float(t - s.t0) - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
        tick = media.round_near((t - s.t0) * VIDEO_FPS)  # detect's grid and rounding
        if s.held is not None:
            while tick > s.next_tick:
                self._hand_over(s.base_tick + s.next_tick, s.held, generation)
                s.next_tick += 1
        if tick >= s.next_tick:
            s.held = self._resized(media.upright_rgb(frame), s)
        s.frames += 1

    def _flush(self, s: _Session, generation: int) -> None:
        """End of stream: the last frame fills its own tick."""
        if s.held is not None and s.next_tick >= 0:
            self._hand_over(s.base_tick + s.next_tick, s.held, generation)
            s.next_tick += 1

    def _resized(self, rgb: np.ndarray, s: _Session) -> np.ndarray:
        """(H, W, 3) upright RGB -> the shorter side 256, as the extractor resizes."""
        assert s.target is not None
        return resize_frames(torch.from_numpy(np.ascontiguousarray(rgb))[None], s.target)[0].numpy()

    def _hand_over(self, tick: int, image: np.ndarray, generation: int) -> None:
        now = self.clock()
        if self._emit(generation, Frame(tick, image, now)):
            self.last_frame = now
            self._last_wall = time.monotonic()
            self._next_tick = tick + 1

    def _audio_frame(self, frame: Any, s: _Session, resampler: Any) -> None:
        if s.t0 is None:
            if len(s.pending_audio) < _PENDING_AUDIO_FRAMES:
                s.pending_audio.append((frame, resampler))
            return
        if s.audio_next is None:
            if frame.time is None:
                return
            s.audio_next = round((s.base_tick / VIDEO_FPS + frame.time - float(s.t0)) * AUDIO_RATE)
        try:
            out = resampler.resample(frame)
        except (av.error.FFmpegError, ValueError):
            return
        parts = [f.to_ndarray().mean(axis=0, dtype=np.float32) for f in out if f.samples]  # channel mean
        if not parts:
            return
        samples = np.clip(np.concatenate(parts), -1.0, 1.0)
        at = s.audio_next
        s.audio_next = at + len(samples)
        floor = round(s.base_tick / VIDEO_FPS * AUDIO_RATE)  # nothing before this connection's t = 0
        if at < floor:
            samples, at = samples[floor - at :], floor
        self.audio.write(at, samples)


def _connected(label: str, video: int, audio: int | None) -> Status:
    """The "connected" status, naming the streams chosen (container indices, as ffprobe numbers them)."""
    streams = f"video #{video}, " + (f"audio #{audio}" if audio is not None else "no audio")
    return Status("connected", f"connected to {label} ({streams})", has_audio=audio is not None)


def _why(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.rstrip(".")


def backoff_delays(n: int) -> list[float]:
    """The first ``n`` reconnect delays (s), for documentation and tests."""
    return [min(BACKOFF_MAX, BACKOFF_FIRST * 2**i) for i in range(n)]


__all__ = [
    "DEFAULT_TIMEOUT",
    "NETWORK_SCHEMES",
    "AudioBuffer",
    "Failed",
    "Frame",
    "FrameQueue",
    "LiveReader",
    "SourceSpec",
    "Status",
    "backoff_delays",
    "open_arguments",
    "parse_source",
]

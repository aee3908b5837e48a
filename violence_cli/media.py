"""Media decoding with PyAV: probe a file, stream its frames at 24 fps and its audio at 16 kHz.

This is the one decode layer of the package: ``detect``/``extract``, ``watch`` (a file
through :func:`open_video`; a network source with :func:`select_streams`,
:func:`upright_rgb` and :func:`round_near`) and the report's playback check and proxy read
media through it, so they choose the same streams, see the same frames on the same 24 fps
grid and apply the same rotation.

The API::

    with media.open_video(path, video_stream=None, audio_stream=None) as video:
        video.info                    # MediaInfo: streams chosen, duration, size, rotation...
        frames = video.frames()       # (H, W, 3) uint8 RGB at 24 fps, upright
        chunks = video.audio()        # float32 mono 16 kHz chunks from t = 0

:func:`open_video` opens the file once; :attr:`MediaFile.info` reads the first video frame
(for its display rotation) and :meth:`MediaFile.frames` goes on decoding from it on the
same container. The audio, consumed in another thread at its own pace, gets a second
opening (see :class:`MediaFile`). :func:`select_streams` is the stream choice (an index
checked, else the best decodable stream, never a cover picture) for a container opened
elsewhere (a network source). :func:`probe`, :func:`iter_frames` and :func:`iter_audio`
are the one-call forms (each opens the file once).

Everything here is a chain of small generators over an open container (no subprocess, no
temporary files), so memory does not grow with the length of a video.

Time line: t = 0 is the start of the chosen video stream (its first frame), or of the audio
stream for a file without video. Video frame ``n`` shows time ``n / fps``; audio sample ``k``
is time ``k / sample_rate``; audio that starts late is preceded by silence, audio before
t = 0 is dropped.

Frame-rate conversion follows FFmpeg's ``fps`` filter (``ffmpeg -vf fps=24``, rounding
"near", EOF action "round"): every decoded frame gets the output tick
``round((pts - t0) * fps)``; output tick ``n`` shows the last decoded frame whose tick is
``<= n``; frames are dropped or repeated as needed, and the last frame is repeated up to the
tick of the stream's end (last pts + that frame's duration, estimated from the timestamps
when the file gives none, as the ffmpeg command line does). Variable frame rate therefore
works the same as constant. Ticks count from the video stream's start, so frame ``n`` is
always at ``n / fps``; where a first frame comes after that start (an AVI with B-frames),
it is repeated back to t = 0 where ffmpeg would start its output later.

Hostile timestamps keep the work proportional to the file's real content: a jump of more
than :data:`MAX_FRAME_GAP` seconds between two frames (or from t = 0 to the first frame, or
a last frame claiming to last that long) is a *discontinuity*: it is not filled with
repeated frames; the frames after it follow on one frame duration later (a warning says by
how much the time line was shortened). Leading audio silence is produced lazily and never
reaches past the video's extent; audio that starts after the video has ended is not used.
Frames larger than :data:`MAX_FRAME_SIDE` pixels a side are refused.
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .errors import InputError
from .messages import count
from .protocol import AUDIO_RATE, MAX_FRAME_GAP, MAX_FRAME_SIDE, VIDEO_FPS  # noqa: F401  (media.VIDEO_FPS / AUDIO_RATE: the rates it decodes at)  # noqa: F401  (media.MAX_FRAME_*: the limits it applies)

_DECODE_BUDGET = 512 * 2**20  # bytes of decoded frames the decoder's threads may hold at once
# threads converting frames to RGB (1: in the decoding thread): the pool pays only with idle cores
_RGB_THREADS = max(1, min(4, (os.cpu_count() or 1) // 4))
_TRUNCATION_SLACK = 0.25  # seconds: decoding may end this much before the header's duration
_AUDIO_PREROLL = 0.5  # seconds of audio decoded (and dropped) before a --start
_MAX_BAD_PACKETS = 50  # packets that fail to decode before we give up on a stream
_PEEK_PACKETS = 250  # packets read for the first frame's display rotation before assuming none

Warn = Callable[[str], None]


@dataclass
class MediaInfo:
    """What :func:`probe` learns about a media file and the streams it chose.

    ``width``/``height`` are those of the frames :func:`iter_frames` yields (rotation
    applied); ``duration`` is in seconds from t = 0 (0.0 when the file does not say);
    ``fps`` is the stream's average frame rate (0.0 when unknown); ``rotation`` is the
    counter-clockwise display rotation in degrees (0, 90, 180 or 270); stream indices are
    the container's (as ``ffprobe`` numbers them); ``start_time`` is where t = 0 lies on
    the container's own clock, in seconds.
    """

    path: Path
    duration: float
    container: str
    has_video: bool
    has_audio: bool
    video_stream: int | None
    audio_stream: int | None
    width: int
    height: int
    fps: float
    rotation: int
    video_codec: str | None
    audio_codec: str | None
    audio_sample_rate: int
    audio_channels: int
    n_video_streams: int
    n_audio_streams: int
    start_time: float = 0.0
    pixel_format: str | None = None  # the video's decoded pixel format (yuv420p, yuv420p10le...)


# --------------------------------------------------------------------------- opening


def _check_path(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file (0 bytes)")
    return path


def _open(path: Path, hwaccel: object | None = None) -> av.container.InputContainer:
    """Open for reading; metadata that is not valid UTF-8 is decoded with replacement
    characters (it only labels the file) instead of failing the open. ``hwaccel``: a PyAV
    ``HWAccel`` to decode video with (:mod:`violence_cli.hwdecode`)."""
    extra = {"hwaccel": hwaccel} if hwaccel is not None else {}
    try:
        return av.open(str(path), mode="r", metadata_errors="replace", **extra)
    except av.error.FFmpegError as exc:
        raise InputError(
            f"{path}: not a readable media file ({exc.strerror or exc})",
            hint="check that the file is a complete video (a cut-off MP4 may lack its index)",
        ) from None
    except (OSError, ValueError) as exc:  # e.g. an unreadable file, a header PyAV cannot represent
        raise InputError(f"{path}: not a readable media file ({type(exc).__name__}: {exc})") from None


def _decodable(stream: av.stream.Stream) -> bool:
    """The stream has a decoder (an unknown or damaged codec leaves no codec context)."""
    return stream.codec_context is not None


def _usable_video(stream: av.stream.Stream) -> bool:
    """A real, decodable video track, not an embedded cover picture."""
    return (
        stream.type == "video" and _decodable(stream) and not (stream.disposition & av.stream.Disposition.attached_pic)
    )


def _usable_audio(stream: av.stream.Stream) -> bool:
    return stream.type == "audio" and _decodable(stream)


def _select(container: av.container.InputContainer, kind: str, index: int | None, path: Path):
    """The stream of ``kind`` to decode: ``index`` if given, else the container's best.

    Streams without a decoder are skipped (named when asked for by ``index``)."""
    usable = _usable_video if kind == "video" else _usable_audio
    candidates = [s for s in container.streams if usable(s)]
    if index is not None:
        if not 0 <= index < len(container.streams):
            raise InputError(f"{path}: no stream #{index} (the file has {len(container.streams)} streams)")
        stream = container.streams[index]
        if stream.type == kind and not _decodable(stream):
            raise InputError(f"{path}: stream #{index} ({kind}) cannot be decoded: {_codec_label(stream)}")
        if stream not in candidates:
            choices = ", ".join(f"#{s.index}" for s in candidates) or "none"
            raise InputError(f"{path}: stream #{index} is {stream.type}, not {kind} ({kind} streams: {choices})")
        return stream
    if not candidates:
        return None
    try:
        best = container.streams.best(kind)
    except (av.error.FFmpegError, ValueError):
        best = None
    return best if best in candidates else candidates[0]


def _codec_label(stream: av.stream.Stream) -> str:
    """Why a stream has no decoder, in words."""
    try:
        name = stream.codec.name if stream.codec is not None else None
    except (AttributeError, av.error.FFmpegError, ValueError):
        name = None
    return f"no decoder for codec {name!r}" if name and name != "none" else "unknown or damaged codec"


def _undecodable(container) -> str:
    """' (stream #1: audio, unknown or damaged codec; ...)' for streams skipped, else ''."""
    skipped = [
        f"stream #{s.index}: {s.type}, {_codec_label(s)}"
        for s in container.streams
        if s.type in ("video", "audio") and not _decodable(s)
    ]
    return f" ({'; '.join(skipped)})" if skipped else ""


def _seconds(value: int | None, time_base: Fraction | None) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def _origin(container, video, audio) -> float:
    """Where t = 0 lies on the container's clock, in seconds."""
    for stream in (video, audio):
        if stream is not None:
            start = _seconds(stream.start_time, stream.time_base)
            if start is not None:
                return start
    return container.start_time / 1e6 if container.start_time is not None else 0.0


def _stream_length(stream) -> float | None:
    """Length of ``stream`` in seconds per its own header (MP4 duration, Matroska tag)."""
    length = _seconds(stream.duration, stream.time_base)
    if length is None:
        tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
        try:
            hours, minutes, secs = (float(part) for part in tag.split(":"))
            length = hours * 3600 + minutes * 60 + secs
        except (AttributeError, ValueError):
            return None
    return length if 0 < length < math.inf else None


def _stream_end(container, stream, origin: float, *, own_only: bool = False) -> float | None:
    """End of ``stream`` in seconds from t = 0 per the headers; ``own_only``: only if the
    stream itself says (the container's duration may be another, longer stream's)."""
    start = _seconds(stream.start_time, stream.time_base)
    length = _stream_length(stream)
    if length is not None:
        return (start if start is not None else origin) + length - origin
    if not own_only and container.duration is not None and container.duration > 0:
        container_start = container.start_time / 1e6 if container.start_time is not None else 0.0
        return container_start + container.duration / 1e6 - origin
    return None


def _checked_duration(video, declared: float) -> float:
    """The header's duration, unless the video's own frame count says the file holds far
    less (timestamps with gaps, a forged header): then the length of those frames."""
    rate = video.guessed_rate or video.base_rate
    if not video.frames or not rate or rate <= 0:
        return declared
    per_frame = 1 / float(rate)
    if per_frame > MAX_FRAME_GAP:  # every step a discontinuity: each frame fills one output frame
        per_frame = 1 / VIDEO_FPS
    content = video.frames * per_frame
    if declared > 2 * content + MAX_FRAME_GAP:
        return content
    return declared


def check_frame_size(path: Path, width: int, height: int) -> None:
    """Refuse frames beyond :data:`MAX_FRAME_SIDE` pixels a side (InputError naming ``path``)."""
    if width > MAX_FRAME_SIDE or height > MAX_FRAME_SIDE:
        raise InputError(
            f"{path}: frames of {width}x{height} pixels are too large (at most {MAX_FRAME_SIDE} pixels a side)"
        )


def _configure_decoder(stream) -> None:
    codec = stream.codec_context
    codec.thread_type = "AUTO"  # frame + slice threads
    # one thread per core, fewer for giant frames: each frame thread holds its own frames
    frame_bytes = 3 * max(codec.width, 1) * max(codec.height, 1)
    cores = os.cpu_count() or 1
    codec.thread_count = 0 if frame_bytes * cores <= _DECODE_BUDGET else max(1, _DECODE_BUDGET // frame_bytes)


def _quarter_turns(frame: av.VideoFrame) -> int:
    """Counter-clockwise quarter turns that display ``frame`` upright (display matrix)."""
    try:
        degrees = frame.rotation
    except (AttributeError, av.error.FFmpegError):
        return 0
    return round((degrees or 0) / 90) % 4


def select_streams(container, video_stream: int | None, audio_stream: int | None, path: Path | str):
    """(video, audio) streams of an open ``container`` as every reader of this package
    chooses them: the index asked for (checked), else the container's best decodable
    stream of that kind; cover pictures and streams without a decoder are never chosen.
    Either may be None; raises :class:`InputError` (naming ``path``) for a bad index or
    a file with neither."""
    path = Path(path) if not isinstance(path, Path) else path
    video = _select(container, "video", video_stream, path)
    audio = _select(container, "audio", audio_stream, path)
    if video is None and audio is None:
        raise InputError(f"{path}: no video or audio stream that can be decoded{_undecodable(container)}")
    return video, audio


class MediaFile:
    """One media file, opened once: its probe facts (:attr:`info`), its frames at 24 fps
    (:meth:`frames`) and its audio at 16 kHz (:meth:`audio`). Made by :func:`open_video`.

    The open container is handed to the first reader that asks for it: :attr:`info` reads
    the first video frame to learn the display rotation, and :meth:`frames` goes on
    decoding from there (nothing is decoded twice, nothing re-opened). A second reader
    (the audio, read in its own thread at its own pace, where one demuxer would have to
    buffer whatever the muxer interleaved loosely) opens the file again: PyAV containers
    are not shared between threads. So a video with audio is opened twice, a file with one
    of the two once. Use as a context manager (or call :meth:`close`) to close a container
    no reader took; readers close theirs when they end or are closed.
    """

    def __init__(self, path: Path, container, video_stream: int | None = None, audio_stream: int | None = None) -> None:
        self.path = path
        try:
            video, audio = select_streams(container, video_stream, audio_stream, path)
        except BaseException:
            container.close()
            raise
        self._container = container  # until a reader takes it
        self._video, self._audio = video, audio
        self.video_stream = video.index if video is not None else None
        self.audio_stream = audio.index if audio is not None else None
        self._info: MediaInfo | None = None
        self._peek: _Peek | None = None
        if video is not None:
            _configure_decoder(video)  # before anything is decoded

    # -- probe facts

    @property
    def info(self) -> MediaInfo:
        """What the file is (streams chosen, duration, size, rate, rotation); raises
        :class:`InputError` for frames too large to decode."""
        if self._info is None:
            self._info = self._describe()
        return self._info

    def _describe(self) -> MediaInfo:
        path, container = self.path, self._container
        own = container is None  # a reader took the held container: look with another
        if own:
            container = _open(path)
        try:
            video = container.streams[self.video_stream] if self.video_stream is not None else None
            audio = container.streams[self.audio_stream] if self.audio_stream is not None else None
            origin = _origin(container, video, audio)
            main = video if video is not None else audio
            duration = _stream_end(container, main, origin) or 0.0
            width = height = 0
            fps = 0.0
            rotation = 0
            pixel_format = None
            if video is not None:
                width, height = video.codec_context.width, video.codec_context.height
                check_frame_size(path, width, height)
                rate = video.average_rate or video.guessed_rate or video.base_rate
                fps = float(rate) if rate else 0.0
                duration = _checked_duration(video, duration)
                fmt = video.codec_context.format
                pixel_format = fmt.name if fmt is not None else None
                if own:
                    _configure_decoder(video)
                peek = _Peek(container, video)
                rotation = _quarter_turns(peek.ready[0]) * 90 if peek.ready else 0
                if not own:
                    self._peek = peek  # frames() goes on from here
                if rotation in (90, 270):
                    width, height = height, width
            return MediaInfo(
                path=path,
                duration=max(duration, 0.0),
                container=container.format.name,
                has_video=video is not None,
                has_audio=audio is not None,
                video_stream=self.video_stream,
                audio_stream=self.audio_stream,
                width=width,
                height=height,
                fps=fps,
                rotation=rotation,
                video_codec=video.codec_context.codec.canonical_name if video is not None else None,
                audio_codec=audio.codec_context.codec.canonical_name if audio is not None else None,
                audio_sample_rate=audio.codec_context.sample_rate if audio is not None else 0,
                audio_channels=audio.codec_context.channels if audio is not None else 0,
                n_video_streams=sum(_usable_video(s) for s in container.streams),
                n_audio_streams=sum(_usable_audio(s) for s in container.streams),
                start_time=origin,
                pixel_format=pixel_format,
            )
        finally:
            if own:
                container.close()

    # -- readers

    def _take(self, kind: str):
        """(container, stream, peek) for a reader of ``kind``: the held container when it is
        still free (for audio: and no video was read from it yet), else a new opening."""
        index = self.video_stream if kind == "video" else self.audio_stream
        held = self._container
        if held is not None and (kind == "video" or self._peek is None):
            self._container = None
            peek, self._peek = (self._peek, None) if kind == "video" else (None, None)
            return held, held.streams[index], peek
        container = _open(self.path)
        stream = container.streams[index]
        if kind == "video":
            _configure_decoder(stream)
        return container, stream, None

    def frames(
        self,
        fps: float = VIDEO_FPS,
        on_warning: Warn | None = None,
        rgb_threads: int = _RGB_THREADS,
        *,
        start: float = 0.0,
        end: float | None = None,
    ) -> Iterator[np.ndarray]:
        """The video as (H, W, 3) uint8 RGB arrays at ``fps``: see :func:`iter_frames`."""
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if self.video_stream is None:
            raise InputError(f"{self.path}: no video stream")
        container, stream, peek = self._take("video")
        rate = Fraction(fps).limit_denominator(1_000_000)
        begin = Fraction(start).limit_denominator(1_000_000)
        if begin > 0:
            peek = None  # the seek starts decoding afresh
            _seek(container, stream, begin)
        frames = _frames_at_rate(container, stream, self.path, rate, on_warning, begin, peek)
        if end is not None:
            frames = _first(frames, math.ceil((Fraction(end).limit_denominator(1_000_000) - begin) * rate))
        return _rgb_frames(frames, rgb_threads)

    def audio(
        self,
        sample_rate: int = AUDIO_RATE,
        chunk_seconds: float = 10.0,
        on_warning: Warn | None = None,
        *,
        start: float = 0.0,
        end: float | None = None,
    ) -> Iterator[np.ndarray]:
        """The audio as float32 mono chunks at ``sample_rate``: see :func:`iter_audio`."""
        chunk = round(chunk_seconds * sample_rate)
        if chunk <= 0 or sample_rate <= 0:
            raise ValueError("sample_rate and chunk_seconds must be positive")
        if self.audio_stream is None:
            raise InputError(f"{self.path}: no audio stream{self._skipped()}")
        container, stream, _ = self._take("audio")
        video = container.streams[self.video_stream] if self.video_stream is not None else None
        origin = _origin(container, video, stream)
        extent = None  # where the video ends, per its (cross-checked) header
        if video is not None:
            stop = _stream_end(container, video, origin, own_only=True)
            extent = _checked_duration(video, stop) if stop is not None else None
        if start > 0:
            # a little earlier: a decoder that starts cold (AAC) gets its first frames wrong
            at = origin + max(0.0, start - _AUDIO_PREROLL)
            _seek(container, stream, Fraction(at).limit_denominator(1_000_000), absolute=True)
        chunks = _audio_chunks(container, stream, self.path, origin, sample_rate, chunk, on_warning, extent, start)
        if end is None:
            return chunks
        return _first_samples(chunks, round((end - start) * sample_rate))

    def take(self):
        """(container, video stream, audio stream) for a caller with its own loop over both
        streams (the report's re-encoding): the streams are this package's choice, the
        container is the caller's to close from now on."""
        container, _, _ = self._take("audio" if self.video_stream is None else "video")
        video = container.streams[self.video_stream] if self.video_stream is not None else None
        audio = container.streams[self.audio_stream] if self.audio_stream is not None else None
        return container, video, audio

    def _skipped(self) -> str:
        container = self._container
        if container is None:
            return ""
        return _undecodable(container)

    def close(self) -> None:
        """Close the held container if no reader took it (readers close their own)."""
        if self._container is not None:
            self._container.close()
            self._container = None
            self._peek = None

    def __enter__(self) -> MediaFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_video(
    path: str | Path, video_stream: int | None = None, audio_stream: int | None = None, hwaccel: object | None = None
) -> MediaFile:
    """Open ``path`` once for its facts, frames and audio (:class:`MediaFile`); ``hwaccel``
    decodes its video on a GPU (:mod:`violence_cli.hwdecode` decides, and falls back).

    ``video_stream``/``audio_stream`` choose streams by container index; by default the
    container's best decodable stream of each kind (never a cover picture). Raises
    :class:`InputError` for a missing, empty or unreadable file, an index that is not a
    stream of the right kind, or a file with neither video nor audio.
    """
    path = _check_path(path)
    return MediaFile(path, _open(path, hwaccel), video_stream, audio_stream)


def probe(path: str | Path, video_stream: int | None = None, audio_stream: int | None = None) -> MediaInfo:
    """Open ``path`` and describe it: streams chosen, duration, size, frame rate, rotation.

    ``video_stream``/``audio_stream`` choose streams by container index; by default the
    container's best of each kind is used. Raises :class:`InputError` for a missing, empty
    or unreadable file, an index that is not a stream of the right kind, or a file with
    neither video nor audio.
    """
    with open_video(path, video_stream, audio_stream) as media:
        return media.info


# --------------------------------------------------------------------------- decoding


class _Damage:
    """What went wrong while decoding one stream (reported once, at the end)."""

    def __init__(self) -> None:
        self.bad_packets = 0
        self.error: str | None = None
        self.stopped = False

    def note(self, exc: Exception) -> None:
        self.bad_packets += 1
        if self.error is None:
            self.error = getattr(exc, "strerror", None) or str(exc)


def _decode_packet(packet, damage: _Damage) -> list | None:
    """The frames of one packet ([] for a bad one, noted); None once too many were bad."""
    try:
        return packet.decode()
    except av.error.FFmpegError as exc:
        damage.note(exc)
        if damage.bad_packets > _MAX_BAD_PACKETS:
            damage.stopped = True
            return None
        return []


class _Peek:
    """The first decoded frames of a video stream (read for the display rotation) and the
    demuxer they came from, so that decoding goes on where the peek stopped."""

    def __init__(self, container, stream) -> None:
        self.damage = _Damage()
        self.packets = container.demux(stream)
        self.ready: list[av.VideoFrame] = []
        self.failed = False  # the container failed during the peek: only the decoder's rest is left
        self.gave_up = False  # too many bad packets
        for _ in range(_PEEK_PACKETS):
            try:
                packet = next(self.packets)
            except StopIteration:
                break
            except av.error.FFmpegError as exc:
                self.damage.note(exc)
                self.damage.stopped = self.failed = True
                break
            frames = _decode_packet(packet, self.damage)
            if frames is None:
                self.gave_up = True
                break
            self.ready.extend(frames)
            if self.ready:
                break


def _decode(container, stream, damage: _Damage, peek: _Peek | None = None) -> Iterator[av.frame.Frame]:
    """Decoded frames of ``stream`` in presentation order (after those of ``peek``, going
    on from its demuxer); bad packets are skipped and noted, an unreadable container
    (truncated file) ends the stream."""
    codec = stream.codec_context
    packets = container.demux(stream)
    failed = False
    if peek is not None:
        packets, failed = peek.packets, peek.failed
        yield from peek.ready
        if peek.gave_up:
            return
    if not failed:
        try:
            for packet in packets:
                frames = _decode_packet(packet, damage)
                if frames is None:
                    return
                yield from frames
            return  # demux's final empty packet has flushed the decoder
        except av.error.FFmpegError as exc:
            damage.note(exc)
            damage.stopped = True
    try:  # the container failed mid-way: still return what the decoder holds
        yield from codec.decode(None)
    except av.error.FFmpegError:
        pass


def _report(
    on_warning: Warn | None, path: Path, kind: str, damage: _Damage, decoded: float | None, expected: float | None
) -> None:
    """One warning if the stream was damaged or ended well before its announced end."""
    short = (
        expected is not None and decoded is not None and expected - decoded > max(_TRUNCATION_SLACK, 0.02 * expected)
    )
    if on_warning is None or not (damage.bad_packets or damage.stopped or short):
        return
    where = "an unknown point" if decoded is None else f"{decoded:.2f} s"
    where += f" of {expected:.2f} s" if expected is not None and decoded is not None else ""
    problem = "file truncated or corrupt"
    if damage.error:
        problem += f": {damage.error}"
    if damage.bad_packets:
        problem += f"; {count(damage.bad_packets, 'unreadable packet')} skipped"
    on_warning(f"{path}: {kind} stops at {where} ({problem}); using what was decoded")


def round_near(x: Fraction) -> int:
    """Round half away from zero (FFmpeg's AV_ROUND_NEAR_INF): the rounding of every time
    put on the 24 fps grid (a frame at ``t`` seconds lands on tick ``round_near(t * 24)``)."""
    n = math.floor(abs(x) + Fraction(1, 2))
    return n if x >= 0 else -n


def upright_rgb(frame: av.VideoFrame) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a decoded ``frame`` in its display orientation (its display
    matrix applied): what :meth:`MediaFile.frames` yields, for readers with their own loop."""
    return _to_rgb(frame)


def _to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """(H, W, 3) uint8 RGB of ``frame`` in its display orientation."""
    # swscale converts with the frame's own matrix and range (full-range bt709 etc.), on this
    # thread (its default starts slice threads in each frame's own context: slower, same bytes)
    rgb = frame.to_ndarray(format="rgb24", threads=1)  # (H, W, 3), rows may be padded
    if frame.format.name == "rgb24":  # nothing converted: the array is the decoder's buffer
        rgb = rgb.copy()
    turns = _quarter_turns(frame)
    return np.ascontiguousarray(np.rot90(rgb, turns) if turns else rgb)


def _duration_estimate(frame, previous_pts: int | None, fallback: Fraction) -> Fraction:
    """Duration of ``frame`` in its time base, as ffmpeg estimates it at end of stream."""
    if frame.duration:
        return frame.duration
    if previous_pts is not None and frame.pts > previous_pts:
        return frame.pts - previous_pts
    return fallback


def iter_frames(
    path: str | Path,
    fps: float = VIDEO_FPS,
    video_stream: int | None = None,
    on_warning: Warn | None = None,
    rgb_threads: int = _RGB_THREADS,
    *,
    start: float = 0.0,
    end: float | None = None,
    hwaccel: object | None = None,
) -> Iterator[np.ndarray]:
    """Yield the video as (H, W, 3) uint8 RGB arrays at ``fps`` frames per second.

    Frames are resampled by presentation time exactly like ``ffmpeg -vf fps=...`` (see the
    module docstring), rotated upright per the display matrix, decoded with threads and
    streamed (memory does not depend on the video's length). Every yielded array is a new
    array the caller may keep or modify. A truncated or corrupt file yields what can be
    decoded and calls ``on_warning(message)`` once. Raises :class:`InputError` (when
    called, not when iterated) for an unusable file or one without a video stream.
    ``rgb_threads`` threads convert the frames to RGB, a few frames ahead (1: each frame
    in turn, in the decoding thread); the arrays are the same either way.
    ``start``/``end`` (seconds from t = 0) decode part of the video: the container seeks to
    a keyframe before ``start`` and frame ``n`` is then the one shown at ``start + n / fps``,
    for every such time before ``end``. ``hwaccel``: decode on a GPU's video engine
    (:class:`violence_cli.hwdecode.Nvdec` decides, and falls back).
    """
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    media = open_video(path, video_stream, hwaccel=hwaccel)
    if media.video_stream is None:
        media.close()
        raise InputError(f"{media.path}: no video stream")
    return media.frames(fps, on_warning, rgb_threads, start=start, end=end)


def _seek(container, stream, begin: Fraction, absolute: bool = False) -> None:
    """Seek ``stream`` to a keyframe at or before ``begin`` seconds from t = 0 (``absolute``:
    on the container's clock). When the file cannot seek, decoding starts at its beginning
    and what comes before ``begin`` is dropped all the same."""
    if not stream.time_base:
        return
    origin = 0 if absolute else stream.start_time or 0
    try:
        container.seek(int(origin + begin / stream.time_base), stream=stream, backward=True, any_frame=False)
    except (av.error.FFmpegError, OSError, ValueError):
        pass


def _first(items: Iterator, n: int) -> Iterator:
    """The first ``n`` of ``items`` (then ``items`` is closed)."""
    try:
        for i, item in enumerate(items):
            if i >= n:
                return
            yield item
    finally:
        items.close()


def _rgb_frames(frames: Iterator[av.VideoFrame], threads: int) -> Iterator[np.ndarray]:
    """:func:`_to_rgb` of each frame, in order, on ``threads`` threads (1: inline).

    A frame that comes again in a row (the rate conversion repeats it) is converted once
    and copied for its other uses, so every array is the caller's own and no frame is ever
    converted by two threads at once (PyAV keeps one swscale context per frame and edits
    the frame's colour fields while converting). At most 2 x ``threads`` distinct frames
    (fewer for giant ones, within ``_DECODE_BUDGET``) are held ahead. A decoding error
    comes after the frames decoded before it, as inline; the threads are gone once the
    generator ends, fails or is closed.
    """
    if threads <= 1:
        with closing(frames):
            for frame in frames:
                yield _to_rgb(frame)
        return
    pool = ThreadPoolExecutor(threads, thread_name_prefix="violence-rgb")
    pending: deque[list] = deque()  # [frame, future of its RGB array, uses], in order
    failure: Exception | None = None
    try:
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                break
            except Exception as exc:  # noqa: BLE001 - raised below, after the frames decoded before it
                failure = exc
                break
            if pending and pending[-1][0] is frame:
                pending[-1][2] += 1
                continue
            pending.append([frame, pool.submit(_to_rgb, frame), 1])
            ahead = max(1, min(2 * threads, _DECODE_BUDGET // (6 * frame.width * frame.height or 1)))
            while len(pending) > ahead:
                yield from _uses(pending.popleft())
        while pending:
            yield from _uses(pending.popleft())
        if failure is not None:
            raise failure
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        frames.close()


def _uses(entry: list) -> Iterator[np.ndarray]:
    """A pending frame's array ``uses`` times: copies first, then the array itself."""
    _, future, uses = entry
    array = future.result()
    for _ in range(uses - 1):
        yield array.copy()
    yield array


def _frames_at_rate(
    container,
    stream,
    path: Path,
    rate: Fraction,
    on_warning: Warn | None,
    begin: Fraction = Fraction(0),
    peek: _Peek | None = None,
) -> Iterator[av.VideoFrame]:
    """The decoded frames at ``rate``: a frame shown for several output ticks comes that many
    times; tick 0 is at ``begin`` seconds (earlier frames, decoded after a seek, are dropped).
    ``peek``: the frames already decoded from ``container`` (its damage counts here)."""
    damage = peek.damage if peek is not None else _Damage()
    origin_pts = stream.start_time  # t = 0 in stream units (None: the first frame's pts)
    average = stream.average_rate or stream.guessed_rate
    time_base = stream.time_base
    one_tick = 1 / (rate * time_base) if time_base else Fraction(1)  # an output frame, in stream units
    fallback = int(1 / (average * time_base)) if average and time_base else one_tick
    fallback = _sane_duration(fallback, one_tick, time_base)  # a frame's duration when nothing says
    next_tick = 0  # output tick to fill next
    held = None  # the decoded frame that fills output ticks until a later one is due
    last_pts, last_duration = None, fallback
    jumps = _Jumps()  # discontinuities cut out of the time line

    def tick_of(pts: int) -> int:
        return round_near(((pts - origin_pts - jumps.cut) * time_base - begin) * rate)

    with container:
        for frame in _decode(container, stream, damage, peek):
            check_frame_size(path, frame.width, frame.height)
            time_base = frame.time_base or time_base
            if frame.pts is None:  # extrapolate, as ffmpeg does
                frame.pts = math.ceil(last_pts + last_duration) if last_pts is not None else 0
            if origin_pts is None:
                origin_pts = frame.pts
            if last_pts is None:  # t = 0 to the first frame: a late start, or a discontinuity
                if not begin:  # (after a seek the first frame is a keyframe before ``begin``)
                    jumps.check(frame.pts, origin_pts, 0, time_base, origin_pts)
            else:
                jumps.check(frame.pts, last_pts, last_duration, time_base, origin_pts)
            last_duration = _duration_estimate(frame, last_pts, last_duration)
            last_duration = _sane_duration(last_duration, fallback, time_base)
            last_pts = frame.pts
            tick = tick_of(frame.pts)
            if held is not None:
                while tick > next_tick:  # the held frame is the latest one due at next_tick
                    yield held  # once per use: _rgb_frames makes each use an array of its own
                    next_tick += 1
            held = frame  # a frame that was never due is dropped here
        if held is not None:
            end_tick = tick_of(last_pts + last_duration)
            while end_tick > next_tick:
                yield held
                next_tick += 1
            decoded = float((last_pts + last_duration - origin_pts) * time_base)
        else:
            decoded = 0.0
            damage.stopped = True  # not one frame could be decoded
        expected = _stream_end(container, stream, _origin(container, stream, None), own_only=True)
    if jumps.count:
        decoded = expected = None  # the header's length counts the gaps: no truncation check
        if on_warning is not None:
            on_warning(jumps.message(path, "video"))
    _report(on_warning, path, "video", damage, decoded, expected)


class _Jumps:
    """Timestamp jumps longer than MAX_FRAME_GAP, cut out of a stream's time line."""

    def __init__(self) -> None:
        self.cut: Fraction = Fraction(0)  # stream units removed from the time line so far
        self.count = 0
        self.first_at: float | None = None  # seconds (after the cuts) of the first jump
        self.largest = 0.0  # seconds

    def check(self, pts: int, previous: int, keep: Fraction, time_base: Fraction, origin: int) -> None:
        """Cut the jump from ``previous`` to ``pts`` (stream units) if it is a
        discontinuity, so that ``pts`` follows ``keep`` units after ``previous``."""
        step = pts - previous
        if abs(step * time_base) <= MAX_FRAME_GAP:
            return
        if self.first_at is None:
            self.first_at = float((previous - origin - self.cut) * time_base)
        self.cut += step - keep
        self.count += 1
        self.largest = max(self.largest, abs(float(step * time_base)))

    def message(self, path: Path, kind: str) -> str:
        return (
            f"{path}: {kind} timestamps jump {count(self.count, 'time')} by more than {MAX_FRAME_GAP:g} s "
            f"(largest {self.largest:.6g} s, first near {self.first_at or 0.0:.2f} s): treated as "
            f"discontinuities, not filled; later times are shifted to follow on"
        )


def _sane_duration(duration: Fraction, default: Fraction, time_base: Fraction | None) -> Fraction:
    """A frame duration in stream units, unless it claims more than MAX_FRAME_GAP (then ``default``)."""
    return duration if time_base is None or duration * time_base <= MAX_FRAME_GAP else default


def iter_audio(
    path: str | Path,
    sample_rate: int = AUDIO_RATE,
    audio_stream: int | None = None,
    chunk_seconds: float = 10.0,
    on_warning: Warn | None = None,
    *,
    video_stream: int | None = None,
    start: float = 0.0,
    end: float | None = None,
) -> Iterator[np.ndarray]:
    """Yield the audio as float32 mono chunks at ``sample_rate``, contiguous from t = 0.

    Mono is the mean of the channels (not a surround down-mix matrix); resampling is
    libswresample's windowed-sinc per channel. Samples are clipped to [-1, 1]. Chunks hold
    ``chunk_seconds`` of audio except the last. Audio that starts after t = 0 (the video's
    first frame; ``video_stream`` says which video, by default the one :func:`probe`
    picks) is preceded by zeros, made as they are consumed; audio that starts after the
    video's end yields nothing (a warning says so). A truncated or corrupt file yields
    what can be decoded and calls ``on_warning(message)`` once. Raises
    :class:`InputError` (when called) for an unusable file or one without an audio stream.
    ``start``/``end`` (seconds from t = 0) read part of it: the container seeks to
    ``start``, the first sample yielded is the one at ``start`` and none at or after ``end``.
    """
    if round(chunk_seconds * sample_rate) <= 0 or sample_rate <= 0:
        raise ValueError("sample_rate and chunk_seconds must be positive")
    media = open_video(path, video_stream, audio_stream)
    try:
        return media.audio(sample_rate, chunk_seconds, on_warning, start=start, end=end)
    except BaseException:
        media.close()
        raise


def _first_samples(chunks: Iterator[np.ndarray], n: int) -> Iterator[np.ndarray]:
    """The first ``n`` samples of ``chunks`` (then ``chunks`` is closed)."""
    try:
        for block in chunks:
            if n <= 0:
                return
            yield block[:n]
            n -= block.size
    finally:
        chunks.close()


def _mono(frames: list[av.AudioFrame]) -> np.ndarray:
    """Mean over channels of resampled planar float frames -> (n,) float32."""
    parts = [f.to_ndarray().mean(axis=0, dtype=np.float32) for f in frames if f.samples]  # (C, n) -> (n,)
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def _audio_chunks(
    container,
    stream,
    path: Path,
    origin: float,
    rate: int,
    chunk: int,
    on_warning: Warn | None,
    extent: float | None,
    begin: float = 0.0,
):
    damage = _Damage()
    late: list[float] = []  # the start time of audio that begins after the video's end
    produced = 0  # samples yielded, from t = 0
    with container:
        if extent is not None:
            extent -= begin
        samples = _audio_samples(container, stream, origin + begin, rate, chunk, extent, damage, late)
        for block in _rechunk(samples, chunk):
            yield np.clip(block, -1.0, 1.0)
            produced += block.size
        expected = _stream_end(container, stream, origin, own_only=True)
    if late:
        if on_warning is not None:
            on_warning(f"{path}: audio starts at {late[0]:.6g} s, after the video ends ({extent:.2f} s): no audio used")
        return
    _report(on_warning, path, "audio", damage, begin + produced / rate, expected)


def _audio_samples(container, stream, origin, rate, chunk, extent, damage: _Damage, late: list[float]):
    """Mono samples from t = 0 in pieces: leading silence first (lazily, ``chunk`` at a
    time), then the resampled frames with anything before t = 0 dropped."""
    # layout=None keeps the source channels: we average them ourselves after resampling.
    resampler = av.AudioResampler(format="fltp", layout=None, rate=rate)
    skip = None  # samples still to drop at the start (audio before t = 0)
    for frame in _chain_flush(_decode(container, stream, damage)):
        if frame is not None and skip is None:
            if frame.pts is None or frame.time_base is None:
                continue
            start = float(frame.pts * frame.time_base) - origin
            if extent is not None and start > max(extent, 0.0) + _TRUNCATION_SLACK:
                late.append(start)
                return
            skip = max(0, round(-start * rate))
            silence = max(0, round(start * rate))
            while silence > 0:
                yield np.zeros(min(silence, chunk), np.float32)
                silence -= chunk
        if skip is None:
            continue
        try:
            samples = _mono(resampler.resample(frame))
        except (av.error.FFmpegError, ValueError) as exc:  # e.g. a mid-stream layout change
            damage.note(exc)
            damage.stopped = True
            return
        if skip:
            cut = min(skip, samples.size)
            samples, skip = samples[cut:], skip - cut
        yield samples


def _rechunk(pieces: Iterator[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Blocks of exactly ``size`` samples from pieces of any size (the last block: the rest)."""
    pending: list[np.ndarray] = []
    buffered = 0
    for piece in pieces:
        if not piece.size:
            continue
        pending.append(piece)
        buffered += piece.size
        while buffered >= size:
            block = np.concatenate(pending)
            yield block[:size]
            pending, buffered = [block[size:]], block.size - size
    if buffered:
        yield np.concatenate(pending)


def _chain_flush(frames: Iterator[av.AudioFrame]) -> Iterator[av.AudioFrame | None]:
    """The frames, then ``None`` (which flushes the resampler)."""
    yield from frames
    yield None

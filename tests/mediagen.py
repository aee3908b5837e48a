"""Synthetic media for tests, written with PyAV (no ffmpeg binary, no network).

``make_clip`` writes a small video (and/or audio) file whose content is known exactly:

- pictures from a named ``pattern`` or your own ``pattern(frame_index) -> (H, W, 3) uint8``:
  ``"gradient"`` (a ramp that moves with the frame index), ``"quadrants"`` (red, green,
  blue, white quadrants: top-left, top-right, bottom-left, bottom-right; for crop order and
  rotation) or ``"index"`` (the frame index written as black/white bars; read it back with
  :func:`read_index`);
- frame presentation times from :func:`frame_times` (constant ``fps`` or, with ``vfr``, an
  irregular cycle of durations), so a test can compute which source frame belongs where;
- audio: a sine of ``tone_hz`` per channel (one frequency, or one per channel), amplitude
  ``AMPLITUDE``, optionally starting late (``audio_start``);
- optional display rotation (a display matrix, as phones write it) and ``faststart``
  (index at the front, so a file cut in the middle still opens, like a partial download).

Example::

    path = make_clip(tmp_path / "a.mp4", seconds=2, fps=30, pattern="index")
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import ColorRange

AMPLITUDE = 0.5  # peak of the generated sine tones (full scale = 1)
VFR_CYCLE = (Fraction(1, 2), Fraction(1), Fraction(3, 2), Fraction(1))  # frame durations in units of 1/fps
INDEX_BITS = 8  # bars in the "index" pattern: frames 0..255 are distinguishable

_QUADRANT_COLOURS = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255))  # TL, TR, BL, BR
_LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}

Pattern = str | Callable[[int], np.ndarray]


def frame_times(seconds: float, fps: float = 24, vfr: bool = False) -> list[Fraction]:
    """Presentation times in seconds (exact, millisecond grid) of the frames ``make_clip`` writes.

    Constant rate: ``i / fps``. With ``vfr``: durations cycle through ``VFR_CYCLE`` times
    ``1 / fps`` (so the mean rate is still ``fps``). Frames start before ``seconds``.
    """
    step = Fraction(1, 1) / Fraction(fps).limit_denominator(1000)
    times: list[Fraction] = []
    t = Fraction(0)
    i = 0
    while t < seconds:
        times.append(Fraction(round(t * 1000), 1000))
        t += step * (VFR_CYCLE[i % len(VFR_CYCLE)] if vfr else 1)
        i += 1
    return times


def quadrants(height: int, width: int) -> np.ndarray:
    """(H, W, 3) uint8: red, green, blue, white quadrants (TL, TR, BL, BR)."""
    img = np.empty((height, width, 3), np.uint8)
    h, w = height // 2, width // 2
    tl, tr, bl, br = _QUADRANT_COLOURS
    img[:h, :w], img[:h, w:], img[h:, :w], img[h:, w:] = tl, tr, bl, br
    return img


def index_frame(index: int, height: int, width: int) -> np.ndarray:
    """(H, W, 3) uint8 with ``index`` in binary: INDEX_BITS vertical bars, bit 0 leftmost."""
    if not 0 <= index < 2**INDEX_BITS:
        raise ValueError(f"index {index} does not fit in {INDEX_BITS} bars")
    bars = np.array([(index >> b) & 1 for b in range(INDEX_BITS)], np.uint8) * 255
    columns = bars[np.arange(width) * INDEX_BITS // width]  # (W,)
    return np.repeat(np.repeat(columns[None, :, None], height, 0), 3, 2)


def read_index(rgb: np.ndarray) -> int:
    """The frame index an ``"index"`` pattern frame carries (from the bar centres)."""
    height, width = rgb.shape[:2]
    centres = ((np.arange(INDEX_BITS) + 0.5) * width / INDEX_BITS).astype(int)
    levels = rgb[:, centres].reshape(height, INDEX_BITS, -1).mean(axis=(0, 2))
    return int(sum(1 << b for b in range(INDEX_BITS) if levels[b] > 127))


def _picture(pattern: Pattern, index: int, height: int, width: int) -> np.ndarray:
    if callable(pattern):
        img = np.asarray(pattern(index), np.uint8)
        if img.shape != (height, width, 3):
            raise ValueError(f"pattern gave {img.shape}, expected {(height, width, 3)}")
        return img
    if pattern == "gradient":
        ramp = (np.arange(width)[None, :] * 4 + np.arange(height)[:, None] * 2 + index * 8) % 256
        return np.stack([ramp, 255 - ramp, np.full_like(ramp, (index * 16) % 256)], axis=-1).astype(np.uint8)
    if pattern == "quadrants":
        return quadrants(height, width)
    if pattern == "index":
        return index_frame(index, height, width)
    raise ValueError(f"unknown pattern {pattern!r}")


def tone(n: int, rate: int, tone_hz: float | Sequence[float], channels: int, start: int = 0) -> np.ndarray:
    """(channels, n) float32 sines: ``AMPLITUDE * sin(2 pi f_c t)``, samples start..start+n."""
    freqs = list(tone_hz) if isinstance(tone_hz, Sequence) else [tone_hz] * channels
    if len(freqs) != channels:
        raise ValueError(f"{len(freqs)} tone frequencies for {channels} channels")
    t = (start + np.arange(n)) / rate
    return (AMPLITUDE * np.sin(2 * np.pi * np.asarray(freqs)[:, None] * t[None, :])).astype(np.float32)


def make_clip(
    path: str | Path,
    seconds: float,
    fps: float = 24,
    size: tuple[int, int] = (64, 48),
    audio: bool = True,
    audio_rate: int = 16000,
    channels: int = 1,
    codec: str = "libx264",
    pattern: Pattern = "gradient",
    tone_hz: float | Sequence[float] = 440.0,
    rotation: int | None = None,
    vfr: bool = False,
    audio_only: bool = False,
    *,
    audio_codec: str | None = None,
    audio_start: float = 0.0,
    audio_seconds: float | None = None,
    faststart: bool = False,
    full_range: bool = False,
    crf: int = 18,
    gop: int | None = None,
) -> Path:
    """Write a synthetic clip to ``path`` (container from the suffix) and return the path.

    ``size`` is (width, height) as stored (rotation is metadata only); ``rotation`` is the
    counter-clockwise display rotation in degrees (what ``VideoFrame.rotation`` reads
    back). ``codec``: any PyAV encoder (``libx264``, ``mpeg4``, ``libx265``,
    ``libvpx-vp9``, ``libsvtav1``...). ``audio_codec``: default ``aac``, ``pcm_s16le`` for
    ``.wav``; ``flac`` keeps samples exact in MP4/MKV. ``audio_start`` delays the audio
    (seconds); ``audio_seconds`` ends it elsewhere than the video (default: ``seconds``). ``audio_only`` writes no video stream; ``audio=False`` no audio stream.
    ``full_range`` stores full-range (0-255, "pc") YUV and flags it; ``crf`` sets x264/x265
    quality; ``gop``: a keyframe every that many frames (x264).
    """
    path = Path(path)
    width, height = size
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), mode="w", options=options) as container:
        video = None
        if not audio_only:
            video = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
            video.width, video.height, video.pix_fmt = width, height, "yuv420p"
            if codec == "libx264":
                video.options = {"crf": str(crf), "preset": "ultrafast", **({"g": str(gop)} if gop else {})}
            elif codec == "libx265":
                video.options = {"crf": str(crf), "preset": "fast", "x265-params": "log-level=error"}
            elif codec == "libvpx-vp9":
                video.options = {"crf": "20", "b": "0", "deadline": "realtime", "cpu-used": "8"}
            elif codec == "mpeg4":
                video.options = {"qscale": "2"}
            if vfr:
                video.codec_context.time_base = Fraction(1, 1000)
            if full_range:
                video.codec_context.color_range = ColorRange.JPEG
            if rotation:
                video.set_display_rotation(rotation)
        sound = None
        if audio or audio_only:
            name = audio_codec or ("pcm_s16le" if path.suffix.lower() == ".wav" else "aac")
            sound = container.add_stream(name, rate=audio_rate)
            sound.layout = _LAYOUTS.get(channels, f"{channels}c")
        if video is not None:
            _write_video(container, video, seconds, fps, pattern, vfr, full_range)
        if sound is not None:
            end = seconds if audio_seconds is None else audio_seconds
            _write_audio(container, sound, end, audio_rate, channels, tone_hz, audio_start)
    return path


def _write_video(container, stream, seconds: float, fps: float, pattern: Pattern, vfr: bool, full_range: bool) -> None:
    colour_range = ColorRange.JPEG if full_range else ColorRange.MPEG
    for i, t in enumerate(frame_times(seconds, fps, vfr)):
        frame = av.VideoFrame.from_ndarray(_picture(pattern, i, stream.height, stream.width), format="rgb24")
        frame = frame.reformat(format="yuv420p", dst_color_range=colour_range)
        frame.pts = int(t * 1000) if vfr else i
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def _write_audio(container, stream, seconds, rate, channels, tone_hz, start) -> None:
    total = round(seconds * rate)
    offset = round(start * rate)
    block = stream.codec_context.frame_size or 1024
    fmt = stream.codec_context.format.name if stream.codec_context.format else "fltp"
    for begin in range(offset, total, block):
        n = min(block, total - begin)
        samples = tone(n, rate, tone_hz, channels, start=begin)  # (C, n)
        frame = _audio_frame(samples, fmt, stream.layout.name)
        frame.sample_rate, frame.pts = rate, begin
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def _audio_frame(samples: np.ndarray, fmt: str, layout: str) -> av.AudioFrame:
    """An AudioFrame in the encoder's sample format from (C, n) float32 samples."""
    planar = fmt.endswith("p")
    base = fmt.rstrip("p")
    if base == "s16":
        data = np.clip(np.round(samples * 32767), -32768, 32767).astype(np.int16)
    elif base == "s32":
        data = np.clip(np.round(samples * 2147483647.0), -2147483648, 2147483647).astype(np.int32)
    else:
        data = samples.astype(np.float32)
    if not planar:
        data = data.T.reshape(1, -1)  # interleaved: (1, n * C)
    return av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=fmt, layout=layout)


def make_two_video_streams(path: str | Path, seconds: float = 3.0, late: float = 1.0, rate: int = 16000) -> Path:
    """An MKV with two video streams, the second starting ``late`` seconds after the first,
    and one mono FLAC audio stream from 0 that is silent until ``late`` s, then a 1 kHz tone.

    Aligned to stream #1 (t = 0 at ``late``), the audio is a tone from its first snippet on;
    aligned to stream #0 it is silent for the first ``late`` seconds.
    """
    path = Path(path)
    with av.open(str(path), "w") as out:
        videos = []
        for _ in range(2):
            v = out.add_stream("libx264", rate=24)
            v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
            v.time_base = Fraction(1, 24)
            videos.append(v)
        audio = out.add_stream("flac", rate=rate)
        audio.layout = "mono"
        n = int(seconds * 24)
        for v, offset in zip(videos, (0, int(late * 24))):
            for k in range(n - offset):
                frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), (k * 3) % 255, np.uint8), format="rgb24")
                frame.pts, frame.time_base = k + offset, Fraction(1, 24)
                out.mux(v.encode(frame))
            out.mux(v.encode(None))
        t = np.arange(int(seconds * rate)) / rate
        wave = np.where(t >= late, 0.5 * np.sin(2 * np.pi * 1000 * t), 0).astype(np.float32)
        for start in range(0, wave.size, 1024):
            frame = av.AudioFrame.from_ndarray(wave[start : start + 1024][None], format="flt", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            out.mux(audio.encode(frame))
        out.mux(audio.encode(None))
    return path


def make_cover_and_data(path: str | Path, seconds: float = 2.0, rate: int = 16000) -> Path:
    """An MP4 whose streams tempt a naive reader: #0 a data stream (no decoder), #1 the real
    video, #2 a FLAC audio stream that is not the default, #3 the default AAC audio (a
    440 Hz tone) and #4 a cover picture (an MJPEG still, disposition attached_pic).

    The right choice is video #1 and audio #3 (the container's best: the default one);
    the first audio stream (#2, silent) and the cover are wrong.
    """
    path = Path(path)
    disposition = av.stream.Disposition
    with av.open(str(path), "w") as out:
        data = out.add_data_stream("bin_data")
        video = out.add_stream("libx264", rate=24)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.options = {"preset": "ultrafast"}
        cover = out.add_stream("mjpeg", rate=1)
        cover.width, cover.height, cover.pix_fmt = 32, 32, "yuvj420p"
        cover.disposition = disposition.attached_pic
        other = out.add_stream("flac", rate=rate)
        other.layout = "mono"
        other.disposition = disposition(0)
        main = out.add_stream("aac", rate=rate)
        main.layout = "mono"
        main.disposition = disposition.default
        still = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 200, np.uint8), format="rgb24")
        still = still.reformat(format="yuvj420p")
        still.pts = 0
        for packet in [*cover.encode(still), *cover.encode(None)]:
            out.mux(packet)
        packet = av.Packet(b"not media")
        packet.stream, packet.pts, packet.dts, packet.time_base = data, 0, 0, Fraction(1, 1000)
        out.mux(packet)
        _write_video(out, video, seconds, 24, "gradient", False, False)
        _write_audio(out, other, seconds, rate, 1, 0.0, 0.0)  # 0 Hz: silence
        _write_audio(out, main, seconds, rate, 1, 440.0, 0.0)
    return path

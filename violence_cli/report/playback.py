"""Will a web browser play this file? And if not, a browser-safe proxy made with PyAV.

Browsers (Chrome, Firefox, Safari, Edge) all play H.264 (8-bit 4:2:0) with AAC or MP3 in
MP4, and VP8/VP9/AV1 with Opus or Vorbis in WebM; VP9/AV1 in MP4 play in all but old
Safari. HEVC plays only in some of them (Safari, Edge with a paid extension, Chrome with
hardware support), and AVI, Matroska (.mkv), WMV, FLV, MPEG-TS files do not play in most.
:func:`check_playback` says which case a file is; :func:`make_proxy` re-encodes it to
H.264 yuv420p + AAC in MP4, at most 720p, with even dimensions.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from ..atomic import atomic_path
from ..errors import InputError
from ..media import MediaInfo, open_video, probe

# container (by file extension, since FFmpeg's "matroska,webm" demuxer reads both) -> codecs
_SAFE = {
    "mp4": ({"h264", "vp9", "av1"}, {"aac", "mp3", "opus", "flac"}),
    "webm": ({"vp8", "vp9", "av1"}, {"opus", "vorbis"}),
}
_MP4_EXTENSIONS = {".mp4", ".m4v"}
_H264_PIXEL_FORMATS = {"yuv420p", "yuvj420p"}  # 10-bit or 4:2:2/4:4:4 H.264 does not play in browsers

PROXY_MAX_SHORT_SIDE = 720  # px: "720p"; the long side is capped at 1280
PROXY_MAX_LONG_SIDE = 1280  # px
PROXY_CRF = 23  # x264 quality (lower is better and bigger)
PROXY_AUDIO_RATE = 48000  # Hz, when the source's rate is not one AAC in MP4 commonly uses
PROXY_SUFFIX = ".proxy.mp4"

_CONTAINER_NAMES = {
    "mp4": "MP4",
    "webm": "WebM",
    "matroska": "Matroska (.mkv)",
    "mov": "QuickTime (.mov)",
    "mp4-family": "an MP4-family file",
    "avi": "AVI",
    "asf": "WMV/ASF",
    "flv": "FLV",
    "mpegts": "MPEG-TS",
}
_AAC_RATES = {44100, 48000, 32000, 24000, 22050, 16000}


@dataclass
class Playback:
    """Whether a browser plays ``path`` as it is; ``reason`` says why not (or what it is)."""

    path: Path
    safe: bool
    reason: str
    container: str  # "mp4", "webm", "matroska", "avi"... (from the extension and the demuxer)
    video_codec: str | None
    audio_codec: str | None
    pixel_format: str | None

    @property
    def label(self) -> str:
        """What the file is, in words: ``H264 + AAC in MP4``."""
        what = " + ".join(c.upper() for c in (self.video_codec, self.audio_codec) if c) or "no streams"
        return f"{what} in {_CONTAINER_NAMES.get(self.container, self.container.upper())}"


def _container_kind(path: Path, format_name: str) -> str:
    suffix = path.suffix.lower()
    names = set(format_name.split(","))
    if "mp4" in names or "mov" in names:
        return "mp4" if suffix in _MP4_EXTENSIONS else ("mov" if suffix == ".mov" else "mp4-family")
    if "webm" in names or "matroska" in names:
        return "webm" if suffix == ".webm" else "matroska"
    return format_name.split(",")[0]


def check_playback(
    path: str | os.PathLike[str], video_stream: int | None = None, info: MediaInfo | None = None
) -> Playback:
    """Say whether browsers play ``path`` without help.

    ``info``: what :func:`violence_cli.media.probe` (or the detection) already learnt of
    the file, so it is not opened again; otherwise it is probed here, with the streams the
    detector chooses (``video_stream``, else the best, never a cover picture). Raises
    :class:`InputError` when the file cannot be opened.
    """
    path = Path(path)
    if info is None:
        info = probe(path, video_stream)
    kind = _container_kind(path, info.container)
    playback = Playback(path, False, "", kind, info.video_codec, info.audio_codec, info.pixel_format)
    playback.safe, why = _judge(playback)
    playback.reason = f"{playback.label}: {why}"
    return playback


def _judge(p: Playback) -> tuple[bool, str]:
    """(plays in browsers, why) for the streams and container ``p`` describes."""
    where = _CONTAINER_NAMES.get(p.container, p.container.upper())
    if p.video_codec is None:
        return False, "no video stream for the player"
    if p.container not in _SAFE:
        return False, "most browsers do not play this container"
    videos, audios = _SAFE[p.container]
    if p.video_codec not in videos:
        return False, f"most browsers do not play {p.video_codec.upper()} video"
    if p.video_codec == "h264" and p.pixel_format is not None and p.pixel_format not in _H264_PIXEL_FORMATS:
        return False, f"browsers play 8-bit 4:2:0 H.264 only (this is {p.pixel_format})"
    if p.audio_codec is not None and p.audio_codec not in audios:
        return False, f"most browsers do not play {p.audio_codec.upper()} audio in {where}"
    return True, "plays in web browsers"


def proxy_path(report: str | os.PathLike[str]) -> Path:
    """Where the proxy of a report goes: beside it, ``NAME.proxy.mp4`` for ``NAME.html``."""
    report = Path(report)
    return report.with_name(report.stem + PROXY_SUFFIX)


def proxy_size(width: int, height: int) -> tuple[int, int]:
    """The proxy's frame size: scaled down (never up) to fit 720p, both sides even."""
    short, long_ = min(width, height), max(width, height)
    scale = min(1.0, PROXY_MAX_SHORT_SIDE / max(short, 1), PROXY_MAX_LONG_SIDE / max(long_, 1))
    w = max(2, int(round(width * scale / 2)) * 2)
    h = max(2, int(round(height * scale / 2)) * 2)
    return w, h


def make_proxy(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    video_stream: int | None = None,
    audio_stream: int | None = None,
    progress: Callable[[float], None] | None = None,
) -> Path:
    """Re-encode ``source`` to ``target``: H.264 yuv420p + AAC in MP4, at most 720p, even sizes.

    Timestamps are kept (variable frame rate stays variable), so the proxy's time line is
    the source's. Written under a temporary name in ``target``'s folder, then renamed.
    ``progress`` gets the seconds encoded so far. Raises :class:`InputError` when the
    source cannot be decoded.
    """
    source, target = Path(source), Path(target)
    with atomic_path(target) as tmp:
        try:
            _encode(source, tmp, video_stream, audio_stream, progress)
        except av.error.FFmpegError as exc:
            raise InputError(f"{source}: could not make a browser proxy ({exc.strerror or exc})") from None
    return target


def _encode(source: Path, target: Path, video_index, audio_index, progress) -> None:
    # faststart: the index goes first, so a browser starts playing before the whole file is read
    src, vin, ain = open_video(source, video_index, audio_index).take()  # the detector's streams
    with src, av.open(str(target), mode="w", format="mp4", options={"movflags": "+faststart"}) as out:
        if vin is None:
            raise InputError(f"{source}: no video stream to make a proxy from")
        width, height = proxy_size(vin.codec_context.width, vin.codec_context.height)
        rate = vin.average_rate or vin.guessed_rate or Fraction(24)
        vout = out.add_stream("libx264", rate=Fraction(rate).limit_denominator(1001 * 1000))
        vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
        vout.codec_context.time_base = vin.time_base
        vout.options = {"crf": str(PROXY_CRF), "preset": "veryfast", "profile": "high"}
        aout = resampler = None
        if ain is not None:
            in_rate = ain.codec_context.sample_rate or PROXY_AUDIO_RATE
            out_rate = in_rate if in_rate in _AAC_RATES else PROXY_AUDIO_RATE
            layout = "mono" if (ain.codec_context.channels or 2) == 1 else "stereo"
            aout = out.add_stream("aac", rate=out_rate)
            aout.layout = layout
            resampler = av.AudioResampler(format="fltp", layout=layout, rate=out_rate)
        v0 = vin.start_time if vin.start_time is not None else 0
        origin = float(v0 * vin.time_base)
        rotated = False
        streams = [s for s in (vin, ain) if s is not None]
        for packet in src.demux(*streams):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                continue  # a damaged packet: skip it, as the detector does
            for frame in frames:
                if packet.stream is vin:
                    if not rotated:
                        rotated = True
                        _copy_rotation(frame, vout)
                    if frame.pts is None:
                        continue
                    picture = frame.reformat(width=width, height=height, format="yuv420p")
                    picture.pts = frame.pts - v0
                    picture.time_base = vin.time_base
                    out.mux(vout.encode(picture))
                    if progress is not None:
                        progress(float(frame.pts * vin.time_base) - origin)
                else:
                    if frame.pts is not None:
                        frame.pts = max(0, frame.pts - int(round(origin / ain.time_base)))
                    for chunk in resampler.resample(frame):
                        out.mux(aout.encode(chunk))
        out.mux(vout.encode(None))
        if aout is not None:
            for chunk in resampler.resample(None):
                out.mux(aout.encode(chunk))
            out.mux(aout.encode(None))


def _copy_rotation(frame, stream) -> None:
    """Keep a phone video's display rotation (a matrix in the container, not re-rendered pixels)."""
    try:
        degrees = round((frame.rotation or 0) / 90) % 4 * 90
    except (AttributeError, av.error.FFmpegError):
        return
    if degrees:
        stream.set_display_rotation(degrees)

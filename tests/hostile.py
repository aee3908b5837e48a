"""Hostile media for tests: crafted files (PyAV plus byte edits) and seeded mutations.

Every crafted file is small (kilobytes) and made in well under a second:

- :func:`sample_delta_mp4`: an MP4 whose video sample delta is ``delta`` (default
  0x7FFFFFFF: frames two days apart at the 12288 timescale);
- :func:`timescale_mp4`: an MP4 whose video track timescale is ``timescale`` (default 1:
  every frame 512 s after the previous one);
- :func:`late_audio_mp4`: a 2 s video whose audio starts at ``start`` seconds (an edit list);
- :func:`timestamps_file`: frames muxed with the presentation times you give (gaps,
  negative, non-monotonic; NUT stores them as they are);
- :func:`big_frame_file`: one MJPEG frame of any size (up to 65535 a side);
- :func:`bad_utf8_mp4`: container and stream titles that are not valid UTF-8;
- :func:`unknown_codec_mkv`: a Matroska file whose audio stream names a codec nobody knows.

:func:`mutations` turns one file's bytes into seeded variants (byte flips in the header
and the body, truncations, zeroed blocks, overwritten MP4 box headers).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from mediagen import make_clip

_MP4_BOXES = (b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stts", b"stsz", b"stco", b"mdhd", b"ftyp", b"mdat")


def timestamps_file(
    path: Path, times: Sequence[int], *, size: tuple[int, int] = (64, 48), codec: str = "mpeg4"
) -> Path:
    """Intra-coded frames muxed at presentation ``times`` (integers, in units of 1/1000 s).

    Decoding times equal them when they increase; otherwise they count up from below the
    smallest (muxers need increasing decoding times, any presentation order is allowed).
    """
    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=24)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        stream.codec_context.gop_size = 1
        packets = []
        for i in range(len(times)):
            rgb = np.full((height, width, 3), (40 * i) % 256, np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            packets += stream.encode(frame)
        packets += stream.encode()
        stream.time_base = Fraction(1, 1000)
        ordered = list(times) == sorted(times)
        for i, (packet, t) in enumerate(zip(packets, times)):
            packet.time_base = Fraction(1, 1000)
            packet.pts = int(t)
            packet.dts = int(t) if ordered else min(times) - len(times) + i
            container.mux(packet)
    return path


def _boxes(data: bytes | bytearray, name: bytes) -> Iterator[int]:
    """Offsets of every ``name`` box header (size field first) in ``data``."""
    at = data.find(name)
    while at != -1:
        if at >= 4:
            yield at - 4
        at = data.find(name, at + 1)


def _drop_edit_lists(data: bytearray) -> None:
    """Turn ``edts`` boxes into ``free`` ones: no edit list then hides the forged samples."""
    for box in _boxes(data, b"edts"):
        data[box + 4 : box + 8] = b"free"


def sample_delta_mp4(path: Path, delta: int = 0x7FFFFFFF, frames: int = 2) -> Path:
    """A tiny MP4 of ``frames`` frames whose every video sample lasts ``delta`` timescale
    units (the stts entries are overwritten, the edit list dropped)."""
    make_clip(path, frames / 24, size=(64, 48), audio=False, codec="mpeg4")
    data = bytearray(path.read_bytes())
    for box in _boxes(data, b"stts"):
        count = struct.unpack_from(">I", data, box + 12)[0]
        for i in range(count):
            struct.pack_into(">I", data, box + 16 + 8 * i + 4, delta)
    _drop_edit_lists(data)
    path.write_bytes(bytes(data))
    return path


def timescale_mp4(path: Path, timescale: int = 1, seconds: float = 2.0) -> Path:
    """A ``seconds`` long MP4 whose video track timescale is overwritten with ``timescale``."""
    make_clip(path, seconds, size=(64, 48), audio=False, codec="mpeg4")
    data = bytearray(path.read_bytes())
    for box in _boxes(data, b"mdhd"):
        version = data[box + 8]
        struct.pack_into(">I", data, box + (28 if version == 1 else 20), timescale)
    _drop_edit_lists(data)
    path.write_bytes(bytes(data))
    return path


def late_audio_mp4(path: Path, start: float, seconds: float = 2.0) -> Path:
    """A ``seconds`` long video with one second of audio starting at ``start`` seconds."""
    return make_clip(path, seconds, size=(64, 48), audio_start=start, audio_seconds=start + 1.0, audio_codec="flac")


def big_frame_file(path: Path, width: int, height: int, frames: int = 1) -> Path:
    """MJPEG frames of ``width`` x ``height`` (a flat grey picture compresses to kilobytes)."""
    return timestamps_file(path, [40 * i for i in range(frames)], size=(width, height), codec="mjpeg")


def bad_utf8_mp4(path: Path) -> Path:
    """An MP4 whose container and stream titles hold bytes that are not UTF-8."""
    with av.open(str(path), "w") as container:
        container.metadata["title"] = "TITLEXYZ"
        stream = container.add_stream("mpeg4", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.metadata["title"] = "STREAMXY"
        for i in range(24):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 8, np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = (
        path.read_bytes()
        .replace(b"TITLEXYZ", b"\xff\xfe\xc3(XYZ\x80")
        .replace(b"STREAMXY", b"\xc0\xaf\xed\xa0\x80XY\xff")
    )
    path.write_bytes(data)
    return path


def unknown_codec_mkv(path: Path) -> Path:
    """A Matroska video whose audio stream's codec ID is one no decoder knows."""
    make_clip(path, 1.0, size=(64, 48), audio_codec="pcm_s16le")
    data = path.read_bytes()
    assert b"A_PCM/INT/LIT" in data
    path.write_bytes(data.replace(b"A_PCM/INT/LIT", b"A_QQQ/INT/LIT"))
    return path


def crafted_corpus(folder: Path) -> list[Path]:
    """Every crafted case of this module, written into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    return [
        sample_delta_mp4(folder / "delta_7fffffff.mp4"),
        sample_delta_mp4(folder / "delta_7fffffff_5frames.mp4", frames=5),
        timescale_mp4(folder / "timescale_1.mp4"),
        late_audio_mp4(folder / "late_audio_20000.mp4", 20_000.0),
        late_audio_mp4(folder / "late_audio_1e6.mp4", 1_000_000.0),
        timestamps_file(folder / "gap_1e5s.nut", [0, 40, 100_000_000, 100_000_040]),
        timestamps_file(folder / "negative.nut", [-50_000_000, -49_999_960, 0, 40]),
        timestamps_file(folder / "non_monotonic.nut", [400, 0, 800, 40, 10_000_000_000, 80]),
        timestamps_file(folder / "gap_1e5s.mkv", [0, 40, 100_000_000, 100_000_040]),
        big_frame_file(folder / "tall_17000.nut", 16, 17_000),
        big_frame_file(folder / "wide_8x20000.nut", 20_000, 8),
        bad_utf8_mp4(folder / "bad_utf8.mp4"),
        unknown_codec_mkv(folder / "unknown_codec.mkv"),
    ]


def mutations(data: bytes, rng: np.random.Generator, count: int, start: int = 0) -> Iterator[tuple[str, bytes]]:
    """``count`` seeded variants of ``data``: (what was done, the bytes). The kinds take
    turns from the ``start``-th (so a few mutations of many files still cover them all)."""
    kinds = ("flip_header", "flip_body", "truncate", "zero_block", "box_header")
    n = len(data)
    for i in range(count):
        kind = kinds[(start + i) % len(kinds)]
        out = bytearray(data)
        if kind == "flip_header":
            for at in rng.integers(0, min(n, 4096), 8):
                out[at] ^= 1 << int(rng.integers(0, 8))
        elif kind == "flip_body":
            for at in rng.integers(0, n, 32):
                out[at] = int(rng.integers(0, 256))
        elif kind == "truncate":
            out = out[: int(rng.integers(1, n))]
        elif kind == "zero_block":
            at = int(rng.integers(0, n))
            length = min(int(rng.integers(16, 8192)), n - at)
            out[at : at + length] = bytes(length)  # the same number of bytes, all zero
        else:  # overwrite an MP4/MOV box header (size and name), or random bytes elsewhere
            boxes = [b for name in _MP4_BOXES for b in _boxes(out, name)]
            at = boxes[int(rng.integers(0, len(boxes)))] if boxes else int(rng.integers(0, max(n - 8, 1)))
            out[at : at + 8] = rng.integers(0, 256, 8, dtype=np.uint8).tobytes()
        yield f"{kind}{i}", bytes(out)

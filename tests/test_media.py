"""Decoding stage (violence_cli.media): real files from ../shared/media and PyAV-made clips.

Frame-rate conversion is checked three ways: against FFmpeg's own ``fps`` filter run through
PyAV's filter graph (the oracle), against the rule written out from first principles, and
against one case derived by hand. Audio resampling is checked against resampy (what the
reference VGGish pipeline used) on the waveform and on log-mel examples.
"""

from __future__ import annotations

import threading
import tracemalloc
from fractions import Fraction
from pathlib import Path

import av
import hostile
import numpy as np
import pytest
from conftest import require_module
from mediagen import AMPLITUDE, frame_times, make_clip, quadrants, read_index, tone

from violence_cli import media
from violence_cli.errors import InputError

SHARED_FILES = [
    "av1_video.mkv", "bt709_full_range.mp4", "h264_10bits.mp4", "h265_video.mp4", "nasa_13013.mp4",
    "nasa_13013.mp4.audio_44100.mp3", "sine_mono_s16.wav", "vggish_test.wav",
    "xd/abuse1.mp4", "xd/car1.mp4", "xd/explosion1.mp4", "xd/fighting1.mp4", "xd/fighting2.mp4",
    "xd/n1.mp4", "xd/n3.mp4", "xd/riot1.mp4", "xd/shooting1.mp4",
]  # fmt: skip


def _round_near(x: Fraction) -> int:
    return int(x + Fraction(1, 2)) if x >= 0 else -int(-x + Fraction(1, 2))


def _indices(path: Path, **kwargs) -> list[int]:
    return [read_index(rgb) for rgb in media.iter_frames(path, **kwargs)]


def _ffmpeg_fps_filter(path: Path, fps: int = 24) -> list[int]:
    """Frame indices that FFmpeg's own fps filter (libavfilter, via PyAV) outputs, fed
    timestamps from the stream's start as the ffmpeg command line feeds them (it subtracts
    the input's start time)."""
    out: list[int] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        start = stream.start_time or 0
        graph = av.filter.Graph()
        source, rate, sink = graph.add_buffer(template=stream), graph.add("fps", str(fps)), graph.add("buffersink")
        source.link_to(rate)
        rate.link_to(sink)
        graph.configure()

        def drain() -> None:
            while True:
                try:
                    out.append(read_index(sink.pull().to_ndarray(format="rgb24")))
                except (av.error.BlockingIOError, av.error.EOFError):
                    return

        for frame in container.decode(stream):
            frame.pts -= start
            source.push(frame)
            drain()
        source.push(None)
        drain()
    return out


# ------------------------------------------------------------------ real files


@pytest.mark.parametrize("name", SHARED_FILES)
def test_every_shared_file_decodes(media_dir: Path, name: str) -> None:
    path = media_dir / name
    warnings: list[str] = []
    info = media.probe(path)
    assert info.has_video or info.has_audio
    if info.has_video:
        frames = list(media.iter_frames(path, on_warning=warnings.append))
        assert abs(len(frames) - info.duration * media.VIDEO_FPS) <= 1
        assert {f.shape for f in frames} == {(info.height, info.width, 3)}
        assert frames[0].dtype == np.uint8 and frames[0].flags.c_contiguous
        assert np.ptp(np.stack(frames[:: max(1, len(frames) // 8)])) > 50  # real pictures, not blank
    if info.has_audio:
        audio = np.concatenate(list(media.iter_audio(path, on_warning=warnings.append)))
        assert audio.dtype == np.float32 and audio.ndim == 1
        assert np.abs(audio).max() <= 1.0 and np.abs(audio).max() > 0.01
        if not info.has_video:  # then t = 0 is the audio's start and duration its length
            assert abs(audio.size / media.AUDIO_RATE - info.duration) < 0.05
    assert warnings == []  # intact files: nothing to report


def test_full_range_bt709_colours(media_dir: Path) -> None:
    """RGB matches BT.709 full-range conversion of the raw planes (a limited-range or
    BT.601 decode would be 9-13 levels off on average; we are within 1)."""
    path = media_dir / "bt709_full_range.mp4"
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
    y, u, v = (
        np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width].astype(float) for p in frame.planes
    )
    u, v = (np.repeat(np.repeat(c, 2, 0), 2, 1)[: y.shape[0], : y.shape[1]] - 128 for c in (u, v))
    kr, kb = 0.2126, 0.0722
    r, b = y + 2 * (1 - kr) * v, y + 2 * (1 - kb) * u
    g = (y - kr * r - kb * b) / (1 - kr - kb)
    expected = np.clip(np.stack([r, g, b], -1), 0, 255)
    ours = next(media.iter_frames(path)).astype(float)
    assert np.abs(ours - expected).mean() < 1.5


def test_nasa_stream_choice(media_dir: Path) -> None:
    path = media_dir / "nasa_13013.mp4"
    best = media.probe(path)
    assert (best.n_video_streams, best.n_audio_streams) == (2, 2)
    assert (best.video_stream, best.audio_stream) == (3, 4)  # FFmpeg's best: 480x270, 16 kHz
    assert (best.width, best.height, best.audio_sample_rate) == (480, 270, 16000)
    assert best.fps == pytest.approx(30000 / 1001)
    first = media.probe(path, video_stream=0, audio_stream=1)
    assert (first.width, first.height, first.fps, first.audio_sample_rate) == (320, 180, 25.0, 8000)
    frames = list(media.iter_frames(path, video_stream=0))
    assert frames[0].shape == (180, 320, 3) and abs(len(frames) - 13.0 * 24) <= 1
    low = np.concatenate(list(media.iter_audio(path, audio_stream=1)))
    high = np.concatenate(list(media.iter_audio(path, audio_stream=4)))
    assert abs(low.size - high.size) <= 16
    # t = 0 may be set by the video stream the caller decodes (both start at 0 here)
    paired = np.concatenate(list(media.iter_audio(path, audio_stream=1, video_stream=0)))
    assert np.array_equal(paired, low)
    # the same soundtrack: 8 kHz and 16 kHz versions agree below 4 kHz
    n = min(low.size, high.size)
    spec = lambda x: np.abs(np.fft.rfft(x[:n]))[: n // 4]
    assert np.corrcoef(spec(low), spec(high))[0, 1] > 0.9
    for kwargs, words in (
        ({"video_stream": 2}, "subtitle, not video"),
        ({"video_stream": 1}, "audio, not video"),
        ({"audio_stream": 3}, "video, not audio"),
        ({"audio_stream": 17}, "no stream #17"),
    ):
        with pytest.raises(InputError, match=words):
            media.probe(path, **kwargs)
    with pytest.raises(InputError, match="subtitle"):
        media.iter_frames(path, video_stream=5)


def _native_mean(path: Path) -> tuple[np.ndarray, int]:
    """Mean of channels at the file's own sample rate (what the reference pipeline resampled)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        parts = [f.to_ndarray().mean(axis=0) for f in container.decode(stream)]  # fltp: (C, n) -> (n,)
        return np.concatenate(parts).astype(np.float64), stream.codec_context.sample_rate


@pytest.mark.parametrize("name", ["nasa_13013.mp4.audio_44100.mp3", "xd/fighting2.mp4", "xd/abuse1.mp4"])
def test_resampling_matches_resampy(media_dir: Path, name: str) -> None:
    """44.1/48 kHz (stereo and 5.1) -> 16 kHz mono against mean-of-channels + resampy.

    Measured: waveform SNR 84 dB (mp3), 40 dB (fighting2, 48 kHz 5.1: the filters differ
    only near 8 kHz), 90 dB (abuse1, 44.1 kHz 5.1). A matrix down-mix instead of the mean
    would fail this. Log-mel (VGGish front end): mean |diff| <= 0.0025; max 0.32, only in
    the top mel band (7.2-7.5 kHz, the resamplers' transition band); below it <= 0.03.
    """
    resampy = require_module("resampy", "the reference resampler (the dev extra)")
    path = media_dir / name
    info = media.probe(path)
    native, rate = _native_mean(path)
    reference = resampy.resample(native, rate, 16000)
    ours = np.concatenate(list(media.iter_audio(path))).astype(np.float64)
    with av.open(str(path)) as container:  # our output has the late start as leading zeros
        stream = container.streams.audio[0]
        lead = round((float(stream.start_time * stream.time_base) - info.start_time) * 16000)
    assert np.all(ours[:lead] == 0)
    ours = ours[lead:]
    n = min(ours.size, reference.size)
    assert abs(ours.size - reference.size) <= 2
    err = ours[:n] - reference[:n]
    snr = 10 * np.log10(np.mean(reference[:n] ** 2) / np.mean(err**2))
    assert snr > 35

    try:
        from violence_cli.features import log_mel_examples
    except ImportError:
        from violence_cli.features.frontend import log_mel_examples
    ref_mel = log_mel_examples(reference[:n].astype(np.float32), 16000)
    our_mel = log_mel_examples(ours[:n].astype(np.float32), 16000)
    diff = np.abs(ref_mel - our_mel)  # (N, 96, 64)
    assert diff.mean() < 0.01
    assert diff[..., :-1].max() < 0.05  # all but the top band (7.2-7.5 kHz)


# ------------------------------------------------------------------ frame rate


@pytest.mark.parametrize(
    ("fps", "vfr", "suffix"),
    [(25, False, ".mp4"), (30, False, ".mp4"), (60, False, ".mp4"), (12, False, ".mp4"), (30, True, ".mp4"),
     (17, True, ".mkv"), (30, False, ".ts")],
)  # fmt: skip
def test_frame_rate_conversion(tmp_path: Path, fps: int, vfr: bool, suffix: str) -> None:
    """MPEG-TS starts its clock at 0.064 s: ticks count from the stream's start."""
    seconds = 2.0
    path = make_clip(tmp_path / f"clip{suffix}", seconds, fps=fps, vfr=vfr, pattern="index", audio=False)
    ours = _indices(path)
    # 1. identical to FFmpeg's fps filter (frame choice and count)
    assert ours == _ffmpeg_fps_filter(path)
    # 2. first principles: output n shows the last source frame whose rounded tick is <= n
    ticks = [_round_near(t * 24) for t in frame_times(seconds, fps, vfr)]
    expected = [max(i for i, q in enumerate(ticks) if q <= n) for n in range(len(ours))]
    assert ours == expected
    assert abs(len(ours) - media.probe(path).duration * 24) <= 1
    if not vfr:
        assert len(ours) == _round_near(Fraction(len(ticks), fps) * 24)


def test_25_to_24_fps_drops_frame_12(tmp_path: Path) -> None:
    """By hand: source frame i has tick round(0.96 i): 11.52 -> 12 and 12.48 -> 12, so
    frame 12 is never shown and outputs 12..23 show frames 13..24."""
    path = make_clip(tmp_path / "clip.mp4", 1.0, fps=25, pattern="index", audio=False)
    assert _indices(path) == list(range(12)) + list(range(13, 25))


def test_48_fps_halves_round_up_so_output_n_shows_frame_2n(tmp_path: Path) -> None:
    """By hand: source frame 2k + 1 has tick k + 0.5, which rounds away from zero to k + 1 (as
    FFmpeg's fps filter does), so frames 2k and 2k + 1 never both show: output n is frame 2n."""
    path = make_clip(tmp_path / "clip.mp4", 1.0, fps=48, pattern="index", audio=False)
    assert _indices(path) == list(range(0, 48, 2))


def test_round_near_rounds_halves_away_from_zero() -> None:
    halves = [Fraction(n, 2) for n in (-5, -3, -1, 1, 3, 5)]
    assert [media.round_near(x) for x in halves] == [-3, -2, -1, 1, 2, 3]
    assert [media.round_near(Fraction(n, 3)) for n in (-4, -1, 0, 1, 2, 4)] == [-1, 0, 0, 0, 1, 1]


def test_other_output_rates(tmp_path: Path) -> None:
    path = make_clip(tmp_path / "clip.mp4", 1.0, fps=30, pattern="index", audio=False)
    assert _indices(path, fps=30) == list(range(30))  # same rate: every frame once
    assert _indices(path, fps=10) == _ffmpeg_fps_filter(path, fps=10)


@pytest.mark.parametrize(
    ("size", "codec", "suffix"),
    [
        ((32, 18), "libx264", ".mp4"),
        ((200, 200), "libx264", ".mp4"),
        ((64, 48), "libvpx-vp9", ".webm"),
        ((64, 48), "mpeg4", ".mp4"),
    ],
)
def test_sizes_and_codecs(tmp_path: Path, size: tuple[int, int], codec: str, suffix: str) -> None:
    path = make_clip(tmp_path / f"clip{suffix}", 1.0, size=size, codec=codec, pattern="quadrants", audio=False)
    info = media.probe(path)
    frames = list(media.iter_frames(path))
    width, height = size
    assert (info.width, info.height) == size and len(frames) == 24
    assert frames[0].shape == (height, width, 3)
    # compare away from the quadrant edges (chroma is subsampled, coding is lossy)
    centres = np.abs(frames[0].astype(int) - quadrants(height, width))[[height // 4, 3 * height // 4]][
        :, [width // 4, 3 * width // 4]
    ]
    assert centres.max() < 40


@pytest.mark.parametrize("codec", ["libvpx-vp9", "libx264"])
def test_full_range_synthetic(tmp_path: Path, codec: str) -> None:
    """Full-range YUV (VP9 decodes it as yuv420p flagged "pc", H.264 as yuvj420p): levels
    are kept; read as limited range, the ramp would be stretched by 16% (mean error ~10)."""
    ramp = np.tile(np.linspace(0, 255, 64).astype(np.uint8)[None, :, None], (48, 1, 3))
    path = make_clip(tmp_path / "full.mkv", 0.5, pattern=lambda i: ramp, codec=codec, full_range=True, audio=False)
    frame = next(media.iter_frames(path))
    assert np.abs(frame.astype(int) - ramp).mean() < 3


@pytest.mark.parametrize("rotation", [90, 180, -90])
def test_rotation_is_applied(tmp_path: Path, rotation: int) -> None:
    """A display matrix (as phones write it) turns the frames upright. No file in
    ../shared/media carries one, so this uses PyAV-written clips."""
    path = make_clip(tmp_path / "rot.mp4", 0.5, size=(64, 48), pattern="quadrants", rotation=rotation, audio=False)
    info = media.probe(path)
    assert info.rotation == rotation % 360
    upright = np.rot90(quadrants(48, 64), rotation // 90)  # counter-clockwise
    frame = next(media.iter_frames(path))
    assert frame.shape == upright.shape == (info.height, info.width, 3)
    h, w = frame.shape[:2]
    for y, x in ((h // 4, w // 4), (h // 4, 3 * w // 4), (3 * h // 4, w // 4), (3 * h // 4, 3 * w // 4)):
        assert np.abs(frame[y, x].astype(int) - upright[y, x]).max() < 40


# ------------------------------------------------------------------ audio


def test_audio_is_mean_of_channels_and_chunked(tmp_path: Path) -> None:
    """5.1 at 48 kHz with a different tone per channel (FLAC: exact samples): the output
    is the mean of the six tones at 16 kHz, not a sum and not a centre-weighted down-mix."""
    freqs = [300.0, 500.0, 700.0, 1100.0, 1300.0, 1700.0]
    path = make_clip(tmp_path / "surround.mp4", 2.0, channels=6, audio_rate=48000, audio_codec="flac", tone_hz=freqs)
    info = media.probe(path)
    assert (info.audio_channels, info.audio_sample_rate, info.audio_codec) == (6, 48000, "flac")
    chunks = list(media.iter_audio(path, chunk_seconds=0.5))
    assert [c.size for c in chunks] == [8000] * 4
    audio = np.concatenate(chunks)
    expected = tone(32000, 16000, freqs, 6).mean(axis=0)
    assert np.abs(audio - expected)[100:-100].max() < 2e-3  # edges: resampling filter start-up
    assert np.abs(audio).max() < AMPLITUDE  # a sum of six tones would reach ~6x that


def test_late_audio_is_preceded_by_silence(tmp_path: Path) -> None:
    path = make_clip(tmp_path / "late.mp4", 2.0, audio_start=0.5, audio_codec="flac")
    audio = np.concatenate(list(media.iter_audio(path)))
    assert audio.size == 32000
    assert np.all(audio[:8000] == 0)
    assert np.abs(audio[8000:] - tone(24000, 16000, 440.0, 1, start=8000)[0]).max() < 2e-3


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("kind", ["missing", "empty", "text", "directory"])
def test_unusable_files_raise_input_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "video.mp4"
    if kind == "empty":
        path.touch()
    elif kind == "text":
        path.write_text("this is not a video\n" * 50)
    elif kind == "directory":
        path.mkdir()
    for call in (media.probe, media.iter_frames, media.iter_audio):
        with pytest.raises(InputError) as error:
            call(path)  # raised when called, before any iteration
        assert str(path) in str(error.value)


def test_audio_only_and_video_only(tmp_path: Path, media_dir: Path) -> None:
    for path in (make_clip(tmp_path / "tone.wav", 1.0, audio_only=True), media_dir / "nasa_13013.mp4.audio_44100.mp3"):
        info = media.probe(path)
        assert not info.has_video and info.has_audio and info.video_stream is None
        with pytest.raises(InputError, match="no video stream"):
            media.iter_frames(path)
    silent = make_clip(tmp_path / "silent.mp4", 1.0, audio=False)
    info = media.probe(silent)
    assert info.has_video and not info.has_audio and info.audio_stream is None
    with pytest.raises(InputError, match="no audio stream"):
        media.iter_audio(silent)


def _run_with_deadline(fn, seconds: float = 20.0):
    """Run fn() in a thread; fail (instead of hanging the suite) if it does not finish."""
    result: list = []
    thread = threading.Thread(target=lambda: result.append(fn()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"decoding did not finish within {seconds} s"
    return result[0]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_truncated_file_warns_once_and_keeps_what_decodes(tmp_path: Path, suffix: str) -> None:
    full = make_clip(tmp_path / f"full{suffix}", 4.0, fps=30, faststart=True)  # index first, like a web download
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    video_warnings: list[str] = []
    audio_warnings: list[str] = []
    frames = _run_with_deadline(lambda: list(media.iter_frames(cut, on_warning=video_warnings.append)))
    audio = _run_with_deadline(lambda: np.concatenate(list(media.iter_audio(cut, on_warning=audio_warnings.append))))
    assert 24 <= len(frames) < 80  # about half of the 96
    assert 1.0 < audio.size / 16000 < 3.0
    assert len(video_warnings) == 1 and len(audio_warnings) == 1
    assert str(cut) in video_warnings[0] and "truncated" in video_warnings[0]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_streams_of_different_lengths_are_not_truncation(tmp_path: Path, suffix: str) -> None:
    """The container's duration is the longer stream's: no false "truncated" warning."""
    path = make_clip(tmp_path / f"clip{suffix}", 1.0, audio_seconds=3.0)
    warnings: list[str] = []
    assert len(list(media.iter_frames(path, on_warning=warnings.append))) == 24
    audio = np.concatenate(list(media.iter_audio(path, on_warning=warnings.append)))
    assert abs(audio.size - 48000) < 1100 and warnings == []


def test_truncated_mp4_without_index_is_an_input_error(tmp_path: Path) -> None:
    full = make_clip(tmp_path / "full.mp4", 2.0)  # index (moov) written last: lost when cut
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(InputError, match="cut.mp4"):
        media.probe(cut)


def test_corrupt_middle_never_hangs(tmp_path: Path) -> None:
    full = make_clip(tmp_path / "clip.mkv", 3.0)
    data = bytearray(full.read_bytes())
    rng = np.random.default_rng(0)
    start = len(data) // 3
    data[start : start + len(data) // 4] = rng.integers(0, 256, len(data) // 4, dtype=np.uint8).tobytes()
    bad = tmp_path / "bad.mkv"
    bad.write_bytes(bytes(data))
    frames = _run_with_deadline(lambda: list(media.iter_frames(bad, on_warning=lambda message: None)))
    _run_with_deadline(lambda: list(media.iter_audio(bad, on_warning=lambda message: None)))
    assert 0 < len(frames) <= 73


# ------------------------------------------------------------------ streaming


def test_iter_frames_streams_without_accumulating(tmp_path: Path) -> None:
    """Peak traced memory while walking a 20 s clip stays near one frame's worth (the
    frames themselves would be 27.6 MB), and repeated frames are independent arrays."""
    path = make_clip(tmp_path / "long.mp4", 20.0, fps=12, size=(160, 120), audio=False)
    frames = media.iter_frames(path)
    first, repeat = next(frames), next(frames)  # 12 -> 24 fps: each frame shown twice
    assert np.array_equal(first, repeat) and not np.shares_memory(first, repeat)
    first[:] = 0
    assert repeat.any()
    tracemalloc.start()
    count = 2 + sum(1 for _ in frames)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 480
    assert peak < 3_000_000


# ------------------------------------------------------------------ RGB conversion threads

RGB_FILES = ["av1_video.mkv", "bt709_full_range.mp4", "h264_10bits.mp4", "h265_video.mp4", "hevc_aac_4s.mkv"]


def _frames_both_ways(path: Path, **kwargs) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """iter_frames converting inline and on three threads; the warnings must agree too."""
    warned: tuple[list[str], list[str]] = ([], [])
    inline = list(media.iter_frames(path, rgb_threads=1, on_warning=warned[0].append, **kwargs))
    threaded = list(media.iter_frames(path, rgb_threads=3, on_warning=warned[1].append, **kwargs))
    assert warned[0] == warned[1]
    return inline, threaded


def _assert_same_and_own(inline: list[np.ndarray], threaded: list[np.ndarray]) -> None:
    assert len(inline) == len(threaded) > 0
    for a, b in zip(inline, threaded):
        assert a.dtype == b.dtype == np.uint8 and b.flags.c_contiguous and np.array_equal(a, b)
    for frames in (inline, threaded):  # every array is the caller's own, repeats included
        assert not any(np.shares_memory(x, y) for x, y in zip(frames, frames[1:]))


@pytest.mark.parametrize("name", RGB_FILES)
def test_threaded_rgb_equals_inline_on_real_files(media_dir: Path, name: str) -> None:
    _assert_same_and_own(*_frames_both_ways(media_dir / name))


def test_rgb_conversion_is_swscale_s_own(media_dir: Path) -> None:
    """_to_rgb converts on one thread: the same bytes as swscale's threaded default and its
    slices (10-bit, full range, several sizes)."""
    for name in RGB_FILES:
        with av.open(str(media_dir / name)) as container:
            for frame in list(container.decode(video=0))[:6]:
                reference = frame.to_ndarray(format="rgb24", threads=8)
                assert np.array_equal(media._to_rgb(frame), reference), name


@pytest.mark.parametrize(
    ("fps", "vfr", "codec", "suffix"),
    [(10, False, "libx264", ".mp4"), (30, False, "libvpx-vp9", ".mkv"), (25, True, "libx264", ".mkv")],
)
def test_threaded_rgb_with_repeats_and_drops(tmp_path: Path, fps: int, vfr: bool, codec: str, suffix: str) -> None:
    """10 -> 24 fps repeats frames, 30 -> 24 drops them, a variable rate does both."""
    path = make_clip(tmp_path / f"clip{suffix}", 3.0, fps=fps, vfr=vfr, codec=codec, size=(64, 48), audio=False)
    inline, threaded = _frames_both_ways(path)
    _assert_same_and_own(inline, threaded)
    assert [read_index(f) for f in threaded] == [read_index(f) for f in inline]


def test_threaded_rgb_keeps_discontinuities_and_repeats_of_rgb24_frames(tmp_path: Path) -> None:
    """A timestamp gap (warned about, not filled) and frames already in RGB (no conversion:
    each use must still be a copy, not the decoder's buffer)."""
    gap = hostile.timestamps_file(tmp_path / "gap.nut", [0, 40, 100_000_000, 100_000_040, 100_000_500])
    inline, threaded = _frames_both_ways(gap)
    _assert_same_and_own(inline, threaded)
    raw = tmp_path / "rgb24.nut"
    with av.open(str(raw), "w") as container:
        stream = container.add_stream("rawvideo", rate=8)
        stream.width, stream.height, stream.pix_fmt = 32, 16, "rgb24"
        for i in range(6):
            frame = av.VideoFrame.from_ndarray(np.full((16, 32, 3), 40 * i, np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
    inline, threaded = _frames_both_ways(raw)
    _assert_same_and_own(inline, threaded)
    assert len(threaded) == 18 and threaded[0][0, 0, 0] == threaded[2][0, 0, 0] == 0 and threaded[3][0, 0, 0] == 40


def test_rgb_threads_end_with_the_generator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Closed early, failing in a conversion or in decoding: no thread is left running, and
    the frames before a failure still come first, in order."""
    path = make_clip(tmp_path / "clip.mp4", 3.0, fps=24, pattern="index", size=(64, 48), audio=False)
    baseline = threading.active_count()
    frames = media.iter_frames(path, rgb_threads=3)
    assert [read_index(next(frames)) for _ in range(5)] == [0, 1, 2, 3, 4]
    assert threading.active_count() > baseline  # the converting threads run ahead
    frames.close()
    assert threading.active_count() == baseline

    convert = media._to_rgb
    calls: list[int] = []

    def failing_conversion(frame):
        calls.append(1)
        if len(calls) == 10:
            raise RuntimeError("conversion failed")
        return convert(frame)

    monkeypatch.setattr(media, "_to_rgb", failing_conversion)
    got: list[int] = []
    with pytest.raises(RuntimeError, match="conversion failed"):
        got.extend(read_index(f) for f in media.iter_frames(path, rgb_threads=3))
    assert got == list(range(9)) and threading.active_count() == baseline
    monkeypatch.setattr(media, "_to_rgb", convert)

    check = media.check_frame_size
    seen: list[int] = []

    def failing_decode(path, width, height):
        seen.append(1)
        if len(seen) == 20:
            raise InputError(f"{path}: frame 20 refused")
        check(path, width, height)

    monkeypatch.setattr(media, "check_frame_size", failing_decode)
    got.clear()
    with pytest.raises(InputError, match="frame 20 refused"):
        got.extend(read_index(f) for f in media.iter_frames(path, rgb_threads=3))
    assert got == list(range(18)) and threading.active_count() == baseline


def test_probe_facts_of_a_synthetic_clip(tmp_path: Path) -> None:
    path = make_clip(tmp_path / "clip.mp4", 3.0, fps=30, size=(96, 64), audio_rate=44100, channels=2)
    info = media.probe(path)
    assert (info.width, info.height, info.fps, info.rotation) == (96, 64, 30.0, 0)
    assert (info.video_codec, info.audio_codec, info.audio_sample_rate, info.audio_channels) == (
        "h264",
        "aac",
        44100,
        2,
    )
    assert info.duration == pytest.approx(3.0, abs=0.05) and info.start_time == 0.0
    assert info.path == path and "mp4" in info.container


# ------------------------------------------------------------------ hostile timestamps, sizes, headers


def test_huge_sample_delta_is_a_discontinuity_not_two_days_of_frames(tmp_path: Path) -> None:
    """Two frames 0x7FFFFFFF / 12288 s (two days) apart: two frames out, fast, one warning."""
    path = hostile.sample_delta_mp4(tmp_path / "delta.mp4")
    warnings: list[str] = []
    frames = _run_with_deadline(lambda: list(media.iter_frames(path, on_warning=warnings.append)), 10.0)
    assert len(frames) == 2
    assert len(warnings) == 1 and "discontinu" in warnings[0] and str(path) in warnings[0]


def test_timescale_one_gives_the_frames_it_holds(tmp_path: Path) -> None:
    """48 frames 512 s apart (timescale 1): 48 frames at 24 fps, not 24,576 s of repeats."""
    path = hostile.timescale_mp4(tmp_path / "ts1.mp4")
    warnings: list[str] = []
    frames = _run_with_deadline(lambda: list(media.iter_frames(path, on_warning=warnings.append)), 10.0)
    assert len(frames) == 48 and len(warnings) == 1
    assert media.probe(path).duration == pytest.approx(2.0)  # not the header's 24,576 s


def test_gaps_up_to_the_limit_are_still_filled(tmp_path: Path) -> None:
    """A 5 s still (below MAX_FRAME_GAP) is a legitimate slide show: repeated, no warning."""
    path = hostile.timestamps_file(tmp_path / "still.mkv", [0, 5000, 5040])
    warnings: list[str] = []
    assert len(list(media.iter_frames(path, on_warning=warnings.append))) == 5 * 24 + 2
    assert warnings == []
    assert media.MAX_FRAME_GAP == 10.0


@pytest.mark.parametrize("start", [20_000.0, 1_000_000.0])
def test_audio_starting_after_the_video_is_not_padded(tmp_path: Path, start: float) -> None:
    path = hostile.late_audio_mp4(tmp_path / "late.mp4", start)
    warnings: list[str] = []
    tracemalloc.start()
    chunks = _run_with_deadline(lambda: list(media.iter_audio(path, on_warning=warnings.append)), 10.0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert chunks == [] and peak < 50_000_000
    assert len(warnings) == 1 and "after the video ends" in warnings[0]


def test_leading_silence_is_made_lazily(tmp_path: Path) -> None:
    """Audio 8 s late in a 10 s video: silence arrives chunk by chunk, not as one block."""
    path = make_clip(tmp_path / "late.mkv", 10.0, size=(32, 32), audio_start=8.0, audio_codec="flac")
    chunks = list(media.iter_audio(path, chunk_seconds=1.0))
    assert [c.size for c in chunks] == [16000] * 10
    assert all(not c.any() for c in chunks[:8]) and chunks[9].any()


@pytest.mark.parametrize(("width", "height"), [(16, 17_000), (20_000, 8)])
def test_frames_beyond_the_size_limit_are_refused(tmp_path: Path, width: int, height: int) -> None:
    path = hostile.big_frame_file(tmp_path / "big.nut", width, height)
    with pytest.raises(InputError, match=rf"{width}x{height} pixels are too large"):
        media.probe(path)
    with pytest.raises(InputError, match="too large"):
        list(media.iter_frames(path))


def test_frames_at_the_size_limit_are_accepted() -> None:
    media.check_frame_size(Path("wide.mp4"), 16384, 16384)
    with pytest.raises(InputError, match=r"^wide\.mp4: frames of 16385x16384 pixels are too large"):
        media.check_frame_size(Path("wide.mp4"), 16385, 16384)
    with pytest.raises(InputError, match="16384x16385 pixels"):
        media.check_frame_size(Path("wide.mp4"), 16384, 16385)


def test_metadata_that_is_not_utf8_still_opens(tmp_path: Path) -> None:
    path = hostile.bad_utf8_mp4(tmp_path / "bad.mp4")
    with pytest.raises(UnicodeDecodeError):  # what PyAV does by default
        av.open(str(path)).close()
    assert media.probe(path).has_video
    assert len(list(media.iter_frames(path))) == 24


def test_stream_without_a_decoder_is_skipped_or_named(tmp_path: Path) -> None:
    path = hostile.unknown_codec_mkv(tmp_path / "odd.mkv")
    info = media.probe(path)
    assert info.has_video and not info.has_audio and info.n_audio_streams == 0
    with pytest.raises(InputError, match=r"stream #1 \(audio\) cannot be decoded"):
        media.probe(path, audio_stream=1)
    with pytest.raises(InputError, match="no audio stream.*stream #1: audio"):
        media.iter_audio(path)

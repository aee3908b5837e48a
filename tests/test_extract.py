"""Video -> XD-Violence features (violence_cli.features.extract) and `violence-detect extract`.

Networks use random weights saved in the published layouts (tests/fakeweights.py). Most
checks of the plumbing (frame grouping, crop order, batching, audio alignment) replace I3D
with a cheap probe network that reports what it was fed; the real I3D runs on a handful of
clips only.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import hostile
import numpy as np
import pytest
import torch
from fakeweights import fake_weights_folder
from mediagen import make_clip
from typer.testing import CliRunner

from violence_cli.cli import app
from violence_cli.errors import InputError, UsageError
from violence_cli.features import frontend
from violence_cli.features.decode_pool import default_workers
from violence_cli.features.extract import (
    RAW_STEP_BYTES,
    STAGING_STEPS,
    FeatureExtractor,
    _Staging,
    _steps,
    check_geometry,
    count_snippets,
    crop_boxes,
    make_clips,
    resize_frames,
    resized_size,
    resolve_device,
)
from violence_cli.xdfeatures import write_xd_features, xd_paths

RED, GREEN, BLUE, WHITE = (1.0, -1.0, -1.0), (-1.0, 1.0, -1.0), (-1.0, -1.0, 1.0), (1.0, 1.0, 1.0)  # in [-1, 1]


class ProbeI3D(torch.nn.Module):
    """Stands in for I3D: (B, 3, 16, 224, 224) -> (B, 1024) describing the input.

    [0:3] mean colour; the first frame's corner pixels: [3:6] top-left, [6:9] top-right,
    [9:12] bottom-left, [12:15] bottom-right; [16:32] the mean level of each of the 16 frames.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], 1024)
        out[:, 0:3] = x.mean(dim=(2, 3, 4))
        for i, (r, c) in enumerate(((0, 0), (0, -1), (-1, 0), (-1, -1))):
            out[:, 3 + 3 * i : 6 + 3 * i] = x[:, :, 0, r, c]
        out[:, 16:32] = x.mean(dim=(1, 3, 4))
        return out


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory):
    with fake_weights_folder(tmp_path_factory, "weights") as w:
        yield w


@pytest.fixture(scope="module")
def extractor(weights: dict[str, Path]) -> FeatureExtractor:
    """Real (random-weight) I3D and VGGish, centre crop only."""
    return FeatureExtractor(weights["i3d_rgb_imagenet"], weights["vggish"], device="cpu", crops=1)


@pytest.fixture
def probed(extractor: FeatureExtractor, monkeypatch: pytest.MonkeyPatch) -> FeatureExtractor:
    """The extractor with five crops and the probe in place of I3D."""
    monkeypatch.setattr(extractor, "i3d", ProbeI3D())
    monkeypatch.setattr(extractor, "crops", 5)
    return extractor


# --------------------------------------------------------------------------- geometry


def test_snippet_count_follows_xd() -> None:
    assert [count_snippets(n) for n in (0, 1, 16, 17, 32, 33, 48, 49)] == [0, 0, 0, 1, 1, 2, 2, 3]


def test_resized_size() -> None:
    assert resized_size(120, 160) == (256, 341)
    assert resized_size(160, 120) == (341, 256)
    assert resized_size(18, 32) == (256, 455)  # tiny frames are upscaled
    assert resized_size(256, 256) == (256, 256)
    assert resized_size(280, 400) == (256, 365) and resized_size(400, 280) == (365, 256)  # 365.7: truncated


def test_resize_is_bilinear_without_antialiasing() -> None:
    # 1-pixel stripes scaled down 3x: without anti-aliasing each output pixel samples one
    # input pixel exactly (half-pixel centres: 3i + 1), so the stripes stay pure black/white
    stripes = np.zeros((1, 768, 768, 3), np.uint8)
    stripes[:, :, ::2] = 255
    small = resize_frames(torch.from_numpy(stripes), (256, 256)).numpy()
    assert small.shape == (1, 256, 256, 3) and small.dtype == np.uint8
    assert set(np.unique(small)) == {0, 255}
    # upscaling interpolates linearly between pixel centres
    two = torch.tensor([0, 200], dtype=torch.uint8).view(1, 1, 2, 1).expand(1, 1, 2, 3).contiguous()
    wide = resize_frames(two, (1, 8))[0, 0, :, 0].tolist()
    assert wide == [0, 0, 25, 75, 125, 175, 200, 200]


def test_crop_boxes_order() -> None:
    assert crop_boxes(256, 341) == [(16, 58), (0, 0), (0, 117), (32, 0), (32, 117)]
    assert crop_boxes(256, 341, crops=1) == [(16, 58)]
    with pytest.raises(UsageError):
        crop_boxes(256, 256, crops=3)


def test_crop_centre_rounds_halves_to_even() -> None:
    assert crop_boxes(259, 341)[0] == (18, 58)  # 35 / 2 = 17.5 -> 18, 117 / 2 = 58.5 -> 58
    assert crop_boxes(257, 343)[0] == (16, 60)  # 16.5 -> 16, 59.5 -> 60


@pytest.mark.parametrize("size", [(300, 200), (200, 300)])
def test_crop_boxes_refuse_frames_smaller_than_the_crop(size: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="smaller than the 224x224 crop"):
        crop_boxes(*size)


def test_make_clips_corner_order_and_scale() -> None:
    from mediagen import quadrants

    snippet = torch.from_numpy(np.broadcast_to(quadrants(256, 341), (1, 16, 256, 341, 3)).copy())
    clips = make_clips(snippet, crops=5)  # (5, 3, 16, 224, 224)
    assert clips.shape == (5, 3, 16, 224, 224) and clips.dtype == torch.float32
    assert clips.min() == -1.0 and clips.max() == 1.0
    corner = lambda c, r, col: tuple(clips[c, :, 0, r, col].tolist())
    # __1 top-left, __2 top-right, __3 bottom-left, __4 bottom-right: each crop's own
    # outer corner shows its quadrant's colour
    assert corner(1, 0, 0) == RED and corner(2, 0, -1) == GREEN
    assert corner(3, -1, 0) == BLUE and corner(4, -1, -1) == WHITE
    # __0 is centred: its four corners show the four quadrants
    assert [corner(0, r, c) for r, c in ((0, 0), (0, -1), (-1, 0), (-1, -1))] == [RED, GREEN, BLUE, WHITE]
    # exact pixels: crop 2 is rows 0..223, columns 117..340 of the frame, scaled to [-1, 1]
    expected = snippet[0, :, :224, 117:].permute(3, 0, 1, 2).float() / 127.5 - 1
    torch.testing.assert_close(clips[2], expected)


def test_resolve_device() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UsageError):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="CUDA is not available"):
            resolve_device("cuda:0")


# --------------------------------------------------------------------------- extraction (probe)


def test_quadrant_video_crops_in_order(probed: FeatureExtractor, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "quad.mp4", seconds=1.0, fps=24, size=(96, 64), pattern="quadrants", audio=False)
    feats = probed.extract(clip)
    assert feats.rgb.shape == (1, 5, 1024) and feats.crops == 5
    corners = feats.rgb[0, :, 3:15].reshape(5, 4, 3)  # (crop, TL/TR/BL/BR, RGB)
    # each corner crop's outer corner shows its own quadrant: __1 TL, __2 TR, __3 BL, __4 BR
    outer = np.stack([corners[1, 0], corners[2, 1], corners[3, 2], corners[4, 3]])
    np.testing.assert_allclose(outer, [RED, GREEN, BLUE, WHITE], atol=0.1)
    # the centre crop straddles both halves both ways
    np.testing.assert_allclose(corners[0], [RED, GREEN, BLUE, WHITE], atol=0.1)


def test_snippets_are_consecutive_frames(probed: FeatureExtractor, tmp_path: Path) -> None:
    # frame i is a flat grey of level 4 i: the probe reads each clip frame's level back
    clip = make_clip(
        tmp_path / "ramp.mp4",
        seconds=2.0,
        fps=24,
        size=(64, 48),
        audio=False,
        pattern=lambda i: np.full((48, 64, 3), 4 * i + 8, np.uint8),
    )
    for batch_size in (1, 7):  # crops of one snippet split over forwards, and kept together
        probed.batch_size, probed.snippets_per_step = batch_size, max(1, batch_size // 5)
        feats = probed.extract(clip)
        assert feats.n_frames == 48 and feats.rgb.shape[0] == 2  # floor(47 / 16): the last 16 are dropped
        levels = (feats.rgb[:, :, 16:32] + 1) * 127.5  # (T, C, 16)
        frame_index = np.round((levels - 8) / 4)
        expected = np.arange(32).reshape(2, 1, 16)
        np.testing.assert_array_equal(frame_index, np.broadcast_to(expected, frame_index.shape))


def test_audio_is_aligned_with_snippet_ends(probed: FeatureExtractor, tmp_path: Path) -> None:
    # audio starts at 1.0 s: snippet 0's window (-0.31..0.67 s) is silent, snippet 1's
    # (0.36..1.33 s) is not; the features equal VGGish of the aligned log-mel examples
    clip = make_clip(tmp_path / "late.mp4", seconds=2.5, fps=24, size=(64, 48), audio_start=1.0, tone_hz=1000.0)
    feats = probed.extract(clip)
    assert feats.has_audio and feats.rgb.shape[0] == feats.audio.shape[0] == 3
    silence = probed.silence_features()
    np.testing.assert_allclose(feats.audio[0], silence, rtol=1e-4, atol=1e-4)
    assert np.abs(feats.audio[1:] - silence).max() > 1e-3
    from violence_cli import media

    wave = np.concatenate(list(media.iter_audio(clip)))
    examples = frontend.examples_at(wave, frontend.snippet_window_start(np.arange(3)))
    assert examples[0].max() < -4.5 and examples[1].max() > 0  # silent / tone
    np.testing.assert_allclose(feats.audio, probed.audio_features(examples), atol=1e-4)


def test_no_audio_stream_gives_silence_and_a_warning(probed: FeatureExtractor, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "mute.mp4", seconds=1.5, fps=25, size=(48, 48), audio=False)
    feats = probed.extract(clip)
    assert not feats.has_audio
    assert any("no audio" in w for w in feats.warnings)
    np.testing.assert_allclose(feats.audio, np.broadcast_to(probed.silence_features(), feats.audio.shape))


def test_too_short_and_no_video(probed: FeatureExtractor, tmp_path: Path, media_dir: Path) -> None:
    clip = make_clip(tmp_path / "short.mp4", seconds=16 / 24, fps=24, size=(32, 32))  # 16 frames: T = 0
    with pytest.raises(InputError, match="at least 17 frames"):
        probed.extract(clip)
    with pytest.raises(InputError, match="no video stream"):
        probed.extract(media_dir / "sine_mono_s16.wav")
    with pytest.raises(InputError):
        probed.extract(tmp_path / "missing.mp4")


def test_progress_reports_snippets(probed: FeatureExtractor, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "p.mp4", seconds=3.0, fps=30, size=(32, 32), audio=False)
    calls: list[tuple[int, int | None]] = []
    feats = probed.extract(clip, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (feats.n_snippets, feats.n_snippets) == (4, 4)  # 72 frames
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_stream_choice(probed: FeatureExtractor, media_dir: Path) -> None:
    # nasa_13013.mp4: video #0 320x180 and #3 480x270, audio #1 (8 kHz) and #4 (16 kHz)
    path = media_dir / "nasa_13013.mp4"
    feats = probed.extract(path, video_stream=0, audio_stream=1)
    assert (feats.info.video_stream, feats.info.audio_stream, feats.info.width) == (0, 1, 320)
    assert feats.has_audio and feats.rgb.shape[0] == feats.audio.shape[0] == count_snippets(feats.n_frames) > 15
    with pytest.raises(InputError, match="subtitle"):
        probed.extract(path, video_stream=2)


# --------------------------------------------------------------------------- real networks


def test_real_networks_shapes_and_values(extractor: FeatureExtractor, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "real.mp4", seconds=1.5, fps=30, size=(40, 30), channels=2, tone_hz=(300.0, 700.0))
    feats = extractor.extract(clip)
    assert feats.n_frames == 36 and feats.rgb.shape == (2, 1, 1024) and feats.audio.shape == (2, 128)
    assert feats.rgb.dtype == feats.audio.dtype == np.float32
    assert np.isfinite(feats.rgb).all() and np.isfinite(feats.audio).all()
    assert (feats.audio >= 0).all() and feats.has_audio and not feats.warnings
    assert feats.rgb.std() > 0 and not np.allclose(feats.rgb[0], feats.rgb[1])


def test_centre_crop_agrees_between_one_and_five_crops(
    extractor: FeatureExtractor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = make_clip(tmp_path / "c.mp4", seconds=0.75, fps=24, size=(64, 48), audio=False)  # 18 frames, T = 1
    one = extractor.extract(clip)
    for name, value in (("crops", 5), ("batch_size", 5), ("snippets_per_step", 1)):
        monkeypatch.setattr(extractor, name, value)
    feats = extractor.extract(clip)
    assert feats.rgb.shape == (1, 5, 1024)
    np.testing.assert_allclose(feats.rgb[:, 0], one.rgb[:, 0], rtol=1e-4, atol=1e-4)
    assert not np.allclose(feats.rgb[0, 1], feats.rgb[0, 4])


# --------------------------------------------------------------------------- files and CLI


def test_xd_layout_reads_back(probed: FeatureExtractor, tmp_path: Path) -> None:
    from violence_cli.xdfeatures import discover_folder, load_entry

    clip = make_clip(tmp_path / "clip.mp4", seconds=1.5, fps=24, size=(48, 32))
    feats = probed.extract(clip)
    paths = write_xd_features(feats, tmp_path / "out", "clip")
    assert [p.name for p in paths] == [f"clip__{c}.npy" for c in range(5)] + ["clip__vggish.npy"]
    assert paths == xd_paths(tmp_path / "out", "clip", 5)
    assert not list((tmp_path / "out").glob(".*"))  # no temporary files left
    for c in range(5):
        arr = np.load(paths[c])
        assert arr.dtype == np.float32 and arr.shape == (feats.n_snippets, 1024)
    (entry,) = discover_folder(tmp_path / "out")
    rgb, audio = load_entry(entry)
    np.testing.assert_array_equal(rgb, feats.rgb.transpose(1, 0, 2))  # (C, T, 1024)
    np.testing.assert_array_equal(audio, feats.audio)


runner = CliRunner()


@pytest.fixture
def cli_extractor(probed: FeatureExtractor, monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Make the CLI reuse the loaded (probe) extractor: weights are still resolved, so a
    missing file fails as it would, but nothing is loaded again. Records each call."""
    import violence_cli.features.extract as extract_module
    from violence_cli.weights import resolve_weights

    calls: list[dict] = []

    def factory(i3d_weights=None, vggish_weights=None, crops=5, **kwargs):
        resolve_weights("i3d_rgb_imagenet", i3d_weights, weights_dir=kwargs.get("weights_dir"), download=False)
        resolve_weights("vggish", vggish_weights, weights_dir=kwargs.get("weights_dir"), download=False)
        calls.append({"crops": crops, **kwargs})
        monkeypatch.setattr(probed, "crops", crops)
        return probed

    monkeypatch.setattr(extract_module, "FeatureExtractor", factory)
    return calls


def test_cli_extract_skip_overwrite_and_failures(weights, cli_extractor: list[dict], tmp_path: Path) -> None:
    good = make_clip(tmp_path / "good.mp4", seconds=0.8, fps=24, size=(32, 24))
    short = make_clip(tmp_path / "short.mp4", seconds=0.4, fps=24, size=(32, 24))
    out = tmp_path / "feats"
    base = ["extract", "--out", str(out), "--crops", "1", "--device", "cpu"]
    w = ["--i3d-weights", str(weights["i3d_rgb_imagenet"]), "--vggish-weights", str(weights["vggish"])]

    res = runner.invoke(app, [*base, *w, str(short), str(good), str(tmp_path / "nope.mp4")])
    assert res.exit_code == 1, res.output
    assert cli_extractor == [
        {
            "crops": 1,
            "device": torch.device("cpu"),
            "batch_size": None,
            "precision": "fp32",  # extract's default: features are a dataset, fidelity first
            "download": False,
            "decode_workers": min(default_workers(), 2),  # 2 videos to do; 0 on a machine of 2 cores
        }
    ]
    import inspect

    inspect.signature(FeatureExtractor).bind(weights["i3d_rgb_imagenet"], weights["vggish"], **cli_extractor[0])
    assert sorted(p.name for p in out.iterdir()) == [
        "failures.jsonl",
        "features.json",
        "good.extract.json",
        "good__0.npy",
        "good__vggish.npy",
        "results.csv",
    ]
    assert "good" in res.stdout and "wrote" in res.stdout and "fp32" in res.stdout
    assert "failed: " in res.stderr and "short.mp4" in res.stderr and "nope.mp4" in res.stderr
    assert np.load(out / "good__0.npy").shape == (1, 1024)

    # done files are skipped without loading the networks again
    res = runner.invoke(app, [*base, *w, str(good), "--json"])
    assert res.exit_code == 0, res.output
    assert len(cli_extractor) == 1
    import json

    doc = json.loads(res.stdout)
    assert doc["skipped"] == 1 and doc["failed"] == 0 and doc["videos"][0]["status"] == "skipped"
    assert doc["precision"] == "fp32"  # extract's default, recorded

    # --overwrite extracts again
    np.save(out / "good__vggish.npy", np.zeros((1, 128), np.float32))
    res = runner.invoke(app, [*base, *w, str(good), "--overwrite", "--quiet"])
    assert res.exit_code == 0, res.output
    assert np.load(out / "good__vggish.npy").any()

    # --json: schema_version, version and the weights used; unverified weights warned about once per run
    good2 = make_clip(tmp_path / "good2.mp4", seconds=0.8, fps=24, size=(32, 24))
    res = runner.invoke(app, [*base, *w, str(good), str(good2), "--overwrite", "--json", "--quiet"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["schema_version"] == 1 and doc["version"] and doc["done"] == 2
    assert [(x["name"], x["verified"], len(x["sha256"])) for x in doc["weights"]] == [
        ("i3d_rgb_imagenet", False, 64),
        ("vggish", False, 64),
    ]
    assert res.stderr.count("not the published file") == 2  # once per file, not once per video
    from violence_cli.weights import resolve_weight_files

    for name, found in resolve_weight_files({n: weights[n] for n in ("i3d_rgb_imagenet", "vggish")}).items():
        assert found.problem and f"{name} weights {found.path} are not the published file ({found.problem})" in res.stderr
    assert res.stderr.count("these features are not those of the published protocol") == 2

    # missing weights stop the run with the registry's one-line error
    res = runner.invoke(app, [*base, "--i3d-weights", str(tmp_path / "absent.pt"), str(good), "--overwrite"])
    assert res.exit_code == 1 and "absent.pt" in res.stderr and "Traceback" not in res.stderr


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc")
def test_memory_does_not_grow_with_duration(probed: FeatureExtractor, tmp_path: Path) -> None:
    # 89 snippets at 5 crops. With the heap keeping freed memory (load_i3d's
    # keep_freed_memory), a fresh 48 MB clip buffer per snippet plus one small result
    # tensor kept per snippet among them grew the process by ~18 MB per snippet (1.6 GB
    # here, measured); with one reused buffer and results in a growing array it stays flat.
    clip = make_clip(tmp_path / "long.mp4", seconds=60, fps=24, size=(32, 24))
    probed.extract(make_clip(tmp_path / "warm.mp4", seconds=2, fps=24, size=(32, 24)))
    before = _rss_mb()
    feats = probed.extract(clip)
    assert feats.rgb.shape == (89, 5, 1024) and feats.audio.shape == (89, 128)
    assert _rss_mb() - before < 600


# --------------------------------------------------------------------------- hostile input


@pytest.mark.parametrize("resize_here", [True, False])
def test_snippets_hold_resized_frames_whatever_the_input(resize_here: bool) -> None:
    """Frames are resized one by one as they arrive (CPU), and on the CUDA path too once
    they pass RAW_PIXELS_MAX: a snippet is 16 frames of 256 pixels on the shorter side."""
    big = (np.arange(3000 * 4000 * 3) % 251).astype(np.uint8).reshape(3000, 4000, 3)
    count: dict[str, int] = {}
    steps = _collect(_steps(iter([big] * 33), resize_here, count, 1, _Staging(False), threading.Event()))
    assert count["frames"] == 33 and [len(s) for s in steps] == [1, 1]
    assert all(tuple(s.shape) == (1, 16, 256, 341, 3) and s.dtype == torch.uint8 for s in steps)
    small = np.zeros((48, 64, 3), np.uint8)
    kept = _collect(_steps(iter([small] * 17), resize_here, {}, 1, _Staging(False), threading.Event()))[0]
    assert tuple(kept.shape[2:4]) == ((256, 341) if resize_here else (48, 64))  # CUDA resizes small ones itself


def _collect(steps) -> list[torch.Tensor]:
    """The snippets of each step, copied, each buffer handed back as the extractor does."""
    out = []
    for step in steps:
        out.append(step.snippets.clone())
        step.staging.release(step.buffer)
    return out


def test_each_frame_is_written_once_into_step_buffers_that_are_recycled() -> None:
    """Frames go straight into their slot of a step buffer (no stacking afterwards); a
    video of N frames gives T = floor((N - 1) / 16) snippets in steps of ``step``; only
    STAGING_STEPS buffers exist however long the video, and the decode thread waits for
    one to come back."""
    frames = [np.full((24, 32, 3), i, np.uint8) for i in range(16 * 7 + 1)]  # T = 7
    staging = _Staging(False)
    got = _collect(_steps(iter(frames), False, {}, 3, staging, threading.Event()))
    assert [len(s) for s in got] == [3, 3, 1] and staging.made <= STAGING_STEPS
    levels = torch.cat(got)[:, :, 0, 0, 0]  # (T, 16): frame numbers
    assert levels.flatten().tolist() == list(range(16 * 7))
    stop = threading.Event()
    held = _steps(iter(frames), False, {}, 1, _Staging(False, count=1), stop)
    first = next(held)  # never handed back: the next step waits for a free buffer until stopped
    stop.set()
    assert list(held) == [] and first.n == 1


def test_cuda_steps_bound_the_raw_frames_they_hold(
    extractor: FeatureExtractor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On CUDA, frames up to RAW_PIXELS_MAX travel unresized: at one crop (40 snippets a step)
    1080p was 4 GB per step in host memory and 16 GB of float on the GPU while resizing."""
    monkeypatch.setattr(extractor, "cuda", True)
    monkeypatch.setattr(extractor, "snippets_per_step", 40)  # CUDA's batch of 40 clips at one crop
    assert extractor.step_for(640, 360) == 40  # 11 MB a snippet: the whole batch fits
    step = extractor.step_for(1920, 1080)
    assert step == 5 and step * 16 * 1920 * 1080 * 3 <= RAW_STEP_BYTES
    assert extractor.step_for(3840, 2160) == 40  # resized on the CPU as decoded: small snippets
    assert extractor.step_for(0, 0) == 40  # size unknown before decoding
    monkeypatch.setattr(extractor, "cuda", False)
    assert extractor.step_for(1920, 1080) == 40


def test_absurd_frame_geometry_is_refused(probed: FeatureExtractor, tmp_path: Path) -> None:
    assert check_geometry(None, 48, 64) == (256, 341)
    with pytest.raises(InputError, match="too elongated"):
        check_geometry(Path("x.mp4"), 8, 16_000)  # longer side would be 512,000
    clip = hostile.timestamps_file(tmp_path / "thin.nut", [40 * i for i in range(20)], size=(2048, 16))
    with pytest.raises(InputError, match=r"thin.nut: frames of 2048x16 pixels are too elongated"):
        probed.extract(clip)


def test_absurd_timestamps_finish_fast(probed: FeatureExtractor, tmp_path: Path) -> None:
    """A header claiming 100,000 s over four frames: no huge preallocation, no repeats."""
    clip = hostile.timestamps_file(tmp_path / "gap.mkv", [0, 40, 100_000_000, *range(100_000_040, 100_001_000, 40)])
    feats = probed.extract(clip)
    assert feats.info.duration > 99_000 and feats.n_frames < 40 and feats.n_snippets == 1
    assert any("discontinu" in w for w in feats.warnings)


def test_audio_follows_the_chosen_video_stream(probed: FeatureExtractor, tmp_path: Path) -> None:
    """--video-stream N: t = 0 is stream N's start, for the audio as for the frames."""
    from mediagen import make_two_video_streams

    clip = make_two_video_streams(tmp_path / "two.mkv", seconds=3.0, late=1.0)  # #1 starts at 1.0 s, tone from 1.0 s
    silence = probed.silence_features()
    first = probed.extract(clip, video_stream=0)
    np.testing.assert_allclose(first.audio[0], silence, rtol=1e-4, atol=1e-4)  # 1 s of silence at #0's start
    second = probed.extract(clip, video_stream=1)
    assert second.n_snippets < first.n_snippets
    assert np.abs(second.audio[0] - silence).max() > 1e-3  # #1 starts where the tone does

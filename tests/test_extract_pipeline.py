"""The extractor as a pipeline (issue 19, point 1), on the CPU.

- the pipelined ``extract`` (frames written once into recycled step buffers, fixed batch
  shapes with the tail padded, outputs kept on the device until the video is done) gives
  exactly the features of a plain serial computation: decode every frame, resize, group,
  run the networks snippet by snippet (bitwise equal on the CPU);
- the next video decodes while the current one's last batches run (``prefetch``, which the
  runner calls): shown with a deliberately slow stand-in for I3D.

Networks: random weights in the published layouts (tests/fakeweights.py).
"""

from __future__ import annotations

import copy
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from fakeweights import fake_weights_folder
from mediagen import make_clip

from violence_cli import media
from violence_cli.features import frontend
from violence_cli.features.extract import FeatureExtractor, count_snippets, resize_frames, resized_size
from violence_cli.runner import DetectJob, ExtractJob, discover, run
from violence_cli.weights import resolve_weight_files


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory):
    with fake_weights_folder(tmp_path_factory, "weights") as w:
        yield w


@pytest.fixture(scope="module")
def fixed(weights: dict[str, Path]) -> FeatureExtractor:
    """Fixed batch shapes forced on the CPU: 2 clips a forward, 1 crop, so a 5-snippet
    video ends on a padded forward."""
    return FeatureExtractor(
        weights["i3d_rgb_imagenet"], weights["vggish"], device="cpu", crops=1, batch_size=2, fixed_batches=True
    )


def serial_features(fx: FeatureExtractor, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The protocol computed plainly: every frame decoded and resized, then each snippet
    through I3D alone, then VGGish on every aligned example at once (no padding)."""
    plain = copy.copy(fx)
    plain.fixed_batches = False
    plain._clip_buffer = None
    frames = list(media.iter_frames(path))
    t = count_snippets(len(frames))
    size = resized_size(*frames[0].shape[:2])
    resized = [resize_frames(torch.from_numpy(f)[None], size)[0] for f in frames[: 16 * t]]
    rgb = np.stack([plain.rgb_features(torch.stack(resized[16 * k : 16 * k + 16])[None])[0] for k in range(t)])
    chunks = media.iter_audio(path, media.AUDIO_RATE, chunk_seconds=10.0)
    examples = np.concatenate(list(frontend.aligned_examples(chunks)))[:t]
    audio = plain.audio_features(examples)
    if len(audio) < t:
        audio = np.concatenate([audio, np.repeat(plain.silence_features()[None], t - len(audio), 0)])
    return rgb, audio


def test_pipelined_features_equal_the_serial_computation_bitwise(fixed: FeatureExtractor, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "five.mp4", seconds=3.5, fps=30, size=(64, 48))  # 84 frames at 24 fps: T = 5
    rgb, audio = serial_features(fixed, clip)
    plain = copy.copy(fixed)  # the CPU's default: no padding
    plain.fixed_batches, plain._clip_buffer = False, None
    feats = plain.extract(clip)
    assert feats.rgb.shape == (5, 1, 1024) and feats.audio.shape == (5, 128)
    assert np.array_equal(feats.rgb, rgb)  # bitwise: staging, steps and device-side rows change nothing
    assert np.array_equal(feats.audio, audio)
    assert np.abs(feats.rgb).max() > 0 and np.abs(feats.audio).max() > 0  # real values, not zeros on both sides
    # fixed batch shapes (CUDA's default), here forced on the CPU: I3D is still bitwise the
    # same (oneDNN's convolutions compute each clip alone); VGGish's matmuls block by the
    # batch's rows, so 32 padded rows round differently in the last bits from 5
    padded = fixed.extract(clip)
    assert np.array_equal(padded.rgb, rgb)
    np.testing.assert_allclose(padded.audio, audio, rtol=1e-5, atol=1e-5)


def test_fixed_batches_pad_every_forward_to_the_batch_size(fixed: FeatureExtractor, tmp_path: Path) -> None:
    """Every I3D forward gets batch_size clips and every VGGish forward 32 examples,
    whatever the video's length (one cuDNN plan), and the padding's outputs are dropped."""
    shapes: list[tuple[int, ...]] = []
    original_i3d, original_vgg = fixed.i3d, fixed.vggish

    class Recording(torch.nn.Module):
        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            shapes.append(tuple(x.shape))
            return self.net(x)

    fixed.i3d, fixed.vggish = Recording(original_i3d), Recording(original_vgg)
    try:
        feats = fixed.extract(make_clip(tmp_path / "three.mp4", seconds=2.2, fps=24, size=(64, 48)))  # T = 3
    finally:
        fixed.i3d, fixed.vggish = original_i3d, original_vgg
    i3d = [s for s in shapes if len(s) == 5]
    vgg = [s for s in shapes if len(s) == 3]
    assert feats.n_snippets == 3 and [s[0] for s in i3d] == [2, 2]  # 3 clips: 2 + (1 padded to 2)
    assert vgg and all(s[0] == 32 for s in vgg)


class SlowI3D(torch.nn.Module):
    """Stands in for I3D: sleeps ``seconds`` per forward, notes when each forward ended."""

    def __init__(self, seconds: float, log: list[tuple[str, float]]) -> None:
        super().__init__()
        self.seconds, self.log = seconds, log

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.seconds)
        self.log.append(("i3d", time.perf_counter()))
        return x.mean(dim=(2, 3, 4)).repeat(1, 342)[:, :1024]  # (B, 1024), depends on the clip


def _logged_frames(monkeypatch: pytest.MonkeyPatch, log: list[tuple[str, float]]) -> None:
    """Note when each video's first frame is decoded (the extractor reads frames through
    media.MediaFile.frames, one open per video)."""
    real = media.MediaFile.frames

    def frames(self, *args, **kwargs):  # noqa: ANN001, ANN202 - a transparent wrapper
        inner = real(self, *args, **kwargs)

        def gen():  # noqa: ANN202
            try:
                for i, frame in enumerate(inner):
                    if i == 0:
                        log.append((f"first frame {self.path.name}", time.perf_counter()))
                    yield frame
            finally:
                inner.close()

        return gen()

    monkeypatch.setattr(media.MediaFile, "frames", frames)


def test_next_video_decodes_while_the_last_batches_run(
    weights: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = make_clip(tmp_path / "a.mp4", seconds=2.2, fps=24, size=(64, 48))  # T = 3 each
    b = make_clip(tmp_path / "b.mp4", seconds=2.2, fps=24, size=(64, 48), tone_hz=660.0)
    fx = FeatureExtractor(weights["i3d_rgb_imagenet"], weights["vggish"], device="cpu", crops=1, batch_size=1)
    alone = fx.extract(b)  # the reference: b without any prefetching
    log: list[tuple[str, float]] = []
    fx.i3d = SlowI3D(0.4, log)
    alone_slow = fx.extract(b)
    _logged_frames(monkeypatch, log)
    log.clear()
    fx.prefetch(b)
    fa = fx.extract(a)
    a_done = max(t for what, t in log if what == "i3d")  # a's last forward
    fb = fx.extract(b)
    first_b = next(t for what, t in log if what == "first frame b.mp4")
    assert first_b < a_done, "b's decoding should start before a's last I3D batch ends"
    assert fa.n_snippets == fb.n_snippets == 3
    assert np.array_equal(fb.rgb, alone_slow.rgb) and np.array_equal(fb.audio, alone.audio)  # prefetch changes nothing


def test_a_prefetched_video_that_fails_fails_in_its_own_extract(weights: dict[str, Path], tmp_path: Path) -> None:
    from violence_cli.errors import InputError

    fx = FeatureExtractor(weights["i3d_rgb_imagenet"], weights["vggish"], device="cpu", crops=1, batch_size=5)
    good = make_clip(tmp_path / "good.mp4", seconds=1.5, fps=24, size=(64, 48))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    fx.prefetch(bad)
    assert fx.extract(good).n_snippets == 2  # the bad one is opened in good's decode thread: no effect here
    with pytest.raises(InputError, match="bad.mp4"):
        fx.extract(bad)
    fx.prefetch(good)
    assert fx.extract(good).n_snippets == 2  # and the extractor goes on
    fx.prefetch(bad)
    fx.close()  # cancelled: nothing left decoding
    assert fx._ahead == []


def test_the_runner_prefetches_the_next_video(
    weights: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``run`` with the local engine tells the worker which video is next; the features
    written are those of a run without it."""
    from violence_cli.runner import jobs

    folder = tmp_path / "videos"
    folder.mkdir()
    for i in range(3):
        make_clip(folder / f"v{i}.mp4", seconds=1.5, fps=24, size=(64, 48), tone_hz=300.0 + 100 * i)
    files = resolve_weight_files(
        {"i3d_rgb_imagenet": weights["i3d_rgb_imagenet"], "vggish": weights["vggish"]}, download=False
    )
    calls: list[str] = []
    real = jobs.ExtractWorker.prefetch

    def spy(self, video):  # noqa: ANN001, ANN202
        calls.append(video.name)
        return real(self, video)

    monkeypatch.setattr(jobs.ExtractWorker, "prefetch", spy)
    out = tmp_path / "out"
    job = ExtractJob(out_dir=out, weights=files, crops=1)
    summary = run(discover([str(folder)]).videos, job, device="cpu")
    assert summary.done == 3 and calls == ["v1", "v2"]
    record = json.loads((out / "v0.extract.json").read_text())
    assert record["precision_choice"]["precision"] == "fp32" and record["precision_choice"]["source"] == "asked"
    monkeypatch.setattr(jobs.ExtractWorker, "prefetch", None)  # a worker without prefetch: same files
    plain = ExtractJob(out_dir=tmp_path / "plain", weights=files, crops=1)
    again = run(discover([str(folder)]).videos, plain, overwrite=True)
    assert again.done == 3
    for i in range(3):
        for suffix in ("__0.npy", "__vggish.npy"):
            assert np.array_equal(np.load(out / f"v{i}{suffix}"), np.load(tmp_path / "plain" / f"v{i}{suffix}"))
    assert DetectJob  # detect's worker has the same two methods
    assert callable(jobs.DetectWorker.prefetch) and callable(jobs.DetectWorker.close)
    assert threading.active_count() < 20  # no decode thread left behind per video

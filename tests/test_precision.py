"""Reduced precision: bf16 I3D features must leave the published model's scores within 0.01.

On a GPU the extractor runs I3D under bf16 autocast (``FeatureExtractor._autocast``). This
machine has no GPU, so the same autocast is switched on for the CPU here: the numerics of
bf16 convolutions are what is checked, with random I3D/VGGish weights in the published
layouts and the published MACIL-SD checkpoint scoring both feature sets. Random weights give
features far larger than real ones (which saturates every score at 0 and hides any error), so
both feature sets are scaled by the same factors to XD-Violence-like magnitudes first (audio
mean 0.1 as REFERENCE.md gives; RGB mean 0.4), and the test checks the scores are not saturated.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from fakeweights import save_fake_weights
from mediagen import make_clip

from violence_cli.features.extract import FeatureExtractor
from violence_cli.model import load_model, score_snippets


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return save_fake_weights(tmp_path_factory.mktemp("weights"))


def test_bf16_features_keep_scores_within_0_01(
    tmp_path: Path, weights: dict[str, Path], macil_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = make_clip(tmp_path / "clip.mp4", seconds=2.2, fps=24, size=(96, 64), pattern="gradient")
    fx = FeatureExtractor(i3d_weights=weights["i3d_rgb_imagenet"], vggish_weights=weights["vggish"], crops=1)
    fp32 = fx.extract(clip)
    monkeypatch.setattr(fx, "_autocast", lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    bf16 = fx.extract(clip)

    assert fp32.rgb.shape == bf16.rgb.shape and fp32.rgb.shape[0] >= 2
    assert not np.array_equal(fp32.rgb, bf16.rgb), "the bf16 path did not run"
    k_rgb, k_audio = 0.4 / fp32.rgb.mean(), 0.1 / fp32.audio.mean()
    model = load_model(macil_checkpoint)
    a = score_snippets(model, fp32.rgb * k_rgb, fp32.audio * k_audio)
    b = score_snippets(model, bf16.rgb * k_rgb, bf16.audio * k_audio)
    assert 0.001 < a.visual.min() and a.visual.max() < 0.999, "scores saturated: the comparison would mean nothing"
    assert np.abs(a.visual - b.visual).max() > 0, "bf16 changed no score"
    for name in ("av", "audio", "visual"):
        diff = float(np.abs(getattr(a, name) - getattr(b, name)).max())
        assert diff < 0.01, f"{name} scores moved by {diff:.4f} with bf16 features"

"""bf16 against fp32 on one video: the figures tests/test_precision.py checks and
benchmarks/bench_bf16.py --fidelity reports.

- ``trim(src, dst, seconds)``: the first seconds of a file, streams copied (no re-encode),
  so a test extracts a few snippets of a real clip through the public extractor;
- ``compare(fp32, bf16, video, model)``: both extractors on the video, then the published
  model on both feature sets. Random test weights give features far larger than real ones
  (every score saturates at 0 and hides any error), so both sets are scaled by the same
  factors to XD-Violence-like magnitudes first (RGB mean 0.4, audio mean 0.1, as in the
  published features). Even then the published model scores them near 0.07, where the
  sigmoid is flat and bf16's error shrinks, so both sets also get, per snippet, the same
  amount of the model's own violent direction (the positive part of the gradient of its av
  logits), found on the fp32 features so the fp32 av scores climb from 0.3 to 0.7 along the
  video: the steep part of the sigmoid, and snippets either side of the 0.5 threshold. The
  bf16 error rides in the scaled features; the added part is identical in both sets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch

from violence_cli.features.extract import FeatureExtractor
from violence_cli.model import score_snippets
from violence_cli.pipeline import SNIPPET_SECONDS
from violence_cli.segments import find_segments, make_snippets

RGB_MEAN, AUDIO_MEAN = 0.4, 0.1  # XD-Violence-like feature magnitudes the scores are taken at
THRESHOLD = 0.5
TARGET_LOW, TARGET_HIGH = 0.3, 0.7  # the fp32 av scores climb between these along the video
AUDIO_SHARE = 0.5  # the audio features get this share of each snippet's shift


def trim(src: str | Path, dst: str | Path, seconds: float) -> Path:
    """Copy the first ``seconds`` of every audio and video stream of ``src`` into ``dst``."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        streams = [s for s in inp.streams if s.type in ("video", "audio")]
        mapping = {s.index: out.add_stream_from_template(s) for s in streams}
        for packet in inp.demux(streams):
            if packet.dts is None or packet.pts is None:
                continue
            if float(packet.pts * packet.time_base) >= seconds:
                continue
            packet.stream = mapping[packet.stream.index]
            out.mux(packet)
    return Path(dst)


@dataclass
class Fidelity:
    """bf16 against fp32 on one video (features at their raw magnitudes; scores at XD-like ones)."""

    video: str
    snippets: int
    crops: int
    rgb_cosine_min: float  # lowest cosine similarity of one snippet's 1024-d feature (any crop)
    rgb_max_abs: float  # largest absolute difference of any RGB feature value
    rgb_max_rel: float  # rgb_max_abs over the largest fp32 RGB value
    audio_cosine_min: float
    audio_max_abs: float
    audio_max_rel: float
    score_max_diff: float  # largest |bf16 - fp32| over the av, audio and visual scores
    logit_max_diff: float  # the same for their logits
    scores_fp32: dict[str, np.ndarray]
    scores_bf16: dict[str, np.ndarray]
    segments_fp32: list
    segments_bf16: list


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(-1, a.shape[-1]).astype(np.float64), b.reshape(-1, b.shape[-1]).astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.where(norms > 0, (a * b).sum(1) / np.maximum(norms, 1e-30), 1.0)


def _logit(p: np.ndarray) -> np.ndarray:
    p = p.astype(np.float64)
    return np.log(p) - np.log1p(-p)


def violent_direction(model, rgb: np.ndarray, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors (1024,), (128,): the positive part (features are >= 0) of the gradient of
    the summed av logits at ``rgb`` (T, C, 1024), ``audio`` (T, 128)."""
    visual = torch.tensor(rgb.transpose(1, 0, 2), dtype=torch.float32, requires_grad=True)  # (C, T, 1024)
    sound = torch.tensor(np.broadcast_to(audio, (rgb.shape[1], *audio.shape)), dtype=torch.float32, requires_grad=True)
    model(visual, sound).av_logits.sum().backward()
    d_v, d_a = visual.grad.sum(dim=(0, 1)).clamp(min=0), sound.grad.sum(dim=(0, 1)).clamp(min=0)
    return (d_v / d_v.norm()).numpy(), (d_a / d_a.norm()).numpy()


def mid_range_shift(model, rgb: np.ndarray, audio: np.ndarray, steps: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """(T, 1, 1024), (T, 128) to add to ``rgb`` and ``audio`` so their av scores climb from
    TARGET_LOW to TARGET_HIGH (targets at quarter steps: none sits on the threshold)."""
    d_v, d_a = violent_direction(model, rgb, audio)
    t = rgb.shape[0]
    target = _logit(TARGET_LOW + (TARGET_HIGH - TARGET_LOW) * (np.arange(t) + 0.25) / t)
    amount = np.full(t, 1.5)
    for _ in range(steps):  # a damped fixed-point search: attention couples the snippets
        shift_v, shift_a = amount[:, None, None] * d_v, AUDIO_SHARE * amount[:, None] * d_a
        error = target - _logit(score_snippets(model, rgb + shift_v, audio + shift_a).av)
        if np.abs(error).max() < 0.01:
            break
        amount += 0.25 * error
    return shift_v.astype(np.float32), shift_a.astype(np.float32)


def _scores(model, rgb: np.ndarray, audio: np.ndarray) -> dict[str, np.ndarray]:
    s = score_snippets(model, rgb, audio)
    return {"av": s.av, "audio": s.audio, "visual": s.visual}


def compare(fp32: FeatureExtractor, bf16: FeatureExtractor, video: str | Path, model) -> Fidelity:
    """Extract ``video`` with both extractors; score both with ``model`` at XD-like magnitudes,
    shifted into the sigmoid's steep part (the same shift for both)."""
    a, b = fp32.extract(video), bf16.extract(video)
    assert (a.precision, b.precision) == ("fp32", "bf16"), (a.precision, b.precision)
    k_rgb, k_audio = RGB_MEAN / float(a.rgb.mean()), AUDIO_MEAN / max(float(a.audio.mean()), 1e-12)
    shift_v, shift_a = mid_range_shift(model, a.rgb * k_rgb, a.audio * k_audio)
    sa = _scores(model, a.rgb * k_rgb + shift_v, a.audio * k_audio + shift_a)
    sb = _scores(model, b.rgb * k_rgb + shift_v, b.audio * k_audio + shift_a)

    def segments(s: dict[str, np.ndarray]) -> list:
        snippets = make_snippets(s["av"], s["audio"], s["visual"], SNIPPET_SECONDS)
        return [(g.start, g.end) for g in find_segments(snippets, THRESHOLD, 0.0, 0.0)]

    rgb_abs, audio_abs = float(np.abs(a.rgb - b.rgb).max()), float(np.abs(a.audio - b.audio).max())
    return Fidelity(
        video=Path(video).name,
        snippets=a.n_snippets,
        crops=a.crops,
        rgb_cosine_min=float(_cosines(a.rgb, b.rgb).min()),
        rgb_max_abs=rgb_abs,
        rgb_max_rel=rgb_abs / float(np.abs(a.rgb).max()),
        audio_cosine_min=float(_cosines(a.audio, b.audio).min()),
        audio_max_abs=audio_abs,
        audio_max_rel=audio_abs / max(float(np.abs(a.audio).max()), 1e-12),
        score_max_diff=max(float(np.abs(sa[k] - sb[k]).max()) for k in sa),
        logit_max_diff=max(float(np.abs(_logit(sa[k]) - _logit(sb[k])).max()) for k in sa),
        scores_fp32=sa,
        scores_bf16=sb,
        segments_fp32=segments(sa),
        segments_bf16=segments(sb),
    )

"""bf16 against fp32 on one video: the figures tests/test_precision.py checks and
benchmarks/bench_bf16.py --fidelity reports.

- ``trim(src, dst, seconds)``: the first seconds of a file, streams copied (no re-encode),
  so a test extracts a few snippets of a real clip through the public extractor;
- ``compare(fp32, bf16, video, model)``: both extractors on the video, then the published
  model on both feature sets. Random test weights give features far larger than real ones
  (every score saturates at 0 and hides any error), so both sets are scaled by the same
  factors to XD-Violence-like magnitudes first (RGB mean 0.4, audio mean 0.1: REFERENCE.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from violence_cli.features.extract import FeatureExtractor
from violence_cli.model import score_snippets
from violence_cli.pipeline import SNIPPET_SECONDS
from violence_cli.segments import find_segments, make_snippets

RGB_MEAN, AUDIO_MEAN = 0.4, 0.1  # XD-Violence-like feature magnitudes the scores are taken at
THRESHOLD = 0.5


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
    scores_fp32: dict[str, np.ndarray]
    scores_bf16: dict[str, np.ndarray]
    segments_fp32: list
    segments_bf16: list


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(-1, a.shape[-1]).astype(np.float64), b.reshape(-1, b.shape[-1]).astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.where(norms > 0, (a * b).sum(1) / np.maximum(norms, 1e-30), 1.0)


def _scores(model, rgb: np.ndarray, audio: np.ndarray, k_rgb: float, k_audio: float) -> dict[str, np.ndarray]:
    s = score_snippets(model, rgb * k_rgb, audio * k_audio)
    return {"av": s.av, "audio": s.audio, "visual": s.visual}


def compare(fp32: FeatureExtractor, bf16: FeatureExtractor, video: str | Path, model) -> Fidelity:
    """Extract ``video`` with both extractors; score both with ``model`` at XD-like magnitudes."""
    a, b = fp32.extract(video), bf16.extract(video)
    assert (a.precision, b.precision) == ("fp32", "bf16"), (a.precision, b.precision)
    k_rgb, k_audio = RGB_MEAN / float(a.rgb.mean()), AUDIO_MEAN / max(float(a.audio.mean()), 1e-12)
    sa, sb = _scores(model, a.rgb, a.audio, k_rgb, k_audio), _scores(model, b.rgb, b.audio, k_rgb, k_audio)

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
        scores_fp32=sa,
        scores_bf16=sb,
        segments_fp32=segments(sa),
        segments_bf16=segments(sb),
    )

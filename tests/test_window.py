"""The causal window: `score_causal` (what `watch` computes live) and `eval --window N`.

Checked against a direct computation (one forward per snippet over exactly the snippets up
to it), against whole-video scoring where the two must agree, and through the CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_evaluate import VIDEOS, _run, dataset  # noqa: F401  (shared fixture)

from violence_cli.evaluate import evaluate, gt_from_annotations, paper_metrics, read_annotations
from violence_cli.model import MacilSD, score_causal, score_snippets, window_mask
from violence_cli.xdfeatures import discover_folder, load_entry


@pytest.fixture(scope="module")
def net() -> MacilSD:
    torch.manual_seed(3)
    model = MacilSD().eval()
    with torch.no_grad():
        model.att_mmil.fc.weight.mul_(20)  # scores spread over (0, 1), differences visible
    return model


def _features(t: int, crops: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rgb = np.abs(rng.standard_normal((t, crops, 1024))).astype(np.float32)
    audio = np.maximum(rng.standard_normal((t, 128)) * 0.3, 0).astype(np.float32)
    return rgb, audio


def _direct(model: MacilSD, rgb: np.ndarray, audio: np.ndarray, window: int) -> np.ndarray:
    """Snippet t scored in a forward of its own over snippets max(0, t - window + 1) .. t."""
    out = []
    for t in range(len(rgb)):
        lo = max(0, t - window + 1)
        out.append(score_snippets(model, rgb[lo : t + 1], audio[lo : t + 1]).av[-1])
    return np.array(out, np.float32)


def test_window_mask_is_a_causal_band() -> None:
    m = window_mask(4, 6, 3).int().tolist()  # queries are snippets 2..5 of 0..5
    assert m == [[1, 1, 1, 0, 0, 0], [0, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 0], [0, 0, 0, 1, 1, 1]]


@pytest.mark.parametrize("window", [1, 3, 8, 20])
@pytest.mark.parametrize("block", [4, 256])
def test_equals_a_direct_causal_computation(net: MacilSD, window: int, block: int) -> None:
    rgb, audio = _features(19)
    got = score_causal(net, rgb, audio, window, block=block)
    np.testing.assert_allclose(got.av, _direct(net, rgb, audio, window), atol=2e-6)
    assert got.audio.shape == got.visual.shape == (19,)


def test_future_snippets_change_nothing(net: MacilSD) -> None:
    rgb, audio = _features(12)
    before = score_causal(net, rgb, audio, 5).av
    rgb2, audio2 = rgb.copy(), audio.copy()
    rgb2[8:] += 3.0  # a change from snippet 8 on
    audio2[8:] = 0.0
    after = score_causal(net, rgb2, audio2, 5).av
    np.testing.assert_array_equal(before[:8], after[:8])
    assert np.abs(before[8:] - after[8:]).max() > 1e-3


def test_a_window_of_at_least_t_equals_the_whole_video_where_it_can(net: MacilSD) -> None:
    """N >= T: the window never cuts anything off, so every snippet sees all of the past
    (the same as an unbounded window) and the last snippet, which has no future, gets
    exactly its whole-video score. Earlier snippets differ from the whole-video scores,
    which look ahead: that difference is what a live mode cannot have."""
    rgb, audio = _features(15)
    whole = score_snippets(net, rgb, audio)
    for n in (15, 16, 200):
        causal = score_causal(net, rgb, audio, n)
        np.testing.assert_allclose(causal.av, score_causal(net, rgb, audio, None).av, atol=1e-6)
        np.testing.assert_allclose(causal.av[-1], whole.av[-1], atol=1e-6)
        for ours, theirs in ((causal.audio, whole.audio), (causal.visual, whole.visual)):
            np.testing.assert_allclose(ours[-1], theirs[-1], atol=1e-6)
    assert np.abs(score_causal(net, rgb, audio, 15).av - whole.av).max() > 1e-4  # the look-ahead


def test_window_zero_is_refused(net: MacilSD) -> None:
    rgb, audio = _features(3)
    with pytest.raises(ValueError, match="window"):
        score_causal(net, rgb, audio, 0)


def test_eval_window_cli_matches_the_library(dataset, tmp_path: Path) -> None:  # noqa: F811
    window = 4
    result = _run("--features", dataset["feats"], "--annotations", dataset["ann"], "--checkpoint", dataset["ckpt"],
                  "--json", "--device", "cpu", "--window", str(window), "--save-scores", tmp_path / "s.npz")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["window"] == window
    # independently: load each video, score snippet by snippet, then the paper's metric
    model = MacilSD()
    model.load_state_dict(torch.load(dataset["ckpt"], weights_only=True))
    entries = discover_folder(dataset["feats"])
    per_video = {}
    for entry in entries:
        rgb, audio = load_entry(entry, lambda _m: None)
        per_video[entry.name] = _direct(model, rgb.transpose(1, 0, 2), audio, window)
    gt, _ = gt_from_annotations([(n, len(s)) for n, s in per_video.items()], read_annotations(dataset["ann"]))
    ap, auc = paper_metrics(gt, np.concatenate(list(per_video.values())))
    assert doc["ap"] == pytest.approx(ap, abs=1e-6) and doc["auc"] == pytest.approx(auc, abs=1e-6)
    with np.load(tmp_path / "s.npz") as saved:
        for name, scores in per_video.items():
            np.testing.assert_allclose(saved[name], scores, atol=2e-6)
    whole = evaluate(entries, annotations=dataset["ann"], checkpoint=dataset["ckpt"])
    assert whole.window is None and whole.ap != doc["ap"]  # the window costs (or gains) something here
    longest = max(t for _, t in VIDEOS)
    wide = evaluate(entries, annotations=dataset["ann"], checkpoint=dataset["ckpt"], window=longest)
    unbounded = {n: score_causal(model, *_rgb_audio(e), None).av for n, e in zip(per_video, entries)}
    for name, scores in wide.scores.items():
        np.testing.assert_allclose(scores.av, unbounded[name], atol=2e-6)
        np.testing.assert_allclose(scores.av[-1], whole.scores[name].av[-1], atol=2e-6)


def _rgb_audio(entry) -> tuple[np.ndarray, np.ndarray]:
    rgb, audio = load_entry(entry, lambda _m: None)
    return rgb.transpose(1, 0, 2), audio


def test_eval_window_usage_error(dataset) -> None:  # noqa: F811
    result = _run("--features", dataset["feats"], "--annotations", dataset["ann"], "--window", "0")
    assert result.exit_code == 2

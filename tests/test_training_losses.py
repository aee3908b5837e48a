"""Training losses: hand-computed values on tiny batches, vectorised == per-bag version."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from violence_cli.model import mil_bag_logits
from violence_cli.training.losses import (
    bag_bce,
    cross_modal_losses,
    cross_modal_losses_per_item,
    info_nce,
)


def _np_info_nce(query: np.ndarray, positive: np.ndarray, negatives: np.ndarray, t: float = 0.1) -> float:
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
    q, p, n = unit(query), unit(positive), unit(negatives)
    pos = np.sum(q * p, axis=1) / t  # (N,)
    neg = q @ n.T / t  # (N, M)
    both = np.concatenate([pos[:, None], neg], axis=1)
    top = both.max(axis=1, keepdims=True)
    lse = np.log(np.exp(both - top).sum(axis=1)) + top[:, 0]
    return float(np.mean(lse - pos))


def test_info_nce_on_literal_vectors() -> None:
    # cosines 1 (positive), 0 and -1 (negatives) -> logits 10, 0, -10 at temperature 0.1
    q = torch.tensor([[2.0, 0.0]], dtype=torch.float64)
    p = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    n = torch.tensor([[0.0, 3.0], [-1.0, 0.0]], dtype=torch.float64)
    expected = math.log(1.0 + math.exp(-10.0) + math.exp(-20.0))
    assert float(info_nce(q, p, n, 0.1)) == pytest.approx(expected, rel=1e-5)
    # a query pointing at a negative: logits 0 (positive), 10, 0
    q2 = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    expected2 = math.log(1.0 + math.exp(10.0) + 1.0)
    assert float(info_nce(q2, p, n, 0.1)) == pytest.approx(expected2, rel=1e-6)


def test_mil_bce_by_hand() -> None:
    logits = torch.tensor([[3.0, -1.0, 0.5, 9.0], [0.2, 0.4, -2.0, 0.0]])
    lengths = torch.tensor([3, 4])  # the 9.0 is padding: ignored
    labels = torch.tensor([1.0, 0.0])
    bag = mil_bag_logits(logits, lengths)  # k = 1 for both
    assert bag.tolist() == pytest.approx([3.0, 0.4])
    sig = lambda x: 1.0 / (1.0 + math.exp(-x))
    expected = -(math.log(sig(3.0)) + math.log(1.0 - sig(0.4))) / 2
    assert float(bag_bce(bag, labels)) == pytest.approx(expected, rel=1e-6)


def _tiny_batch(seed: int = 3):
    """Three bags: lengths 17 (k=2), 5 (k=1), 16 (k=2); bags 0 and 2 predicted violent."""
    rng = np.random.default_rng(seed)
    lengths = np.array([17, 5, 16])
    t, h = 17, 3
    bag = np.array([1.0, -0.5, 2.0], np.float32)
    audio_scores = rng.normal(size=(3, t)).astype(np.float32)
    visual_scores = rng.normal(size=(3, t)).astype(np.float32)
    audio_reps = rng.normal(size=(3, t, h)).astype(np.float64)
    visual_reps = rng.normal(size=(3, t, h)).astype(np.float64)
    return bag, audio_scores, visual_scores, lengths, audio_reps, visual_reps


def test_contrastive_terms_by_hand() -> None:
    bag, a_s, v_s, lengths, a_r, v_r = _tiny_batch()
    rows = {n: [] for n in ("a_abn", "v_abn", "a_bgd", "v_bgd", "a_nor", "v_nor")}
    for i in range(3):
        n = lengths[i]
        k = n // 16 + 1
        a_top = np.argsort(-a_s[i, :n])[:k]
        v_top = np.argsort(-v_s[i, :n])[:k]
        rows["a_bgd"].append(a_r[i, np.argsort(a_s[i, :n])[:k]])
        rows["v_bgd"].append(v_r[i, np.argsort(v_s[i, :n])[:k]])
        violent = 1.0 / (1.0 + np.exp(-bag[i])) > 0.5
        if violent:  # the semi-bag mean, once per top-k snippet
            rows["a_abn"].append(np.repeat(a_r[i, a_top].mean(0, keepdims=True), k, axis=0))
            rows["v_abn"].append(np.repeat(v_r[i, v_top].mean(0, keepdims=True), k, axis=0))
        else:
            rows["a_nor"].append(a_r[i, a_top])
            rows["v_nor"].append(v_r[i, v_top])
    r = {name: np.concatenate(parts) for name, parts in rows.items()}
    assert r["a_abn"].shape == (4, 3) and r["a_bgd"].shape == (5, 3) and r["a_nor"].shape == (1, 3)
    expected = [
        _np_info_nce(r["a_abn"], r["v_abn"], r["v_bgd"]),
        _np_info_nce(r["a_abn"], r["v_abn"], r["v_nor"]),
        _np_info_nce(r["v_abn"], r["a_abn"], r["a_bgd"]),
        _np_info_nce(r["v_abn"], r["a_abn"], r["a_nor"]),
    ]
    args = [torch.from_numpy(x) for x in (bag, a_s, v_s, lengths, a_r, v_r)]
    for fn in (cross_modal_losses, cross_modal_losses_per_item):
        got = fn(*args)
        assert got.active
        assert [float(x) for x in got[:4]] == pytest.approx(expected, rel=1e-9)


def test_no_predicted_normal_bag_gives_zero_terms() -> None:
    bag, a_s, v_s, lengths, a_r, v_r = _tiny_batch()
    args = [torch.from_numpy(x) for x in (np.abs(bag) + 0.1, a_s, v_s, lengths, a_r, v_r)]
    for fn in (cross_modal_losses, cross_modal_losses_per_item):
        got = fn(*args)
        assert not got.active and all(float(x) == 0.0 for x in got[:4])


@pytest.mark.parametrize("seed", range(6))
def test_vectorised_equals_per_item_on_random_batches(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    b, t, h = 9, 70, 16
    lengths = torch.randint(1, t + 1, (b,), generator=g)
    lengths[0] = t
    bag = torch.randn(b, generator=g)
    bag[0], bag[1] = 1.0, -1.0  # both predicted classes present
    a_s, v_s = torch.randn(b, t, generator=g), torch.randn(b, t, generator=g)
    reps = [torch.randn(b, t, h, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    fast = cross_modal_losses(bag, a_s, v_s, lengths, *reps)
    slow = cross_modal_losses_per_item(bag, a_s, v_s, lengths, *reps)
    for x, y in zip(fast[:4], slow[:4]):
        x, y = x.detach(), y.detach()
        assert x.item() == pytest.approx(y.item(), rel=1e-12, abs=1e-12)
    grads_fast = torch.autograd.grad(sum(fast[:4]), reps)
    grads_slow = torch.autograd.grad(sum(slow[:4]), reps)
    for gf, gs in zip(grads_fast, grads_slow):
        torch.testing.assert_close(gf, gs, rtol=1e-10, atol=1e-12)


def test_predicted_label_not_true_label_decides() -> None:
    # flipping a bag's logit sign moves its snippets between the violent and the normal side
    bag, a_s, v_s, lengths, a_r, v_r = _tiny_batch()
    args = [torch.from_numpy(x) for x in (bag, a_s, v_s, lengths, a_r, v_r)]
    flipped = [torch.from_numpy(np.array([1.0, 0.5, -2.0], np.float32)), *args[1:]]
    a, b = cross_modal_losses(*args), cross_modal_losses(*flipped)
    assert float(a.a2v_nor) != pytest.approx(float(b.a2v_nor))

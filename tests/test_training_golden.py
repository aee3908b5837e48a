"""Our training step against the published code's: two batches, then the self-distillation.

tests/data/train_golden.json holds what the PUBLISHED avce_train (train.py, CMA_MIL.py,
InfoNCE.py) and main.py's EMA block produced from the same initial weights and batches
(float64, dropout 0); regenerate it with `python tests/data/make_train_golden.py
PATH/TO/MACIL_SD`. Same losses, same parameters after two Adam steps of both models and
after the EMA, to float64 precision.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from violence_cli.model import MacilDims, MacilSD, VisualOnlyNet
from violence_cli.training import Batch, TrainConfig
from violence_cli.training.loop import ema_update, lambda_at, momentum_at, train_step

DATA = Path(__file__).parent / "data"


def _setup_module():
    spec = importlib.util.spec_from_file_location("make_train_golden", DATA / "make_train_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _digest_close(module: torch.nn.Module, expected: dict[str, list[float]]) -> None:
    params = dict(module.named_parameters())
    assert set(params) == set(expected)
    for name, p in params.items():
        flat = p.detach().flatten()
        got = [float(flat.sum()), float((flat * flat).sum()), *map(float, flat[:3])]
        assert got == pytest.approx(expected[name], rel=1e-9, abs=1e-11), name


def test_two_steps_and_ema_match_the_published_code() -> None:
    golden = json.loads((DATA / "train_golden.json").read_text())
    gen = _setup_module()
    av_state, teacher_state, batches = gen.golden_setup()
    dims = MacilDims(dropout=0.0)
    model, teacher = MacilSD(dims).double(), VisualOnlyNet(dims).double()
    model.load_state_dict(av_state)
    teacher.load_state_dict(teacher_state)
    cfg = TrainConfig(lr=golden["lr"])
    opt_av = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    opt_t = torch.optim.Adam(teacher.parameters(), lr=cfg.lr / cfg.teacher_lr_divisor)
    lam = lambda_at(golden["epoch"], cfg.lambda_bgd, cfg.lambda_step)
    assert lam == pytest.approx(golden["lambda"])
    model.train()
    teacher.train()
    results = []
    for (visual, audio, labels, lengths), logged in zip(batches, golden["logged_terms"]):
        n = int(lengths.max())  # the published loop trims the padding to the longest bag
        batch = Batch(visual[:, :n], audio[:, :n], labels, lengths, torch.arange(len(lengths)))
        terms = train_step(model, teacher, opt_av, opt_t, batch, cfg, lam, lam, torch.device("cpu"))
        assert terms["active"] == 1.0
        ours = [terms[k] for k in ("mil", "a2v_bgd", "a2v_nor", "v2a_bgd", "v2a_nor")]
        theirs = [logged[k] for k in ("MIL Loss", "A2V_A2B", "A2V_A2N", "V2A_A2B", "V2A_A2N")]
        assert ours == pytest.approx(theirs, abs=5.1e-5)  # the published log rounds to 4 decimals
        results.append(terms)
    assert results[-1]["loss"] == pytest.approx(golden["last_total_loss"], rel=1e-10)
    assert results[-1]["teacher_loss"] == pytest.approx(golden["last_teacher_loss"], rel=1e-10)
    _digest_close(model, golden["after_step"]["av"])
    _digest_close(teacher, golden["after_step"]["teacher"])

    m = momentum_at(golden["epoch"], cfg.ema_start, cfg.ema_epochs)
    assert m == pytest.approx(golden["momentum"], rel=1e-12)
    ema_update(model, teacher, m)
    _digest_close(model, golden["after_ema"]["av"])

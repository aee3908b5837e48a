"""Regenerate tests/data/train_golden.json: two steps of the PUBLISHED MACIL-SD training code.

Usage (outside the test suite; needs a checkout of github.com/JustinYuu/MACIL_SD):

    python tests/data/make_train_golden.py PATH/TO/MACIL_SD

The published ``avce_network.py``, ``Transformer.py``, ``CMA_MIL.py``, ``InfoNCE.py``,
``train.py`` and ``utils.py`` are imported from the checkout unchanged and run on CPU in
float64 (``Tensor.cuda`` and ``Tensor.float``, which ``train.py`` applies to the inputs, are
made no-ops while they run). The self-distillation update is the
``with torch.no_grad():`` block of the published ``main.py``, read from the checkout and
executed as it is. Nothing from that repository is stored here: only the numbers it produced.

Setup (shared with tests/test_training_golden.py through :func:`golden_setup`): our
``MacilSD`` / ``VisualOnlyNet`` initialised with seed 0 and dropout 0 (their state dicts load
into the published ``AVCE_Model`` / ``Single_Model``, whose dropout modules are set to 0
too), Adam at lr 1e-5 (teacher lr / 5), two batches of 6 seeded bags of lengths up to 40 zero-padded to 200 as the published
dataset pads them, the audio-visual head's bias shifted so that each batch holds bags
predicted on both sides of 0.5 (the contrastive terms need both), epoch 3 (lambda 0.3, momentum 0.9108). Recorded: the published
``avce_train`` return values (last batch), the loss terms it logged for each batch (4
decimals), and a digest (sum, sum of squares, first values) of every parameter of both
models after the two steps and after the self-distillation update.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "train_golden.json"
EPOCH = 3
LENGTHS = [[40, 23, 17, 40, 31, 9], [12, 40, 36, 25, 40, 19]]
LABELS = [[1.0, 0.0, 1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.0, 0.0, 1.0]]
PADDED = 200  # the published dataset pads every bag to max_seqlen
LR = 1e-5  # small, so that the second batch still holds bags on both sides of 0.5


def golden_setup():
    """(av state dict, teacher state dict, batches) in float64; each batch is
    (visual (B, 200, 1024), audio (B, 200, 128), labels (B,), lengths (B,)) zero-padded."""
    from violence_cli.model import MacilDims, MacilSD, VisualOnlyNet, mil_bag_logits

    torch.manual_seed(0)
    dims = MacilDims(dropout=0.0)
    av = {k: v.double() for k, v in MacilSD(dims).state_dict().items()}
    teacher = {k: v.double() for k, v in VisualOnlyNet(dims).state_dict().items()}
    rng = np.random.default_rng(2333)
    batches = []
    for lengths, labels in zip(LENGTHS, LABELS):
        visual = np.zeros((len(lengths), PADDED, 1024))
        audio = np.zeros((len(lengths), PADDED, 128))
        for i, n in enumerate(lengths):
            visual[i, :n] = np.abs(rng.normal(0.3, 0.5, (n, 1024)))
            audio[i, :n] = np.abs(rng.normal(0.1, 0.3, (n, 128)))
        batches.append((torch.from_numpy(visual), torch.from_numpy(audio), torch.tensor(labels, dtype=torch.float64),
                        torch.tensor(lengths)))  # fmt: skip
    # Centre the bag scores so each batch has bags on both sides of 0.5 (else the published
    # code skips the contrastive terms): shift the shared head's bias by half the median.
    model = MacilSD(dims).double()
    model.load_state_dict(av)
    with torch.no_grad():
        bags = torch.cat([mil_bag_logits(model(v[:, : int(n.max())], a[:, : int(n.max())]).av_logits, n)
                          for v, a, _, n in batches])  # fmt: skip
    av["att_mmil.fc.bias"] = av["att_mmil.fc.bias"] - bags.median() / 2
    return av, teacher, batches


def digest(module: torch.nn.Module) -> dict[str, list[float]]:
    out = {}
    for name, p in module.named_parameters():
        flat = p.detach().double().flatten()
        out[name] = [float(flat.sum()), float((flat * flat).sum()), *map(float, flat[:3])]
    return out


def _ema_block(checkout: Path) -> str:
    """The published main.py's self-distillation block, dedented."""
    text = (checkout / "main.py").read_text()
    start = text.index("        with torch.no_grad():\n            m = cosine_scheduler")
    end = text.index("        av_auc, v_auc = test(", start)
    return textwrap.dedent(text[start:end])


def main() -> None:
    checkout = Path(sys.argv[1]).resolve()
    sys.path.insert(0, str(checkout))
    torch.Tensor.cuda = lambda self, *a, **k: self  # the published code calls .cuda() everywhere
    to_float = torch.Tensor.float
    torch.Tensor.float = lambda self, *a, **k: self  # train.py casts inputs to float32; stay in float64
    from avce_network import AVCE_Model, Single_Model
    from train import avce_train
    from utils import cosine_scheduler

    args = SimpleNamespace(dropout=0.0, nhead=4, hid_dim=128, ffn_dim=128, num_classes=1, v_feature_size=1024,
                           m=0.91, lamda_a2b=1.5, lamda_a2n=1.5, lamda_cof=0.1, lr=LR)  # fmt: skip
    av_state, teacher_state, batches = golden_setup()
    model_av, model_v = AVCE_Model(args).double(), Single_Model(args).double()
    for module in (*model_av.modules(), *model_v.modules()):
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0  # MultiHeadAttention / PositionwiseFeedForward hard-code 0.1
    model_av.load_state_dict(av_state, strict=True)
    model_v.load_state_dict(teacher_state, strict=True)
    optimizer_av = torch.optim.Adam(model_av.parameters(), lr=args.lr, weight_decay=0.0)
    optimizer_v = torch.optim.Adam(model_v.parameters(), lr=args.lr / 5, weight_decay=0.0)
    lam = min(args.lamda_a2b, args.lamda_cof * EPOCH)

    logged: list[str] = []
    logger = SimpleNamespace(info=logged.append)
    loader = [(v, a, y) for v, a, y, _ in batches]
    total_loss, loss_v = avce_train(loader, model_av, model_v, optimizer_av, optimizer_v, torch.nn.BCELoss(),
                                    lam, lam, logger)  # fmt: skip
    torch.Tensor.float = to_float
    after_step = {"av": digest(model_av), "teacher": digest(model_v)}
    namespace = {"torch": torch, "cosine_scheduler": cosine_scheduler, "args": args, "epoch": EPOCH,
                 "model_av": model_av, "model_v": model_v}  # fmt: skip
    exec(_ema_block(checkout), namespace)  # noqa: S102 - the published code, run as it is
    terms = []
    for line in logged:
        found = re.findall(r"(MIL Loss|A2V_A2B|A2V_A2N|V2A_A2B|V2A_A2N): (-?[\d.]+)", line)
        if found:
            terms.append({k: float(v) for k, v in found})
    assert len(terms) == 2 and all(t["A2V_A2B"] > 0 for t in terms), "contrastive terms inactive: pick other inputs"
    GOLDEN.write_text(json.dumps({
        "epoch": EPOCH, "lr": LR, "lambda": lam, "momentum": float(namespace["m"]),
        "last_total_loss": total_loss.item(), "last_teacher_loss": loss_v.item(),
        "logged_terms": terms, "after_step": after_step, "after_ema": {"av": digest(model_av)},
    }, indent=1))  # fmt: skip
    print(f"wrote {GOLDEN} ({GOLDEN.stat().st_size} bytes); logged: {terms}")


if __name__ == "__main__":
    main()

"""The MACIL-SD training loop, readable top to bottom.

Per epoch ``e`` (0-based, like the published log):

1. lambda = min(lambda_max, lambda_step * e) weighs the four contrastive terms;
2. for every batch: the audio-visual model gets MIL BCE + lambda x contrastive terms, the
   visual-only teacher gets MIL BCE on its own; one Adam step each (teacher lr = lr / 5);
3. both cosine-annealing schedulers step (T_max 60, per epoch);
4. the audio-visual model's shared parameters (everything but the audio projection ``fc_a``;
   ``att_mmil.fc`` pairs with the teacher's ``fc``) move towards the teacher:
   p = m p + (1 - m) p_teacher, m = 1 + (m0 - 1)(1 + cos(pi e / 50)) / 2, m0 = 0.91
   (skipped when m == 1; the schedule stays at 1 after ``ema_epochs``);
5. validation with the paper's metric; the best AP is kept in ``best.pt``.

Every epoch ends with ``last.pt``, ``train_log.jsonl`` and ``state.pt`` (everything needed to
continue exactly: both models, both optimisers and schedulers, the RNG states) written
atomically, so an interrupted run resumes from its last complete epoch.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import atomic
from ..devices import resolve_device
from ..errors import InputError, UsageError, ViolenceDetectError
from ..model import MacilDims, MacilSD, VisualOnlyNet, mil_bag_logits
from ..weights import trained_record, trained_sidecar
from .data import MAX_SEQLEN, Batch, TrainingSet
from .losses import TEMPERATURE, bag_bce, cross_modal_losses

STATE_FILE = "state.pt"
BEST_FILE = "best.pt"
LAST_FILE = "last.pt"
LOG_FILE = "train_log.jsonl"
STATE_VERSION = 1


@dataclass
class TrainConfig:
    """The recipe; every default is the paper's (published main.py / option.py)."""

    epochs: int = 50
    batch_size: int = 128
    lr: float = 4e-4  # audio-visual model
    teacher_lr_divisor: float = 5.0  # teacher lr = lr / 5
    weight_decay: float = 0.0
    t_max: int = 60  # cosine annealing period, in epochs
    eta_min: float = 0.0
    lambda_bgd: float = 1.5  # max weight of the two background-negative terms (lamda_a2b)
    lambda_nor: float = 1.5  # max weight of the two normal-negative terms (lamda_a2n)
    lambda_step: float = 0.1  # lambda = min(max, lambda_step * epoch) (lamda_cof)
    temperature: float = TEMPERATURE
    ema_start: float = 0.91  # momentum at epoch 0 (the published train.py's option m)
    ema_epochs: int = 50  # cosine schedule length (momentum 1 from then on)
    max_seqlen: int = MAX_SEQLEN
    seed: int = 2333
    # The published train.py unpacks the model outputs so that snippets picked by the audio
    # scores take the video-attended-to-audio representations and vice versa ("published");
    # "matched" picks each modality's own representations.
    pairing: str = "published"

    def check(self) -> None:
        """A :class:`UsageError` naming the first parameter that cannot be used, its value, then
        what was expected (``epochs 0: expected 1 or more``)."""
        for name in ("epochs", "batch_size", "max_seqlen", "t_max", "ema_epochs"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} {getattr(self, name)}: expected 1 or more", params=(name,))
        for name in ("lr", "teacher_lr_divisor", "temperature"):
            if not getattr(self, name) > 0:
                raise UsageError(f"{name} {getattr(self, name):g}: expected a number > 0", params=(name,))
        if not 0.0 <= self.ema_start <= 1.0:
            raise UsageError(f"ema_start {self.ema_start:g}: expected a number between 0 and 1", params=("ema_start",))
        if self.pairing not in ("published", "matched"):
            raise UsageError(f"pairing {self.pairing!r}: expected 'published' or 'matched'", params=("pairing",))


def lambda_at(epoch: int, maximum: float, step: float) -> float:
    return min(maximum, step * epoch)


def momentum_at(epoch: int, start: float, epochs: int) -> float:
    """Cosine schedule from ``start`` (epoch 0) to 1 (epoch ``epochs`` and after)."""
    e = min(epoch, epochs)
    return 1.0 + 0.5 * (start - 1.0) * (1.0 + math.cos(math.pi * e / epochs))


def shared_parameters(
    model: MacilSD, teacher: VisualOnlyNet
) -> list[tuple[str, torch.nn.Parameter, torch.nn.Parameter]]:
    """(name, audio-visual parameter, teacher parameter) pairs the EMA moves.

    As published: every parameter whose name the teacher also has, plus ``att_mmil.fc.*`` ->
    ``fc.*``; names containing ``fc_a`` (the audio projection) are left alone.
    """
    theirs = dict(teacher.named_parameters())
    pairs = []
    for name, p in model.named_parameters():
        if "fc_a" in name or "sa_a" in name:
            continue
        other = "fc." + name[len("att_mmil.fc.") :] if name.startswith("att_mmil.fc.") else name
        if other in theirs and theirs[other].shape == p.shape:
            pairs.append((name, p, theirs[other]))
    return pairs


@torch.no_grad()
def ema_update(model: MacilSD, teacher: VisualOnlyNet, momentum: float) -> None:
    if momentum == 1.0:
        return
    for _, mine, theirs in shared_parameters(model, teacher):
        mine.mul_(momentum).add_((1.0 - momentum) * theirs.detach())


# --------------------------------------------------------------------------- records


@dataclass
class EpochRecord:
    """One line of ``train_log.jsonl``."""

    epoch: int  # 0-based
    loss: float  # mean over batches of the audio-visual objective
    mil: float
    a2v_bgd: float
    a2v_nor: float
    v2a_bgd: float
    v2a_nor: float
    teacher_loss: float
    contrastive_batches: float  # fraction of batches with both predicted classes
    ap: float | None  # paper's metric (PR-AUC) on the validation set
    auc: float | None  # ROC-AUC
    teacher_ap: float | None
    lambda_bgd: float
    lambda_nor: float
    momentum: float
    lr: float  # learning rate used during this epoch
    teacher_lr: float
    seconds: float
    best: bool


@dataclass
class Progress:
    """What the ``progress`` callback receives: after every step, and once per epoch."""

    epoch: int
    epochs: int
    step: int
    steps: int
    record: EpochRecord | None = None  # set once the epoch is complete
    stage: str = "train"  # "train", "validate", "initial"


@dataclass
class TrainResult:
    out_dir: Path
    best_path: Path
    last_path: Path
    state_path: Path
    log_path: Path
    best_epoch: int
    best_ap: float | None
    best_auc: float | None
    epochs_done: int
    initial_ap: float | None
    resumed_from: int | None  # epoch the run continued from
    history: list[EpochRecord] = field(default_factory=list)


Validator = Callable[[torch.nn.Module], tuple[float, float]]  # model or teacher -> (AP, ROC-AUC)


# --------------------------------------------------------------------------- helpers


def _save_torch(obj: Any, path: Path) -> None:
    atomic.write_with(path, lambda tmp: torch.save(obj, tmp))


def _write_sidecar(checkpoint: Path, **facts: Any) -> None:
    """``best.pt.json`` beside ``best.pt``: what made the checkpoint (data, epochs, AP), bound to
    it by its sha256, so ``detect`` and ``eval`` name it as the user's own model."""
    record = trained_record(checkpoint, **facts)
    atomic.write_text(trained_sidecar(checkpoint), json.dumps(record, indent=2) + "\n")


def _data_sources(extra: dict[str, Any] | None) -> list[str]:
    """The training data's folders or list files, as recorded in the run's state."""
    sources = (extra or {}).get("sources") or {}
    found: list[str] = []
    for key in ("features", "rgb_list", "audio_list"):
        value = sources.get(key)
        found += [str(v) for v in (value if isinstance(value, list) else [value]) if v]
    return found


def _cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def _write_log(path: Path, history: list[EpochRecord]) -> None:
    text = "".join(json.dumps(asdict(r)) + "\n" for r in history)
    atomic.write_text(path, text)


def _rng_state(shuffle: torch.Generator) -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "shuffle": shuffle.get_state(),
        "numpy": _numpy_state(),
        "python": random.getstate(),
    }


def _numpy_state() -> list[Any]:
    """numpy's global RNG state with its key array as a tensor (``weights_only`` loads it)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached]


def _set_rng_state(state: dict[str, Any], shuffle: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    shuffle.set_state(state["shuffle"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(state["python"])


def seed_everything(seed: int) -> None:
    """Seed every generator the run touches (CUDA too) and ask cuDNN for determinism, as
    the published main.py does."""
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    np.random.seed(seed)
    random.seed(seed)


# --------------------------------------------------------------------------- one epoch


LOSS_KEYS = ("loss", "mil", "a2v_bgd", "a2v_nor", "v2a_bgd", "v2a_nor", "teacher_loss")


def train_step(
    model: MacilSD,
    teacher: VisualOnlyNet,
    opt_av: torch.optim.Optimizer,
    opt_teacher: torch.optim.Optimizer,
    batch: Batch,
    cfg: TrainConfig,
    lam_bgd: float,
    lam_nor: float,
    device: torch.device,
) -> dict[str, float]:
    """One batch: the audio-visual objective and the teacher's BCE, one Adam step each.

    Returns the loss terms (floats) and ``active`` (1.0 when the contrastive terms applied).
    Raises when a loss is not finite (nothing is updated then).
    """
    visual = batch.visual.to(device)  # (B, L, 1024)
    audio = batch.audio.to(device)  # (B, L, 128)
    labels = batch.labels.to(device)  # (B,)
    lengths = batch.lengths.to(device)  # (B,)

    out = model(visual, audio)
    bag = mil_bag_logits(out.av_logits, lengths)  # (B,)
    mil = bag_bce(bag, labels)
    if cfg.pairing == "published":
        audio_reps, visual_reps = out.visual_repr, out.audio_repr
    else:
        audio_reps, visual_reps = out.audio_repr, out.visual_repr
    cma = cross_modal_losses(
        bag, out.audio_logits, out.visual_logits, lengths, audio_reps, visual_reps, cfg.temperature
    )
    loss = mil + lam_bgd * cma.bgd() + lam_nor * cma.nor()

    teacher_bag = mil_bag_logits(teacher(visual), lengths)  # (B,)
    teacher_loss = bag_bce(teacher_bag, labels)

    if not (torch.isfinite(loss) and torch.isfinite(teacher_loss)):
        raise ViolenceDetectError(
            f"training diverged (loss {loss.item()}, teacher {teacher_loss.item()})",
            hint="lower lr or lambda_bgd/lambda_nor",
            params=("lr", "lambda_bgd", "lambda_nor"),
        )
    opt_av.zero_grad(set_to_none=True)
    loss.backward()
    opt_av.step()
    opt_teacher.zero_grad(set_to_none=True)
    teacher_loss.backward()
    opt_teacher.step()

    terms = (loss, mil, cma.a2v_bgd, cma.a2v_nor, cma.v2a_bgd, cma.v2a_nor, teacher_loss)
    result = {key: value.item() for key, value in zip(LOSS_KEYS, terms)}
    result["active"] = float(cma.active)
    return result


def train_one_epoch(
    model: MacilSD,
    teacher: VisualOnlyNet,
    opt_av: torch.optim.Optimizer,
    opt_teacher: torch.optim.Optimizer,
    data: TrainingSet,
    cfg: TrainConfig,
    epoch: int,
    shuffle: torch.Generator,
    device: torch.device,
    on_step: Callable[[int, int], None] | None = None,
) -> dict[str, float]:
    """One pass over the training bags; returns the mean of each loss term."""
    lam_bgd = lambda_at(epoch, cfg.lambda_bgd, cfg.lambda_step)
    lam_nor = lambda_at(epoch, cfg.lambda_nor, cfg.lambda_step)
    model.train()
    teacher.train()
    sums = dict.fromkeys((*LOSS_KEYS, "active"), 0.0)
    steps = data.n_batches(cfg.batch_size)
    for step, batch in enumerate(data.batches(cfg.batch_size, shuffle)):
        try:
            terms = train_step(model, teacher, opt_av, opt_teacher, batch, cfg, lam_bgd, lam_nor, device)
        except ViolenceDetectError as exc:
            raise ViolenceDetectError(f"epoch {epoch} step {step}: {exc.message}", exc.hint) from None
        for key, value in terms.items():
            sums[key] += value
        if on_step is not None:
            on_step(step + 1, steps)
    means = {k: v / max(steps, 1) for k, v in sums.items()}
    means["contrastive_batches"] = means.pop("active")
    return means


# --------------------------------------------------------------------------- the run


def _build(cfg: TrainConfig, device: torch.device):
    seed_everything(cfg.seed)
    model = MacilSD(MacilDims()).to(device)
    teacher = VisualOnlyNet(MacilDims()).to(device)
    opt_av = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    opt_t = torch.optim.Adam(teacher.parameters(), lr=cfg.lr / cfg.teacher_lr_divisor, weight_decay=cfg.weight_decay)
    sched_av = torch.optim.lr_scheduler.CosineAnnealingLR(opt_av, T_max=cfg.t_max, eta_min=cfg.eta_min)
    sched_t = torch.optim.lr_scheduler.CosineAnnealingLR(opt_t, T_max=cfg.t_max, eta_min=cfg.eta_min)
    shuffle = torch.Generator().manual_seed(cfg.seed)
    return model, teacher, opt_av, opt_t, sched_av, sched_t, shuffle


def read_state(out_dir: Path) -> dict[str, Any]:
    """The saved training state of ``out_dir`` (InputError when absent or unreadable)."""
    path = Path(out_dir) / STATE_FILE
    if not path.is_file():
        raise InputError(f"{path}: no training state to resume from (was this folder made by `violence-detect train`?)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        raise InputError(f"{path}: unreadable training state ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise InputError(f"{path}: not a violence-detect training state (version {STATE_VERSION})")
    problem = state_problem(state)
    if problem is not None:
        raise InputError(f"{path}: damaged training state ({problem}); cannot resume from it")
    return state


_STATE_KEYS = (
    "version", "config", "epoch", "model", "teacher", "opt_av", "opt_teacher",
    "sched_av", "sched_teacher", "rng", "history", "best",
)  # fmt: skip
_RNG_KEYS = ("torch", "cuda", "shuffle", "numpy", "python")


def state_problem(state: dict[str, Any]) -> str | None:
    """What is wrong with a loaded training state (missing keys, config fields, tensor
    shapes, non-finite weights), or None when it can be resumed from."""
    missing = [key for key in _STATE_KEYS if key not in state]
    if missing:
        return f"missing {', '.join(missing)}"
    config = state["config"]
    if not isinstance(config, dict):
        return f"config is a {type(config).__name__}, not a table"
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(config) - set(fields))
    absent = sorted(set(fields) - set(config))
    if unknown or absent:
        return "; ".join(
            part
            for part in (
                f"unknown config field(s) {', '.join(map(str, unknown))}" if unknown else "",
                f"config field(s) {', '.join(absent)} missing" if absent else "",
            )
            if part
        )
    defaults = asdict(TrainConfig())
    for name, value in config.items():
        expected = type(defaults[name])
        ok = isinstance(value, expected) or (expected is float and isinstance(value, int))
        if not ok or isinstance(value, bool) or (isinstance(value, float) and not math.isfinite(value)):
            return f"config field {name} is {value!r}, expected a finite {expected.__name__}"
    try:
        TrainConfig(**config).check()
    except UsageError as exc:
        return f"config: {exc.message}"
    if not isinstance(state["epoch"], int) or isinstance(state["epoch"], bool) or state["epoch"] < 0:
        return f"epoch is {state['epoch']!r}, expected a count >= 0"
    for key, net in (("model", MacilSD(MacilDims())), ("teacher", VisualOnlyNet(MacilDims()))):
        problem = _weights_problem(state[key], net, key)
        if problem is not None:
            return problem
    if not isinstance(state["rng"], dict) or any(key not in state["rng"] for key in _RNG_KEYS):
        return f"rng lacks one of {', '.join(_RNG_KEYS)}"
    if not isinstance(state["history"], list) or not isinstance(state["best"], dict):
        return "history or best is not of the saved kind"
    if not isinstance(state.get("extra", {}), dict):
        return "extra (the data sources) is not a table"
    return None


def _weights_problem(weights: Any, net: torch.nn.Module, key: str) -> str | None:
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        return f"{key} is not a table of tensors"
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    missing = [k for k in expected if k not in weights]
    extra = [k for k in weights if k not in expected]
    wrong = [k for k in expected if k in weights and tuple(weights[k].shape) != expected[k]]
    if missing or extra or wrong:
        first = (missing or extra or wrong)[0]
        what = "missing" if missing else "unexpected" if extra else f"shape {tuple(weights[first].shape)}"
        return f"{key}.{first}: {what} ({len(missing)} missing, {len(extra)} unexpected, {len(wrong)} wrong shapes)"
    for name, tensor in weights.items():
        if not tensor.is_floating_point() or not bool(torch.isfinite(tensor).all()):
            return f"{key}.{name} is not finite floating-point"
    return None


def train(
    data: TrainingSet,
    out_dir: Path,
    cfg: TrainConfig | None = None,
    *,
    validate: Validator | None = None,
    device: str | torch.device = "cpu",
    resume: bool = False,
    extra_state: dict[str, Any] | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> TrainResult:
    """Train MACIL-SD on ``data``; write checkpoints, the log and the state into ``out_dir``.

    ``validate(model)`` returns (AP, ROC-AUC) on held-out data; without it the last
    epoch is also the best. ``resume=True`` continues from ``out_dir/state.pt`` (its config
    is used, except ``cfg.epochs`` when ``cfg`` is given). ``extra_state`` (JSON-like) is kept
    in the state file, e.g. where the data came from.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    state = read_state(out_dir) if resume else None
    if state is not None:
        saved = TrainConfig(**state["config"])
        if cfg is not None:
            saved.epochs = cfg.epochs
        cfg = saved
    cfg = cfg or TrainConfig()
    cfg.check()
    if data.max_seqlen != cfg.max_seqlen:
        raise UsageError(
            f"the training set was built with max_seqlen {data.max_seqlen}, the recipe says {cfg.max_seqlen}"
        )

    model, teacher, opt_av, opt_t, sched_av, sched_t, shuffle = _build(cfg, dev)
    history: list[EpochRecord] = []
    best = {"epoch": -1, "ap": None, "auc": None}
    initial_ap = None
    start = 0
    if state is not None:
        try:
            model.load_state_dict(state["model"])
            teacher.load_state_dict(state["teacher"])
            opt_av.load_state_dict(state["opt_av"])
            opt_t.load_state_dict(state["opt_teacher"])
            sched_av.load_state_dict(state["sched_av"])
            sched_t.load_state_dict(state["sched_teacher"])
            _set_rng_state(state["rng"], shuffle)
            history = [EpochRecord(**r) for r in state["history"]]
            best = dict(state["best"])
            initial_ap = state.get("initial_ap")
            start = int(state["epoch"])
            extra_state = state.get("extra", {}) | (extra_state or {})
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
            raise InputError(
                f"{out_dir / STATE_FILE}: damaged training state ({type(exc).__name__}: {exc}); cannot resume from it"
            ) from None
    elif validate is not None:
        if progress is not None:
            progress(Progress(0, cfg.epochs, 0, 0, stage="initial"))
        initial_ap, _ = validate(model)

    paths = {name: out_dir / name for name in (BEST_FILE, LAST_FILE, STATE_FILE, LOG_FILE)}
    for path in [*paths.values(), trained_sidecar(paths[BEST_FILE]), trained_sidecar(paths[LAST_FILE])]:
        atomic.remove_stale(path)  # a killed run's temporary files: this run owns the folder now
    steps = data.n_batches(cfg.batch_size)
    for epoch in range(start, cfg.epochs):
        t0 = time.perf_counter()
        lr, teacher_lr = opt_av.param_groups[0]["lr"], opt_t.param_groups[0]["lr"]

        def on_step(step: int, total: int, epoch: int = epoch) -> None:
            if progress is not None:
                progress(Progress(epoch, cfg.epochs, step, total))

        means = train_one_epoch(model, teacher, opt_av, opt_t, data, cfg, epoch, shuffle, dev, on_step)
        sched_av.step()
        sched_t.step()
        m = momentum_at(epoch, cfg.ema_start, cfg.ema_epochs)
        ema_update(model, teacher, m)

        ap = auc = teacher_ap = None
        if validate is not None:
            if progress is not None:
                progress(Progress(epoch, cfg.epochs, steps, steps, stage="validate"))
            ap, auc = validate(model)
            teacher_ap, _ = validate(teacher)
        improved = ap is None or best["ap"] is None or ap > best["ap"]
        about = {"epochs": cfg.epochs, "train_videos": data.n_videos, "data": _data_sources(extra_state)}
        if improved:
            best = {"epoch": epoch, "ap": ap, "auc": auc}
            _save_torch(_cpu_state(model), paths[BEST_FILE])
            _write_sidecar(paths[BEST_FILE], epoch=epoch, ap=ap, auc=auc, **about)
        _save_torch(_cpu_state(model), paths[LAST_FILE])
        _write_sidecar(paths[LAST_FILE], epoch=epoch, ap=ap, auc=auc, **about)
        record = EpochRecord(
            epoch=epoch, **means, ap=ap, auc=auc, teacher_ap=teacher_ap,
            lambda_bgd=lambda_at(epoch, cfg.lambda_bgd, cfg.lambda_step),
            lambda_nor=lambda_at(epoch, cfg.lambda_nor, cfg.lambda_step),
            momentum=m, lr=lr, teacher_lr=teacher_lr,
            seconds=time.perf_counter() - t0, best=improved,
        )  # fmt: skip
        history.append(record)
        _write_log(paths[LOG_FILE], history)
        _save_torch(
            {
                "version": STATE_VERSION,
                "config": asdict(cfg),
                "epoch": epoch + 1,  # the next epoch to run
                "model": _cpu_state(model),
                "teacher": _cpu_state(teacher),
                "opt_av": opt_av.state_dict(),
                "opt_teacher": opt_t.state_dict(),
                "sched_av": sched_av.state_dict(),
                "sched_teacher": sched_t.state_dict(),
                "rng": _rng_state(shuffle),
                "history": [asdict(r) for r in history],
                "best": best,
                "initial_ap": initial_ap,
                "extra": extra_state or {},
            },
            paths[STATE_FILE],
        )
        if progress is not None:
            progress(Progress(epoch, cfg.epochs, steps, steps, record=record))

    return TrainResult(
        out_dir=out_dir,
        best_path=paths[BEST_FILE],
        last_path=paths[LAST_FILE],
        state_path=paths[STATE_FILE],
        log_path=paths[LOG_FILE],
        best_epoch=int(best["epoch"]),
        best_ap=best["ap"],
        best_auc=best["auc"],
        epochs_done=len(history),
        initial_ap=initial_ap,
        resumed_from=start if state is not None else None,
        history=history,
    )


__all__ = [
    "EpochRecord",
    "Progress",
    "TrainConfig",
    "TrainResult",
    "Validator",
    "ema_update",
    "lambda_at",
    "momentum_at",
    "read_state",
    "shared_parameters",
    "train",
    "train_one_epoch",
    "train_step",
]

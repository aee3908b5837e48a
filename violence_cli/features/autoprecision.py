"""``--precision auto`` on CUDA: the fastest of TF32, bf16 and fp16 whose I3D features stay
faithful, measured once per GPU model and torch/cuDNN version and cached.

On an NVIDIA H200 (torch 2.11, cuDNN 9.19) I3D ran 1,245 clips/s with TF32 and 731 in bf16:
half the bits was 1.7x *slower*. So the choice is measured, not assumed:

1. :func:`measure_i3d` builds an I3D with a fixed random initialisation on the device and,
   at batch :data:`BATCH`, with ``cudnn.benchmark`` on and channels-last tensors (as the
   extractor runs it), times each candidate and compares its features with strict fp32
   (TF32 off) on the same clips;
2. :func:`select` keeps the candidates within :data:`COSINE_MIN` (per feature) and
   :data:`REL_L2_MAX` (relative L2 of the batch), and takes the fastest; none within: fp32;
3. the measurements, the choice and why are written atomically to
   ``precision-<key>.json`` in the weights cache folder (:func:`violence_cli.weights.cache_dir`),
   keyed by GPU name, torch, CUDA and cuDNN versions; a file that does not parse or does
   not match the key is ignored and measured again.

The bounds are set against trained weights: with DeepMind's Kinetics-400 I3D, bf16 features
have cosine 0.99992-0.99994 and relative L2 error 1.16 % against fp32 (random weights: 0.47 %),
so REL_L2_MAX = 2 % admits bf16 on trained weights with margin, COSINE_MIN = 0.9999 likewise.
The measurement network is random (timing does not depend on the weights; the fidelity of
the random case is the easier one, hence bounds from the trained case).

Why bf16 may be slower on a GPU, to check there (``benchmarks/gpu_check.py`` measures each):
the 3-channel first convolution (no tensor-core kernel for cin = 3 in bf16 channels-last;
a padded 4- or 8-channel input would be), kernel selection with ``cudnn.benchmark`` off (the
heuristics' first pick), a fallback off cuDNN for 3-D bf16 convolutions (slow native
kernels), and layout copies between channels-last and contiguous around ops that lack a
channels-last bf16 kernel.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import atomic
from ..precision import AUTO, BF16, FP16, FP32, TF32, check_precision, compute_dtype, matmul_flags, resolve_precision

CANDIDATES = (TF32, BF16, FP16)  # what auto chooses among on CUDA (fp32 when none is faithful)
COSINE_MIN = 0.9999  # per feature, against strict fp32
REL_L2_MAX = 0.02  # relative L2 error of the batch's features, against strict fp32
BATCH = 40  # I3D clips per forward: the extractor's default on CUDA
CACHE_SCHEMA = 1
CACHE_PREFIX = "precision-"

Measure = Callable[[str], Mapping[str, float]]  # precision -> {"clips_per_s", "cosine_min", "rel_l2"}


@dataclass
class PrecisionChoice:
    """What the feature networks run in, and why (``provenance`` goes into the JSON outputs)."""

    precision: str
    asked: str
    reason: str
    source: str = "asked"  # asked | rule | measured | cache
    measurements: dict[str, dict[str, float]] = field(default_factory=dict)
    cache_file: str | None = None

    def provenance(self) -> dict[str, Any]:
        return {
            "precision": self.precision,
            "asked": self.asked,
            "source": self.source,
            "reason": self.reason,
            "measurements": self.measurements,
            "bounds": {"cosine_min": COSINE_MIN, "rel_l2_max": REL_L2_MAX},
            "cache_file": self.cache_file,
        }


def faithful(m: Mapping[str, float]) -> bool:
    """Within the fidelity bounds (NaN or infinity is not)."""
    cos, rel = float(m.get("cosine_min", math.nan)), float(m.get("rel_l2", math.nan))
    return math.isfinite(cos) and math.isfinite(rel) and cos >= COSINE_MIN and rel <= REL_L2_MAX


def select(measurements: Mapping[str, Mapping[str, float]]) -> tuple[str, str]:
    """(precision, reason): the fastest of :data:`CANDIDATES` within the bounds, else fp32."""
    kept = [p for p in CANDIDATES if p in measurements and faithful(measurements[p])]

    def rate(p: str) -> str:
        return f"{measurements[p]['clips_per_s']:,.0f} clips/s"

    out = []
    for p in CANDIDATES:
        if p not in measurements:
            continue
        m = measurements[p]
        why = "" if faithful(m) else f", outside the bounds (cosine {m['cosine_min']:.6f}, rel L2 {m['rel_l2']:.4f})"
        out.append(f"{p} {rate(p)}{why}")
    if not kept:
        return FP32, "no candidate within the fidelity bounds: " + "; ".join(out)
    best = max(kept, key=lambda p: measurements[p]["clips_per_s"])
    return best, f"fastest within cosine >= {COSINE_MIN} and rel L2 <= {REL_L2_MAX} at batch {BATCH}: " + "; ".join(out)


def device_key(device: torch.device | str) -> dict[str, Any]:
    """What a measurement holds for: GPU model, torch, CUDA and cuDNN versions."""
    return {
        "schema": CACHE_SCHEMA,
        "gpu": torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "batch": BATCH,
    }


def cache_path(key: Mapping[str, Any], folder: Path) -> Path:
    digest = hashlib.sha256(json.dumps(dict(key), sort_keys=True).encode()).hexdigest()[:16]
    return folder / f"{CACHE_PREFIX}{digest}.json"


def read_cache(path: Path, key: Mapping[str, Any]) -> dict[str, Any] | None:
    """The cached choice for ``key``, or None when absent, unreadable, damaged or for another key."""
    try:
        if path.stat().st_size > 1_000_000:
            return None
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or doc.get("key") != dict(key):
        return None
    precision, reason, measured = doc.get("precision"), doc.get("reason"), doc.get("measurements")
    if precision not in (FP32, *CANDIDATES) or not isinstance(reason, str) or not isinstance(measured, dict):
        return None
    for m in measured.values():
        figures = ("clips_per_s", "cosine_min", "rel_l2")
        if not isinstance(m, dict) or not all(isinstance(m.get(k), (int, float)) for k in figures):
            return None
    return doc


def choose_measured(key: Mapping[str, Any], measure: Measure, folder: Path | None) -> PrecisionChoice:
    """The cached choice for ``key`` in ``folder``, else measure every candidate, select and cache."""
    path = cache_path(key, folder) if folder is not None else None
    if path is not None:
        doc = read_cache(path, key)
        if doc is not None:
            return PrecisionChoice(doc["precision"], AUTO, doc["reason"], "cache", doc["measurements"], str(path))
    measured = {p: {k: float(v) for k, v in measure(p).items()} for p in CANDIDATES}
    precision, reason = select(measured)
    written = None
    if path is not None:
        doc = {
            "key": dict(key),
            "precision": precision,
            "reason": reason,
            "measurements": measured,
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic.write_text(path, json.dumps(doc, indent=1, sort_keys=True) + "\n")
            written = str(path)
        except OSError as exc:  # a read-only cache: measured again next time
            reason += f" (not cached: {exc.strerror or exc})"
    return PrecisionChoice(precision, AUTO, reason, "measured", measured, written)


def _cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a.double(), b.double()
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-300)


@torch.inference_mode()
def measure_i3d(device: torch.device, batch: int = BATCH, seconds: float = 0.5) -> Measure:
    """A :data:`Measure` on ``device``: I3D (fixed random initialisation, batch norm folded,
    channels-last, ``cudnn.benchmark`` on) timed at ``batch`` clips, features compared with
    strict fp32 on the same clips."""
    from .i3d import InceptionI3d

    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    base = InceptionI3d().eval().requires_grad_(False)
    for module in base.modules():  # batch norm statistics that are not the identity
        if isinstance(module, torch.nn.BatchNorm3d):
            module.running_mean.uniform_(-0.1, 0.1, generator=gen)
            module.running_var.uniform_(0.5, 2.0, generator=gen)
    base = base.to(device)
    clips = (torch.rand(batch, 3, 16, 224, 224, generator=gen) * 2 - 1).to(device)
    clips = clips.contiguous(memory_format=torch.channels_last_3d)
    benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True

    def network(precision: str) -> InceptionI3d:
        import copy

        net = copy.deepcopy(base).use_channels_last()
        return net.fuse_bn(True, dtype=compute_dtype(precision))

    try:
        with matmul_flags(FP32, device):
            reference = network(FP32)(clips).float()
    finally:
        torch.backends.cudnn.benchmark = benchmark

    def measure(precision: str) -> dict[str, float]:
        net = network(precision)
        saved = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = True
        try:
            with matmul_flags(precision, device):
                for _ in range(2):  # autotuning, then warm
                    got = net(clips).float()
                torch.cuda.synchronize(device)
                times = []
                start = time.perf_counter()
                while len(times) < 3 or (time.perf_counter() - start < seconds and len(times) < 20):
                    t = time.perf_counter()
                    net(clips)
                    torch.cuda.synchronize(device)
                    times.append(time.perf_counter() - t)
        finally:
            torch.backends.cudnn.benchmark = saved
        times.sort()
        rel = float((got - reference).norm() / reference.norm().clamp_min(1e-30))
        return {
            "clips_per_s": batch / times[len(times) // 2],
            "cosine_min": float(_cosines(got, reference).min()),
            "rel_l2": rel,
        }

    return measure


def choose(
    device: torch.device | str, *, cache_folder: Path | None = None, measure: Measure | None = None
) -> PrecisionChoice:
    """The measured choice for ``auto`` on CUDA ``device`` (cached; see the module docstring)."""
    from ..weights import cache_dir

    device = torch.device(device)
    folder = cache_folder if cache_folder is not None else cache_dir()
    return choose_measured(device_key(device), measure or measure_i3d(device), folder)


def choice_for(spec: str | None, device: torch.device | str, **options: Any) -> PrecisionChoice:
    """``spec`` on ``device`` -> a :class:`PrecisionChoice` (measured for ``auto`` on CUDA)."""
    asked = check_precision(spec)
    device = torch.device(device)
    if asked == AUTO and device.type == "cuda":
        return choose(device, **options)
    precision = resolve_precision(asked, device)
    if asked != AUTO:
        return PrecisionChoice(precision, asked, "asked")
    why = "this CPU has native bf16" if precision == BF16 else "this CPU has no native bf16 arithmetic"
    return PrecisionChoice(precision, asked, f"auto on the CPU: {why}", "rule")


def resolve(spec: str | None, device: torch.device | str) -> str:
    """:func:`violence_cli.precision.resolve_precision` with the measured choice on CUDA."""
    return choice_for(spec, device).precision


__all__ = [
    "BATCH",
    "CANDIDATES",
    "COSINE_MIN",
    "REL_L2_MAX",
    "PrecisionChoice",
    "choice_for",
    "choose",
    "choose_measured",
    "device_key",
    "faithful",
    "measure_i3d",
    "read_cache",
    "resolve",
    "select",
]

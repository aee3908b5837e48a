"""In what number format the feature networks run: one resolver for every command's ``--precision``.

``fp32`` is the reference. ``bf16`` runs I3D and VGGish with bfloat16 weights and
activations (accumulating in fp32; the features come back as float32): on CUDA, and on CPUs
with native bf16 arithmetic (x86 AVX512-BF16 or AMX-BF16), I3D then runs 2-3x faster, with
features within cosine 0.9999 of fp32 (docs/detect.md, "Precision"). ``auto`` picks ``bf16`` on CUDA
and on such CPUs, ``fp32`` elsewhere: CPUs without native bf16 would emulate it, slower than
fp32. MACIL-SD, tiny beside the feature networks, always runs in fp32.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import UsageError

if TYPE_CHECKING:  # pragma: no cover - torch is imported lazily: the CLI starts without it
    import torch

FP32, BF16, AUTO = "fp32", "bf16", "auto"
PRECISIONS = (AUTO, FP32, BF16)  # the choices --precision shows, in this order

# /proc/cpuinfo flags of native bf16 arithmetic that oneDNN uses for convolutions and matmuls
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(text: str) -> frozenset[str]:
    """The feature flags of the first processor in a ``/proc/cpuinfo`` text (x86 ``flags``)."""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def compute_dtype(precision: str) -> torch.dtype:
    """``fp32`` -> ``torch.float32``, ``bf16`` -> ``torch.bfloat16`` (a resolved precision)."""
    import torch

    return {FP32: torch.float32, BF16: torch.bfloat16}[precision]


def _device_type(device: torch.device | str) -> str:
    return str(device).split(":")[0].strip().lower()


def _torch_says_bf16() -> bool | None:
    """PyTorch's own CPU capability queries (private ones: ``None`` when this build lacks them).

    False without oneDNN (mkldnn): PyTorch's other CPU kernels compute bf16 by conversion.
    """
    import torch

    if not torch.backends.mkldnn.is_available():
        return False
    queries = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    answers = []
    for query in queries:
        if query is None:
            continue
        try:
            answers.append(bool(query()))
        except RuntimeError:
            continue
    return any(answers) if answers else None


@cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX), so bf16 pays on it.

    Asks PyTorch first (``torch.cpu._is_avx512_bf16_supported`` / ``_is_amx_tile_supported``,
    what its oneDNN kernels dispatch on), then the kernel's ``/proc/cpuinfo`` flags. Without
    either answer (non-Linux, non-x86) it says False: ``auto`` stays with fp32.
    """
    answer = _torch_says_bf16()
    if answer is not None:
        return answer
    try:
        return bool(cpu_flags(CPUINFO.read_text(errors="replace")) & BF16_CPU_FLAGS)
    except OSError:
        return False


def resolve_precision(spec: str | None, device: torch.device | str) -> str:
    """``auto``, ``fp32`` or ``bf16`` -> the precision to run in on ``device``: ``fp32`` or ``bf16``.

    ``auto``: ``bf16`` on CUDA and on CPUs with native bf16 (:func:`cpu_has_native_bf16`),
    else ``fp32``. An explicit choice is kept as asked (see :func:`precision_warning`).
    Raises :class:`~violence_cli.errors.UsageError` for anything else.
    """
    text = (spec or AUTO).strip().lower()
    if text not in PRECISIONS:
        raise UsageError(f"unknown precision {spec!r}", hint=f"use {', '.join(PRECISIONS)}")
    if text != AUTO:
        return text
    kind = _device_type(device)
    if kind == "cuda" or (kind == "cpu" and cpu_has_native_bf16()):
        return BF16
    return FP32


def precision_warning(precision: str, device: torch.device | str) -> str | None:
    """Why ``precision`` is a poor choice on ``device`` (bf16 on a CPU that would emulate it), or None."""
    if precision == BF16 and _device_type(device) == "cpu" and not cpu_has_native_bf16():
        return "bf16 on a CPU without native bf16 arithmetic (AVX512-BF16/AMX) is emulated: expect it slower than fp32"
    return None


__all__ = [
    "AUTO",
    "BF16",
    "FP32",
    "PRECISIONS",
    "compute_dtype",
    "cpu_flags",
    "cpu_has_native_bf16",
    "precision_warning",
    "resolve_precision",
]

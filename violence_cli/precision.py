"""In what number format the feature networks run: one resolver for every command's ``--precision``.

``fp32`` is the reference: true float32 arithmetic (on CUDA with TF32 turned off for
convolutions and matmuls). ``tf32`` (CUDA only; the same as fp32 on a CPU) keeps float32
tensors but lets the tensor cores multiply with 10-bit mantissas, as PyTorch does by default
for cuDNN convolutions. ``bf16`` and ``fp16`` run I3D and VGGish with 16-bit weights and
activations (accumulating in fp32; the features come back as float32). On CPUs with native
bf16 arithmetic (x86 AVX512-BF16 or AMX-BF16) bf16 makes I3D 2-3x faster, with features
within cosine 0.9999 of fp32 (docs/detect.md, "Precision").

``auto`` on a CPU picks ``bf16`` on such CPUs, ``fp32`` elsewhere (CPUs without native bf16
would emulate it, slower than fp32). On CUDA it is chosen by measurement, not assumed: on an
H200, I3D ran 1,245 clips/s with TF32 and 731 in bf16, so "16 bits is faster" does not hold
there. :mod:`violence_cli.features.autoprecision` times TF32, bf16 and fp16 once per GPU
model and torch/cuDNN version and keeps the fastest whose features stay within the fidelity
bounds; :func:`resolve_precision` takes that measurement as ``choose_cuda`` and, without
one, falls back to ``tf32``. MACIL-SD, tiny beside the feature networks, always runs in fp32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import UsageError

if TYPE_CHECKING:  # pragma: no cover - torch is imported lazily: the CLI starts without it
    import torch

FP32, TF32, BF16, FP16, AUTO = "fp32", "tf32", "bf16", "fp16", "auto"
PRECISIONS = (AUTO, FP32, TF32, BF16, FP16)  # the choices --precision shows, in this order
CUDA_FALLBACK = TF32  # auto on CUDA without a measurement (fastest measured on an H200, 2026-11)

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

    return {FP32: torch.float32, TF32: torch.float32, BF16: torch.bfloat16, FP16: torch.float16}[precision]


@contextlib.contextmanager
def matmul_flags(precision: str, device: torch.device | str) -> Iterator[None]:
    """Within: TF32 allowed for cuDNN convolutions and CUDA matmuls exactly when ``precision``
    is ``tf32`` (the flags are process-wide; restored after). A no-op off CUDA."""
    if _device_type(device) != "cuda":
        yield
        return
    import torch

    allow = precision == TF32
    conv, mm = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = allow
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = conv, mm


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


def check_precision(spec: str | None) -> str:
    """The precision named by ``spec`` (any case; None is ``auto``), or UsageError."""
    text = (spec or AUTO).strip().lower()
    if text not in PRECISIONS:
        raise UsageError(f"unknown precision {spec!r}", hint=f"use {', '.join(PRECISIONS)}")
    return text


def resolve_precision(
    spec: str | None,
    device: torch.device | str,
    choose_cuda: Callable[[torch.device | str], str] | None = None,
) -> str:
    """``auto`` or a precision -> the precision to run in on ``device`` (never ``auto``).

    ``auto``: on CUDA ``choose_cuda(device)`` (the measured choice,
    :func:`violence_cli.features.autoprecision.choose`), else :data:`CUDA_FALLBACK`; on a
    CPU ``bf16`` with native bf16 (:func:`cpu_has_native_bf16`), else ``fp32``. An explicit
    choice is kept as asked (see :func:`precision_warning`). Raises
    :class:`~violence_cli.errors.UsageError` for anything else.
    """
    text = check_precision(spec)
    if text != AUTO:
        return text
    kind = _device_type(device)
    if kind == "cuda":
        return choose_cuda(device) if choose_cuda is not None else CUDA_FALLBACK
    if kind == "cpu" and cpu_has_native_bf16():
        return BF16
    return FP32


def precision_warning(precision: str, device: torch.device | str) -> str | None:
    """Why ``precision`` is a poor choice on ``device`` (bf16 on a CPU that would emulate it), or None."""
    if _device_type(device) != "cpu":
        return None
    if precision == BF16 and not cpu_has_native_bf16():
        return "bf16 on a CPU without native bf16 arithmetic (AVX512-BF16/AMX) is emulated: expect it slower than fp32"
    if precision == FP16:
        return "fp16 on a CPU is emulated by most kernels: expect it slower than fp32"
    if precision == TF32:
        return "tf32 is a CUDA tensor-core mode: on a CPU it is plain fp32"
    return None


__all__ = [
    "AUTO",
    "BF16",
    "CUDA_FALLBACK",
    "FP16",
    "FP32",
    "PRECISIONS",
    "TF32",
    "check_precision",
    "compute_dtype",
    "matmul_flags",
    "cpu_flags",
    "cpu_has_native_bf16",
    "precision_warning",
    "resolve_precision",
]

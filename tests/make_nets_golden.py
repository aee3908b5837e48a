"""Regenerate tests/data/i3d_golden.npz and tests/data/vggish_golden.npz from the reference code.

The goldens are what the published PyTorch ports compute on the random weights of
tests/fakeweights.py (seed 0) and on seeded random inputs; tests/test_i3d.py and
tests/test_vggish.py check our modules against them. Nothing from the reference
repositories is kept in ours: pass checkouts of them (a folder holding pytorch_i3d.py, and
one holding torchvggish/vggish.py), e.g. from the bare mirrors:

    mkdir -p /tmp/i3d /tmp/vgg
    git -C /work/.mirror/piergiaj+pytorch-i3d/repo archive HEAD pytorch_i3d.py | tar -x -C /tmp/i3d
    git -C /work/.mirror/harritaylor+torchvggish/repo archive HEAD torchvggish | tar -x -C /tmp/vgg
    python tests/make_nets_golden.py --i3d-repo /tmp/i3d --vggish-repo /tmp/vgg

Rerun it whenever tests/fakeweights.py changes how it draws weights.
"""

from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"

# Seeded inputs, shared with the tests (they regenerate them the same way).
I3D_CLIP_SHAPE = (1, 3, 16, 224, 224)  # the feature size: one 1024-d vector
I3D_ODD_SHAPE = (1, 3, 10, 201, 225)  # odd sizes: SAME padding differs front/back; map 1x1x2
VGGISH_SHAPE = (3, 96, 64)
INPUT_SEED = 1


def i3d_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(INPUT_SEED)
    clip = torch.rand(I3D_CLIP_SHAPE, generator=gen) * 2 - 1
    odd = torch.rand(I3D_ODD_SHAPE, generator=gen) * 2 - 1
    return clip, odd


def vggish_inputs() -> torch.Tensor:
    gen = torch.Generator().manual_seed(INPUT_SEED)
    return torch.randn(VGGISH_SHAPE, generator=gen) * 2.0 - 3.0  # log-mel-like values


def pca_mid_inputs(pca: dict[str, torch.Tensor]) -> torch.Tensor:
    """(4, 128) embeddings whose PCA output is spread over (-1.9, 1.9), inside torchvggish's
    [-2, 2] quantisation range: the random network's own embeddings mostly clip to 0 or 255."""
    gen = torch.Generator().manual_seed(INPUT_SEED)
    target = torch.rand(4, 128, generator=gen, dtype=torch.float64) * 3.8 - 1.9  # (4, 128)
    vectors = pca["pca_eigen_vectors"].double()  # y = V (x - m)  =>  x = m + V^-1 y
    return (pca["pca_means"].double() + torch.linalg.solve(vectors, target.T).T).float()


def _i3d_golden(repo: Path) -> dict[str, np.ndarray]:
    sys.path.insert(0, str(repo))
    from fakeweights import random_i3d_state_dict
    from pytorch_i3d import (
        InceptionI3d as Reference,  # the published code, outside our repo
    )

    net = Reference(400, in_channels=3)
    net.load_state_dict(random_i3d_state_dict(0), strict=True)
    net.eval()
    clip, odd = i3d_inputs()
    with torch.no_grad():
        return {
            "features": net.extract_features(clip).flatten(1).numpy(),  # (1, 1024)
            "logits": net(clip).numpy(),  # (1, 400, 1)
            "odd_map": net.extract_features(odd).numpy(),  # (1, 1024, 1, 1, 2)
        }


def _vggish_golden(repo: Path) -> dict[str, np.ndarray]:
    # torchvggish imports its audio I/O at module level; the network needs neither.
    for name in ("soundfile", "resampy"):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.path.insert(0, str(repo))
    from fakeweights import random_vggish_pca, random_vggish_state_dict
    from torchvggish.vggish import VGG, Postprocessor, make_layers

    net = VGG(make_layers())
    net.load_state_dict(random_vggish_state_dict(0), strict=True)
    net.eval()
    pca = random_vggish_pca(0)
    post = Postprocessor()
    post.load_state_dict({"pca_eigen_vectors": pca["pca_eigen_vectors"], "pca_means": pca["pca_means"].reshape(-1, 1)})
    with torch.no_grad():
        embeddings = net(vggish_inputs()[:, None])  # (3, 128)
        mid = pca_mid_inputs(pca)
        return {
            "embeddings": embeddings.numpy(),
            "pca_quantized": post(embeddings).numpy(),
            "pca_mid_quantized": post(mid).numpy(),  # the inputs: pca_mid_inputs(), remade by the test
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--i3d-repo", type=Path, help="folder holding piergiaj's pytorch_i3d.py")
    parser.add_argument("--vggish-repo", type=Path, help="folder holding torchvggish/vggish.py")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    DATA.mkdir(exist_ok=True)
    if args.i3d_repo:
        np.savez_compressed(DATA / "i3d_golden.npz", **_i3d_golden(args.i3d_repo))
        print("wrote", DATA / "i3d_golden.npz")
    if args.vggish_repo:
        np.savez_compressed(DATA / "vggish_golden.npz", **_vggish_golden(args.vggish_repo))
        print("wrote", DATA / "vggish_golden.npz")


if __name__ == "__main__":
    main()

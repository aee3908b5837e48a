"""VGGish network and PCA post-processing: published layout and torchvggish's semantics.

tests/data/vggish_golden.npz holds torchvggish's own VGG and Postprocessor outputs on the
random weights of fakeweights (seed 0); tests/make_nets_golden.py regenerates it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fakeweights import random_vggish_pca, random_vggish_state_dict
from make_nets_golden import pca_mid_inputs, vggish_inputs

from violence_cli.errors import WeightsError
from violence_cli.features import load_vggish, load_vggish_pca
from violence_cli.features.vggish import VGGish, VGGishPCA

GOLDEN = Path(__file__).parent / "data" / "vggish_golden.npz"
CONV_KEYS = ("features.0", "features.3", "features.6", "features.8", "features.11", "features.13")
LINEAR_KEYS = ("embeddings.0", "embeddings.2", "embeddings.4")


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return random_vggish_state_dict(0)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, state: dict[str, torch.Tensor]) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("vggish")
    paths = {"vggish": folder / "vggish-10086976.pth", "pca": folder / "vggish_pca_params-970ea276.pth"}
    torch.save(state, paths["vggish"])
    torch.save(random_vggish_pca(0), paths["pca"])
    return paths


@pytest.fixture(scope="module")
def model(files: dict[str, Path]) -> VGGish:
    return load_vggish(files["vggish"])


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    return dict(np.load(GOLDEN))


def test_published_layout() -> None:
    shapes = {k: tuple(v.shape) for k, v in VGGish().state_dict().items()}
    assert set(shapes) == {f"{k}.{p}" for k in CONV_KEYS + LINEAR_KEYS for p in ("weight", "bias")}
    assert shapes["features.0.weight"] == (64, 1, 3, 3) and shapes["features.13.weight"] == (512, 512, 3, 3)
    assert shapes["embeddings.0.weight"] == (4096, 12288) and shapes["embeddings.4.weight"] == (128, 4096)
    assert sum(np.prod(s) for s in shapes.values()) // 10**5 == 721  # 72.1 M parameters


def test_strict_load_roundtrip(model: VGGish, state: dict[str, torch.Tensor]) -> None:
    assert not model.training
    loaded = model.state_dict()
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)


def test_wrong_files_rejected(tmp_path: Path, state: dict[str, torch.Tensor]) -> None:
    bad = {k: v for k, v in state.items() if k.startswith("features")}  # embeddings missing
    torch.save(bad, tmp_path / "convs_only.pth")
    bad = dict(state, **{"embeddings.4.weight": torch.zeros(256, 4096)})  # wrong width
    torch.save(bad, tmp_path / "wide.pth")
    for path, word in ((tmp_path / "convs_only.pth", "embeddings.0.weight"), (tmp_path / "wide.pth", "embeddings.4.weight")):
        with pytest.raises(WeightsError) as err:
            load_vggish(path)
        assert str(path) in str(err.value) and word in str(err.value) and "\n" not in str(err.value)


def test_embeddings_match_torchvggish(model: VGGish, state: dict[str, torch.Tensor], golden) -> None:
    examples = vggish_inputs()  # (3, 96, 64)
    plain = VGGish().eval()
    plain.load_state_dict(state)
    with torch.inference_mode():
        fast = model(examples)
        slow = plain(examples)
        four_d = plain(examples[:, None])  # (B, 1, 96, 64) as torchvggish feeds it
    ref = torch.as_tensor(golden["embeddings"])
    assert fast.shape == (3, 128)
    assert torch.equal(slow, four_d)
    tol = 1e-4 * ref.abs().max().item()
    assert (slow - ref).abs().max() <= tol and (fast - ref).abs().max() <= tol
    assert (fast >= 0).all() and torch.isfinite(fast).all() and (fast > 0).any()


def test_flatten_is_in_tensorflow_order(model: VGGish, state: dict[str, torch.Tensor]) -> None:
    """(N, 512, 6, 4) -> (N, 6, 4, 512) before flattening: the head computed here by hand."""
    net = model
    x = vggish_inputs()[:1]

    def head(flat: torch.Tensor) -> torch.Tensor:
        for key in LINEAR_KEYS:
            flat = F.relu(F.linear(flat, state[f"{key}.weight"], state[f"{key}.bias"]))
        return flat

    with torch.inference_mode():
        conv = net.features(x[:, None])
        assert conv.shape == (1, 512, 6, 4)
        out = net(x)
        torch.testing.assert_close(out, head(conv.permute(0, 2, 3, 1).reshape(1, -1)))
        assert not torch.allclose(out, head(conv.reshape(1, -1)))  # channel-major order differs


def test_pca_matches_torchvggish(files: dict[str, Path], golden) -> None:
    pca = load_vggish_pca(files["pca"])
    embeddings = torch.as_tensor(golden["embeddings"])
    quantized = pca(embeddings)
    assert quantized.shape == (3, 128)
    assert torch.equal(quantized, torch.as_tensor(golden["pca_quantized"]))
    assert quantized.min() >= 0 and quantized.max() <= 255 and torch.equal(quantized, quantized.round())


def test_pca_matches_torchvggish_inside_the_clipping_range(files: dict[str, Path], golden) -> None:
    """The network's embeddings above mostly clip to 0 or 255; these land inside [-2, 2], so
    the whitening, the offset, the scale and the rounding are what is compared."""
    pca = load_vggish_pca(files["pca"])
    quantized = pca(pca_mid_inputs(random_vggish_pca(0)))  # (4, 128)
    clipped = ((quantized == 0) | (quantized == 255)).float().mean()
    assert clipped < 0.01 and len(quantized.unique()) > 200, "not mid-range: the clipping would hide a bug"
    assert torch.equal(quantized, torch.as_tensor(golden["pca_mid_quantized"]))


def test_pca_unquantized_is_the_whitening(files: dict[str, Path]) -> None:
    params = random_vggish_pca(0)
    pca = load_vggish_pca(files["pca"], quantize=False)
    x = torch.rand(4, 128, generator=torch.Generator().manual_seed(2))
    expected = (params["pca_eigen_vectors"] @ (x - params["pca_means"]).T).T
    torch.testing.assert_close(pca(x), expected)
    column_means = VGGishPCA.from_params({**params, "pca_means": params["pca_means"].reshape(-1, 1)}, quantize=False)
    torch.testing.assert_close(column_means(x), expected)


def test_pca_accepts_numpy_arrays(tmp_path: Path) -> None:
    """torchvggish's published PCA file holds numpy arrays (float64), not tensors."""
    params = {k: v.double().numpy() for k, v in random_vggish_pca(0).items()}
    torch.save(params, tmp_path / "pca_numpy.pth")
    pca = load_vggish_pca(tmp_path / "pca_numpy.pth")
    assert pca.pca_eigen_vectors.dtype == torch.float32
    assert torch.allclose(pca.pca_means.flatten(), torch.as_tensor(params["pca_means"]).float())


def test_pca_rejects_other_files(files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not a VGGish PCA file"):
        load_vggish_pca(files["vggish"])
    torch.save({"pca_eigen_vectors": torch.zeros(64, 64), "pca_means": torch.zeros(64)}, tmp_path / "small.pth")
    with pytest.raises(WeightsError, match="pca_eigen_vectors"):
        load_vggish_pca(tmp_path / "small.pth")

"""I3D RGB network: published layout, reference semantics, inference speed-ups that change nothing.

The golden values in tests/data/i3d_golden.npz are piergiaj's own pytorch_i3d.py run on the
random weights of fakeweights.random_i3d_state_dict(0); tests/make_nets_golden.py
regenerates them from a checkout of that repository.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fakeweights import random_i3d_state_dict
from make_nets_golden import i3d_inputs

from violence_cli.errors import UsageError, WeightsError
from violence_cli.features import load_i3d, resolve_device
from violence_cli.features.i3d import (
    FEATURE_DIM,
    InceptionI3d,
    Unit3D,
    max_pool_same,
    same_padding,
)

GOLDEN = Path(__file__).parent / "data" / "i3d_golden.npz"


@pytest.fixture(scope="module")
def i3d_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("i3d") / "rgb_imagenet.pt"
    torch.save(random_i3d_state_dict(0), path)
    return path


@pytest.fixture(scope="module")
def plain_model() -> InceptionI3d:
    """The straightforward path: unfused batch norm, contiguous tensors."""
    model = InceptionI3d()
    model.load_state_dict(random_i3d_state_dict(0), strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def inputs() -> tuple[torch.Tensor, torch.Tensor]:
    return i3d_inputs()


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    return dict(np.load(GOLDEN))


def _close(ours: torch.Tensor, ref: np.ndarray | torch.Tensor, rtol: float = 1e-4) -> None:
    ref = torch.as_tensor(ref)
    assert ours.shape == ref.shape
    scale = ref.abs().max().item()
    assert (ours - ref).abs().max().item() <= rtol * scale, "differs from the reference"


def test_published_layout_without_num_batches_tracked() -> None:
    sd = InceptionI3d().state_dict()
    assert len(sd) == 287  # 57 Unit3D: 56 with conv + 4 BN tensors, plus logits weight + bias
    assert sd["logits.conv3d.weight"].shape == (400, 1024, 1, 1, 1)
    assert sd["Conv3d_1a_7x7.conv3d.weight"].shape == (64, 3, 7, 7, 7)
    assert sd["Mixed_5c.b3b.bn.running_var"].shape == (128,)
    assert not any(k.endswith("num_batches_tracked") or "fused" in k for k in sd)
    assert sum(t.numel() for k, t in sd.items() if not k.startswith("logits")) // 10**5 == 123  # 12.3 M + logits


def test_load_i3d_strict_roundtrip(i3d_file: Path) -> None:
    model = load_i3d(i3d_file)
    assert not model.training and model.fused and model.channels_last
    saved = torch.load(i3d_file, weights_only=True)
    state = model.state_dict()
    assert state.keys() == saved.keys()
    assert all(torch.equal(state[k], saved[k]) for k in saved)


def test_load_accepts_num_batches_tracked(tmp_path: Path) -> None:
    """Files re-saved from a modern nn.BatchNorm3d carry num_batches_tracked: harmless."""
    sd = random_i3d_state_dict(0)
    sd["Conv3d_1a_7x7.bn.num_batches_tracked"] = torch.tensor(0)
    torch.save(sd, tmp_path / "resaved.pt")
    load_i3d(tmp_path / "resaved.pt", fuse_bn=False, channels_last=False)


def _one_line_error(path: Path) -> str:
    with pytest.raises(WeightsError) as err:
        load_i3d(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    return message


def test_wrong_files_rejected(tmp_path: Path) -> None:
    torch.save({"features.0.weight": torch.zeros(64, 1, 3, 3), "features.0.bias": torch.zeros(64)}, tmp_path / "vggish.pth")
    assert "missing" in _one_line_error(tmp_path / "vggish.pth")

    sd = random_i3d_state_dict(0)
    sd["logits.conv3d.weight"] = torch.zeros(157, 1024, 1, 1, 1)  # a Charades head
    torch.save(sd, tmp_path / "charades.pt")
    assert "logits.conv3d.weight" in _one_line_error(tmp_path / "charades.pt")

    sd = random_i3d_state_dict(0)
    del sd["Mixed_4d.b2b.bn.running_mean"]
    sd["Mixed_4d.extra.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "edited.pt")
    message = _one_line_error(tmp_path / "edited.pt")
    assert "Mixed_4d.b2b.bn.running_mean" in message and "Mixed_4d.extra.weight" in message

    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    _one_line_error(tmp_path / "junk.pt")


@pytest.mark.parametrize("size", range(1, 12))
@pytest.mark.parametrize(("kernel", "stride"), [(1, 1), (3, 1), (3, 2), (7, 2), (2, 2), (3, 3), (1, 2)])
def test_same_padding_is_tensorflows(size: int, kernel: int, stride: int) -> None:
    """TF: out = ceil(size / stride), total = max((out - 1) * stride + kernel - size, 0), front = total // 2."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    assert same_padding(size, kernel, stride) == (total // 2, total - total // 2)


def _explicit_pad(x: torch.Tensor, kernel: tuple[int, ...], stride: tuple[int, ...]) -> torch.Tensor:
    pads: list[int] = []
    for n, k, s in reversed(list(zip(x.shape[2:], kernel, stride))):
        pads += list(same_padding(n, k, s))
    return F.pad(x, pads)


@pytest.mark.parametrize("shape", [(2, 3, 7, 11, 13), (1, 4, 8, 10, 9), (1, 2, 1, 5, 6), (1, 3, 5, 2, 3)])
@pytest.mark.parametrize(("kernel", "stride"), [((1, 3, 3), (1, 2, 2)), ((3, 3, 3), (2, 2, 2)), ((2, 2, 2), (2, 2, 2)), ((3, 3, 3), (1, 1, 1))])
def test_max_pool_same_on_odd_sizes(shape: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...]) -> None:
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))  # >= 0, as after ReLU
    expected = F.max_pool3d(_explicit_pad(x, kernel, stride), kernel, stride)
    assert torch.equal(max_pool_same(x, kernel, stride), expected)


@pytest.mark.parametrize("shape", [(1, 3, 9, 15, 14), (2, 3, 8, 16, 16), (1, 3, 1, 7, 5)])
@pytest.mark.parametrize(("kernel", "stride"), [((7, 7, 7), (2, 2, 2)), ((3, 3, 3), (1, 1, 1)), ((1, 1, 1), (1, 1, 1))])
def test_unit3d_same_padding_on_odd_sizes(shape: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...]) -> None:
    gen = torch.Generator().manual_seed(0)
    unit = Unit3D(3, 5, kernel, stride).eval()
    for t in unit.bn.buffers():
        t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
    x = torch.randn(shape, generator=gen)
    with torch.no_grad():
        conv = F.conv3d(_explicit_pad(x, kernel, stride), unit.conv3d.weight, None, stride)
        bn = unit.bn
        expected = F.relu((conv - bn.running_mean.view(-1, 1, 1, 1)) / torch.sqrt(bn.running_var.view(-1, 1, 1, 1) + 1e-3) * bn.weight.view(-1, 1, 1, 1) + bn.bias.view(-1, 1, 1, 1))
        _close(unit(x), expected, 1e-5)
        unit.fuse()
        _close(unit(x), expected, 1e-5)  # one oneDNN conv+ReLU call on CPUs
    with torch.enable_grad():
        _close(unit(x).detach(), expected, 1e-5)  # the plain conv, then ReLU


def test_fused_weights_follow_a_later_load() -> None:
    model = InceptionI3d().eval().fuse_bn()
    model.load_state_dict(random_i3d_state_dict(3))
    unit = model.Mixed_4c.b1b
    scale, _ = unit.bn.scale_shift()
    assert torch.allclose(unit.fused_weight, unit.conv3d.weight * scale.view(-1, 1, 1, 1, 1))
    model.fuse_bn(False)
    assert unit.fused_weight is None


def test_features_match_the_published_code(plain_model: InceptionI3d, i3d_file: Path, inputs, golden) -> None:
    """Plain path and the fast path (fused BN, channels-last) both equal piergiaj's output."""
    clip, _ = inputs
    fast = load_i3d(i3d_file)
    with torch.inference_mode():
        plain = plain_model(clip)
        logits = fast.classify(clip)
        quick = fast(clip)
    assert plain.shape == (1, FEATURE_DIM) and torch.isfinite(quick).all()
    _close(plain, golden["features"])
    _close(quick, golden["features"])
    _close(logits, golden["logits"])


def test_odd_sized_clips_match_the_published_code(i3d_file: Path, inputs, golden) -> None:
    _, odd = inputs  # 10x201x225: SAME padding uneven on every axis, map 1x1x2
    model = load_i3d(i3d_file)
    with torch.inference_mode():
        _close(model.forward_features(odd), golden["odd_map"])
        with pytest.raises(ValueError, match="16x224x224"):
            model(odd)


def test_bf16_autocast_runs_and_stays_close(i3d_file: Path, inputs, golden) -> None:
    """The reduced-precision path used on GPUs (checked here on the CPU)."""
    model = load_i3d(i3d_file)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(inputs[0]).float()
    ref = torch.as_tensor(golden["features"])
    assert F.cosine_similarity(out, ref).item() > 0.99


def test_devices() -> None:
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(UsageError):
        resolve_device("tpu:7")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError):
            resolve_device("cuda")

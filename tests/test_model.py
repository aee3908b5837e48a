"""The MACIL-SD network: equal to the published code, strict loading, linear memory.

Golden numbers: ``tests/data/macil_golden.npz`` holds seeded random inputs and the outputs
of the PUBLISHED MACIL-SD code (github JustinYuu/MACIL_SD, ``avce_network.py`` and
``Transformer.py`` run unchanged on CPU apart from removing ``.cuda()``) with the published
checkpoint. Regenerate with ``python tests/data/make_macil_golden.py PATH/TO/MACIL_SD``.

Two regimes: features at the scale of real ones, where the published network is sure (av
probabilities 1e-4 to 0.03), and ``mid_*`` cases around 0.5, where the sigmoid is steepest.
Logits are compared absolutely, probabilities relatively (an absolute 1e-5 at 1e-4 is 10 %).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from violence_cli.errors import WeightsError
from violence_cli.model import (
    MacilDims,
    MacilSD,
    VisualOnlyNet,
    expected_shapes,
    load_model,
    mil_bag_logits,
    score_snippets,
)

GOLDEN = Path(__file__).parent / "data" / "macil_golden.npz"
TOL = 1e-5  # logits and representations, absolute
RTOL = 1e-5  # probabilities, relative


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def published(macil_checkpoint: Path) -> MacilSD:
    return load_model(macil_checkpoint)


def _inputs(golden: dict[str, np.ndarray], case: str) -> tuple[torch.Tensor, torch.Tensor]:
    visual = torch.from_numpy(golden[f"{case}/visual"].astype(np.float32))  # (B, T, 1024)
    audio = torch.from_numpy(golden[f"{case}/audio"].astype(np.float32))  # (B, T, 128)
    return visual, audio


def test_golden_cases_cover_t1_and_five_crops(golden) -> None:
    shapes = {tuple(golden[f"{c}/visual"].shape[:2]) for c in golden["cases"]}
    assert (5, 1) in shapes and any(b == 5 and t > 1 for b, t in shapes) and any(b == 1 for b, _ in shapes)


def test_mid_cases_score_around_one_half(published: MacilSD, golden) -> None:
    """Computed afresh, not read from the goldens: most snippets of the mid cases land in
    0.3-0.7 (audio and visual heads too) and the scores vary along each video."""
    mid = [c for c in golden["cases"] if c.startswith("mid_")]
    assert len(mid) == 4
    for case in mid:
        visual, audio = _inputs(golden, case)
        with torch.no_grad():
            out = published(visual, audio)
        for logits in (out.av_logits, out.audio_logits, out.visual_logits):
            prob = torch.sigmoid(logits)
            assert ((prob > 0.3) & (prob < 0.7)).float().mean() >= 0.5, case
        if visual.shape[1] > 1:
            assert torch.sigmoid(out.av_logits).std(dim=1).min() > 0.05, case


def test_published_checkpoint_loads_strictly(published: MacilSD, macil_checkpoint: Path) -> None:
    state = torch.load(macil_checkpoint, map_location="cpu", weights_only=True)
    assert len(state) == 38
    assert expected_shapes(published) == {k: tuple(v.shape) for k, v in state.items()}
    assert not published.training
    assert sum(p.numel() for p in published.parameters()) == 347_009


def test_equals_published_code(published: MacilSD, golden) -> None:
    for case in golden["cases"]:
        visual, audio = _inputs(golden, case)
        with torch.no_grad():
            out = published(visual, audio)
        np.testing.assert_allclose(out.av_logits.numpy(), golden[f"{case}/av_logits"], atol=TOL, rtol=0)
        av = 1 / (1 + np.exp(-golden[f"{case}/av_logits"].astype(np.float64)))
        np.testing.assert_allclose(torch.sigmoid(out.av_logits).numpy(), av, rtol=RTOL, atol=0)
        np.testing.assert_allclose(torch.sigmoid(out.audio_logits).numpy(), golden[f"{case}/audio_prob"], rtol=RTOL, atol=0)
        np.testing.assert_allclose(torch.sigmoid(out.visual_logits).numpy(), golden[f"{case}/visual_prob"], rtol=RTOL, atol=0)
        np.testing.assert_allclose(out.visual_repr.numpy(), golden[f"{case}/visual_repr"], atol=TOL, rtol=0)
        np.testing.assert_allclose(out.audio_repr.numpy(), golden[f"{case}/audio_repr"], atol=TOL, rtol=0)
        # our outputs are not trivially constant (computed afresh: the goldens cannot vouch for that)
        assert out.av_logits.std() > 0.05 or out.av_logits.numel() < 6, case


def test_score_snippets_is_the_crop_mean_of_published_probabilities(published: MacilSD, golden) -> None:
    checked = 0
    for case in golden["cases"]:
        visual, audio = _inputs(golden, case)
        if not torch.equal(audio, audio[:1].expand_as(audio)):
            continue  # score_snippets pairs every crop with one audio track
        checked += 1
        scores = score_snippets(published, visual.permute(1, 0, 2).numpy(), audio[0].numpy())
        av = 1 / (1 + np.exp(-golden[f"{case}/av_logits"].astype(np.float64)))
        np.testing.assert_allclose(scores.av, av.mean(0), rtol=RTOL, atol=0)
        np.testing.assert_allclose(scores.audio, golden[f"{case}/audio_prob"].mean(0), rtol=RTOL, atol=0)
        np.testing.assert_allclose(scores.visual, golden[f"{case}/visual_prob"].mean(0), rtol=RTOL, atol=0)
    assert checked >= 6


def test_visual_only_net_equals_published(macil_checkpoint: Path, golden) -> None:
    state = torch.load(macil_checkpoint, map_location="cpu", weights_only=True)
    teacher_state = {k: v for k, v in state.items() if not k.startswith(("fc_a.", "att_mmil."))}
    teacher_state["fc.weight"], teacher_state["fc.bias"] = state["att_mmil.fc.weight"], state["att_mmil.fc.bias"]
    net = VisualOnlyNet()
    net.load_state_dict(teacher_state, strict=True)
    net.eval()
    for case in golden["cases"]:
        visual, _ = _inputs(golden, case)
        with torch.no_grad():
            logits = net(visual)
        np.testing.assert_allclose(logits.numpy(), golden[f"{case}/teacher_logits"], atol=TOL, rtol=0)


def test_mil_pooling_equals_published(golden) -> None:
    logits = torch.from_numpy(golden["mil/logits"])
    lengths = torch.from_numpy(golden["mil/lengths"])
    bag = torch.sigmoid(mil_bag_logits(logits, lengths))
    np.testing.assert_allclose(bag.numpy(), golden["mil/bag_prob"], atol=1e-6, rtol=0)


def test_mil_pooling_ignores_padding_and_has_gradients() -> None:
    logits = torch.randn(3, 40, requires_grad=True)
    lengths = torch.tensor([40, 17, 1])
    padded = logits.detach().clone()
    padded[1, 17:] = 1e6
    padded[2, 1:] = 1e6
    bag = mil_bag_logits(logits, lengths)
    np.testing.assert_allclose(mil_bag_logits(padded, lengths).numpy(), bag.detach().numpy(), rtol=1e-6)
    for row, n in enumerate([40, 17, 1]):
        k = n // 16 + 1
        want = logits[row, :n].detach().topk(k).values.mean()
        assert torch.isclose(bag[row], want)
    bag.sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    assert (logits.grad[2, 1:] == 0).all()


@pytest.mark.parametrize("dims", [MacilDims(), MacilDims(visual_dim=64, audio_dim=32, hidden=48, heads=3, ffn=80)])
@pytest.mark.parametrize("t", [1, 13])
def test_random_weights_forward_shapes_and_finite(dims: MacilDims, t: int) -> None:
    torch.manual_seed(t)
    model = MacilSD(dims)
    visual, audio = torch.randn(2, t, dims.visual_dim), torch.randn(2, t, dims.audio_dim)
    out = model(visual, audio)  # training mode: dropout active
    for logits in (out.av_logits, out.audio_logits, out.visual_logits):
        assert logits.shape == (2, t) and torch.isfinite(logits).all()
    assert out.visual_repr.shape == out.audio_repr.shape == (2, t, dims.hidden)
    mil_bag_logits(out.av_logits, torch.tensor([t, max(1, t - 3)])).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    teacher = VisualOnlyNet(dims)
    assert teacher(visual).shape == (2, t)
    model.eval()
    scores = score_snippets(model, visual[0].numpy(), audio[0].numpy())  # (T, D): one crop
    assert scores.av.shape == scores.audio.shape == scores.visual.shape == (t,)
    assert scores.av.dtype == np.float32 and ((scores.av > 0) & (scores.av < 1)).all()


def test_teacher_shares_the_audio_visual_layout() -> None:
    """EMA self-distillation copies parameters by name: the shared ones must line up."""
    av, v = MacilSD().state_dict(), VisualOnlyNet().state_dict()
    shared = set(av) & set(v)
    assert {k for k in av if k not in shared} == {"fc_a.weight", "fc_a.bias", "att_mmil.fc.weight", "att_mmil.fc.bias"}
    assert set(v) - shared == {"fc.weight", "fc.bias"}


def test_module_prefix_loads(tmp_path: Path, macil_checkpoint: Path, published: MacilSD) -> None:
    state = torch.load(macil_checkpoint, map_location="cpu", weights_only=True)
    wrapped = tmp_path / "dp.pkl"
    torch.save({f"module.{k}": v for k, v in state.items()}, wrapped)
    model = load_model(wrapped)
    visual, audio = torch.rand(1, 9, 1024), torch.rand(1, 9, 128)
    with torch.no_grad():
        assert torch.equal(model(visual, audio).av_logits, published(visual, audio).av_logits)


def test_our_checkpoint_round_trips(tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = MacilSD()
    path = tmp_path / "ours.pt"
    torch.save(model.state_dict(), path)
    loaded = load_model(path)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def _one_line_error(path: Path) -> WeightsError:
    with pytest.raises(WeightsError) as info:
        load_model(path)
    assert str(path) in info.value.message and "\n" not in info.value.message
    return info.value


def test_bad_checkpoint_files(tmp_path: Path, macil_checkpoint: Path) -> None:
    text = tmp_path / "notes.pkl"
    text.write_text("not a checkpoint\n")
    _one_line_error(text)

    tensor_only = tmp_path / "tensor.pkl"
    torch.save(torch.zeros(3), tensor_only)
    _one_line_error(tensor_only)

    state = torch.load(macil_checkpoint, map_location="cpu", weights_only=True)
    missing = tmp_path / "missing.pkl"
    torch.save({k: v for k, v in state.items() if not k.startswith("multiheadattn.")}, missing)
    assert "missing" in _one_line_error(missing).message

    wrong = tmp_path / "wrong.pkl"
    torch.save({**state, "fc_v.weight": torch.zeros(128, 2048)}, wrong)
    assert "fc_v.weight" in _one_line_error(wrong).message

    _one_line_error(tmp_path / "absent.pkl")


def test_checkpoint_cannot_run_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    path = tmp_path / "evil.pkl"
    torch.save({"fc_v.weight": Evil()}, path)
    _one_line_error(path)
    assert not marker.exists()


def test_attention_goes_through_sdpa(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = F.scaled_dot_product_attention

    def spy(*args, **kwargs):
        calls.append(kwargs.get("dropout_p", 0.0))
        return real(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    model = MacilSD().eval()
    with torch.no_grad():
        model(torch.rand(1, 5, 1024), torch.rand(1, 5, 128))
    assert calls == [0.0, 0.0]  # the shared layer twice; no dropout at inference
    model.train()
    model(torch.rand(1, 5, 1024), torch.rand(1, 5, 128))
    assert calls[2:] == [0.1, 0.1]


def test_three_hour_video_runs_in_bounded_memory() -> None:
    """T = 16,200 snippets: a (T, T) attention matrix per head would need 4.2 GB."""
    script = textwrap.dedent(
        """
        import torch
        from violence_cli.model import MacilSD
        def peak_mib():  # this process's own peak RSS: VmHWM (ru_maxrss also counts the parent's, over fork + exec)
            return next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM:")) / 1024
        torch.manual_seed(0)
        model = MacilSD().eval()
        t = 16200
        visual, audio = torch.rand(1, t, 1024), torch.rand(1, t, 128)
        before = peak_mib()
        with torch.inference_mode():
            out = model(visual, audio)
        grown = peak_mib() - before
        assert out.av_logits.shape == (1, t) and torch.isfinite(out.av_logits).all()
        print(grown)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    grown_mib = float(proc.stdout.strip())
    assert grown_mib < 1024, f"peak memory grew by {grown_mib:.0f} MiB"

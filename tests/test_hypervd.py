"""The HyperVD network: equal to the published code, strict loading, bounded memory.

Golden numbers: ``tests/data/hypervd_golden.npz`` holds seeded random inputs and the outputs
of the PUBLISHED HyperVD code (github xiaogangpeng/HyperVD, ``model.py`` and its packages run
on CPU in float64, geoopt and scipy installed for it) with the published checkpoint.
Regenerate with ``python tests/data/make_hypervd_golden.py PATH/TO/HyperVD``.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from violence_cli import weights
from violence_cli.errors import WeightsError
from violence_cli.hypervd import HyperVD, hypervd_probabilities, load_hypervd
from violence_cli.model import expected_shapes
from violence_cli.protocol import HYPERVD_WEIGHTS

GOLDEN = Path(__file__).parent / "data" / "hypervd_golden.npz"
SCORE_TOL = 1e-5  # on scores (sigmoid of the logit, mean over crops)
LOGIT_TOL = 1e-4  # on logits, which is what counts where the scores saturate (the relu scale)


@pytest.fixture(scope="session")
def hypervd_checkpoint(shared_dir: Path) -> Path:
    return shared_dir / "weights" / "hypervd.pkl"


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def published(hypervd_checkpoint: Path) -> HyperVD:
    return load_hypervd(hypervd_checkpoint)


def _inputs(golden: dict[str, np.ndarray], case: str) -> tuple[torch.Tensor, torch.Tensor]:
    visual = torch.from_numpy(golden[f"{case}/visual"].astype(np.float64))  # (C, T, 1024)
    audio = torch.from_numpy(golden[f"{case}/audio"].astype(np.float64))  # (C, T, 128)
    return visual, audio


def test_golden_covers_both_scales_t1_and_five_crops(golden) -> None:
    cases = list(golden["cases"])
    assert {c.split("_")[0] for c in cases} == {"relu", "normal"}
    shapes = {tuple(golden[f"{c}/visual"].shape[:2]) for c in cases}
    assert (5, 1) in shapes and (1, 48) in shapes and (5, 7) in shapes
    relu = np.concatenate([golden[f"{c}/score"] for c in cases if c.startswith("relu")])
    assert relu.max() < 1e-10  # saturated: only the logits say anything there
    normal = golden["normal_c5_t7/score"]
    assert normal.max() > 0.1 and normal.std() > 0.01  # not saturated: the scores are compared


def test_published_checkpoint_loads_strictly(published: HyperVD, hypervd_checkpoint: Path) -> None:
    state = torch.load(hypervd_checkpoint, map_location="cpu", weights_only=True)
    assert len(state) == 27
    assert expected_shapes(published) == {k: tuple(v.shape) for k, v in state.items()}
    assert sum(v.numel() for v in published.state_dict().values()) == 607_058
    assert not published.training


def test_equals_published_code(published: HyperVD, golden) -> None:
    for case in golden["cases"]:
        visual, audio = _inputs(golden, case)
        with torch.no_grad():
            logits = published(visual, audio)
        np.testing.assert_allclose(logits.numpy(), golden[f"{case}/logits"], atol=LOGIT_TOL, rtol=0, err_msg=case)
        score = torch.sigmoid(logits).mean(0).numpy()
        np.testing.assert_allclose(score, golden[f"{case}/score"], atol=SCORE_TOL, rtol=0, err_msg=case)


def test_blocks_of_rows_give_the_same_logits(hypervd_checkpoint: Path, golden) -> None:
    """The T x T matrices built a few rows at a time: the same math as built whole. Not the
    same rounding: a point's Lorentz distance to itself, arccosh(1 + a few ulps of 1.2e8), is
    ~1e-4 in float64 (the published code's own rounding), and which ulps depends on the
    matrix product's shape; logits move by up to 3e-4 of their ~10 (whole matrices up to
    32 MiB, T < 2,048 snippets, are built in one block and match the golden to 1e-4)."""
    state = torch.load(hypervd_checkpoint, map_location="cpu", weights_only=True)
    tiny = HyperVD(block_bytes=800).eval().double()  # 2 rows per block at T = 48
    tiny.load_state_dict(state)
    for case in ("relu_c1_t48", "normal_c1_t48"):
        visual, audio = _inputs(golden, case)
        with torch.no_grad():
            logits = tiny(visual, audio)
        np.testing.assert_allclose(logits.numpy(), golden[f"{case}/logits"], atol=1e-3, rtol=0)
        score = torch.sigmoid(logits).mean(0).numpy()
        np.testing.assert_allclose(score, golden[f"{case}/score"], atol=SCORE_TOL, rtol=0)


def test_probabilities_take_the_pipeline_layout(published: HyperVD, golden) -> None:
    """rgb (T, C, 1024) and one (T, 128) audio, as the extractor returns them."""
    for case in ("normal_c5_t7", "relu_c5_t7", "normal_c5_t1"):
        visual, audio = _inputs(golden, case)
        scores = hypervd_probabilities(published, visual.permute(1, 0, 2).numpy(), audio[0].numpy())
        assert scores.shape == (visual.shape[1],) and scores.dtype == np.float32
        np.testing.assert_allclose(scores, golden[f"{case}/score"], atol=SCORE_TOL, rtol=0)


def test_thread_count_does_not_change_the_scores(published: HyperVD, golden) -> None:
    """In float32 the published code's logits move by up to 2.5 between 1 and 2 threads."""
    visual, audio = _inputs(golden, "normal_c5_t7")
    threads = torch.get_num_threads()
    try:
        results = []
        for n in (1, 2):
            torch.set_num_threads(n)
            with torch.no_grad():
                results.append(published(visual, audio))
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_allclose(results[0].numpy(), results[1].numpy(), atol=1e-8, rtol=0)
    assert published.conv1d1.weight.dtype == torch.float64


def test_random_weights_forward_is_finite() -> None:
    torch.manual_seed(0)
    model = HyperVD().eval()
    for t in (1, 2, 33):
        with torch.no_grad():
            logits = model(torch.rand(2, t, 1024), torch.rand(2, t, 128))
        assert logits.shape == (2, t) and torch.isfinite(logits).all()
    with pytest.raises(ValueError, match="differ in"):
        model(torch.rand(1, 4, 1024), torch.rand(1, 5, 128))


# --- strict loading -------------------------------------------------------------------------


def _saved(tmp_path: Path, state: dict[str, torch.Tensor], name: str = "bad.pkl") -> Path:
    path = tmp_path / name
    torch.save(state, path)
    return path


@pytest.fixture
def state(hypervd_checkpoint: Path) -> dict[str, torch.Tensor]:
    return torch.load(hypervd_checkpoint, map_location="cpu", weights_only=True)


def test_missing_key_is_refused(tmp_path: Path, state) -> None:
    del state["HyperCLS.cls"]
    path = _saved(tmp_path, state)
    with pytest.raises(WeightsError, match=r"bad\.pkl: not the expected weights: 1 missing key: HyperCLS\.cls"):
        load_hypervd(path)


def test_unexpected_key_is_refused(tmp_path: Path, state) -> None:
    state["extra.weight"] = torch.zeros(3)
    with pytest.raises(WeightsError, match=r"1 unexpected key: extra\.weight"):
        load_hypervd(_saved(tmp_path, state))


def test_wrong_shape_is_refused(tmp_path: Path, state) -> None:
    state["HFSGCN.encoder.layers.0.linear.weight.weight"] = torch.zeros(32, 256)
    with pytest.raises(WeightsError, match=r"wrong shape.*\(32, 256\) instead of \(32, 257\)"):
        load_hypervd(_saved(tmp_path, state))


def test_nan_is_refused(tmp_path: Path, state) -> None:
    state["HyperCLS.bias"] = torch.tensor([float("nan")])
    with pytest.raises(WeightsError, match=r"bad\.pkl.*HyperCLS\.bias"):
        load_hypervd(_saved(tmp_path, state))


def test_macil_checkpoint_is_not_hypervd(macil_checkpoint: Path) -> None:
    with pytest.raises(WeightsError, match=r"macil_sd\.pkl: not the expected weights"):
        load_hypervd(macil_checkpoint)


# --- the registry entry ---------------------------------------------------------------------


def test_registry_entry_is_the_published_file(hypervd_checkpoint: Path) -> None:
    entry = {e.name: e for e in weights.available_weights()}[HYPERVD_WEIGHTS]
    assert entry.url == "https://github.com/xiaogangpeng/HyperVD/raw/main/ckpt/pretrained.pkl"
    data = hypervd_checkpoint.read_bytes()
    assert entry.size == len(data) == 2_436_134
    assert entry.sha256 == hashlib.sha256(data).hexdigest()
    assert "no licence file" in entry.license
    assert entry.metadata["reported_ap"] == 85.67 and entry.metadata["parameters"] == 607_058


def test_published_file_downloads_and_a_damaged_copy_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hypervd_checkpoint: Path
) -> None:
    """Through the real manifest entry, served from a file:// mirror (into a cache of its own:
    the session's shared test cache must not gain a verified copy)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    data = hypervd_checkpoint.read_bytes()
    (good / "hypervd.pkl").write_bytes(data)
    damaged = bytearray(data)
    damaged[len(damaged) // 2] ^= 0x01  # one bit: same size, still a loadable zip member
    (bad / "hypervd.pkl").write_bytes(bytes(damaged))

    monkeypatch.setenv(weights.WEIGHTS_URL_ENV, bad.as_uri() + "/")
    with pytest.raises(WeightsError, match=r"hypervd\.pkl fails verification \(sha256"):
        weights.resolve_weights(HYPERVD_WEIGHTS)
    assert not (weights.cache_dir() / "hypervd.pkl").exists()

    monkeypatch.setenv(weights.WEIGHTS_URL_ENV, good.as_uri() + "/")
    path = weights.resolve_weights(HYPERVD_WEIGHTS)
    assert path.read_bytes() == data
    assert weights.resolve_weight_files({HYPERVD_WEIGHTS: None}, download=False)[HYPERVD_WEIGHTS].verified
    load_hypervd(download=False)  # the cached copy loads through the registry


# --- memory ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_three_hour_video_stays_under_2_gb() -> None:
    """T = 16,200 snippets: one whole T x T float64 matrix is 2 GiB (the published code builds
    two per crop). All five crops are scored, one after the other: with row blocks under glibc's
    32 MiB mmap threshold the heap grew from crop to crop (5.2 GB peak; 64 MiB blocks: 1.5 GB;
    embedding 2,048 snippets at a time and trimming the heap between crops: 1.1 GB, +270 MiB
    over the inputs). The peak is VmHWM: ru_maxrss read 2.2 GB in CI, the pytest worker's own
    RSS passed on to the child over fork + exec."""
    script = textwrap.dedent(
        """
        import torch
        from violence_cli.hypervd import HyperVD, hypervd_probabilities
        def peak_mib():  # this process's own peak RSS: VmHWM (ru_maxrss also counts the parent's, over fork + exec)
            return next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM:")) / 1024
        torch.manual_seed(0)
        model = HyperVD().eval().double()  # float64, as load_hypervd returns it
        t = 16200
        rgb, audio = torch.rand(t, 5, 1024), torch.rand(t, 128)
        before = peak_mib()
        scores = hypervd_probabilities(model, rgb, audio)
        peak = peak_mib()
        assert scores.shape == (t,) and (scores == scores).all()
        print(peak, peak - before)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr
    peak_mib, grown_mib = map(float, proc.stdout.split())
    assert peak_mib < 2048, f"peak RSS {peak_mib:.0f} MiB"
    assert grown_mib < 768, f"scoring grew the peak by {grown_mib:.0f} MiB"  # 64 MiB blocks, a few alive at once

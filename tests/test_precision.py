"""--precision: the resolver (auto = bf16 where the CPU has native bf16) and bf16's fidelity.

Fidelity is measured on real XD-Violence sample clips (the first 4 s of two of them, one
crop), through the public extractor, with random I3D/VGGish weights in the published layouts
and the published MACIL-SD checkpoint scoring both feature sets at XD-like magnitudes
(tests/fidelity.py says why and how). The bounds are the contract docs/detect.md states.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from fakeweights import fake_weights_folder
from fidelity import THRESHOLD, Fidelity, compare, trim

from violence_cli import precision
from violence_cli.errors import UsageError
from violence_cli.features import load_i3d, load_vggish
from violence_cli.features.extract import FeatureExtractor
from violence_cli.model import load_model
from violence_cli.pipeline import SNIPPET_SECONDS

CLIPS = ("explosion1", "fighting2")  # 640x360 stereo, 640x268 5.1 at 48 kHz: real sizes, real codecs
SECONDS = 4.0  # 5 snippets each


# --------------------------------------------------------------------------- the resolver


@pytest.fixture
def native(monkeypatch: pytest.MonkeyPatch):
    """Pretend the CPU has native bf16 or not: ``native(True)``."""

    def set_native(value: bool) -> None:
        monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: value)

    return set_native


def test_auto_picks_bf16_only_where_it_pays(native) -> None:
    native(True)
    assert precision.resolve_precision("auto", "cpu") == "bf16"
    assert precision.resolve_precision(None, torch.device("cpu")) == "bf16"
    native(False)
    assert precision.resolve_precision("auto", "cpu") == "fp32"
    # CUDA: the measured choice (features.autoprecision), else the fallback; never assumed bf16
    assert precision.resolve_precision("AUTO", torch.device("cuda", 1)) == precision.CUDA_FALLBACK == "tf32"
    assert precision.resolve_precision("auto", "cuda", choose_cuda=lambda device: "fp16") == "fp16"
    for device in ("cpu", "cuda"):
        for name in ("fp32", "tf32", "bf16", "fp16"):  # an explicit choice is kept
            assert precision.resolve_precision(name, device, choose_cuda=lambda d: "bf16") == name
    with pytest.raises(UsageError, match="unknown precision 'int8'"):
        precision.resolve_precision("int8", "cpu")


def test_warning_for_emulated_bf16(native) -> None:
    native(False)
    assert "emulated" in precision.precision_warning("bf16", "cpu")
    assert precision.precision_warning("bf16", "cuda:0") is None
    assert precision.precision_warning("fp32", "cpu") is None
    assert "CUDA" in precision.precision_warning("tf32", "cpu")
    assert "emulated" in precision.precision_warning("fp16", "cpu")
    assert precision.precision_warning("fp16", "cuda") is None and precision.precision_warning("tf32", "cuda") is None
    native(True)
    assert precision.precision_warning("bf16", "cpu") is None


def test_native_bf16_detection(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    amd = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n\nprocessor\t: 1\nflags\t\t: fpu\n"
    assert "avx512_bf16" in precision.cpu_flags(amd) and "fpu" in precision.cpu_flags(amd)
    assert precision.cpu_flags("Features\t: fp asimd bf16\n") == frozenset()  # no x86 flags line

    def detect(torch_answer: bool | None, cpuinfo: str | None) -> bool:
        precision.cpu_has_native_bf16.cache_clear()
        monkeypatch.setattr(precision, "_torch_says_bf16", lambda: torch_answer)
        path = tmp_path / "cpuinfo"
        path.unlink(missing_ok=True)
        if cpuinfo is not None:
            path.write_text(cpuinfo)
        monkeypatch.setattr(precision, "CPUINFO", path)
        return precision.cpu_has_native_bf16()

    try:
        assert detect(True, None) and not detect(False, amd)  # PyTorch's answer comes first
        assert detect(None, amd)  # then the kernel's flags
        assert detect(None, "flags\t: avx512f amx_tile amx_bf16\n")
        assert not detect(None, "flags\t: avx512f avx512bw avx512_vnni\n")  # AVX-512 alone emulates bf16
        assert not detect(None, None)  # nothing to ask: fp32
    finally:
        precision.cpu_has_native_bf16.cache_clear()


def test_no_onednn_no_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    assert precision._torch_says_bf16() is False


# PyTorch's private CPU queries and the /proc/cpuinfo flag each one reads
TORCH_QUERIES = {"_is_avx512_bf16_supported": "avx512_bf16", "_is_amx_tile_supported": "amx_tile"}


def test_torch_query_matches_cpuinfo_here() -> None:
    """On Linux x86 each PyTorch query must agree with its own kernel flag, else one is misread."""
    cpuinfo = Path("/proc/cpuinfo")
    if precision._torch_says_bf16() is None or not cpuinfo.is_file() or "flags" not in cpuinfo.read_text():
        pytest.skip("no PyTorch CPU query or no x86 /proc/cpuinfo on this machine: nothing to compare")
    flags = precision.cpu_flags(cpuinfo.read_text())
    asked = {name: getattr(torch.cpu, name, None) for name in TORCH_QUERIES}
    for name, flag in TORCH_QUERIES.items():
        if asked[name] is not None:
            assert bool(asked[name]()) == (flag in flags), f"torch.cpu.{name}() disagrees with the {flag} flag"
    native = bool(flags & {TORCH_QUERIES[n] for n, q in asked.items() if q is not None})
    assert precision._torch_says_bf16() == native
    precision.cpu_has_native_bf16.cache_clear()
    try:  # the resolver's answer, from either source, is the flags' answer
        assert precision.cpu_has_native_bf16() == native == bool(flags & precision.BF16_CPU_FLAGS)
    finally:
        precision.cpu_has_native_bf16.cache_clear()


# --------------------------------------------------------------------------- the networks


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory):
    with fake_weights_folder(tmp_path_factory, "weights") as w:
        yield w


def test_loaders_run_in_the_precision_asked(weights: dict[str, Path]) -> None:
    i3d = load_i3d(weights["i3d_rgb_imagenet"], precision="bf16")
    assert i3d.compute_dtype == torch.bfloat16 and i3d.Mixed_5c.merged_weight.dtype == torch.bfloat16
    assert all(t.dtype == torch.float32 for t in i3d.state_dict().values())  # published layout kept
    x = torch.rand(1, 3, 16, 224, 224) * 2 - 1
    with torch.inference_mode():
        assert i3d(x).dtype == torch.float32  # the feature average is taken in fp32
        assert i3d.classify(x).dtype == torch.float32
    with pytest.raises(ValueError, match="fuse_bn"):
        load_i3d(weights["i3d_rgb_imagenet"], precision="bf16", fuse_bn=False)
    assert load_i3d(weights["i3d_rgb_imagenet"]).compute_dtype == torch.float32
    vggish = load_vggish(weights["vggish"], precision="bf16")
    assert vggish.embeddings[0].weight.dtype == torch.bfloat16
    with torch.inference_mode():
        assert vggish(torch.randn(2, 96, 64)).shape == (2, 128)


# --------------------------------------------------------------------------- fidelity


@pytest.fixture(scope="module")
def extractors(weights: dict[str, Path]) -> tuple[FeatureExtractor, FeatureExtractor]:
    common = {"i3d_weights": weights["i3d_rgb_imagenet"], "vggish_weights": weights["vggish"], "crops": 1}
    return FeatureExtractor(**common), FeatureExtractor(**common, precision="bf16")


@pytest.mark.parametrize("name", CLIPS)
def test_bf16_fidelity_on_xd_clips(
    name: str, extractors, media_dir: Path, macil_checkpoint: Path, tmp_path: Path
) -> None:
    clip = trim(media_dir / "xd" / f"{name}.mp4", tmp_path / f"{name}.mp4", SECONDS)
    r: Fidelity = compare(*extractors, clip, load_model(macil_checkpoint))
    print(
        f"{name}: {r.snippets} snippets; RGB cosine >= {r.rgb_cosine_min:.6f}, max abs {r.rgb_max_abs:.3g} "
        f"({r.rgb_max_rel:.2%} of the largest); audio cosine >= {r.audio_cosine_min:.6f}, max abs "
        f"{r.audio_max_abs:.3g} ({r.audio_max_rel:.2%}); scores max diff {r.score_max_diff:.2g}, "
        f"logits {r.logit_max_diff:.2g}; av scores {np.round(r.scores_fp32['av'], 3)}"
    )
    assert r.snippets == 5
    assert r.rgb_max_abs > 0 and r.audio_max_abs > 0, "the bf16 path did not run"
    assert r.rgb_cosine_min > 0.9999 and r.rgb_max_rel < 0.01
    assert r.audio_cosine_min > 0.9999 and r.audio_max_rel < 0.02
    fp32, bf16 = r.scores_fp32, r.scores_bf16
    # the regime that matters: av scores spread over 0.3-0.7, where the sigmoid is steepest;
    # the audio and visual heads off their flat ends too
    assert fp32["av"].min() < 0.35 and fp32["av"].max() > 0.6, fp32["av"]
    for head in ("audio", "visual"):
        assert 0.15 < fp32[head].min() and fp32[head].max() < 0.85, (head, fp32[head])
    assert r.score_max_diff < 0.01, f"scores moved by {r.score_max_diff:.4f} with bf16 features"
    for head in fp32:  # and relative to each score: small scores must not hide a large error
        np.testing.assert_allclose(bf16[head], fp32[head], rtol=0.02, atol=0, err_msg=head)
    assert r.logit_max_diff < 0.04  # 0.01 at 0.5, the bound in logits
    assert r.score_max_diff > 1e-4, "bf16 changed nothing: the comparison proves nothing"
    # segments at the 0.5 threshold: some snippets either side, none within bf16's error of it
    assert r.segments_fp32 and r.segments_fp32 != [(0.0, r.snippets * SNIPPET_SECONDS)], r.segments_fp32
    margin = float(np.abs(fp32["av"] - THRESHOLD).min())
    assert float(np.abs(fp32["av"] - bf16["av"]).max()) < margin, "a score within bf16's error of the threshold"
    assert r.segments_bf16 == r.segments_fp32

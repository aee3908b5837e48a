"""--precision auto on CUDA (violence_cli.features.autoprecision), tested on the CPU.

The selection and the cache run with an injected measurement (no GPU here): what is chosen
for given timings and fidelities, that the measurement runs once per GPU model and
torch/cuDNN version, that a damaged or foreign cache file is measured again, and what the
provenance says. The real measurement (``measure_i3d``) needs CUDA: benchmarks/gpu_check.py
runs it on the device.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from violence_cli.features import autoprecision as ap
from violence_cli.precision import matmul_flags

KEY = {"schema": 1, "gpu": "NVIDIA H200", "torch": "2.11.0", "cuda": "13.0", "cudnn": 91900, "batch": 40}


def m(rate: float, cosine: float = 0.99999, rel: float = 0.005) -> dict[str, float]:
    return {"clips_per_s": rate, "cosine_min": cosine, "rel_l2": rel}


class Timer:
    """An injected measurement: fixed figures per precision, counting its calls."""

    def __init__(self, figures: dict[str, dict[str, float]]) -> None:
        self.figures, self.calls = figures, []

    def __call__(self, precision: str) -> dict[str, float]:
        self.calls.append(precision)
        return self.figures[precision]


def test_the_fastest_faithful_candidate_wins_not_the_narrowest() -> None:
    # the H200's figures: bf16 1.7x slower than TF32
    chosen, reason = ap.select({"tf32": m(1245), "bf16": m(731, rel=0.0116), "fp16": m(900)})
    assert chosen == "tf32" and "tf32 1,245 clips/s" in reason and "bf16 731" in reason
    assert ap.select({"tf32": m(700), "bf16": m(1400, rel=0.0116), "fp16": m(1500)})[0] == "fp16"


def test_candidates_outside_the_bounds_are_not_chosen() -> None:
    fast_but_wrong = m(3000, cosine=0.99, rel=0.2)
    overflowed = m(2500, cosine=math.nan, rel=math.inf)  # fp16 overflowing to inf/NaN
    chosen, reason = ap.select({"tf32": m(1000), "bf16": fast_but_wrong, "fp16": overflowed})
    assert chosen == "tf32" and "bf16 3,000 clips/s, outside the bounds" in reason
    just_out = m(5000, cosine=ap.COSINE_MIN - 1e-6)
    assert ap.select({"tf32": m(1000), "bf16": just_out, "fp16": m(10, rel=ap.REL_L2_MAX * 1.01)})[0] == "tf32"
    chosen, reason = ap.select({p: fast_but_wrong for p in ap.CANDIDATES})
    assert chosen == "fp32" and reason.startswith("no candidate within the fidelity bounds")


def test_measured_once_per_key_then_read_from_the_cache(tmp_path: Path) -> None:
    timer = Timer({"tf32": m(1245), "bf16": m(731), "fp16": m(800)})
    first = ap.choose_measured(KEY, timer, tmp_path)
    assert first.precision == "tf32" and first.source == "measured" and timer.calls == ["tf32", "bf16", "fp16"]
    files = list(tmp_path.glob("precision-*.json"))
    assert len(files) == 1 and first.cache_file == str(files[0])
    doc = json.loads(files[0].read_text())
    assert doc["key"] == KEY and doc["precision"] == "tf32" and doc["measurements"]["bf16"]["clips_per_s"] == 731
    again = ap.choose_measured(KEY, timer, tmp_path)
    assert again.precision == "tf32" and again.source == "cache" and len(timer.calls) == 3  # not measured again
    other = dict(KEY, cudnn=92000)  # another cuDNN: another measurement, another file
    assert ap.choose_measured(other, Timer({"tf32": m(1), "bf16": m(2), "fp16": m(3)}), tmp_path).precision == "fp16"
    assert len(list(tmp_path.glob("precision-*.json"))) == 2
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically: no temporary left


@pytest.mark.parametrize(
    "content",
    [
        "not json {",
        "[]",
        json.dumps({"key": dict(KEY, gpu="another GPU"), "precision": "bf16", "reason": "x", "measurements": {}}),
        json.dumps({"key": KEY, "precision": "int4", "reason": "x", "measurements": {}}),
        json.dumps({"key": KEY, "precision": "bf16", "reason": "x", "measurements": {"bf16": {"clips_per_s": "fast"}}}),
        "\udcff",
    ],
    ids=["garbage", "not-a-dict", "other-key", "bad-choice", "bad-figures", "bad-utf8"],
)
def test_a_damaged_or_foreign_cache_file_is_measured_again(tmp_path: Path, content: str) -> None:
    path = ap.cache_path(KEY, tmp_path)
    path.write_bytes(content.encode("utf-8", "surrogateescape"))
    assert ap.read_cache(path, KEY) is None
    timer = Timer({"tf32": m(100), "bf16": m(200), "fp16": m(50)})
    choice = ap.choose_measured(KEY, timer, tmp_path)
    assert choice.precision == "bf16" and choice.source == "measured" and len(timer.calls) == 3
    assert ap.read_cache(path, KEY)["precision"] == "bf16"  # and rewritten whole


def test_an_unwritable_cache_still_chooses_and_says_so(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the folder should be")
    choice = ap.choose_measured(KEY, Timer({"tf32": m(3), "bf16": m(2), "fp16": m(1)}), blocker / "cache")
    assert choice.precision == "tf32" and choice.cache_file is None and "not cached" in choice.reason


def test_provenance_says_what_was_chosen_and_why(tmp_path: Path) -> None:
    choice = ap.choose_measured(KEY, Timer({"tf32": m(1245), "bf16": m(731), "fp16": m(800)}), tmp_path)
    prov = choice.provenance()
    assert prov["precision"] == "tf32" and prov["asked"] == "auto" and prov["source"] == "measured"
    assert "fastest within" in prov["reason"]
    assert prov["bounds"] == {"cosine_min": ap.COSINE_MIN, "rel_l2_max": ap.REL_L2_MAX}
    assert set(prov["measurements"]) == {"tf32", "bf16", "fp16"}
    json.dumps(prov)  # goes into JSON outputs as it is


def test_choose_uses_the_device_key_and_the_weights_cache_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(ap, "device_key", lambda device: dict(KEY, gpu=f"fake {device}"))
    timer = Timer({"tf32": m(1), "bf16": m(5), "fp16": m(2)})
    choice = ap.choose("cuda:0", measure=timer)
    assert choice.precision == "bf16" and Path(choice.cache_file).parent == tmp_path / "violence-detect"
    assert ap.choose("cuda:0", measure=timer).source == "cache" and len(timer.calls) == 3


def test_off_cuda_auto_follows_the_cpu_rule_and_explicit_choices_stay(monkeypatch: pytest.MonkeyPatch) -> None:
    from violence_cli import precision

    def never(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("no measurement off CUDA")

    monkeypatch.setattr(ap, "choose", never)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    auto = ap.choice_for("auto", "cpu")
    assert auto.precision == "fp32" and auto.source == "rule" and "no native bf16" in auto.reason
    assert ap.choice_for("bf16", "cpu").precision == "bf16" and ap.choice_for("tf32", "cpu").source == "asked"


def test_tf32_flags_are_set_only_within_and_only_for_tf32() -> None:
    before = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    for name, allowed in (("tf32", True), ("fp32", False), ("bf16", False)):
        with matmul_flags(name, "cuda:0"):
            assert torch.backends.cudnn.allow_tf32 is allowed and torch.backends.cuda.matmul.allow_tf32 is allowed
        assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == before
    with matmul_flags("tf32", "cpu"):  # off CUDA: nothing touched
        assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == before

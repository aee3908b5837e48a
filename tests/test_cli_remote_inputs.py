"""`violence-detect URL` and `violence-detect -`: a video from an http(s) server or from stdin
scores exactly as the same file does, is named after the URL's last segment (or ``stdin``),
and a server that cannot be reached fails in one line, fast.

The server is Python's http.server on 127.0.0.1 in a thread of the test, shut down after it.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fakeweights import fake_weights_folder
from mediagen import make_clip
from typer.testing import CliRunner

from violence_cli.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def weight_args(tmp_path_factory):
    with fake_weights_folder(tmp_path_factory, "fake-weights") as w:
        yield [
            "--checkpoint", str(w["macil_sd"]), "--i3d-weights", str(w["i3d_rgb_imagenet"]),
            "--vggish-weights", str(w["vggish"]), "--crops", "1", "--device", "cpu", "--no-download",
        ]  # fmt: skip


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("media") / "a.mp4", seconds=40 / 24, fps=24)  # 2 snippets


@pytest.fixture(scope="module")
def server(clip):
    """http://127.0.0.1:PORT/ serving the clip's folder; stopped after the module."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # no request lines on the test's stderr
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(clip.parent)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _scores(doc: dict) -> list:
    return [(s["score"], s["audio_score"], s["visual_score"]) for s in doc["snippets"]]


def _json(args: list[str]) -> dict:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_url_scores_as_the_file(server, clip, weight_args, tmp_path) -> None:
    url = f"{server}/a.mp4"
    from_file = _json([str(clip), "--json", *weight_args])
    from_url = _json([url, "--json", *weight_args])
    assert _scores(from_url) == _scores(from_file) and len(_scores(from_url)) == 2
    assert from_url["video"]["path"] == url  # the URL as given, not https:/host nor a temporary copy
    out = tmp_path / "out"
    result = runner.invoke(app, [url, "--output-dir", str(out), "--quiet", *weight_args])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "a.json").read_text())["video"]["path"] == url


def test_unreachable_url_fails_fast_in_one_line(weight_args) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/a.mp4"
    started = time.monotonic()
    result = runner.invoke(app, [url, "--json", *weight_args])
    assert time.monotonic() - started < 20
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and url in lines[0] and "cannot download" in lines[0], result.stderr
    assert "Traceback" not in result.output


def test_missing_url_names_http_status(server, weight_args) -> None:
    result = runner.invoke(app, [f"{server}/nope.mp4", *weight_args])
    assert result.exit_code == 1
    assert f"{server}/nope.mp4: cannot download (HTTP 404" in result.stderr


def test_stdin_through_a_real_process(clip, weight_args, tmp_path) -> None:
    from_file = _json([str(clip), "--json", *weight_args])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
    }
    env["TMPDIR"] = str(tmp_path)  # the spooled copy must be gone afterwards
    with open(clip, "rb") as fh:
        proc = subprocess.run(
            [sys.executable, "-m", "violence_cli", "-", "--json", *weight_args],
            stdin=fh, capture_output=True, text=True, env=env, timeout=300,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert _scores(doc) == _scores(from_file)
    assert doc["video"]["path"] == "-"
    assert list(tmp_path.iterdir()) == []


def test_stdin_output_is_named_stdin(clip, weight_args, tmp_path, monkeypatch) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["-", "--output-dir", str(out), "--quiet", *weight_args], input=clip.read_bytes())
    assert result.exit_code == 0, result.output
    assert (out / "stdin.json").is_file()


@pytest.mark.parametrize("extra", [["OTHER"], ["--from-list", "LIST"]])
def test_stdin_with_other_inputs_is_a_usage_error(clip, weight_args, tmp_path, extra) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text(f"{clip}\n")
    extra = [str(clip) if e == "OTHER" else str(listing) if e == "LIST" else e for e in extra]
    result = runner.invoke(app, ["-", *extra, *weight_args], input=b"")
    assert result.exit_code == 2
    assert "stdin holds one video" in result.stderr


def test_empty_stdin_is_one_line(weight_args) -> None:
    result = runner.invoke(app, ["-", *weight_args], input=b"")
    assert result.exit_code == 1
    assert "-: nothing on stdin" in result.stderr


def test_sigterm_while_reading_stdin_removes_the_copy(clip, weight_args, tmp_path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])
    proc = subprocess.Popen(
        [sys.executable, "-m", "violence_cli", "-", "--json", *weight_args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        proc.stdin.write(clip.read_bytes()[:1000])  # part of the video; the pipe stays open
        proc.stdin.flush()
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob("violence-detect-input-*/stdin")) and time.monotonic() < deadline:
            time.sleep(0.1)  # until the copy has begun
        assert list(tmp_path.glob("violence-detect-input-*/stdin"))
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, err
    assert list(tmp_path.glob("violence-detect-input-*")) == []


def test_a_run_over_files_makes_no_temporary_folder(weight_args, tmp_path) -> None:
    """The spool folder is made for URLs and stdin only: a detect over files killed with SIGKILL
    while it scores (nothing can clean up then) leaves nothing in the temporary folder."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    videos = [make_clip(tmp_path / f"v{i}.mp4", seconds=4.0, fps=24, size=(64, 48)) for i in range(8)]
    env = {**os.environ, "TMPDIR": str(temp), "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "violence_cli", *map(str, videos), "--output-dir", str(out), *weight_args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("v0.*")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)  # until the first video's outputs are written: the run is under way
        assert proc.poll() is None and list(out.glob("v0.*")), "the run ended before it could be killed"
        proc.kill()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert list(temp.iterdir()) == []


def test_url_report_plays_a_kept_copy_only(server, weight_args, tmp_path) -> None:
    url = f"{server}/a.mp4"
    plain = runner.invoke(app, [url, "-o", str(tmp_path / "plain.html"), *weight_args])
    assert plain.exit_code == 0, plain.output
    assert f"{url}: the report's player stays blank" in plain.stderr
    proxied = runner.invoke(app, [url, "-o", str(tmp_path / "r.html"), "--report-proxy", *weight_args])
    assert proxied.exit_code == 0, proxied.output
    copies = sorted(p.name for p in tmp_path.glob("*.mp4"))
    assert copies and all(name in (tmp_path / "r.html").read_text() for name in copies)
    assert "http%3A" not in (tmp_path / "r.html").read_text()  # never the URL mangled into a path

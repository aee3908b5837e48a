"""``violence-detect serve`` end to end: a real server (a subprocess on 127.0.0.1 at a free
port, see tests/servehelp.py) and a real HTTP client, with the random test weights and
one-second synthetic clips. The page at ``/`` is driven in headless Chromium (tests/cdp.py).

Two servers: ``guarded`` (tokens, --allow-path, --allow-urls without private addresses, a
small upload limit) for most cases; ``open_server`` (no tokens, --allow-private-urls, a
queue of 4) for the URL fetch, the webhook and cancelling, then killed and restarted.
"""

from __future__ import annotations

import http.server
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
from conftest import missing, require_module

for _module in ("fastapi", "uvicorn", "python_multipart"):
    require_module(_module, "the serve extra (pip install -e '.[serve]')")

from fakeweights import fake_weights_folder  # noqa: E402
from mediagen import make_clip  # noqa: E402
from servehelp import MODEL_ARGS, REPO, ServeProcess, call, process_env, upload, wait_job  # noqa: E402

from violence_cli.serve import security  # noqa: E402

TOKEN_A = "a" * 8 + "-token-of-alice-0123"
TOKEN_B = "b" * 8 + "-token-of-bobby-4567"
N_CONCURRENT = 20


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    with fake_weights_folder(tmp_path_factory, "serve-weights") as w:
        yield w["vggish"].parent


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("serve-clips")
    patterns = ("gradient", "quadrants")
    return [
        make_clip(folder / f"clip{n:02d}.mp4", 1.0, size=(64, 48), tone_hz=200 + 37 * n, pattern=patterns[n % 2])
        for n in range(N_CONCURRENT)
    ]


@pytest.fixture(scope="module")
def allowed(tmp_path_factory, clips) -> Path:
    """A folder the guarded server may read (--allow-path), with one clip; a secret one beside it."""
    root = tmp_path_factory.mktemp("serve-paths")
    (root / "allowed").mkdir()
    (root / "allowed" / "inside.mp4").write_bytes(clips[0].read_bytes())
    (root / "secret.mp4").write_bytes(clips[1].read_bytes())
    (root / "allowed" / "link.mp4").symlink_to(root / "secret.mp4")
    return root


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, weights_dir, allowed):
    folder = tmp_path_factory.mktemp("guarded")
    tokens = folder / "tokens.txt"
    tokens.write_text(f"# the test's two users\n{TOKEN_A}\n{TOKEN_B}\n")
    server = ServeProcess(
        folder / "data",
        weights_dir,
        "--token-file", str(tokens),
        "--allow-path", str(allowed / "allowed"),
        "--allow-urls",
        "--max-upload-mb", "0.5",
        "--max-queue", "50",
    )  # fmt: skip
    yield server
    assert server.stop() == 0, server.output


@pytest.fixture(scope="module")
def open_server(tmp_path_factory, weights_dir):
    folder = tmp_path_factory.mktemp("open")
    server = ServeProcess(folder / "data", weights_dir, "--allow-urls", "--allow-private-urls", "--max-queue", "4",
                          "--allow-host", "Videos.Example")  # fmt: skip
    yield server
    assert server.stop() == 0, server.output


def _job_dirs(server: ServeProcess) -> set[str]:
    return {p.name for p in (server.data / "jobs").iterdir()}


# --------------------------------------------------------------------------- results


class DetectJson:
    """``detect --json`` on every clip, in a subprocess started at once (it runs beside the
    server's jobs); :meth:`results` waits for it once: file name -> result document."""

    def __init__(self, clips: list[Path], weights_dir: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "violence_cli", "detect", *map(str, clips), "--json", "--weights-dir",
             str(weights_dir), *MODEL_ARGS],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=process_env(),
        )  # fmt: skip
        self._results: dict[str, dict] | None = None

    def results(self) -> dict[str, dict]:
        if self._results is None:
            out, err = self.process.communicate(timeout=900)  # generous: two cores shared with other jobs
            assert self.process.returncode == 0, err.decode()
            self._results = {Path(r["video"]["path"]).name: r for r in json.loads(out)["results"]}
        return self._results


@pytest.fixture(scope="module")
def detect_json(clips, weights_dir):
    runner = DetectJson(clips, weights_dir)
    yield runner
    if runner.process.poll() is None:
        runner.process.kill()
        runner.process.communicate()


def assert_same_result(got: dict, want: dict, name: str) -> None:
    """A job's result is detect --json's document for that file (scores to 1e-6)."""
    assert got["video"]["path"] == name  # the client's file name, not the server's copy
    assert set(got) == set(want)
    assert got["params"] == want["params"] and got["weights"] == want["weights"]
    assert [s["start"] for s in got["snippets"]] == [s["start"] for s in want["snippets"]]
    for a, b in zip(got["snippets"], want["snippets"], strict=True):
        for key in ("score", "audio_score", "visual_score"):
            assert a[key] == pytest.approx(b[key], abs=1e-6)
    assert got["segments"] == want["segments"] and got["verdict"] == want["verdict"]
    assert got["warnings"] == want["warnings"]


def test_concurrent_uploads_equal_detect_json(guarded, clips, detect_json) -> None:
    """20 uploads at once all end done, each result the document detect --json prints for that file."""
    answers: dict[int, dict] = {}

    def send(n: int) -> None:
        answer = upload(guarded.base, clips[n], TOKEN_A)
        assert answer.status == 202, answer.text
        answers[n] = answer.json()

    threads = [threading.Thread(target=send, args=(n,)) for n in range(N_CONCURRENT)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == N_CONCURRENT and all(a["status"] == "queued" for a in answers.values())
    assert len({a["id"] for a in answers.values()}) == N_CONCURRENT
    expected = detect_json.results()
    for n, submitted in answers.items():
        job = wait_job(guarded.base, submitted["id"], TOKEN_A, timeout=600)
        assert job["status"] == "done", job
        assert_same_result(job["result"], expected[clips[n].name], clips[n].name)
        assert job["progress"] == pytest.approx(job["result"]["video"]["duration"])
        assert job["attempts"] == 1 and job["created"] <= job["started"] <= job["finished"]


def test_startup_warns_with_the_results_words(guarded, detect_json) -> None:
    """The start-up warning about unpublished weights is the message the results carry, said once each."""
    said = [w for w in next(iter(detect_json.results().values()))["warnings"] if "not the published file" in w]
    assert len(said) == 3  # the random test weights: I3D, VGGish and MACIL-SD
    for warning in said:
        assert guarded.output.count(f"warning: {warning}") == 1, guarded.output


def test_exports_report_and_listing(guarded, clips) -> None:
    for earlier in clips[1:3:1] + clips[3:4]:  # the listing below has two pages even when this test runs alone
        assert upload(guarded.base, earlier, TOKEN_A).status == 202
    job = wait_job(guarded.base, upload(guarded.base, clips[2], TOKEN_A).json()["id"], TOKEN_A)
    base = f"{guarded.base}/v1/jobs/{job['id']}"
    csv = call("GET", f"{base}/csv", token=TOKEN_A)
    assert csv.status == 200 and csv.text.splitlines()[0].startswith("index,start,end,score")
    assert len(csv.text.splitlines()) == 1 + len(job["result"]["snippets"])
    assert call("GET", f"{base}/vtt", token=TOKEN_A).text.startswith("WEBVTT")
    assert call("GET", f"{base}/srt", token=TOKEN_A).status == 200
    report = call("GET", f"{base}/report", token=TOKEN_A)
    assert report.status == 200 and 'src="input/video.mp4"' in report.text
    video = call("GET", f"{base}/input/video.mp4", token=TOKEN_A)
    assert video.status == 200 and video.body == clips[2].read_bytes()
    assert video.headers["Content-Type"] == "video/mp4"
    # the listing: newest first, pages by cursor, filtered by status
    first = call("GET", f"{guarded.base}/v1/jobs?limit=2", token=TOKEN_A).json()
    assert len(first["jobs"]) == 2 and first["jobs"][0]["id"] == job["id"] and "result" not in first["jobs"][0]
    second = call("GET", f"{guarded.base}/v1/jobs?limit=2&cursor={first['next_cursor']}", token=TOKEN_A).json()
    assert not {j["id"] for j in first["jobs"]} & {j["id"] for j in second["jobs"]}
    done = call("GET", f"{guarded.base}/v1/jobs?status=done&limit=100", token=TOKEN_A).json()["jobs"]
    assert done and all(j["status"] == "done" for j in done)
    bad = call("GET", f"{guarded.base}/v1/jobs?status=finished", token=TOKEN_A)
    assert bad.status == 400 and bad.json()["error"]["code"] == "bad_request"


def test_metrics_in_prometheus_format(guarded, clips) -> None:
    wait_job(guarded.base, upload(guarded.base, clips[3], TOKEN_A).json()["id"], TOKEN_A)
    answer = call("GET", f"{guarded.base}/metrics", token=TOKEN_A)
    assert answer.status == 200 and answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    values = dict(line.rsplit(" ", 1) for line in answer.text.splitlines() if not line.startswith("#"))
    assert int(values['violence_detect_jobs{status="done"}']) >= 1
    assert float(values["violence_detect_video_seconds_total"]) >= 1.0
    assert int(values['violence_detect_job_latency_seconds_bucket{le="+Inf"}']) == int(
        values["violence_detect_job_latency_seconds_count"]
    )
    assert int(values["violence_detect_model_load_seconds_count"]) >= 1
    assert "violence_detect_queue_depth" in values
    assert call("GET", f"{guarded.base}/metrics").status == 401


# --------------------------------------------------------------------------- tokens


def test_tokens_and_isolation(guarded, clips) -> None:
    assert call("GET", f"{guarded.base}/healthz").status == 200  # the one open endpoint
    for token in (None, "wrong-token-wrong-token"):
        answer = upload(guarded.base, clips[0], token)
        assert answer.status == 401 and answer.json()["error"]["code"] == "unauthorized"
        assert call("GET", f"{guarded.base}/v1/jobs", token=token).status == 401
    job = upload(guarded.base, clips[4], TOKEN_A).json()
    for path in ("", "/report", "/csv", "/input/video.mp4"):
        answer = call("GET", f"{guarded.base}/v1/jobs/{job['id']}{path}", token=TOKEN_B)
        assert answer.status == 404 and answer.json()["error"]["code"] == "not_found", path
    assert call("DELETE", f"{guarded.base}/v1/jobs/{job['id']}", token=TOKEN_B).status == 404
    listed = call("GET", f"{guarded.base}/v1/jobs?limit=100", token=TOKEN_B).json()["jobs"]
    assert job["id"] not in {j["id"] for j in listed}
    assert call("GET", f"{guarded.base}/v1/jobs/{job['id']}", token=TOKEN_A).status == 200
    # the page's cookie is taken for GET only
    cookie = {"Cookie": f"vd_token={TOKEN_A}"}
    assert call("GET", f"{guarded.base}/v1/jobs/{job['id']}", headers=cookie).status == 200
    assert call("DELETE", f"{guarded.base}/v1/jobs/{job['id']}", headers=cookie).status == 401


def test_other_host_names_refused_without_tokens(open_server, guarded) -> None:
    """DNS rebinding: a hostile page's name resolved to 127.0.0.1 reaches the server with its own Host."""
    for path in ("/healthz", "/v1/jobs", "/"):
        answer = call("GET", f"{open_server.base}{path}", headers={"Host": f"evil.example:{open_server.port}"})
        assert answer.status == 403, (path, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "forbidden" and error["message"].startswith("Host evil.example: not a name of this server")
    refused = call("POST", f"{open_server.base}/v1/jobs", {"url": "http://127.0.0.1:9/x.mp4"}, {"Host": "evil.example"})
    assert refused.status == 403 and "--allow-host evil.example" in refused.json()["error"]["message"]
    for host in (f"127.0.0.1:{open_server.port}", f"localhost:{open_server.port}", "LOCALHOST", "[::1]:80",
                 "videos.example:443", "videos.example"):  # fmt: skip  (--allow-host Videos.Example)
        assert call("GET", f"{open_server.base}/v1/jobs", headers={"Host": host}).status == 200, host
    # with tokens a hostile page has no token to send: any name is answered (a proxy's too)
    assert call("GET", f"{guarded.base}/v1/jobs", headers={"Host": "evil.example"}, token=TOKEN_A).status == 200
    assert call("GET", f"{guarded.base}/v1/jobs", headers={"Host": "evil.example"}).status == 401


def test_host_names_parsed() -> None:
    assert security.host_name("[::1]:8750") == "::1"
    assert security.host_name("Localhost:8750") == "localhost"
    assert security.host_name("::1") == "::1"
    assert security.host_name("example.com") == "example.com"
    assert security.host_allowed(None, ["127.0.0.1"])  # no Host at all: not a browser
    assert not security.host_allowed("127.0.0.1.evil.example", ["127.0.0.1"])


def test_digests_only_and_constant_time_match() -> None:
    digests = [security.token_digest(TOKEN_A), security.token_digest(TOKEN_B)]
    assert TOKEN_A not in "".join(digests)
    assert security.match_token(digests, f"Bearer {TOKEN_B}") == digests[1]
    assert security.match_token(digests, f"bearer  {TOKEN_A}") == digests[0]
    assert security.match_token(digests, TOKEN_A) is None  # no scheme
    assert security.match_token(digests, "Bearer " + TOKEN_A[:-1]) is None


# --------------------------------------------------------------------------- bad input


def test_oversize_upload_is_413_and_leaves_nothing(guarded) -> None:
    before = _job_dirs(guarded)
    big = os.urandom(700 * 1024)  # past --max-upload-mb 0.5
    from servehelp import multipart

    body, kind = multipart({}, "big.mp4", big)
    # a declared length past the limit: answered from the headers alone, before any of the body is sent
    answer = call("POST", f"{guarded.base}/v1/jobs", None, {"Content-Type": kind, "Content-Length": str(len(body))},
                  TOKEN_A)  # fmt: skip
    assert answer.status == 413 and answer.json()["error"]["code"] == "too_large"
    # chunked, no Content-Length: refused while streaming, the partial file removed
    chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))
    answer = call("POST", f"{guarded.base}/v1/jobs", chunks, {"Content-Type": kind, "Transfer-Encoding": "chunked"},
                  TOKEN_A)  # fmt: skip
    assert answer.status == 413, answer.text
    assert _job_dirs(guarded) == before
    assert not list((guarded.data / "jobs").rglob("*.part"))


def test_corrupt_upload_fails_with_the_clean_error(guarded) -> None:
    job = upload(guarded.base, Path("broken.mp4"), TOKEN_A, content=b"not a video at all " * 400).json()
    done = wait_job(guarded.base, job["id"], TOKEN_A)
    assert done["status"] == "failed" and "result" not in done
    error = done["error"]
    assert "\n" not in error and "Traceback" not in error
    assert error.startswith("broken.mp4: ") and str(guarded.data) not in error, error
    assert call("GET", f"{guarded.base}/v1/jobs/{job['id']}/report", token=TOKEN_A).status == 409


def test_bad_params_name_the_parameter(guarded, clips) -> None:
    before = _job_dirs(guarded)
    for params, needle in (
        ({"threshold": 2}, "params.threshold 2: expected a score between 0 and 1"),
        ({"crops": 3}, "params.crops 3: expected 5 or 1"),
        ({"colour": 1}, "params.colour: unknown parameter"),
        ({"start": 5, "end": 2}, "params.end 2: expected a time after params.start"),
        ({"model": "nope"}, "params.model 'nope': expected one of macil-sd"),
    ):
        answer = upload(guarded.base, clips[0], TOKEN_A, params=params)
        assert answer.status == 400 and needle in answer.json()["error"]["message"], answer.text
    assert _job_dirs(guarded) == before  # nothing kept of a refused upload
    answer = call("POST", f"{guarded.base}/v1/jobs", b"{not json", {"Content-Type": "application/json"}, TOKEN_A)
    assert answer.status == 400
    answer = call("POST", f"{guarded.base}/v1/jobs", b"x", {"Content-Type": "text/plain"}, TOKEN_A)
    assert answer.status == 415


def test_paths_only_under_allow_path(guarded, allowed) -> None:
    inside = call("POST", f"{guarded.base}/v1/jobs", {"path": str(allowed / "allowed" / "inside.mp4")}, token=TOKEN_A)
    assert inside.status == 202, inside.text
    for outside in (
        allowed / "secret.mp4",
        allowed / "allowed" / ".." / "secret.mp4",  # traversal
        allowed / "allowed" / "link.mp4",  # a symbolic link out of the folder
        allowed / "allowed" / "missing.mp4",
        Path("/etc/passwd"),
    ):
        answer = call("POST", f"{guarded.base}/v1/jobs", {"path": str(outside)}, token=TOKEN_A)
        assert answer.status == 403 and answer.json()["error"]["code"] == "forbidden", (outside, answer.text)
    job = wait_job(guarded.base, inside.json()["id"], TOKEN_A)
    assert job["status"] == "done" and job["result"]["video"]["path"] == str(allowed / "allowed" / "inside.mp4")


def test_loopback_urls_refused_without_allow_private(guarded, open_server, clips) -> None:
    for url in (f"{open_server.base}/healthz", "http://localhost/x.mp4", "http://10.1.2.3/x.mp4",
                "http://169.254.169.254/latest/meta-data", "http://[::1]/x.mp4"):  # fmt: skip
        answer = call("POST", f"{guarded.base}/v1/jobs", {"url": url}, token=TOKEN_A)
        assert answer.status == 403 and "loopback, private or link-local" in answer.json()["error"]["message"], url
    for url in ("file:///etc/passwd", "ftp://example.com/a.mp4"):
        answer = call("POST", f"{guarded.base}/v1/jobs", {"url": url}, token=TOKEN_A)
        assert answer.status == 403 and "http:// or https://" in answer.json()["error"]["message"]
    hook = upload(guarded.base, clips[0], TOKEN_A, webhook="http://127.0.0.1:9/hook")
    assert hook.status == 403 and hook.json()["error"]["message"].startswith("webhook ")


# --------------------------------------------------------------------------- webhooks and URLs


class _Receiver(http.server.BaseHTTPRequestHandler):
    """Serves clips (GET) and takes webhooks (POST): the first POST answers 500, later ones 200."""

    calls: list[tuple[dict, bytes]] = []
    files: dict[str, bytes] = {}

    def do_GET(self) -> None:  # noqa: N802
        data = self.files.get(self.path)
        self.send_response(200 if data is not None else 404)
        self.send_header("Content-Length", str(len(data or b"")))
        self.end_headers()
        self.wfile.write(data or b"")

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).calls.append((dict(self.headers), body))
        self.send_response(500 if len(self.calls) == 1 else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def receiver(clips):
    _Receiver.calls, _Receiver.files = [], {"/clip.mp4": clips[5].read_bytes()}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_url_job_and_webhook_retried_after_500(open_server, receiver) -> None:
    answer = call("POST", f"{open_server.base}/v1/jobs", {"url": f"{receiver}/clip.mp4", "webhook": f"{receiver}/hook"})
    assert answer.status == 202, answer.text
    job = wait_job(open_server.base, answer.json()["id"])
    assert job["status"] == "done" and job["result"]["video"]["path"] == f"{receiver}/clip.mp4"
    deadline = time.monotonic() + 30
    while len(_Receiver.calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(_Receiver.calls) == 2  # the first answered 500: delivered again
    secret = (open_server.data / "webhook-secret").read_text().strip().encode()
    for headers, body in _Receiver.calls:
        assert security.verify(secret, body, headers[security.SIGNATURE_HEADER])
        assert not security.verify(b"another secret", body, headers[security.SIGNATURE_HEADER])
        sent = json.loads(body)
        assert sent["event"] == "job.done" and sent["job"]["id"] == job["id"]
    time.sleep(0.5)
    final = wait_job(open_server.base, job["id"])
    assert final["webhook"] == {"url": f"{receiver}/hook", "state": "delivered", "attempts": 2}
    missing = call("POST", f"{open_server.base}/v1/jobs", {"url": f"{receiver}/missing.mp4"})
    failed = wait_job(open_server.base, missing.json()["id"])
    assert failed["status"] == "failed" and "answered 404" in failed["error"]


def test_cancel_queued_job_removes_its_upload(open_server, clips, tmp_path) -> None:
    # the worker is busy with a longer first job while the second is cancelled
    first = upload(open_server.base, make_clip(tmp_path / "long.mp4", 4.0, size=(64, 48))).json()
    second = upload(open_server.base, clips[7]).json()
    answer = call("DELETE", f"{open_server.base}/v1/jobs/{second['id']}")
    assert answer.status == 200 and answer.json()["status"] == "cancelled"
    assert not (open_server.data / "jobs" / second["id"] / "input").exists()
    assert wait_job(open_server.base, second["id"])["status"] == "cancelled"
    assert wait_job(open_server.base, first["id"])["status"] == "done"
    gone = call("DELETE", f"{open_server.base}/v1/jobs/{first['id']}")
    assert gone.status == 200 and gone.json()["deleted"] is True
    assert call("GET", f"{open_server.base}/v1/jobs/{first['id']}").status == 404
    assert not (open_server.data / "jobs" / first["id"]).exists()


# --------------------------------------------------------------------------- restarts


def test_sigkill_while_running_then_restart_does_every_job_once(open_server, clips) -> None:
    """The open server, killed by its PID while a job runs, restarted on the same --data."""
    server, data = open_server, open_server.data
    ids = [upload(server.base, clip).json()["id"] for clip in clips[8:12]]
    assert upload(server.base, clips[12]).status == 429  # four queued or running: the queue is full
    deadline = time.monotonic() + 240
    while True:  # kill while a job runs, after at least one is done
        states = [call("GET", f"{server.base}/v1/jobs/{i}").json()["status"] for i in ids]
        if "done" in states and "running" in states:
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.05)
    server.kill()
    with sqlite3.connect(data / "jobs.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM jobs WHERE status = 'running'").fetchone()[0] == 1
    server.restart()
    assert "requeued 1 job left running" in server.output
    jobs = [wait_job(server.base, i, timeout=240) for i in ids]
    assert [j["status"] for j in jobs] == ["done"] * 4
    with sqlite3.connect(data / "jobs.sqlite3") as db:
        rows = dict(db.execute("SELECT id, completions FROM jobs WHERE status = 'done'").fetchall())
    assert all(rows[i] == 1 for i in ids) and set(rows.values()) == {1}  # every job done exactly once
    assert sorted(j["attempts"] for j in jobs)[-1] == 2  # the one killed while running was taken again


def test_refuses_another_host_without_tokens(tmp_path) -> None:
    from typer.testing import CliRunner

    from violence_cli.cli import app

    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--data", str(tmp_path / "d")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "error: --host 0.0.0.0: serving beyond this machine needs tokens", result.stderr
    assert "--token-file" in lines[1] and "Traceback" not in result.stderr
    assert not (tmp_path / "d").exists()


# --------------------------------------------------------------------------- --engine ray


@pytest.fixture(scope="module")
def ray_address():
    """A local Ray cluster started here (127.0.0.1, two CPUs, no dashboard); its GCS address.
    Skipped where Ray is not installed, except under CI=true (.ci/run installs the ray extra)."""
    ray = require_module("ray", "the ray extra runs serve --engine ray (pip install -e '.[ray]')")
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(REPO) + (os.pathsep + before if before else "")  # the actors import this checkout
    try:
        # "local": a new cluster, never another test's; on 127.0.0.1 (conftest sets Ray's loopback flag)
        context = ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    finally:
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before
    address = context.address_info["gcs_address"]
    assert address.startswith("127.0.0.1:"), address
    yield address
    ray.shutdown()


def test_ray_engine_equals_local_and_cancels_in_the_actor(ray_address, tmp_path_factory, weights_dir, clips,
                                                           detect_json) -> None:  # fmt: skip
    """serve --engine ray on a Ray cluster: the same documents as detect --json; progress comes
    back from the actor while it scores, a cancel stops the job there; the networks load once."""
    folder = tmp_path_factory.mktemp("ray-serve")
    long_clip = make_clip(folder / "long.mp4", 60.0, size=(64, 48))
    server = ServeProcess(folder / "data", weights_dir, "--engine", "ray", "--ray-address", ray_address)
    try:
        ids = [upload(server.base, clips[n]).json()["id"] for n in (13, 14)]
        for n, job_id in zip((13, 14), ids, strict=True):
            job = wait_job(server.base, job_id, timeout=300)
            assert job["status"] == "done", job
            assert_same_result(job["result"], detect_json.results()[clips[n].name], clips[n].name)
            assert job["progress"] == pytest.approx(job["result"]["video"]["duration"])
        long = upload(server.base, long_clip).json()
        after = upload(server.base, clips[15]).json()  # queued behind it on the one worker
        job = wait_job(server.base, long["id"], until=("running",), timeout=120)
        deadline = time.monotonic() + 120
        while job["progress"] <= 0:  # the actor's progress, read back while it scores
            assert time.monotonic() < deadline and job["status"] == "running", job
            time.sleep(0.1)
            job = call("GET", f"{server.base}/v1/jobs/{long['id']}").json()
        seen, seen_at = job["progress"], time.monotonic()
        while job["progress"] == seen and time.monotonic() < seen_at + 60:
            time.sleep(0.1)
            job = call("GET", f"{server.base}/v1/jobs/{long['id']}").json()
        rate = (job["progress"] - seen) / (time.monotonic() - seen_at)  # s of video scored per s (an upper bound)
        assert 0 < job["progress"] < 30, job  # cancelled before half the video
        cancelled_at = time.time()
        assert call("DELETE", f"{server.base}/v1/jobs/{long['id']}").json()["status"] == "cancelled"
        done = wait_job(server.base, after["id"], timeout=300)
        assert done["status"] == "done"
        # the actor stopped the cancelled job: the next one started long before the rest could have been scored
        waited = datetime.fromisoformat(done["started"].replace("Z", "+00:00")).timestamp() - cancelled_at
        assert waited < (60.0 - job["progress"]) / rate / 2, (waited, job["progress"], rate)
        assert wait_job(server.base, long["id"])["status"] == "cancelled"
        assert not (server.data / "jobs" / long["id"] / "result").exists()
        values = dict(line.rsplit(" ", 1) for line in call("GET", f"{server.base}/metrics").text.splitlines()
                      if not line.startswith("#"))  # fmt: skip
        assert values["violence_detect_model_load_seconds_count"] == "1"  # one actor, its networks loaded once
    finally:
        assert server.stop() == 0, server.output


# --------------------------------------------------------------------------- the page


@pytest.fixture(scope="module")
def browser():
    from cdp import Browser, find_browser

    executable = find_browser()
    if executable is None:
        missing("no chromium installed (apt-get install chromium)")
    with Browser(executable, 1000, 800) as b:
        yield b


def test_page_uploads_follows_and_opens_the_report(browser, guarded, clips) -> None:
    page = browser.new_page()
    page.send("Page.navigate", {"url": f"{guarded.base}/"})
    page.wait_for("document.readyState === 'complete' && !!document.getElementById('submit')", timeout=30)
    page.evaluate(f"document.getElementById('token').value = {json.dumps(TOKEN_A)}")
    node = page.send("Runtime.evaluate", {"expression": "document.getElementById('file')"})["result"]["objectId"]
    page.send("DOM.setFileInputFiles", {"files": [str(clips[9])], "objectId": node})
    page.evaluate("document.getElementById('submit').click()")
    page.wait_for("!document.getElementById('report').hidden", timeout=120)
    assert page.evaluate("document.getElementById('status').className") == "done"
    href = page.evaluate("document.getElementById('report').href")
    page.goto(href, timeout=60)  # the browser's own GET: the page's cookie carries the token
    page.wait_for("document.getElementById('video') && document.getElementById('video').readyState >= 1", timeout=30)
    assert page.evaluate("document.getElementById('video').duration") == pytest.approx(1.0, abs=0.1)
    assert page.evaluate("JSON.parse(document.getElementById('report-data').textContent).result.video.path") == (
        clips[9].name
    )
    assert page.console_errors() == []
    page.close()

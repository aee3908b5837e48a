"""A real ``violence-detect serve`` for tests: a subprocess on 127.0.0.1 at a free port, and a
small HTTP client (standard library only) that uploads multipart forms.

``ServeProcess(data, weights_dir, *options)`` starts the server and waits until it listens
(its stderr line ``listening on http://127.0.0.1:PORT``); ``stop()`` sends SIGTERM,
``kill()`` SIGKILL (by its PID). The servers use the random test weights, one crop, the CPU
and fp32 (so their scores equal ``detect --json`` with the same options), and one torch
thread (``OMP_NUM_THREADS=1``, :func:`process_env`): on two cores shared by several test
processes, a second thread per process only spins waiting for a core (the CPU time of a
10-clip ``detect`` fell from 23 s to 10 s with it, at load 12).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MODEL_ARGS = ["--crops", "1", "--device", "cpu", "--precision", "fp32", "--no-download"]
TEST_THREADS = 1  # torch threads of each test's server and CLI process


def process_env(threads: int | None = TEST_THREADS) -> dict[str, str]:
    """The environment of a server or CLI subprocess: this checkout first on the path; ``threads``
    torch threads (None: torch's default, one per core)."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


class ServeProcess:
    def __init__(
        self, data: Path, weights_dir: Path, *options: str, timeout: float = 180.0, threads: int | None = TEST_THREADS
    ) -> None:
        self.data = Path(data)
        self.threads = threads
        self.command = [sys.executable, "-m", "violence_cli", "serve", "--port", "0", "--data", str(data)]
        self.command += ["--weights-dir", str(weights_dir), *MODEL_ARGS, *options]
        self.timeout = timeout
        self._start()

    def restart(self) -> None:
        """A new server process on the same data folder and options (after stop() or kill())."""
        self._start()

    def _start(self) -> None:
        self.log = self.data.parent / f"{self.data.name}.serve-{uuid.uuid4().hex[:6]}.log"
        env = process_env(self.threads)
        self.stderr = open(self.log, "w+")  # noqa: SIM115 - closed in stop()/kill()
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=self.stderr, env=env)
        deadline = time.monotonic() + self.timeout
        while True:
            text = self.log.read_text()
            found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", text)
            if found:
                self.port = int(found.group(1))
                break
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"serve did not start:\n{text}")
            time.sleep(0.1)
        self.base = f"http://127.0.0.1:{self.port}"

    @property
    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.stderr.close()
        return self.process.returncode

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.stderr.close()


class Answer:
    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


def call(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None, token: str | None = None,
         timeout: float = 60) -> Answer:
    """One request; ``body``: a dict (sent as JSON), bytes, or an iterable of bytes (sent chunked
    when ``headers`` say so). A server may answer before it has read the whole body (a refused
    upload) and close: the answer is read even when sending the rest failed, as curl does."""
    headers = {"Connection": "close", **(headers or {})}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if isinstance(body, dict):
        body = json.dumps(body).encode("utf-8")
        headers.setdefault("Content-Type", "application/json")
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        chunked = any(k.lower() == "transfer-encoding" for k in headers)
        try:
            connection.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body, headers,
                               encode_chunked=chunked)  # fmt: skip
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered (and closed) before the whole body was sent
        response = connection.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        connection.close()


def multipart(fields: dict[str, str], file_name: str, content: bytes) -> tuple[bytes, str]:
    """(body, content type) of a form with text ``fields`` and one ``file``."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{file_name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + content
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def upload(base: str, path: Path, token: str | None = None, params: dict | None = None, webhook: str | None = None,
           name: str | None = None, content: bytes | None = None) -> Answer:
    fields = {}
    if params is not None:
        fields["params"] = json.dumps(params)
    if webhook is not None:
        fields["webhook"] = webhook
    body, kind = multipart(fields, name or Path(path).name, content if content is not None else Path(path).read_bytes())
    return call("POST", f"{base}/v1/jobs", body, {"Content-Type": kind}, token)


def wait_job(base: str, job_id: str, token: str | None = None, until: tuple[str, ...] = ("done", "failed", "cancelled"),
             timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        answer = call("GET", f"{base}/v1/jobs/{job_id}", token=token)
        assert answer.status == 200, answer.text
        job = answer.json()
        if job["status"] in until:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s")
        time.sleep(0.2)

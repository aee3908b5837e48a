"""The workers of ``serve``: threads that take queued jobs from the store and run them.

Each worker loads the networks once (a :class:`~violence_cli.pipeline.Detector` per set of
model options a job asks for, kept for the worker's life) and runs each job through the
runner's :class:`~violence_cli.runner.DetectJob`: the same code, the same JSON document and
the same resume record as ``detect --output-dir``. The record is what makes a restart safe:
a job requeued after a SIGKILL whose record is complete and current is finished from it
(``check_done``), not scored again.

``--engine ray``: each worker thread keeps one Ray actor (the networks loaded once, in the
actor) and sends it its jobs; the data folder must then be on storage every node sees,
as for ``detect --engine ray``.

A second thread delivers webhooks (:class:`WebhookSender`): each finished job's document,
signed, POSTed until a 2xx answer, with doubling pauses, at most ``webhook_attempts`` times;
its state is in the store, so a restart goes on where it stopped.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import InputError, ViolenceDetectError
from ..protocol import SNIPPET_SECONDS
from ..runner.core import failed_outcome
from ..runner.inputs import VideoInput
from ..runner.jobs import DetectJob, DetectWorker
from . import security
from .config import ServeConfig
from .store import CANCELLED, DONE, FAILED, HOOK_DELIVERED, HOOK_GAVE_UP, HOOK_PENDING, JobRow, JobStore

RESULT_DIR = "result"  # DATA/jobs/ID/result/: the runner's output folder of a job
RESULT_NAME = "result"  # its record: result/result.json
INPUT_DIR = "input"  # DATA/jobs/ID/input/video.EXT: an upload or a download (the report plays it)
INPUT_STEM = "video"
PROGRESS_EVERY = 0.5  # s: a running job's progress is written at most this often
STOP_WAIT = 5.0  # s: how long a Ray worker waits for its actor to stop a cancelled job
# the extension a stored video gets from its container as the demuxer names it (not the client's name)
_EXTENSIONS = {"mp4": ".mp4", "mov": ".mp4", "matroska": ".mkv", "webm": ".webm", "avi": ".avi", "mpegts": ".ts",
               "flv": ".flv", "asf": ".wmv", "ogg": ".ogv", "mpeg": ".mpg", "3gp": ".3gp"}


class Stopped(BaseException):
    """The job stops because it was cancelled, or the server is shutting down."""


class Metrics:
    """What the store cannot say: the networks' load times (for ``/metrics``)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.load_seconds: list[float] = []

    def loaded(self, seconds: float) -> None:
        with self.lock:
            self.load_seconds.append(seconds)


def place_input(part: Path) -> Path:
    """Rename a received file to ``video.EXT``, EXT from what the file is (probed; ``.bin``
    when nothing reads it: the job then fails with the decoder's one-line error)."""
    import av

    ext = ".bin"
    try:
        with av.open(str(part), mode="r") as container:
            names = container.format.name.split(",")
        ext = next((_EXTENSIONS[n] for n in names if n in _EXTENSIONS), ".bin")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError):
        pass
    target = part.with_name(INPUT_STEM + ext)
    part.replace(target)
    return target


def input_file(job_dir: Path) -> Path | None:
    """The job's own copy of its video (``input/video.EXT``), if there is one."""
    folder = job_dir / INPUT_DIR
    found = sorted(folder.glob(f"{INPUT_STEM}.*")) if folder.is_dir() else []
    return found[0] if found else None


def result_file(job_dir: Path) -> Path:
    return job_dir / RESULT_DIR / f"{RESULT_NAME}.json"


def remove_input(job_dir: Path) -> None:
    """Remove the job's own copy of its video (never a ``path`` job's file)."""
    shutil.rmtree(job_dir / INPUT_DIR, ignore_errors=True)


class WorkerPool:
    """``config.workers`` threads running jobs until :meth:`stop`."""

    def __init__(self, store: JobStore, config: ServeConfig, metrics: Metrics) -> None:
        self.store, self.config, self.metrics = store, config, metrics
        self._wake = threading.Condition()
        self._stopping = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, name=f"serve-worker-{n}", daemon=True) for n in range(config.workers)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def wake(self) -> None:
        """A job was queued."""
        with self._wake:
            self._wake.notify_all()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the workers; a job they were running goes back to the queue for the next start."""
        self._stopping.set()
        self.wake()
        for thread in self._threads:
            thread.join(timeout)

    def _loop(self) -> None:
        runner = _Runner(self.store, self.config, self.metrics, self._stopping)
        while not self._stopping.is_set():
            row = self.store.claim()
            if row is None:
                with self._wake:
                    self._wake.wait(1.0)
                continue
            runner.run(row)


class _Runner:
    """One worker's networks and how it does one job."""

    def __init__(self, store: JobStore, config: ServeConfig, metrics: Metrics, stopping: threading.Event) -> None:
        self.store, self.config, self.metrics, self.stopping = store, config, metrics, stopping
        self.detectors: dict[tuple[Any, ...], Any] = {}  # model options -> Detector (or a Ray actor)

    def run(self, row: JobRow) -> None:
        job_dir = self.store.job_dir(row.id)
        video: VideoInput | None = None
        try:
            path = self._input(row, job_dir)
            video = VideoInput(path, PurePosixPath(f"{RESULT_NAME}{path.suffix}"), label=row.source)
            outcome = self._detect(row, video, job_dir)
        except Stopped:
            if self.store.status_of(row.id) == CANCELLED:
                shutil.rmtree(job_dir / RESULT_DIR, ignore_errors=True)
            else:
                self.store.requeue(row.id)  # shutting down: the job goes back to the queue
            return
        except Exception as exc:  # noqa: BLE001 - one job's failure is recorded; the worker goes on
            outcome = failed_outcome(video or VideoInput(Path(row.source), PurePosixPath(RESULT_NAME)), exc)
        if outcome.status == FAILED:
            error = outcome.error or "failed"
            if video is not None:  # name the file as the client did, never the server's copy
                error = error.replace(str(video.path), row.source)
            self.store.finish(row.id, FAILED, error=error)
        elif not self.store.finish(row.id, DONE, duration=outcome.duration):
            shutil.rmtree(job_dir / RESULT_DIR, ignore_errors=True)  # cancelled while it ran

    def _input(self, row: JobRow, job_dir: Path) -> Path:
        """The file to score: the upload, the path, or the URL downloaded now (once)."""
        if row.source_kind == "url" and (row.input_path is None or not Path(row.input_path).is_file()):
            (job_dir / INPUT_DIR).mkdir(parents=True, exist_ok=True)
            part = job_dir / INPUT_DIR / ".download.part"
            security.fetch(
                row.source,
                part,
                max_bytes=self.config.max_upload_bytes,
                timeout=self.config.fetch_timeout,
                allow_private=self.config.allow_private_urls,
            )
            target = place_input(part)
            self.store.set_input(row.id, str(target))
            return target
        if row.input_path is None or not Path(row.input_path).is_file():
            raise InputError(f"{row.source}: the job's video is gone")
        return Path(row.input_path)

    def _check_duration(self, row: JobRow, path: Path) -> float:
        from ..media import probe

        duration = float(probe(path).duration)
        if duration > self.config.max_duration:
            raise InputError(
                f"{row.source}: {duration / 60:.1f} min of video, more than the server's limit of "
                f"{self.config.max_duration / 60:g} min"
            )
        return duration

    def _job(self, row: JobRow, job_dir: Path) -> DetectJob:
        p, c = row.params, self.config
        return DetectJob(
            out_dir=job_dir / RESULT_DIR,
            weights=c.weights,
            crops=int(p["crops"]),
            batch_size=c.batch_size,
            precision=c.precision,
            threshold=float(p["threshold"]),
            min_duration=float(p["min_duration"]),
            merge_gap=float(p["merge_gap"]),
            start=float(p["start"]),
            end=None if p["end"] is None else float(p["end"]),
            model=p["model"],
            keep_features=False,  # a job's result is detect --json's document; no rescoring API reads them
        )

    def _detect(self, row: JobRow, video: VideoInput, job_dir: Path) -> Any:
        job = self._job(row, job_dir)
        done = job.check_done(video)  # the record of an earlier attempt: the work is done
        if done is not None:
            return done
        duration = self._check_duration(row, video.path)
        self.store.set_progress(row.id, 0.0, duration)
        (job_dir / RESULT_DIR).mkdir(parents=True, exist_ok=True)
        progress = self._progress(row, float(row.params["start"]))
        if self.config.engine == "ray":
            return self._ray_job(job, row, video, progress)
        worker = DetectWorker(job, self.config.device, detector=self._detector(job, row.params))
        return worker.process(video, progress)

    def _key(self, job: DetectJob, params: dict[str, Any]) -> tuple[Any, ...]:
        return (job.crops, params["model"])

    def _detector(self, job: DetectJob, params: dict[str, Any]) -> Any:
        """The worker's Detector for these model options, loaded at its first job."""
        key = self._key(job, params)
        if key not in self.detectors:
            from ..pipeline import Detector

            started = time.perf_counter()
            self.detectors[key] = Detector(
                model=params["model"],
                device=self.config.device,
                crops=job.crops,
                batch_size=job.batch_size,
                precision=job.precision,
                weights=job.weights,
            )
            self.metrics.loaded(time.perf_counter() - started)
        return self.detectors[key]

    def _ray_job(self, job: DetectJob, row: JobRow, video: VideoInput, progress: Callable[[int, int | None], None]) -> Any:
        """The job scored by this worker's actor for its model options (made at the first such job)."""
        key = self._key(job, row.params)
        if key not in self.detectors:
            started = time.perf_counter()
            self.detectors[key] = RayWorker(job, self.config)
            self.metrics.loaded(time.perf_counter() - started)
        from ray.exceptions import RayActorError

        try:
            return self.detectors[key].process(job, video, row.id, progress)
        except RayActorError as exc:  # the actor died (its node lost, out of memory): the next job makes a new one
            del self.detectors[key]
            raise ViolenceDetectError(f"{video.path}: the Ray actor scoring it stopped ({type(exc).__name__})") from None

    def _progress(self, row: JobRow, start: float) -> Callable[[int, int | None], None]:
        last = [0.0]

        def progress(done: int, total: int | None) -> None:
            if self.stopping.is_set():
                raise Stopped()
            now = time.monotonic()
            if now - last[0] < PROGRESS_EVERY:
                return
            last[0] = now
            if self.store.status_of(row.id) == CANCELLED:
                raise Stopped()
            self.store.set_progress(row.id, start + done * SNIPPET_SECONDS)

        return progress


class _ServeActor:
    """A Ray actor: one set of networks, loaded once and kept; scores the jobs a serve worker
    sends it. It runs two calls at once (``max_concurrency=2``), so that while :meth:`process`
    scores, the worker can read :meth:`progress` and :meth:`cancel` the job."""

    def __init__(self, job: DetectJob, device: Any) -> None:
        from ..pipeline import Detector

        self.detector = Detector(
            model=job.model, device=device, crops=job.crops, batch_size=job.batch_size, precision=job.precision, weights=job.weights
        )
        self.done: dict[str, int] = {}  # ticket -> snippets scored so far
        self.cancelled: set[str] = set()

    def ready(self) -> int:
        """The actor's process id, once the networks are loaded (a load error is raised here)."""
        import os

        return os.getpid()

    def process(self, job: DetectJob, video: VideoInput, ticket: str) -> Any:
        """The job's outcome (a failure as a failed outcome, as the local engine records it);
        None when it was cancelled while it ran."""

        def progress(done: int, total: int | None) -> None:
            self.done[ticket] = done
            if ticket in self.cancelled:
                raise Stopped()

        self.done[ticket] = 0
        try:
            progress(0, None)  # cancelled before it began
            return DetectWorker(job, self.detector.device, detector=self.detector).process(video, progress)
        except Stopped:
            return None
        except Exception as exc:  # noqa: BLE001 - the job's failure goes back as its outcome, the actor goes on
            return failed_outcome(video, exc)
        finally:
            self.done.pop(ticket, None)
            self.cancelled.discard(ticket)

    def progress(self, ticket: str) -> int:
        return self.done.get(ticket, 0)

    def cancel(self, ticket: str) -> None:
        """Stop the job ``ticket`` at its next progress call (a cancel may come before it starts)."""
        self.cancelled.add(ticket)


class RayWorker:
    """A serve worker's Ray actor (``--engine ray``), made once and kept: the networks load in
    it once; each job is sent to it, its progress read back and its cancel passed on."""

    def __init__(self, job: DetectJob, config: ServeConfig) -> None:
        from ..runner.ray_engine import connect

        ray = connect(config.ray_address)
        device = config.device
        resources = {"num_gpus": 1} if getattr(device, "type", str(device)) == "cuda" else {"num_cpus": 1}
        self._ray = ray
        self.actor = ray.remote(max_concurrency=2, **resources)(_ServeActor).remote(job, device)
        try:
            ray.get(self.actor.ready.remote())  # loaded (the load time is the worker's), or its error now
        except ray.exceptions.RayTaskError as exc:  # e.g. a weights file missing on the actor's node
            ray.kill(self.actor)
            cause = getattr(exc, "cause", None) or exc
            raise ViolenceDetectError(
                f"the Ray actor could not load the networks: {getattr(cause, 'message', None) or cause}"
            ) from None

    def process(self, job: DetectJob, video: VideoInput, ticket: str, progress: Callable[[int, int | None], None]) -> Any:
        """The outcome of ``video``; ``progress(snippets, None)`` about every :data:`PROGRESS_EVERY`
        seconds while the actor scores; a :class:`Stopped` it raises cancels the job in the actor."""
        ray = self._ray
        ref = self.actor.process.remote(job, video, ticket)
        while not ray.wait([ref], timeout=PROGRESS_EVERY)[0]:
            try:
                progress(ray.get(self.actor.progress.remote(ticket)), None)
            except Stopped:
                self.actor.cancel.remote(ticket)
                ray.wait([ref], timeout=STOP_WAIT)  # it stops at its next snippet batch
                raise
        outcome = ray.get(ref)
        if outcome is None:
            raise Stopped()
        return outcome


class WebhookSender:
    """Delivers finished jobs' webhooks (a thread); retries with doubling pauses."""

    def __init__(self, store: JobStore, config: ServeConfig, document: Callable[[JobRow], dict[str, Any]]) -> None:
        self.store, self.config, self.document = store, config, document
        self.secret = security.load_secret(store.data)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="serve-webhooks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(5.0)

    def _loop(self) -> None:
        while not self._stopping.wait(0.2):
            for row in self.store.hook_due(time.time()):
                if self._stopping.is_set():
                    return
                self.deliver(row)

    def deliver(self, row: JobRow) -> bool:
        assert row.webhook is not None
        body = json.dumps({"event": f"job.{row.status}", "job": self.document(row)}).encode("utf-8")
        try:
            security.check_url(row.webhook, self.config.allow_private_urls, what="webhook")
            request = urllib.request.Request(
                row.webhook,
                data=body,
                method="POST",
                headers={
                    "Content-Type": "application/json",
                    "User-Agent": "violence-detect-serve",
                    security.SIGNATURE_HEADER: security.sign(self.secret, body),
                },
            )
            with security.opener(self.config.allow_private_urls).open(
                request, timeout=self.config.webhook_timeout
            ) as response:
                ok = 200 <= response.status < 300
        except (urllib.error.URLError, OSError, ViolenceDetectError, ValueError):
            ok = False
        attempts = row.hook_attempts + 1
        if ok:
            self.store.hook_result(row.id, HOOK_DELIVERED, None)
        elif attempts >= self.config.webhook_attempts:
            self.store.hook_result(row.id, HOOK_GAVE_UP, None)
        else:
            pause = self.config.webhook_backoff * 2 ** (attempts - 1)
            self.store.hook_result(row.id, HOOK_PENDING, time.time() + pause)
        return ok


__all__ = ["Metrics", "RayWorker", "WebhookSender", "WorkerPool", "input_file", "place_input", "remove_input", "result_file"]

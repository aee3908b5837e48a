"""Many videos on one GPU: decode worker processes feeding the one process that holds the networks.

One process decodes at most a few hundred 1080p frames a second (FFmpeg's threads, the RGB
conversion, the resize), so on a host with many cores and one GPU a single decoding process
bounds a many-video run well below what I3D does. :class:`DecodePool` starts N worker
processes (``spawn``: no copy of the parent's CUDA state or threads); each takes the next
video from a shared task queue and, in the extractor's protocol, decodes its frames at
24 fps, resizes them (shorter side 256) and writes each frame once into a step buffer in
shared memory (``multiprocessing.shared_memory``), and turns the audio into aligned log-mel
examples in a thread of its own. Only small messages travel through the pipes: the name of
a filled buffer and how many snippets it holds, the (small) log-mel blocks, warnings and
the end; frames are never pickled. The networks' process reads a buffer in place and hands
its name back, and the worker writes the next step into it (three per video).

The consumer side is the extractor's own (:meth:`FeatureExtractor._consume`): a pooled
video looks like a locally decoded one, so the features are the same. Clean-up: the pool's
:meth:`close` (called by the runner at the end, on an error, on Ctrl-C and on SIGTERM,
which the CLI turns into KeyboardInterrupt) stops the workers (terminate, then kill) and
unlinks every buffer they made; a worker that dies leaves its buffers to Python's resource
tracker, which unlinks them when the run ends.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import secrets
import threading
import traceback
from multiprocessing import shared_memory
from typing import Any

import numpy as np
import torch

from .. import media
from ..errors import InputError

JOIN_SECONDS = 5.0  # a worker asked to stop has this long before it is terminated, then killed
POLL = 0.1  # s: how often blocked waits look at the stop flag


SEGMENT_PREFIX = "vd-"  # /dev/shm/vd-PID-XXXXXXXX: the decode worker that made it (short: macOS allows 31)


def segment_name(pid: int | None = None) -> str:
    """A new shared-memory name that says which process made it (``pid``: this one)."""
    return f"{SEGMENT_PREFIX}{os.getpid() if pid is None else pid}-{secrets.token_hex(4)}"


def default_workers(cores: int | None = None) -> int:
    """Decode workers for this host: one per two cores (FFmpeg's own threads use the rest),
    at least 1, at most 8; 0 (decode in the networks' process) on a machine of 2 cores or fewer."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if cores <= 2:
        return 0
    return max(1, min(8, cores // 2))


# --------------------------------------------------------------------------- the worker process


class _ShmStaging:
    """The extractor's :class:`_Staging`, in shared memory: buffers the other process reads
    by name and hands back through ``released``."""

    def __init__(self, released: Any, count: int) -> None:
        self.released, self.count = released, count
        self.segments: dict[str, shared_memory.SharedMemory] = {}
        self.free: list[str] = []
        self.tensors: dict[str, torch.Tensor] = {}
        self.out: dict[int, str] = {}  # id(tensor) -> name

    def get(self, shape: tuple[int, ...], stop: threading.Event) -> torch.Tensor | None:
        while not stop.is_set():
            if self.free:
                name = self.free.pop()
                if tuple(self.tensors[name].shape) == tuple(shape):
                    return self.tensors[name]
                self._drop(name)
                continue
            if len(self.segments) < self.count:
                size = int(np.prod(shape))
                shm = shared_memory.SharedMemory(name=segment_name(), create=True, size=max(size, 1))
                self.segments[shm.name] = shm
                t = torch.from_numpy(np.ndarray(shape, np.uint8, buffer=shm.buf))
                self.tensors[shm.name] = t
                self.out[id(t)] = shm.name
                return t
            try:
                self.free.append(self.released.get(timeout=POLL))
            except queue.Empty:
                continue
        return None

    def name_of(self, buffer: torch.Tensor) -> str:
        return self.out[id(buffer)]

    def release(self, buffer: torch.Tensor, event: Any = None) -> None:  # a buffer never sent
        self.free.append(self.name_of(buffer))

    def wait_all(self, stop: Any) -> None:
        """Until the other process has handed back every buffer (or we are stopped)."""
        while len(self.free) < len(self.segments) and not stop.is_set():
            try:
                self.free.append(self.released.get(timeout=POLL))
            except queue.Empty:
                continue

    def _drop(self, name: str) -> None:
        t = self.tensors.pop(name)
        self.out.pop(id(t), None)
        del t
        shm = self.segments.pop(name)
        shm.close()
        shm.unlink()

    def close(self) -> None:
        self.tensors.clear()
        self.out.clear()
        for shm in self.segments.values():
            try:
                shm.close()
                shm.unlink()
            except (FileNotFoundError, BufferError):
                pass
        self.segments.clear()
        self.free.clear()


def _worker_main(tasks: Any, results: Any, released: Any, stop_event: Any, slots: int) -> None:
    """A worker process: videos from ``tasks`` until None, messages to ``results``."""
    torch.set_num_threads(1)
    from . import extract as ex

    while not stop_event.is_set():
        try:
            task = tasks.get(timeout=POLL)
        except queue.Empty:
            continue
        if task is None:
            return
        task_id, key, step, has_audio, video_stream, audio_stream = task
        stop = threading.Event()
        staging = _ShmStaging(released, slots)

        def send(kind: str, *payload: Any) -> None:
            results.put((task_id, kind, *payload))

        try:
            count: dict[str, int] = {}
            warn = lambda text: send("warning", text)  # noqa: E731 - one line, named for its use
            frames = media.iter_frames(
                key.path, media.VIDEO_FPS, video_stream=video_stream, on_warning=warn, start=key.start, end=key.end
            )
            audio = (
                threading.Thread(target=_audio, args=(send, key, audio_stream, video_stream, stop), daemon=True)
                if has_audio
                else None
            )
            if audio is not None:
                audio.start()
            for item in ex._steps(frames, True, count, step, staging, stop, key.path):
                send("step", staging.name_of(item.buffer), tuple(item.buffer.shape), item.n)
                if stop_event.is_set():
                    stop.set()
            send("frames", count.get("frames", 0))
            if audio is not None:
                audio.join()
            staging.wait_all(stop_event)
            send("end")
        except BaseException as exc:  # noqa: BLE001 - this video's failure, reported to the networks' process
            stop.set()
            send("failed", _portable(exc))
        finally:
            staging.close()


def _audio(send: Any, key: Any, audio_stream: int | None, video_stream: int | None, stop: threading.Event) -> None:
    from .extract import VGGISH_BATCH
    from .frontend import aligned_examples

    try:
        chunks = media.iter_audio(
            key.path,
            media.AUDIO_RATE,
            audio_stream=audio_stream,
            chunk_seconds=10.0,
            on_warning=lambda text: send("warning", text),
            video_stream=video_stream,
            start=key.start,
            end=key.end,
        )
        for block in aligned_examples(chunks, max_batch=VGGISH_BATCH):
            if stop.is_set():
                return
            send("audio", np.ascontiguousarray(block, dtype=np.float32))
        send("audio_end")
    except BaseException as exc:  # noqa: BLE001 - reported to the networks' process
        send("audio_failed", _portable(exc))


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else an InputError with its message (our errors do)."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - any exception that does not travel is described instead
        return InputError(f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}")


# --------------------------------------------------------------------------- the networks' process


class _Released:
    """Hands a shared buffer back to the worker that made it (the extractor's staging interface)."""

    def __init__(self, released: Any, name: str, shm: shared_memory.SharedMemory) -> None:
        self.released, self.name, self.shm = released, name, shm

    def release(self, buffer: torch.Tensor, event: Any = None) -> None:
        if event is not None:
            event.synchronize()  # shared memory is not pinned: the copy must be done before reuse
        del buffer
        self.released.put(self.name)


class DecodePool:
    """N decode worker processes; :meth:`submit` a video, get an object the extractor consumes."""

    def __init__(self, workers: int, slots: int = 3) -> None:
        if workers < 1:
            raise ValueError(f"decode_workers {workers}: expected a positive number")
        ctx = mp.get_context("spawn")
        self.ctx = ctx
        self.tasks = ctx.Queue()
        self.stop_event = ctx.Event()
        self.workers: list[Any] = []
        self.results: list[Any] = []
        self.released: list[Any] = []
        self.videos: dict[int, Any] = {}  # task id -> _PooledVideo
        self.lock = threading.Lock()
        self.next_id = 0
        self.closed = False
        for _ in range(workers):
            results, released = ctx.Queue(), ctx.Queue()
            proc = ctx.Process(
                target=_worker_main, args=(self.tasks, results, released, self.stop_event, slots), daemon=True
            )
            proc.start()
            self.workers.append(proc)
            self.results.append(results)
            self.released.append(released)
        self.receivers = [threading.Thread(target=self._receive, args=(i,), daemon=True) for i in range(workers)]
        for t in self.receivers:
            t.start()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.workers if p.pid is not None]

    def submit(self, video: Any, step: int, video_stream: int | None, audio_stream: int | None) -> None:
        """Queue ``video`` (an extractor's pooled video) for the next free worker."""
        with self.lock:
            task_id = self.next_id
            self.next_id += 1
            self.videos[task_id] = video
        video.task_id = task_id
        self.tasks.put((task_id, video.key, step, video.info.has_audio, video_stream, audio_stream))

    def forget(self, task_id: int) -> None:
        with self.lock:
            self.videos.pop(task_id, None)

    def _receive(self, index: int) -> None:
        results, released = self.results[index], self.released[index]
        attached: dict[str, shared_memory.SharedMemory] = {}
        while not self.closed:
            try:
                message = results.get(timeout=POLL)
            except (queue.Empty, EOFError, OSError):
                if not self.workers[index].is_alive() and not self.closed:
                    self._worker_died(index)
                    return
                continue
            task_id, kind, *payload = message
            with self.lock:
                video = self.videos.get(task_id)
            if kind == "step":
                name, shape, n = payload
                shm = attached.get(name)
                if shm is None:
                    shm = attached[name] = shared_memory.SharedMemory(name=name)
                if video is None:  # a cancelled video: hand the buffer straight back
                    released.put(name)
                    continue
                tensor = torch.from_numpy(np.ndarray(shape, np.uint8, buffer=shm.buf))
                video.on_step(tensor, n, _Released(released, name, shm))
            elif kind == "end":
                for name in list(attached):  # the worker unlinks them; this process only maps them
                    _close_quietly(attached.pop(name))
                if video is not None:
                    video.on_message(kind, payload)
                self.forget(task_id)
            elif video is not None:
                video.on_message(kind, payload)
            elif kind == "failed":
                self.forget(task_id)
        for shm in attached.values():
            _close_quietly(shm)

    def _worker_died(self, index: int) -> None:
        with self.lock:
            videos = list(self.videos.values())
        code = self.workers[index].exitcode
        for video in videos:
            if getattr(video, "worker", index) in (index, None):
                video.on_message("failed", (RuntimeError(f"decode worker {index} exited with code {code}"),))

    def close(self) -> None:
        """Stop every worker (terminate, then kill) and wait for them; idempotent."""
        if self.closed:
            return
        self.closed = True
        self.stop_event.set()
        for _ in self.workers:
            try:
                self.tasks.put_nowait(None)
            except Exception:  # noqa: BLE001 - a closed queue: the stop event does it
                pass
        for proc in self.workers:
            proc.join(JOIN_SECONDS)
            if proc.is_alive():
                proc.terminate()
                proc.join(JOIN_SECONDS)
            if proc.is_alive():
                proc.kill()
                proc.join(JOIN_SECONDS)
        for t in self.receivers:
            t.join(timeout=JOIN_SECONDS)
        for q in (self.tasks, *self.results, *self.released):
            q.cancel_join_thread()
            q.close()

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _close_quietly(shm: shared_memory.SharedMemory) -> None:
    try:
        shm.close()
    except BufferError:  # a view still alive: the mapping goes with the process
        pass


__all__ = ["DecodePool", "default_workers"]

"""The Ray engine: the same run spread over a Ray cluster (``pip install 'violence-detect[ray]'``).

Whole-video granularity. The driver (the ``detect``/``extract`` process) makes a Ray Data
dataset of the *paths* still to do (after the resume filter), maps it with
:class:`_VideoActor` in an actor pool (``compute=ActorPoolStrategy(size=n)``), one GPU per
actor where the cluster has GPUs, else CPU actors (leaving a CPU for Ray's own tasks). Each
actor loads the networks once, decodes its videos itself (frames never go through the
object store), writes each video's outputs atomically into the output folder (shared
storage on a cluster) and returns the outcome row; the driver keeps ``results.csv`` and
``failures.jsonl``. Ray's own checkpointing is not used: it would re-run rows, whereas our
resume is the per-video record.
"""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ..errors import UsageError, ViolenceDetectError
from .inputs import VideoInput
from .jobs import Job
from .records import Outcome, failed_outcome, release_device_memory

ADDRESS_ENV = "RAY_ADDRESS"  # honoured by ray.init when no address is given
# Read by Ray when it is imported: "0" keeps a Ray started on this machine on 127.0.0.1 (Ray
# otherwise listens on every interface, as a cluster head would; the flag is meant for laptops).
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ViolenceDetectError(
            "the Ray engine needs Ray", hint="pip install 'violence-detect[ray]' (ray[data]>=2.51,<3)"
        ) from None
    return ray


def connect(address: str | None = None) -> Any:
    """Join the cluster at ``address`` (else ``$RAY_ADDRESS``, else start one here, listening on
    127.0.0.1 only); returns ``ray``.

    A Ray already initialised in this process (a test's ``ray.init(num_cpus=2)``) is used as it is.
    """
    address = address or os.environ.get(ADDRESS_ENV) or None
    if address is None and "ray" not in sys.modules:
        os.environ.setdefault(LOOPBACK_ENV, "0")  # before the import, which reads it
    ray = _ray()
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    return ray


def worker_device(spec: str = "auto", address: str | None = None) -> Any:
    """The device each actor runs on: CUDA when the cluster has GPUs (and ``spec`` is not cpu)."""
    import torch

    gpus = int(connect(address).cluster_resources().get("GPU", 0))
    text = str(spec).strip().lower()
    if text == "cpu" or (text == "auto" and not gpus):
        return torch.device("cpu")
    if text not in ("auto",) and not text.startswith("cuda"):
        raise UsageError(f"unknown device {spec!r}", hint="use auto, cpu or cuda with engine='ray'")
    if not gpus:
        raise UsageError(f"device {spec!r}: the Ray cluster has no GPU", hint="use device='cpu'")
    return torch.device("cuda")  # each actor sees its own GPU as cuda:0


class _VideoActor:
    """One per actor: the networks, loaded once; ``__call__`` does a batch of paths."""

    def __init__(self, job: Job, device: Any, threads: int) -> None:
        import torch

        if device.type == "cpu":
            torch.set_num_threads(max(1, threads))
        self.job = job
        self.worker = job.load(device)
        self.device = device

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = []
        for path, rel in zip(batch["path"], batch["rel"]):
            video = VideoInput(Path(str(path)), PurePosixPath(str(rel)))
            try:
                outcome = self.worker.process(video)
            except Exception as exc:  # noqa: BLE001 - one video's failure is recorded, the others go on
                outcome = failed_outcome(video, exc)
                release_device_memory(self.device)
            rows.append(pickle.dumps(outcome))
        return {"outcome": np.array(rows, dtype=object)}


def run_ray(
    pending: Sequence[VideoInput],
    job: Job,
    record: Callable[[Outcome, VideoInput | None], None],
    summary: Any,
    *,
    address: str | None = None,
    actors: int | None = None,
    device: Any = None,
) -> None:
    """Process ``pending`` on the cluster; ``record(outcome, video)`` for each, as they finish."""
    ray = connect(address)
    from ray.data import ActorPoolStrategy

    resources = ray.cluster_resources()
    if device is None or not hasattr(device, "type"):
        device = worker_device(str(device or "auto"))
    by_path = {str(v.path): v for v in pending}
    if device.type == "cuda":
        size = actors or max(1, int(resources.get("GPU", 1)))
        per_actor = {"num_gpus": 1}
        threads = 1
    else:
        cpus = int(resources.get("CPU", 1))
        size = actors or max(1, cpus - 1)  # leave a CPU for Ray's own tasks
        threads = max(1, (cpus - 1) // size) if cpus > 1 else 1
        per_actor = {"num_cpus": threads}
    size = min(size, len(pending))
    dataset = ray.data.from_items([{"path": str(v.path), "rel": str(v.rel)} for v in pending])
    results = dataset.map_batches(
        _VideoActor,
        fn_constructor_kwargs={"job": job, "device": device, "threads": threads},
        batch_size=1,
        compute=ActorPoolStrategy(size=size),
        **per_actor,
    )
    try:
        for row in results.iter_rows():
            outcome: Outcome = pickle.loads(row["outcome"])
            record(outcome, by_path.get(outcome.path))
    except KeyboardInterrupt as exc:
        exc.run_summary = summary  # type: ignore[attr-defined]
        raise


__all__ = ["ADDRESS_ENV", "connect", "run_ray", "worker_device"]

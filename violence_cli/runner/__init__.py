"""The many-video runner that ``detect`` and ``extract`` both use.

- :mod:`.inputs`: discovery (files, folders, ``recursive``, lists, stdin), output names, shards;
- :mod:`.jobs`: what is done to one video (:class:`DetectJob`, :class:`ExtractJob`);
- :mod:`.records`: outcomes, the resume record, ``results.csv`` and ``failures.jsonl``;
- :mod:`.core`: :func:`run` (plan, resume, per-video failures, the local engine);
- :mod:`.ray_engine`: the same over a Ray cluster (optional extra ``ray``).
"""

from __future__ import annotations

from .core import ENGINES, RunEvents, RunSummary, run
from .inputs import Discovery, VideoInput, discover, parse_shard, select_shard
from .jobs import DetectJob, ExtractJob, Job
from .records import FAILURES_FILE, RESULTS_FILE, Outcome

__all__ = [
    "ENGINES",
    "FAILURES_FILE",
    "RESULTS_FILE",
    "DetectJob",
    "Discovery",
    "ExtractJob",
    "Job",
    "Outcome",
    "RunEvents",
    "RunSummary",
    "VideoInput",
    "discover",
    "parse_shard",
    "run",
    "select_shard",
]

"""What a run remembers: one outcome per video, ``results.csv`` and ``failures.jsonl``.

Resume rests on a record each video's own output carries (detect's ``NAME.json``, extract's
``NAME.extract.json`` sidecar, each written last and atomically): the input's fingerprint
(size and modification time), the sha256 of every weights file and the parameters that
change the result. A video is done when that record is there, parses and matches.

The run-wide files in the output folder (and extract's ``features.json``) are shared by every process pointed at it
(``--shard`` or not): each update takes an exclusive ``fcntl`` lock on
the output folder itself (``flock`` on its descriptor), reads the current file, merges this process's rows by output
name and atomically replaces the file, so concurrent runs neither corrupt nor drop each
other's rows. (Per-video files need no lock: each is an atomic replace, so two processes
doing the same video leave one whole copy.)
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import time
import traceback
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import atomic

try:
    import fcntl
except ImportError:  # pragma: no cover - not Unix: updates are still atomic, only unserialised
    fcntl = None  # type: ignore[assignment]

RESULTS_FILE = "results.csv"
FAILURES_FILE = "failures.jsonl"
RESULTS_COLUMNS = (
    "path",
    "duration",
    "audio_present",
    "snippets",
    "peak_score",
    "violent_seconds",
    "segments",
    "status",
    "error",
)

DONE, SKIPPED, FAILED, FAILED_BEFORE = "done", "skipped", "failed", "failed-before"
STATUSES = (DONE, SKIPPED, FAILED, FAILED_BEFORE)
DETECT_FIELDS = ("peak_score", "violent_seconds", "segments", "verdict")  # an Outcome's fields only detect fills


def fingerprint(path: str | os.PathLike[str]) -> dict[str, int]:
    """What identifies an input file's content cheaply: size (bytes) and mtime (ns)."""
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def make_record(source: dict[str, int], weights: dict[str, str], params: dict[str, Any]) -> dict[str, Any]:
    """The resume record an output carries: input fingerprint, weights sha256 by name, params."""
    return {"source": dict(source), "weights": dict(weights), "params": dict(params)}


@dataclass
class Outcome:
    """What happened to one video. ``status``: done (processed now), skipped (done before),
    failed (``error`` says why) or failed-before (in failures.jsonl, not retried)."""

    path: str
    name: str
    status: str
    error: str | None = None
    hint: str | None = None
    duration: float | None = None  # s, as the container says
    has_audio: bool | None = None
    n_snippets: int | None = None
    peak_score: float | None = None  # detect only
    violent_seconds: float | None = None  # detect only
    segments: int | None = None  # detect only
    verdict: str | None = None  # detect only
    precision: str | None = None  # what the feature networks ran in: fp32 or bf16
    files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0  # wall time spent on it
    work_seconds: float = 0.0  # of which in decoding + networks (the rest is the runner's)
    # done: True when the video was decoded and run through I3D / VGGish, False when its
    # kept features were scored again (detect: nothing decoded); None when not processed
    decoded: bool | None = None
    result: Any = field(default=None, repr=False, compare=False)  # detect: the DetectionResult
    trace: str | None = field(default=None, repr=False, compare=False)  # failed: the traceback (shown with --debug)

    def row(self) -> dict[str, str]:
        """Its results.csv row."""

        def num(x: float | None, fmt: str) -> str:
            return "" if x is None else format(x, fmt)

        return {
            "path": self.path,
            "duration": num(self.duration, ".3f"),
            "audio_present": "" if self.has_audio is None else ("yes" if self.has_audio else "no"),
            "snippets": "" if self.n_snippets is None else str(self.n_snippets),
            "peak_score": num(self.peak_score, ".4f"),
            "violent_seconds": num(self.violent_seconds, ".3f"),
            "segments": "" if self.segments is None else str(self.segments),
            "status": "failed" if self.status in (FAILED, FAILED_BEFORE) else "done",
            "error": self.error or "",
        }

    def to_dict(self, omit: tuple[str, ...] = ()) -> dict[str, Any]:
        """Its JSON form, without the fields in ``omit`` (extract: :data:`DETECT_FIELDS`)."""
        out = asdict(self)
        out.pop("result")
        out.pop("trace")  # for --debug on the terminal, not for JSON documents
        for name in omit:
            out.pop(name, None)
        return out


def describe_exception(exc: BaseException, path: str | None = None) -> tuple[str, str | None]:
    """(one-line error, hint): our own errors keep their message (it names the file and the
    problem); anything else is ``PATH: ExceptionType: message``."""
    from ..errors import ViolenceDetectError

    if isinstance(exc, ViolenceDetectError):
        return exc.message, exc.hint
    text = " ".join(str(exc).split()) or "no detail"
    where = f"{path}: " if path else ""
    return f"{where}{type(exc).__name__}: {text[:500]}", None


def failed_outcome(video: Any, exc: BaseException, seconds: float = 0.0) -> Outcome:
    """The outcome of a ``video`` (a :class:`~violence_cli.runner.inputs.VideoInput`) that
    raised ``exc``, with its traceback kept for ``--debug``; every engine records failures so."""
    error, hint = describe_exception(exc, video.shown)
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return Outcome(video.shown, video.name, FAILED, error=error, hint=hint, seconds=seconds, trace=trace)


def release_device_memory(device: Any) -> None:
    """After a failed video (CUDA out of memory, say): hand cached GPU memory back before the next."""
    if getattr(device, "type", str(device)).startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``folder`` (``flock`` on its descriptor), held while the block runs:
    what every update of a run-wide file in an output folder takes."""
    if fcntl is None:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)  # the folder itself is the lock: no lock file left behind
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


class RunFiles:
    """``results.csv`` and ``failures.jsonl`` of one output folder, shared safely."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.results = folder / RESULTS_FILE
        self.failures_path = folder / FAILURES_FILE
        self._rows: dict[str, dict[str, str]] = {}  # name -> row, this process's news
        self._failed: dict[str, dict[str, Any]] = {}  # name -> failure entry
        self._cleared: set[str] = set()  # names that succeeded: drop their failure entries
        self._last_flush = 0.0

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return folder_lock(self.folder)

    def read_failures(self) -> dict[str, dict[str, Any]]:
        """name -> the latest failure entry (lines that do not parse are ignored)."""
        entries: dict[str, dict[str, Any]] = {}
        try:
            text = self.failures_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return entries
        for line in text.splitlines():
            try:
                entry = json.loads(line)
                entries[str(entry["name"])] = entry
            except (ValueError, KeyError, TypeError):
                continue
        return entries

    def _read_rows(self) -> dict[str, dict[str, str]]:
        try:
            with open(self.results, encoding="utf-8", errors=atomic.RAW_BYTES, newline="") as fh:
                return {row["name"]: row for row in csv.DictReader(fh) if row.get("name")}
        except (FileNotFoundError, KeyError, csv.Error, UnicodeDecodeError):
            return {}

    def add(self, outcome: Outcome, source: dict[str, int] | None = None) -> None:
        row = {"name": outcome.name, **outcome.row()}
        self._rows[outcome.name] = row
        if outcome.status == FAILED:
            self._failed[outcome.name] = {
                "path": outcome.path,
                "name": outcome.name,
                "error": outcome.error,
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "source": source,
            }
            self._cleared.discard(outcome.name)
        elif outcome.status in (DONE, SKIPPED):
            self._cleared.add(outcome.name)
            self._failed.pop(outcome.name, None)

    def flush(self, *, every: float = 0.0) -> None:
        """Merge this process's rows into both files (at most once per ``every`` seconds)."""
        now = time.monotonic()
        if every and now - self._last_flush < every:
            return
        self._last_flush = now
        if not self._rows and not self._failed and not self._cleared:
            return
        with self._locked():
            for path in (self.results, self.failures_path):
                atomic.remove_stale(path)  # a killed writer's: nobody else writes them under the lock
            rows = self._read_rows()
            rows.update(self._rows)
            buffer = io.StringIO(newline="")
            writer = csv.DictWriter(buffer, ("name", *RESULTS_COLUMNS), lineterminator="\n")
            writer.writeheader()
            writer.writerows(sorted(rows.values(), key=lambda r: r["name"]))
            atomic.write_text(self.results, buffer.getvalue(), errors=atomic.RAW_BYTES)  # names as on disk
            failures = self.read_failures()
            if self._failed or (self._cleared & failures.keys()):
                for name in self._cleared:
                    failures.pop(name, None)
                failures.update(self._failed)
                text = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in failures.values())
                atomic.write_text(self.failures_path, text, errors=atomic.ESCAPED)


__all__ = [
    "DETECT_FIELDS",
    "DONE",
    "FAILED",
    "FAILED_BEFORE",
    "FAILURES_FILE",
    "RESULTS_COLUMNS",
    "RESULTS_FILE",
    "SKIPPED",
    "STATUSES",
    "Outcome",
    "RunFiles",
    "describe_exception",
    "failed_outcome",
    "fingerprint",
    "folder_lock",
    "make_record",
    "release_device_memory",
]

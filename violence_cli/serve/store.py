"""The durable job store of ``serve``: one SQLite database in WAL mode under the data folder.

A job is a row (its owner, source, parameters, status, attempts, progress, timestamps, where
its result lies); its upload and its results are files beside the database
(``DATA/jobs/ID/``), each written atomically. Every change of state is one transaction, so
a SIGKILL at any instant leaves either the old state or the new one:

- accepted (``202`` answered) means committed, with its upload already in place;
- on start, :meth:`JobStore.recover` puts ``running`` jobs back in the queue (the runner's
  record in the job's folder tells the worker whether the work itself was already done);
- a job becomes ``done`` only from ``running`` (``WHERE status = 'running'``), and
  ``completions`` counts those transitions: it is 1 for every done job, never 2.

One connection, guarded by a lock (the API's threads and the workers share it); SQLite's
own locking keeps a second process honest.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DB_FILE = "jobs.sqlite3"
JOBS_DIR = "jobs"  # DATA/jobs/ID/: the upload and the results of job ID
QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
STATUSES = (QUEUED, RUNNING, DONE, FAILED, CANCELLED)
FINISHED = (DONE, FAILED, CANCELLED)
# webhook delivery state of a job with a webhook
HOOK_PENDING, HOOK_DELIVERED, HOOK_GAVE_UP = "pending", "delivered", "gave-up"
LATENCY_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)  # s, job latency histogram

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,            -- sha256 of the token that submitted it ('' without tokens)
    status TEXT NOT NULL,
    source_kind TEXT NOT NULL,      -- upload | url | path
    source TEXT NOT NULL,           -- the file name, URL or path as given (what results show)
    input_path TEXT,                -- the file the worker reads (an upload, a download, a path)
    params TEXT NOT NULL,           -- JSON
    webhook TEXT,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    completions INTEGER NOT NULL DEFAULT 0,
    progress REAL NOT NULL DEFAULT 0,   -- s of video done
    duration REAL,                  -- s of video (when known)
    error TEXT,
    result_dir TEXT,
    hook_state TEXT,
    hook_attempts INTEGER NOT NULL DEFAULT 0,
    hook_next REAL
);
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs (owner, created);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created);
"""


@dataclass
class JobRow:
    id: str
    owner: str
    status: str
    source_kind: str
    source: str
    input_path: str | None
    params: dict[str, Any]
    webhook: str | None
    created: float
    started: float | None
    finished: float | None
    attempts: int
    completions: int
    progress: float
    duration: float | None
    error: str | None
    result_dir: str | None
    hook_state: str | None
    hook_attempts: int
    hook_next: float | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> JobRow:
        data = dict(row)
        data["params"] = json.loads(data["params"])
        return cls(**data)


class QueueFull(Exception):
    """The queue holds ``max_queue`` jobs already."""


class JobStore:
    """The jobs of one data folder. Thread-safe; every method is one transaction."""

    def __init__(self, data: Path) -> None:
        self.data = Path(data)
        self.data.mkdir(parents=True, exist_ok=True)
        (self.data / JOBS_DIR).mkdir(exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.data / DB_FILE, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a committed job survives a power cut too
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def job_dir(self, job_id: str) -> Path:
        return self.data / JOBS_DIR / job_id

    @staticmethod
    def new_id() -> str:
        return secrets.token_hex(8)

    # ------------------------------------------------------------------ writes

    def add(
        self,
        job_id: str,
        owner: str,
        source_kind: str,
        source: str,
        input_path: str | None,
        params: dict[str, Any],
        webhook: str | None,
        max_queue: int,
    ) -> JobRow:
        """Queue a job; :class:`QueueFull` when ``max_queue`` jobs are queued or running already."""
        now = time.time()
        with self._tx() as db:
            (waiting,) = db.execute("SELECT COUNT(*) FROM jobs WHERE status IN (?, ?)", (QUEUED, RUNNING)).fetchone()
            if waiting >= max_queue:
                raise QueueFull()
            db.execute(
                "INSERT INTO jobs (id, owner, status, source_kind, source, input_path, params, webhook, created,"
                " result_dir, hook_state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    owner,
                    QUEUED,
                    source_kind,
                    source,
                    input_path,
                    json.dumps(params),
                    webhook,
                    now,
                    str(self.job_dir(job_id)),
                    HOOK_PENDING if webhook else None,
                ),
            )
            return self._get(db, job_id)  # type: ignore[return-value]

    def claim(self) -> JobRow | None:
        """The oldest queued job, now ``running`` (attempts + 1); None when the queue is empty."""
        with self._tx() as db:
            row = db.execute("SELECT id FROM jobs WHERE status = ? ORDER BY created, id LIMIT 1", (QUEUED,)).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE jobs SET status = ?, started = ?, attempts = attempts + 1, progress = 0 WHERE id = ?",
                (RUNNING, time.time(), row["id"]),
            )
            return self._get(db, row["id"])

    def recover(self) -> int:
        """At start: jobs left ``running`` by a killed server go back to the queue; returns how many."""
        with self._tx() as db:
            return db.execute("UPDATE jobs SET status = ?, started = NULL WHERE status = ?", (QUEUED, RUNNING)).rowcount

    def requeue(self, job_id: str) -> None:
        """A running job back to the queue (the server is stopping while it runs)."""
        with self._tx() as db:
            db.execute("UPDATE jobs SET status = ?, started = NULL WHERE id = ? AND status = ?", (QUEUED, job_id, RUNNING))

    def set_progress(self, job_id: str, seconds: float, duration: float | None = None) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET progress = ?, duration = COALESCE(?, duration) WHERE id = ? AND status = ?",
                (seconds, duration, job_id, RUNNING),
            )

    def set_input(self, job_id: str, input_path: str) -> None:
        """Where the worker reads the job's video (a URL's download)."""
        with self._tx() as db:
            db.execute("UPDATE jobs SET input_path = ? WHERE id = ?", (input_path, job_id))

    def finish(self, job_id: str, status: str, *, error: str | None = None, duration: float | None = None) -> bool:
        """``running`` -> ``done`` / ``failed``; False when the job was no longer running (cancelled meanwhile)."""
        assert status in (DONE, FAILED)
        with self._tx() as db:
            changed = db.execute(
                "UPDATE jobs SET status = ?, finished = ?, error = ?, duration = COALESCE(?, duration),"
                " progress = CASE WHEN ? = 'done' THEN COALESCE(?, duration, progress) ELSE progress END,"
                " completions = completions + (? = 'done') WHERE id = ? AND status = ?",
                (status, time.time(), error, duration, status, duration, status, job_id, RUNNING),
            ).rowcount
            return bool(changed)

    def cancel(self, job_id: str, owner: str) -> JobRow | None:
        """A queued or running job of ``owner`` -> ``cancelled``; returns the row (None: not theirs / unknown)."""
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET status = ?, finished = ? WHERE id = ? AND owner = ? AND status IN (?, ?)",
                (CANCELLED, time.time(), job_id, owner, QUEUED, RUNNING),
            )
            return self._get(db, job_id, owner)

    def delete(self, job_id: str, owner: str) -> bool:
        """Forget a finished job of ``owner`` (its files are the caller's to remove)."""
        with self._tx() as db:
            placeholders = ",".join("?" * len(FINISHED))
            return bool(
                db.execute(
                    f"DELETE FROM jobs WHERE id = ? AND owner = ? AND status IN ({placeholders})",
                    (job_id, owner, *FINISHED),
                ).rowcount
            )

    def hook_due(self, now: float) -> list[JobRow]:
        """Finished jobs whose webhook is still to be (re)tried now."""
        with self._lock:
            placeholders = ",".join("?" * len(FINISHED))
            rows = self._db.execute(
                f"SELECT * FROM jobs WHERE hook_state = ? AND status IN ({placeholders})"
                " AND (hook_next IS NULL OR hook_next <= ?) ORDER BY finished",
                (HOOK_PENDING, *FINISHED, now),
            ).fetchall()
        return [JobRow.from_row(r) for r in rows]

    def hook_result(self, job_id: str, state: str, next_try: float | None) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET hook_state = ?, hook_attempts = hook_attempts + 1, hook_next = ? WHERE id = ?",
                (state, next_try, job_id),
            )

    # ------------------------------------------------------------------ reads

    def _get(self, db: sqlite3.Connection, job_id: str, owner: str | None = None) -> JobRow | None:
        if owner is None:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        else:
            row = db.execute("SELECT * FROM jobs WHERE id = ? AND owner = ?", (job_id, owner)).fetchone()
        return JobRow.from_row(row) if row is not None else None

    def get(self, job_id: str, owner: str | None = None) -> JobRow | None:
        """The job (None when unknown or, with ``owner``, another owner's)."""
        with self._lock:
            return self._get(self._db, job_id, owner)

    def status_of(self, job_id: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return row["status"] if row is not None else None

    def list(self, owner: str, status: str | None, limit: int, cursor: str | None) -> tuple[list[JobRow], str | None]:
        """``owner``'s jobs, newest first, ``limit`` per page; (rows, cursor of the next page or None).

        The cursor is the last row's ``created:id``, so pages stay stable while jobs are added."""
        sql, args = "SELECT * FROM jobs WHERE owner = ?", [owner]
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        if cursor is not None:
            created, _, last_id = cursor.partition(":")
            sql += " AND (created < ? OR (created = ? AND id < ?))"
            args += [float(created), float(created), last_id]
        sql += " ORDER BY created DESC, id DESC LIMIT ?"
        args.append(limit + 1)
        with self._lock:
            rows = [JobRow.from_row(r) for r in self._db.execute(sql, args).fetchall()]
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, (f"{rows[-1].created!r}:{rows[-1].id}" if more and rows else None)

    def ids(self) -> set[str]:
        with self._lock:
            return {r["id"] for r in self._db.execute("SELECT id FROM jobs").fetchall()}

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status").fetchall()
        out = dict.fromkeys(STATUSES, 0)
        out.update({r["status"]: r["n"] for r in rows})
        return out

    def done_stats(self) -> tuple[float, list[int], float, int]:
        """(seconds of video scored, cumulative latency counts per bucket, latency sum, done count)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT COALESCE(duration, 0) AS d, finished - created AS lat FROM jobs WHERE status = ?", (DONE,)
            ).fetchall()
        latencies = [r["lat"] for r in rows]
        cumulative = [sum(1 for x in latencies if x <= edge) for edge in LATENCY_BUCKETS]
        return sum(r["d"] for r in rows), cumulative, sum(latencies), len(latencies)


__all__ = [
    "CANCELLED",
    "DB_FILE",
    "DONE",
    "FAILED",
    "FINISHED",
    "JOBS_DIR",
    "LATENCY_BUCKETS",
    "QUEUED",
    "RUNNING",
    "STATUSES",
    "JobRow",
    "JobStore",
    "QueueFull",
]

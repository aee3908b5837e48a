"""What a run remembers (violence_cli.runner.records): fingerprints, results.csv rows, failures.jsonl."""

from __future__ import annotations

import csv
import fcntl
import json
import os
import re
from pathlib import Path

import pytest

from violence_cli.errors import InputError
from violence_cli.runner.records import (
    DETECT_FIELDS,
    DONE,
    FAILED,
    FAILED_BEFORE,
    SKIPPED,
    Outcome,
    RunFiles,
    describe_exception,
    fingerprint,
    folder_lock,
    make_record,
)


def names_in_results(folder: Path) -> list[str]:
    return [row["name"] for row in csv.DictReader((folder / "results.csv").open(newline=""))]


def test_fingerprint_is_size_and_mtime_in_nanoseconds(tmp_path: Path) -> None:
    video = tmp_path / "a.mp4"
    video.write_bytes(b"12345")
    os.utime(video, ns=(1, 1_700_000_000_123_456_789))
    assert fingerprint(video) == {"size": 5, "mtime_ns": 1_700_000_000_123_456_789}


def test_make_record_holds_copies_of_its_parts() -> None:
    source, weights, params = {"size": 5, "mtime_ns": 7}, {"macil_sd": "ab" * 32}, {"threshold": 0.5}
    record = make_record(source, weights, params)
    assert record == {
        "source": {"size": 5, "mtime_ns": 7},
        "weights": {"macil_sd": "ab" * 32},
        "params": {"threshold": 0.5},
    }
    source["size"], params["threshold"] = 6, 0.7
    assert record["source"]["size"] == 5 and record["params"]["threshold"] == 0.5


def test_results_row_of_a_detected_video() -> None:
    outcome = Outcome(
        "/v/a.mp4", "a", DONE, duration=12.34567, has_audio=False, n_snippets=18, peak_score=0.912345,
        violent_seconds=2.6666667, segments=2,
    )  # fmt: skip
    assert outcome.row() == {
        "path": "/v/a.mp4",
        "duration": "12.346",
        "audio_present": "no",
        "snippets": "18",
        "peak_score": "0.9123",
        "violent_seconds": "2.667",
        "segments": "2",
        "status": "done",
        "error": "",
    }


def test_results_row_of_a_skipped_quiet_video_keeps_its_zeros() -> None:
    row = Outcome("/v/q.mp4", "q", SKIPPED, has_audio=True, n_snippets=0, peak_score=0.0, segments=0).row()
    assert (row["audio_present"], row["snippets"], row["peak_score"], row["segments"]) == ("yes", "0", "0.0000", "0")
    assert row["status"] == "done"


@pytest.mark.parametrize("status", [FAILED, FAILED_BEFORE])
def test_results_row_of_a_failed_video_is_empty_but_for_the_error(status: str) -> None:
    row = Outcome("/v/b.mp4", "b", status, error="/v/b.mp4: not a video").row()
    assert row == {
        "path": "/v/b.mp4",
        "duration": "",
        "audio_present": "",
        "snippets": "",
        "peak_score": "",
        "violent_seconds": "",
        "segments": "",
        "status": "failed",
        "error": "/v/b.mp4: not a video",
    }


def test_to_dict_leaves_out_the_result_the_trace_and_what_is_omitted() -> None:
    outcome = Outcome(
        "/v/a.mp4", "a", DONE, peak_score=0.9, verdict="violent", precision="fp32", result=object(), trace="tb"
    )
    full = outcome.to_dict()
    assert "result" not in full and "trace" not in full and full["peak_score"] == 0.9
    short = outcome.to_dict(omit=DETECT_FIELDS)
    assert not set(DETECT_FIELDS) & short.keys()
    assert short["precision"] == "fp32" and short["name"] == "a"


def test_describe_exception() -> None:
    assert describe_exception(InputError("x.mp4: broken", hint="try y"), "x.mp4") == ("x.mp4: broken", "try y")
    assert describe_exception(ValueError("bad\n   value"), "/v/c.mp4") == ("/v/c.mp4: ValueError: bad value", None)
    assert describe_exception(ValueError("bad value")) == ("ValueError: bad value", None)
    assert describe_exception(RuntimeError(), "c.mp4") == ("c.mp4: RuntimeError: no detail", None)
    long, _ = describe_exception(RuntimeError("x" * 600), "c.mp4")
    assert long == "c.mp4: RuntimeError: " + "x" * 500


def test_folder_lock_is_exclusive_while_held(tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        with folder_lock(tmp_path):
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    finally:
        os.close(fd)


def test_read_failures_keeps_the_latest_entry_and_ignores_damaged_lines(tmp_path: Path) -> None:
    lines = [
        "not json",
        '{"no_name": 1}',
        "[1, 2]",
        '{"name": "a", "error": "first"}',
        '{"name": "a", "error": "second"}',
    ]
    (tmp_path / "failures.jsonl").write_text("\n".join(lines) + "\n")
    assert RunFiles(tmp_path).read_failures() == {"a": {"name": "a", "error": "second"}}


def test_a_failure_entry_names_the_video_its_error_source_and_time(tmp_path: Path) -> None:
    files = RunFiles(tmp_path)
    files.add(Outcome("/v/b.mp4", "b", FAILED, error="/v/b.mp4: broken"), {"size": 1, "mtime_ns": 2})
    files.flush()
    (entry,) = RunFiles(tmp_path).read_failures().values()
    assert {k: entry[k] for k in ("path", "name", "error", "source")} == {
        "path": "/v/b.mp4",
        "name": "b",
        "error": "/v/b.mp4: broken",
        "source": {"size": 1, "mtime_ns": 2},
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", entry["time"])


def test_a_video_failed_before_keeps_its_failure_entry(tmp_path: Path) -> None:
    first = RunFiles(tmp_path)
    first.add(Outcome("/v/b.mp4", "b", FAILED, error="b: broken"))
    first.flush()
    again = RunFiles(tmp_path)
    again.add(Outcome("/v/b.mp4", "b", FAILED_BEFORE, error="b: broken"))
    again.add(Outcome("/v/a.mp4", "a", DONE))
    again.flush()
    assert list(RunFiles(tmp_path).read_failures()) == ["b"]


def test_a_video_that_succeeds_later_leaves_failures(tmp_path: Path) -> None:
    first = RunFiles(tmp_path)
    first.add(Outcome("/v/b.mp4", "b", FAILED, error="b: broken"))
    first.flush()
    again = RunFiles(tmp_path)
    again.add(Outcome("/v/b.mp4", "b", DONE))
    again.flush()
    assert RunFiles(tmp_path).read_failures() == {}
    same_run = RunFiles(tmp_path)
    same_run.add(Outcome("/v/c.mp4", "c", FAILED, error="c: broken"))
    same_run.add(Outcome("/v/c.mp4", "c", DONE))
    same_run.flush()
    assert RunFiles(tmp_path).read_failures() == {}


def test_flush_every_writes_at_most_once_per_period(tmp_path: Path) -> None:
    files = RunFiles(tmp_path)
    files.add(Outcome("/v/a.mp4", "a", DONE))
    files.flush(every=3600)
    files.add(Outcome("/v/b.mp4", "b", DONE))
    files.flush(every=3600)
    assert names_in_results(tmp_path) == ["a"]
    files.flush()
    assert names_in_results(tmp_path) == ["a", "b"]


def test_flush_with_nothing_to_say_writes_nothing(tmp_path: Path) -> None:
    RunFiles(tmp_path).flush()
    assert list(tmp_path.iterdir()) == []


def test_results_are_sorted_by_name(tmp_path: Path) -> None:
    files = RunFiles(tmp_path)
    for name in ("c", "a", "b"):
        files.add(Outcome(f"/v/{name}.mp4", name, DONE))
    files.flush()
    assert names_in_results(tmp_path) == ["a", "b", "c"]


def test_flush_drops_unnamed_rows_and_survives_a_damaged_results_file(tmp_path: Path) -> None:
    (tmp_path / "results.csv").write_text("name,path,status\n,/v/x.mp4,done\nold,/v/old.mp4,done\n")
    files = RunFiles(tmp_path)
    files.add(Outcome("/v/a.mp4", "a", DONE))
    files.flush()
    assert names_in_results(tmp_path) == ["a", "old"]
    (tmp_path / "results.csv").write_text("name,path\nbig," + "x" * 200_000 + "\n")  # beyond csv's field limit
    files.flush()
    assert names_in_results(tmp_path) == ["a"]


def test_flush_removes_a_killed_writers_temporary_files(tmp_path: Path) -> None:
    stale = [tmp_path / ".results.csv.abcd1234.tmp", tmp_path / ".failures.jsonl.abcd1234.tmp"]
    for path in stale:
        path.write_text("half")
    files = RunFiles(tmp_path)
    files.add(Outcome("/v/b.mp4", "b", FAILED, error="b: broken"))
    files.flush()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["failures.jsonl", "results.csv"]
    assert json.loads((tmp_path / "failures.jsonl").read_text())["name"] == "b"

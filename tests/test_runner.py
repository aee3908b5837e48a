"""The many-video runner: discovery and names, resume, failures.jsonl, results.csv, shards,
the per-video catch, and a real SIGKILL in the middle of a run.

Random weights (tests/fakeweights.py), one crop, clips under a second: one snippet each.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from fakeweights import fake_weights_folder
from mediagen import make_clip

from violence_cli import atomic
from violence_cli.runner import DetectJob, ExtractJob, Job, RunEvents, discover, run, select_shard
from violence_cli.runner.inputs import VideoInput, parse_shard, shard_of
from violence_cli.runner.records import RESULTS_COLUMNS, Outcome, RunFiles
from violence_cli.weights import resolve_weight_files

NAMES = ["a", "corrupt", "mute", "x/clip", "y/clip"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    with fake_weights_folder(tmp_path_factory, "fake-weights") as w:
        yield w


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    """One good clip with audio, one corrupt file, one without audio, two clip.mp4 in subfolders."""
    d = tmp_path_factory.mktemp("videos")
    make_clip(d / "a.mp4", seconds=0.8, fps=24, size=(32, 24))
    (d / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video" * 20)
    make_clip(d / "mute.mp4", seconds=0.8, fps=24, size=(32, 24), audio=False)
    for sub in ("x", "y"):
        (d / sub).mkdir()
        make_clip(
            d / sub / "clip.mp4", seconds=0.8, fps=24, size=(32, 24), pattern="quadrants" if sub == "x" else "gradient"
        )
    return d


_WORKERS: dict[tuple, object] = {}


@pytest.fixture
def shared_networks(monkeypatch) -> None:
    """Load the networks once for the whole module (what one long run does)."""
    from violence_cli.runner import jobs

    for cls in (jobs.DetectWorker, jobs.ExtractWorker):
        real_init = cls.__init__

        def init(self, job, device, real_init=real_init, cls=cls):
            key = (cls.__name__, job.crops)
            if key not in _WORKERS:
                real_init(self, job, device)
                _WORKERS[key] = dict(vars(self))
            vars(self).update(_WORKERS[key])
            self.job = job

        monkeypatch.setattr(cls, "__init__", init)


def detect_job(weights: dict[str, Path], out: Path | None) -> DetectJob:
    resolved = resolve_weight_files({n: weights[n] for n in ("i3d_rgb_imagenet", "vggish", "macil_sd")})
    return DetectJob(out_dir=out, weights=resolved, crops=1)


def statuses(summary) -> dict[str, str]:
    return {o.name: o.status for o in summary.outcomes}


# --------------------------------------------------------------------------- discovery and names


def test_names_follow_the_relative_path_and_do_not_collide(videos: Path) -> None:
    found = discover([videos], recursive=True)
    assert [v.name for v in found.videos] == NAMES
    assert found.root == videos and found.failures == []
    flat = discover([videos])
    assert [v.name for v in flat.videos] == ["a", "corrupt", "mute"]  # not recursive: the folder only
    # the same files given one by one get the same names (the root is the folder holding all inputs)
    again = discover([videos / "x" / "clip.mp4", videos / "y" / "clip.mp4", videos / "a.mp4"])
    assert [v.name for v in again.videos] == ["x/clip", "y/clip", "a"]


def test_list_file_stdin_duplicates_and_extension_clash(videos: Path, tmp_path: Path) -> None:
    import io

    listing = tmp_path / "list.txt"
    listing.write_text(f"# a comment\n{videos / 'a.mp4'}\n\n{videos / 'mute.mp4'}\n{videos / 'a.mp4'}\n")
    found = discover([], from_list=listing)
    assert [v.name for v in found.videos] == ["a", "mute"]  # the same file twice counts once
    piped = discover([], from_list="-", stdin=io.StringIO(f"{videos / 'x' / 'clip.mp4'}\n"))
    assert [v.name for v in piped.videos] == ["clip"]
    (tmp_path / "v").mkdir()
    for ext in ("mp4", "mkv"):
        (tmp_path / "v" / f"s.{ext}").write_bytes(b"x")
    clash = discover([tmp_path / "v"])
    assert [v.name for v in clash.videos] == ["s"] and "same output name 's'" in clash.failures[0][1].message


def test_shards_cover_every_video_exactly_once(videos: Path) -> None:
    found = discover([videos], recursive=True).videos
    many = [VideoInput(Path(f"/v/{i}.mp4"), Path(f"d{i % 7}/{i}.mp4")) for i in range(200)]  # type: ignore[arg-type]
    for pool in (found, many):
        parts = [select_shard(pool, (i, 2)) for i in range(2)]
        assert sorted(v.name for p in parts for v in p) == sorted(v.name for v in pool)
    assert 60 < len(select_shard(many, (0, 2))) < 140  # a hash, not a split by position
    assert [shard_of(v, 3) for v in found] == [shard_of(v, 3) for v in discover([videos], recursive=True).videos]
    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "x", "1/0", "-1/2"):
        with pytest.raises(Exception, match="shard"):
            parse_shard(bad)


# --------------------------------------------------------------------------- the per-video catch


@dataclass
class FakeJob(Job):
    """Writes NAME.txt holding the record; raises what ``fail`` says for some names."""

    fail: dict | None = None
    kind = "fake"

    def record_path(self, video):
        return self.out_dir / f"{video.name}.txt"

    def _done_from(self, video, doc):
        return Outcome(str(video.path), video.name, "skipped", duration=1.0)

    def load(self, device):
        job = self

        class Worker:
            def process(self, video, progress=None):
                exc = (job.fail or {}).get(video.name)
                if exc is not None:
                    raise exc
                job.record_path(video).parent.mkdir(parents=True, exist_ok=True)
                job.record_path(video).write_text(json.dumps({"record": job.record(video)}))
                return Outcome(str(video.path), video.name, "done", duration=1.0)

        return Worker()


def test_any_exception_fails_one_video_and_the_run_goes_on(videos: Path, tmp_path: Path) -> None:
    found = discover([videos], recursive=True).videos
    job = FakeJob(tmp_path, {}, fail={"mute": RuntimeError("CUDA out of\nmemory"), "x/clip": ValueError("bad")})
    summary = run(found, job)
    assert statuses(summary) == {"a": "done", "corrupt": "done", "mute": "failed", "x/clip": "failed", "y/clip": "done"}
    errors = {o.name: o.error for o in summary.outcomes if o.error}
    paths = {o.name: o.path for o in summary.outcomes}
    assert errors == {
        "mute": f"{paths['mute']}: RuntimeError: CUDA out of memory",  # the line names the file
        "x/clip": f"{paths['x/clip']}: ValueError: bad",
    }
    traces = {o.name: o.trace for o in summary.outcomes if o.trace}  # for --debug on the terminal
    assert set(traces) == {"mute", "x/clip"} and "Traceback" in traces["mute"] and "RuntimeError" in traces["mute"]
    assert all("trace" not in o.to_dict() for o in summary.outcomes)  # never in JSON documents
    rows = {r["name"]: r for r in csv.DictReader((tmp_path / "results.csv").open(newline=""))}
    assert list(next(iter(rows.values())))[1:] == list(RESULTS_COLUMNS)
    assert rows["mute"]["status"] == "failed" and rows["a"]["status"] == "done"
    logged = [json.loads(line) for line in (tmp_path / "failures.jsonl").read_text().splitlines()]
    assert sorted(e["name"] for e in logged) == ["mute", "x/clip"] and all(e["time"] and e["path"] for e in logged)


def test_keyboard_interrupt_records_where_the_run_stopped(videos: Path, tmp_path: Path) -> None:
    found = discover([videos], recursive=True).videos
    job = FakeJob(tmp_path, {}, fail={"mute": KeyboardInterrupt()})
    with pytest.raises(KeyboardInterrupt) as info:
        run(found, job)
    stopped = info.value.run_summary
    assert stopped.interrupted_at == str(videos / "mute.mp4") and stopped.done == 2
    assert {r["name"] for r in csv.DictReader((tmp_path / "results.csv").open(newline=""))} == {"a", "corrupt"}
    again = run(found, FakeJob(tmp_path, {}))
    assert statuses(again) == {"a": "skipped", "corrupt": "skipped", "mute": "done", "x/clip": "done", "y/clip": "done"}


def test_two_processes_merge_their_rows(tmp_path: Path) -> None:
    one, two = RunFiles(tmp_path), RunFiles(tmp_path)
    one.add(Outcome("/v/a.mp4", "a", "done", duration=1.0))
    two.add(Outcome("/v/b.mp4", "b", "failed", error="b: broken"), {"size": 1, "mtime_ns": 2})
    one.flush()
    two.flush()
    one.add(Outcome("/v/c.mp4", "c", "done"))
    one.flush()
    rows = {r["name"]: r["status"] for r in csv.DictReader((tmp_path / "results.csv").open(newline=""))}
    assert rows == {"a": "done", "b": "failed", "c": "done"}
    assert list(RunFiles(tmp_path).read_failures()) == ["b"]


# --------------------------------------------------------------------------- extract's record


def test_extract_record_needs_every_whole_npy(weights, tmp_path: Path, shared_networks) -> None:
    (tmp_path / "v").mkdir()
    clip = make_clip(tmp_path / "v" / "c.mp4", seconds=0.8, fps=24, size=(32, 24))
    found = discover([clip]).videos
    resolved = resolve_weight_files({n: weights[n] for n in ("i3d_rgb_imagenet", "vggish")})
    job = ExtractJob(tmp_path / "out", resolved, crops=1)
    assert statuses(run(found, job)) == {"c": "done"}
    assert statuses(run(found, job)) == {"c": "skipped"}
    npy = tmp_path / "out" / "c__0.npy"
    good = npy.read_bytes()
    for damaged in (b"", good[:-4], b"garbage" * 100):
        npy.write_bytes(damaged)
        assert job.check_done(found[0]) is None
    npy.write_bytes(good)
    assert job.check_done(found[0]) is not None
    other = ExtractJob(tmp_path / "out", resolved, crops=1, video_stream=0)  # a result-changing option
    assert other.check_done(found[0]) is None
    os.utime(clip, ns=(0, 10**9))  # the input changed
    assert job.check_done(found[0]) is None


# --------------------------------------------------------------------------- resume after SIGKILL


def _killed_before_rename(cmd: list[str], glob: str) -> subprocess.CompletedProcess:
    """Run ``cmd`` with the atomic writer's test hook: it SIGKILLs itself once the temporary
    file of the first target matching ``glob`` is written, just before the rename."""
    env = {**os.environ, atomic.KILL_ENV: glob, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    return proc


def _temporaries(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(f".*{atomic.TMP_SUFFIX}"))


def _cli(kind: str, weights, videos: Path, out: Path) -> list[str]:
    names = ("i3d_rgb_imagenet", "vggish", "macil_sd") if kind == "detect" else ("i3d_rgb_imagenet", "vggish")
    flags = {"i3d_rgb_imagenet": "--i3d-weights", "vggish": "--vggish-weights", "macil_sd": "--checkpoint"}
    where = ["--output-dir" if kind == "detect" else "--out", str(out)]
    opts = [a for n in names for a in (flags[n], str(weights[n]))]
    opts += ["--crops", "1", "--device", "cpu", "--no-download", "--precision", "fp32", "-q"]
    return [sys.executable, "-m", "violence_cli", kind, str(videos), "-r", *where, *opts]


def _rerun_expected(out: Path, done_before: set[str], redone: set[str]) -> dict[str, str]:
    """What a rerun must report: the complete videos skipped, ``redone`` done, and the corrupt
    file failed again unless the killed run had recorded its failure (then failed-before)."""
    failures = RunFiles(out).read_failures()
    expected = {n: "skipped" for n in done_before} | {n: "done" for n in redone}
    expected["corrupt"] = "failed-before" if "corrupt" in failures else "failed"
    return expected


def test_sigkill_between_write_and_rename_then_rerun_redoes_that_video(
    weights, videos: Path, tmp_path: Path, shared_networks
) -> None:
    out = tmp_path / "out"
    _killed_before_rename(_cli("detect", weights, videos, out), "*/y/clip.json")  # the last video's record
    assert not (out / "y" / "clip.json").exists()
    assert [Path(t).parent.name for t in _temporaries(out)] == ["y"]  # killed holding the record's temporary
    found = discover([videos], recursive=True).videos
    job = detect_job(weights, out)
    done_before = {v.name for v in found if job.check_done(v) is not None}
    assert done_before == {"a", "mute", "x/clip"}  # every video before it complete, y/clip not

    expected = _rerun_expected(out, done_before, {"y/clip"})
    assert statuses(run(found, job)) == expected
    assert _temporaries(out) == []  # the rerun took the dead writer's temporary away
    doc = json.loads((out / "y" / "clip.json").read_text())
    assert doc["record"]["source"]["size"] == (videos / "y" / "clip.mp4").stat().st_size
    rows = {r["name"]: r for r in csv.DictReader((out / "results.csv").open(newline=""))}
    assert sorted(rows) == NAMES and rows["mute"]["audio_present"] == "no" and rows["corrupt"]["status"] == "failed"
    assert rows["a"]["peak_score"] and rows["a"]["snippets"] == "1"

    third = run(found, job)
    assert statuses(third) == {**{n: "skipped" for n in NAMES}, "corrupt": "failed-before"}
    fourth = run(found, job, retry_failed=True)
    assert statuses(fourth) == {**{n: "skipped" for n in NAMES}, "corrupt": "failed"}
    assert json.loads((out / "failures.jsonl").read_text())["name"] == "corrupt"


def test_extract_killed_between_npy_write_and_rename_then_rerun_redoes_that_video(
    weights, videos: Path, tmp_path: Path, shared_networks
) -> None:
    out = tmp_path / "out"
    _killed_before_rename(_cli("extract", weights, videos, out), "*/x/clip__vggish.npy")
    assert (out / "x" / "clip__0.npy").is_file() and not (out / "x" / "clip__vggish.npy").exists()
    assert not (out / "x" / "clip.extract.json").exists() and not (out / "y").exists()
    assert _temporaries(out) == [f"x/{n}" for n in os.listdir(out / "x") if n.startswith(".clip__vggish.npy.")]
    assert len(_temporaries(out)) == 1
    found = discover([videos], recursive=True).videos
    resolved = resolve_weight_files({n: weights[n] for n in ("i3d_rgb_imagenet", "vggish")})
    job = ExtractJob(out, resolved, crops=1, precision="fp32")
    done_before = {v.name for v in found if job.check_done(v) is not None}
    assert done_before == {"a", "mute"}

    expected = _rerun_expected(out, done_before, {"x/clip", "y/clip"})
    assert statuses(run(found, job)) == expected
    assert _temporaries(out) == []
    assert {v.name for v in found if job.check_done(v) is not None} == set(NAMES) - {"corrupt"}
    manifest = json.loads((out / "features.json").read_text())
    assert sorted(manifest["videos"]) == sorted(set(NAMES) - {"corrupt"})


def test_events_report_the_plan_and_each_video(weights, videos: Path, tmp_path: Path, shared_networks) -> None:
    seen: list[tuple] = []

    class Events(RunEvents):
        def planned(self, pending, durations, skipped):
            seen.append(("planned", len(pending), sorted(durations or {}), skipped))

        def finished(self, outcome):
            seen.append(("finished", outcome.name, outcome.result is not None))

    found = [v for v in discover([videos], recursive=True).videos if v.name == "a"]
    summary = run(found, detect_job(weights, None), events=Events(), want_durations=True)
    assert seen == [("planned", 1, ["a"], 0), ("finished", "a", True)]
    assert summary.outcomes[0].result is None  # not kept: memory must not grow per video
    assert summary.done == 1 and summary.video_seconds > 0.5

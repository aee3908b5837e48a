"""`violence-detect VIDEO`: summary, --json, exports, and every bad input of the issue.

Random weight files (tests/fakeweights.py) are passed by explicit path; one crop, tiny clips.
Within this module the networks are loaded once per set of options (what a Detector serving
many videos does); the subprocess test loads them for real.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import missing
from fakeweights import cli_weight_args, fake_weights_folder, share_detectors
from mediagen import make_clip
from typer.testing import CliRunner, Result

from violence_cli import __version__, precision
from violence_cli.cli import app
from violence_cli.precision import resolve_precision
from violence_cli.schema import SCHEMA_VERSION

runner = CliRunner()


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    with fake_weights_folder(tmp_path_factory, "fake-weights") as w:
        yield w


@pytest.fixture(autouse=True)
def _load_networks_once(monkeypatch) -> None:
    share_detectors(monkeypatch)


@pytest.fixture(scope="module")
def weight_args(weights) -> list[str]:
    return cli_weight_args(weights)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media")
    good = make_clip(d / "good.mp4", seconds=40 / 24, fps=24)  # 2 snippets
    mute = make_clip(d / "mute.mp4", seconds=1.0, fps=24, audio=False)  # 1 snippet
    text = d / "notes.mp4"
    text.write_text("this is not a video\n")
    empty = d / "empty.mp4"
    empty.write_bytes(b"")
    short = make_clip(d / "short.mp4", seconds=0.5, fps=24)  # 12 frames
    sound = make_clip(d / "sound.m4a", seconds=1.0, audio_only=True)
    full = make_clip(d / "full.mp4", seconds=4.0, fps=24, faststart=True)
    cut = d / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size * 55 // 100])  # index first: 55 % decodes
    tail = make_clip(d / "tail.mp4", seconds=4.0, fps=24)  # index at the end
    cut_tail = d / "cut_tail.mp4"
    cut_tail.write_bytes(tail.read_bytes()[: tail.stat().st_size * 55 // 100])  # no index left
    return {
        "good": good, "mute": mute, "text": text, "empty": empty, "short": short, "sound": sound, "cut": cut,
        "cut_tail": cut_tail,
    }  # fmt: skip


def run(*args: object) -> Result:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.stderr
    assert "error:" in result.stderr
    for needle in needles:
        assert needle in result.stderr


def test_summary_on_stdout(media, weight_args) -> None:
    r = run(media["good"], *weight_args, "--threshold", "0")
    assert r.exit_code == 0, r.stderr
    assert "good.mp4" in r.stdout
    assert "audio: yes" in r.stdout
    assert "violent: 1 segment" in r.stdout  # threshold 0: everything is violent
    assert "[unverified weights]" in r.stdout
    assert "not the published file" in r.stderr  # random weights are never silent


def test_json_is_one_document(media, weight_args) -> None:
    r = run("detect", media["good"], *weight_args, "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)  # nothing else on stdout
    assert doc["schema_version"] == SCHEMA_VERSION and doc["version"] == __version__
    assert doc["params"]["crops"] == 1 and doc["params"]["device"] == "cpu"
    assert doc["params"]["precision"] == resolve_precision("auto", "cpu")  # detect's default: auto
    assert len(doc["snippets"]) == 2 and doc["video"]["has_audio"] is True
    assert doc["weights_verified"] is False and all(len(w["sha256"]) == 64 for w in doc["weights"])


def test_precision_recorded_and_emulated_bf16_warned(media, weight_args, monkeypatch) -> None:
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    r = run(media["good"], *weight_args, "--json", "--precision", "bf16")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["params"]["precision"] == "bf16"
    assert "emulated" in r.stderr


def test_exports_and_plot(media, weight_args, tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    r = run(
        media["good"],
        *weight_args,
        "-o",
        tmp_path / "good.srt",
        "--output-dir",
        out,
        "--format",
        "all",
        "--plot",
        tmp_path / "t.png",
        "--threshold",
        "0",
        "--quiet",
    )
    assert r.exit_code == 0, r.stderr
    assert sorted(os.listdir(out)) == [
        "features.json",  # the features kept (NAME__*.npy + NAME.extract.json), as extract writes them
        "good.csv",
        "good.extract.json",
        "good.html",
        "good.json",
        "good.segments.csv",
        "good.srt",
        "good.vtt",
        "good__0.npy",
        "good__vggish.npy",
        "index.html",
        "results.csv",
    ]
    doc = json.loads((out / "good.json").read_text())
    rows = list(csv.DictReader((out / "good.csv").open(newline="")))
    assert [float(row["score"]) for row in rows] == pytest.approx([s["score"] for s in doc["snippets"]], abs=1e-4)
    assert "-->" in (tmp_path / "good.srt").read_text() and "WEBVTT" in (out / "good.vtt").read_text()
    assert (tmp_path / "t.png").read_bytes().startswith(b"\x89PNG")
    assert r.stdout.count("good.mp4") == 1  # the summary still prints


def test_several_videos_one_bad_does_not_stop_the_others(media, weight_args, tmp_path) -> None:
    plots = tmp_path / "plots"
    plots.mkdir()
    r = run(
        media["good"],
        media["text"],
        media["mute"],
        *weight_args,
        "--json",
        "--output-dir",
        tmp_path,
        "--format",
        "csv",
        "--plot",
        plots,
    )
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert [Path(x["video"]["path"]).name for x in doc["results"]] == ["good.mp4", "mute.mp4"]
    assert [Path(e["path"]).name for e in doc["errors"]] == ["notes.mp4"]
    # NAME.json always: it is the record a rerun checks; results.csv and failures.jsonl: the run's tables
    kept = ["features.json", "good.extract.json", "good__0.npy", "good__vggish.npy"]
    kept += ["mute.extract.json", "mute__0.npy", "mute__vggish.npy"]
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["failures.jsonl", "good.csv", "good.json", "mute.csv", "mute.json", "plots", "results.csv", *kept]
    )
    assert sorted(os.listdir(plots)) == ["good.timeline.png", "mute.timeline.png"]
    assert "notes.mp4" in r.stderr and "Traceback" not in r.stderr


def test_video_without_audio_warns_and_is_flagged(media, weight_args, tmp_path) -> None:
    r = run(media["mute"], *weight_args, "-o", tmp_path / "m.json")
    assert r.exit_code == 0, r.stderr
    assert "no audio" in r.stderr
    assert "audio: no" in r.stdout
    doc = json.loads((tmp_path / "m.json").read_text())
    assert doc["video"]["has_audio"] is False
    assert any("no audio" in w for w in doc["warnings"])


def test_folder_input(media, weight_args, tmp_path) -> None:
    (tmp_path / "clip.mp4").write_bytes(media["mute"].read_bytes())
    (tmp_path / "readme.txt").write_text("not a video")
    r = run(tmp_path, *weight_args, "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [Path(x["video"]["path"]).name for x in doc["results"]] == ["clip.mp4"] and doc["errors"] == []
    assert doc["schema_version"] == SCHEMA_VERSION and doc["version"] == __version__
    assert [w["name"] for w in doc["weights"]] == ["i3d_rgb_imagenet", "vggish", "macil_sd"]


@pytest.mark.parametrize(
    "key,needle",
    [
        ("text", "notes.mp4"),
        ("empty", "empty.mp4"),
        ("short", "17 frames"),
        ("sound", "no video stream"),
    ],
)
def test_bad_files(media, weight_args, key, needle) -> None:
    one_line_error(run(media[key], *weight_args), needle)


def test_json_mode_failure_of_one_file_is_still_one_document(media, weight_args) -> None:
    r = run(media["text"], *weight_args, "--json")
    assert r.exit_code == 1 and "notes.mp4" in r.stderr
    doc = json.loads(r.stdout)  # exactly one JSON document: the batch form, its error listed
    assert doc["results"] == [] and [Path(e["path"]).name for e in doc["errors"]] == ["notes.mp4"]


def test_missing_path(weight_args, tmp_path) -> None:
    one_line_error(run(tmp_path / "nope.mp4", *weight_args), "no such file")


def test_folder_without_videos(weight_args, tmp_path) -> None:
    (tmp_path / "a.txt").write_text("x")
    one_line_error(run(tmp_path, *weight_args), "no video files")


def test_truncated_file_with_its_index_scores_what_decodes(media, weight_args) -> None:
    r = run(media["cut"], *weight_args, "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert 1 <= doc["video"]["n_snippets"] < 5  # 4 s would give 5 snippets
    own = [w for w in doc["warnings"] if "published" not in w]
    assert any("cut.mp4: video stops at" in w and "truncated" in w for w in own), own
    assert any("cut.mp4: only" in w and "could be decoded" in w for w in own), own


def test_truncated_file_without_its_index_is_one_line_error(media, weight_args) -> None:
    r = run(media["cut_tail"], *weight_args, "--json")
    one_line_error(r, "cut_tail.mp4", "not a readable media file")
    assert json.loads(r.stdout)["results"] == []  # still one JSON document, the error in it


def test_unwritable_output_fails_before_any_work(media, tmp_path) -> None:
    target = media["text"] / "out.json"  # its folder would be a file
    # the weights do not exist either: the output check must come first (no work started)
    r = run(media["good"], "-o", target, "--checkpoint", tmp_path / "absent.pkl")
    one_line_error(r, str(target))
    assert "absent.pkl" not in r.stderr


def test_missing_output_folders_are_created_and_each_file_named(media, weight_args, tmp_path) -> None:
    out, one = tmp_path / "new" / "deep", tmp_path / "other" / "clip.srt"
    r = run(media["good"], media["mute"], *weight_args, "--output-dir", out, "-f", "srt", "-f", "json")
    assert r.exit_code == 0, r.stderr
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".") and p.suffix in (".srt", ".json")) == [
        "features.json", "good.extract.json", "good.json", "good.srt", "mute.extract.json", "mute.json", "mute.srt"]  # fmt: skip
    assert sorted(line for line in r.stderr.splitlines() if line.startswith("wrote ")) == sorted(
        f"wrote {out / name}" for name in ("good.json", "good.srt", "mute.json", "mute.srt", "results.csv")
    )
    r = run(media["good"], *weight_args, "-o", one, "--quiet")
    assert r.exit_code == 0 and one.is_file() and "wrote" not in r.stderr  # --quiet: no information lines


def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot create files in: mode 0o500 for a user; as root (CI runs as
    root, and root writes through any mode) sysfs, which takes new files from no one."""
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        return ro
    sysfs = Path("/sys")
    try:
        tempfile.TemporaryFile(dir=sysfs).close()
    except OSError:
        return sysfs
    missing("running as root and /sys takes new files here: no folder that root cannot write")


def test_output_dir_read_only(media, tmp_path) -> None:
    folder = _unwritable_folder(tmp_path)
    one_line_error(run(media["good"], "--output-dir", folder), f"--output-dir {folder}: cannot write here")


@pytest.mark.parametrize(
    "args",
    [
        ["--threshold", "1.5"],
        ["--min-duration", "-1"],
        ["--crops", "3"],
        ["--device", "tpu"],
        ["--precision", "int8"],
        ["-o", "x.txt"],
        ["--format", "csv"],  # needs --output-dir
    ],
)
def test_usage_errors_exit_2(media, args) -> None:
    r = run(media["good"], *args)
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.stderr


def test_one_output_file_for_several_videos_is_a_usage_error(media, tmp_path) -> None:
    r = run(media["good"], media["mute"], "-o", tmp_path / "x.json")
    assert r.exit_code == 2 and "--output-dir" in r.stderr


def test_version_after_a_video_name(media) -> None:
    r = run(media["good"], "--version")
    assert r.exit_code == 0 and r.stdout.startswith("violence-detect ")


def test_plot_file_for_several_videos_is_a_usage_error(media, tmp_path) -> None:
    r = run(media["good"], media["mute"], "--plot", tmp_path / "t.png")
    assert r.exit_code == 2 and "--plot DIR" in r.stderr


def test_missing_weights_one_line(media, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("VIOLENCE_DETECT_DEBUG", "0")
    r = run(media["good"], "--weights-dir", tmp_path, "--no-download", "--crops", "1")
    one_line_error(r, "violence-detect weights download", "VIOLENCE_DETECT_WEIGHTS")


def test_real_subprocess_json_and_stderr(media, weight_args, tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "violence_cli", str(media["good"]), *weight_args, "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "COLUMNS": "100"},
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert len(doc["snippets"]) == 2
    above = [x for x in doc["snippets"] if x["score"] >= doc["params"]["threshold"]]
    assert bool(doc["segments"]) == bool(above)  # the segments follow the scores ...
    assert doc["verdict"] == ("violent" if doc["segments"] else "non-violent")  # ... and the verdict them
    assert "not the published file" in proc.stderr
    # stderr is not a terminal: no progress bar, only the warnings
    assert all(line.startswith("warning:") for line in proc.stderr.splitlines() if line.strip()), proc.stderr

"""One tool, not five: the rules every subcommand shares (issue 11).

Errors in one style (usage errors of the option parser included), "did you mean",
metavars as words, examples that never wrap at 80 columns, short hashes on the terminal,
`weights list`/`download`, the user's own trained model, --features given several times,
--quiet that keeps warnings, and schema_version + version + weights in every --json.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from violence_cli import __version__
from violence_cli import weights as registry
from violence_cli.cli import app
from violence_cli.plot import tick_step, time_axis
from violence_cli.schema import SCHEMA_VERSION
from violence_cli.timefmt import clock

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]
COMMANDS = ["", "detect", "extract", "eval", "train", "serve", "watch", "weights", "weights list",
            "weights download", "weights verify", "weights path"]  # fmt: skip


def cli(*args: str, env: dict[str, str] | None = None, columns: int = 80) -> subprocess.CompletedProcess[str]:
    """The real entry point in a subprocess (the parser's own errors only show there)."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": str(columns), **(env or {})}
    full_env.pop("VIOLENCE_DETECT_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "violence_cli", *args], capture_output=True, text=True, env=full_env, timeout=120
    )


# --- small fixes ------------------------------------------------------------------------------


def test_plot_time_axis_in_clock_units() -> None:
    for span in (0.8, 7.3, 65.0, 600.0, 7261.5, 40000.0):
        ticks, labels, axis = time_axis(span)
        assert 2 <= len(ticks) <= 11, span
        assert ticks[0] == 0 and ticks[-1] <= span
        assert len(set(labels)) == len(labels)  # no two ticks read the same
    assert tick_step(65.0) == 10 and tick_step(7261.5) == 900
    ticks, labels, axis = time_axis(7261.5)
    assert labels[:3] == ["0:00:00", "0:15:00", "0:30:00"] and labels[-1] == "2:00:00" and "h:mm:ss" in axis
    ticks, labels, axis = time_axis(65.0)
    assert labels[-1] == "1:00" and "m:ss" in axis
    assert clock(125, 0) == "2:05" and clock(3725, 0, hours=True) == "1:02:05"
    assert time_axis(0.8)[1][:2] == ["0:00.00", "0:00.25"]
    ticks, labels, _ = time_axis(130.0, begin=95.0)  # a part scored from 1:35 (--start)
    assert ticks[0] >= 95.0 and ticks[-1] <= 130.0 and len(ticks) >= 3 and labels[0].startswith("1:")


def test_plot_draws_the_clock_labels(tmp_path: Path) -> None:
    from violence_cli.plot import plot_timeline
    from violence_cli.schema import DetectionParams, DetectionResult, Snippet, VideoFacts

    n = 2 * 5400  # two hours of snippets
    snippets = [Snippet(i, i * 2 / 3, (i + 1) * 2 / 3, 0.2, 0.1, 0.3) for i in range(n)]
    video = VideoFacts("film.mkv", 7200.0, 24.0, 64, 48, True, 0, 1, n_frames=16 * n + 1, n_snippets=n,
                       scored_duration=n * 2 / 3)  # fmt: skip
    result = DetectionResult(video, snippets, [], [], DetectionParams())
    svg = plot_timeline(result, tmp_path / "t.svg").read_text()
    assert "1:00:00" in svg and "h:mm:ss" in svg and "time in the video (s)" not in svg


# --- errors, typos, help ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["detect", "x.mp4", "--crops", "3"], "error: --crops 3: expected one of 5, 1"),
        (["detect", "x.mp4", "--batch-size", "abc"], "error: --batch-size abc: expected an integer"),
        (["detect", "x.mp4", "--threshold", "abc"], "error: --threshold abc: expected a number"),
        (["detect", "x.mp4", "--thresh", "0.3"], "error: --thresh: no such option; did you mean --threshold?"),
        (["extract", "x.mp4"], "error: --out: missing; this option is required"),
        (["weights", "path", "resnet"], "error: NAME resnet: expected one of macil_sd"),
        (["evl", "--features", "f"], "error: evl: not a command, file or folder; did you mean 'eval'?"),
        (["wieghts", "list"], "did you mean 'weights'?"),
        (["detect", "x.mp4", "--merge-gap", "-1"], "error: --merge-gap -1: expected a finite number of seconds >= 0"),
    ],
)
def test_usage_errors_in_one_style(args: list[str], expected: str) -> None:
    proc = cli(*args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0].startswith(expected) or (expected in lines[0] and lines[0].startswith("error: ")), proc.stderr
    assert len(lines) == 2 and lines[1].startswith("hint: violence-detect")  # no "Usage:"/"Try" block
    assert proc.stdout == "" and "Traceback" not in proc.stderr


def test_an_existing_file_named_like_a_command_is_a_video(tmp_path: Path) -> None:
    (tmp_path / "evl").write_text("not a video")
    proc = subprocess.run(
        [sys.executable, "-m", "violence_cli", "evl", "--no-download"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO), "XDG_CACHE_HOME": str(tmp_path / "cache")},
    )  # fmt: skip
    assert "did you mean" not in proc.stderr
    assert proc.returncode == 1  # detect ran (and stopped at the missing weights)


def test_help_metavars_are_words() -> None:
    for command in COMMANDS:
        text = runner.invoke(app, [*command.split(), "--help"], env={"COLUMNS": "80"}).stdout
        assert not re.search(r"<(path|int|float|text|list\[)", text, re.I), (command, text)
        assert "{VIDEO}" not in text and "<list" not in text
    assert "Usage: violence-detect detect [OPTIONS] [VIDEO...]" in runner.invoke(app, ["detect", "--help"]).stdout
    assert "[NAME...]" in runner.invoke(app, ["weights", "download", "--help"]).stdout
    assert "--output-dir DIR" in runner.invoke(app, ["detect", "--help"]).stdout
    assert (
        '{"results": [...], "errors": [...]}' in runner.invoke(app, ["detect", "--help"], env={"COLUMNS": "200"}).stdout
    )


def _example_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith("violence-detect ")]


def test_examples_never_wrap_at_80_columns() -> None:
    from violence_cli.cli import detect_cmd, eval_cmd, extract_cmd, serve_cmd, train_cmd, watch_cmd

    sources = {"detect": detect_cmd.HELP, "extract": extract_cmd.HELP, "eval": eval_cmd.HELP, "train": train_cmd.HELP,
               "serve": serve_cmd.HELP, "watch": watch_cmd.HELP}  # fmt: skip
    for command, source in sources.items():
        examples = _example_lines(source)
        assert examples, command
        shown = runner.invoke(app, [command, "--help"], env={"COLUMNS": "80"}).stdout
        lines = shown.splitlines()
        for example in examples:
            assert any(line.strip() == example for line in lines), (command, example)  # intact on one line
            assert len(example) + 4 <= 80, example
    for command in COMMANDS:
        shown = runner.invoke(app, [*command.split(), "--help"], env={"COLUMNS": "80"}).stdout
        for number, line in enumerate(shown.splitlines()):
            if line.strip().startswith("violence-detect ") and line.rstrip().endswith("\\"):
                following = shown.splitlines()[number + 1]
                indent = len(line) - len(line.lstrip())
                assert following[indent:].startswith("  ") and following.strip().startswith("--"), (command, line)


# --- weights -------------------------------------------------------------------------------


def test_every_manifest_entry_has_a_size() -> None:
    for entry in registry.available_weights():
        size, exact = entry.shown_size
        assert size is not None and size > 0, entry.name
    assert registry.get_entry("macil_sd").shown_size == (1402373, True)
    assert registry.get_entry("i3d_rgb_imagenet").shown_size[1] is False  # an estimate, never checked


@pytest.fixture
def own_model(tmp_path: Path) -> Path:
    """A MACIL-SD checkpoint with the sidecar our `train` writes."""
    from fakeweights import random_macil_state_dict

    path = tmp_path / "run" / "best.pt"
    path.parent.mkdir()
    torch.save(random_macil_state_dict(seed=3), path)
    record = registry.trained_record(path, epoch=4, epochs=10, ap=0.875, auc=0.9, train_videos=12, data=["/d/train"])
    registry.trained_sidecar(path).write_text(json.dumps(record))
    return path


def test_weights_list_table_fits_100_columns_paths_whole(tmp_path: Path, own_model: Path, monkeypatch) -> None:
    folder = tmp_path / ("deep" * 30) / "w"  # a long path
    folder.mkdir(parents=True)
    shutil.copy(own_model, folder / "macil_sd.pkl")
    shutil.copy(registry.trained_sidecar(own_model), registry.trained_sidecar(folder / "macil_sd.pkl"))
    (folder / "rgb_imagenet.pt").write_bytes(b"not the published file")
    monkeypatch.setenv(registry.WEIGHTS_ENV, str(folder))
    result = runner.invoke(app, ["weights", "list"])
    assert result.exit_code == 0
    assert all(len(line) <= 100 for line in result.stdout.splitlines()), result.stdout  # the table
    # paths are printed whole, never cut in the middle (a path is there to be copied)
    assert f"$VIOLENCE_DETECT_WEIGHTS: {folder}\n" in result.stderr and "..." not in result.stderr
    assert f"{folder / 'rgb_imagenet.pt'}: git blob" in result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert "MISMATCH" in rows["i3d_rgb_imagenet"] and "$VIOLENCE_DETECT_WEIGHTS" in rows["i3d_rgb_imagenet"]
    assert "missing" in rows["vggish"] and "~288.6 MB" in rows["vggish"]
    assert "own model" in rows["macil_sd"]
    assert re.search(r"git blob SHA-1 [0-9a-f]{12}, expected 73a4fd1d87eb$", result.stderr, re.M)  # why, short hashes
    unchecked = runner.invoke(app, ["weights", "list", "--no-check"])
    assert "not checked" in unchecked.stdout and "weights verify" in unchecked.stderr
    doc = json.loads(runner.invoke(app, ["weights", "list", "--json"]).stdout)
    assert doc["schema_version"] == SCHEMA_VERSION and doc["version"] == __version__
    by_name = {w["name"]: w for w in doc["weights"]}
    assert by_name["i3d_rgb_imagenet"]["verified"] is False and by_name["vggish"]["verified"] is None
    assert len(by_name["i3d_rgb_imagenet"]["file_sha256"]) == 64  # full hashes in JSON


def test_offline_download_ends_with_one_hint(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(registry.WEIGHTS_URL_ENV, "http://127.0.0.1:9/")  # nothing listens on the discard port
    result = runner.invoke(app, ["weights", "download"])
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == len(registry.weight_names())
    assert result.stderr.count("hint:") == 1 and result.stderr.splitlines()[-1].startswith("hint: offline?")
    doc = json.loads(runner.invoke(app, ["weights", "download", "macil_sd", "--json"]).stdout)
    assert doc["schema_version"] == SCHEMA_VERSION and doc["weights"][0]["status"] == "failed"


def test_short_hashes_on_the_terminal(tmp_path: Path) -> None:
    bad = tmp_path / "macil_sd.pkl"
    bad.write_bytes(b"x" * 1402373)  # the right size, the wrong content
    problem = registry.integrity_problem(bad, registry.get_entry("macil_sd"))
    hashes = re.findall(r"[0-9a-f]{12,}", problem or "")
    assert hashes and all(len(h) == registry.SHORT_HASH for h in hashes)
    assert registry.describe_weights(bad, "macil_sd")["sha256"] == registry.file_sha256(bad)  # full in data


def test_own_trained_checkpoint_is_named_not_alarmed(own_model: Path) -> None:
    from violence_cli.messages import own_model_notes
    from violence_cli.pipeline import result_warnings
    from violence_cli.schema import VideoFacts, WeightsUsed

    info = registry.describe_weights(own_model, "macil_sd")
    assert info["verified"] is False and info["trained"]["ap"] == 0.875
    used = WeightsUsed("macil_sd", str(own_model), info["sha256"], False, info["trained"])
    video = VideoFacts("a.mp4", 2.0, 24.0, 64, 48, True, 0, 1, n_frames=48, n_snippets=2, scored_duration=4 / 3)
    assert result_warnings(video, [used]) == []  # no alarm per video
    (note,) = own_model_notes([used])
    assert "your own model" in note and "epoch 4 of 10" in note and "AP 0.8750" in note and "/d/train" in note

    stranger = WeightsUsed("macil_sd", "/x.pkl", "ab" * 32, False, None)
    assert len(result_warnings(video, [stranger])) == 1 and own_model_notes([stranger]) == []
    own_model.write_bytes(own_model.read_bytes() + b"\0")  # another file now: the sidecar no longer vouches
    assert registry.describe_weights(own_model, "macil_sd")["trained"] is None


def test_watch_words_weights_as_detect_does(own_model: Path, tmp_path: Path) -> None:
    """watch names the user's own model once (not an unpublished-weights warning) and warns
    about random I3D/VGGish files with the check that failed, in detect's words."""
    from fakeweights import save_fake_weights
    from mediagen import make_clip

    weights = tmp_path / "w"
    save_fake_weights(weights)
    clip = make_clip(tmp_path / "c.mp4", seconds=1.0, fps=24, size=(64, 48))
    common = ["--weights-dir", str(weights), "--no-download", "--device", "cpu", "--crops", "1",
              "--precision", "fp32", "--checkpoint", str(own_model)]  # fmt: skip
    watch = runner.invoke(app, ["watch", str(clip), "--json", *common])
    detect = runner.invoke(app, ["detect", str(clip), "--json", *common])
    assert watch.exit_code == 0 and detect.exit_code == 0, (watch.output, detect.output)
    assert watch.stderr.count("using your own model") == 1 and "macil_sd weights" not in watch.stderr

    def unpublished(stderr: str) -> list[str]:
        lines = [line for line in stderr.splitlines() if "are not the published file" in line]
        return sorted(line.split("warning: ", 1)[-1] for line in lines)

    said = unpublished(watch.stderr)
    assert len(said) == 2 and all("sha256" in line or "expected" in line for line in said), said
    assert said == unpublished(detect.stderr)
    assert "using your own model" not in runner.invoke(app, ["watch", str(clip), "--json", "--quiet", *common]).stderr


# --- eval: features as XD-Violence ships them, quiet, weights options, JSON -------------------


@pytest.fixture
def split_features(tmp_path: Path) -> dict[str, Path]:
    """XD-Violence's layout: crop files in RGBTest/, audio files in vggish-features/Test/."""
    rgb, audio = tmp_path / "RGBTest", tmp_path / "vggish-features" / "Test"
    rgb.mkdir()
    audio.mkdir(parents=True)
    gen = np.random.default_rng(0)
    lines = []
    for name, t in (("fight__#1_label_B1-0-0", 6), ("calm_label_A", 5), ("riot__#2_label_G-0-0", 4)):
        for crop in range(2):
            np.save(rgb / f"{name}__{crop}.npy", gen.random((t, 1024), np.float32))
        np.save(audio / f"{name}__vggish.npy", gen.random((t + (name == "calm_label_A"), 128), np.float32))
        if "label_A" not in name:
            lines.append(f"{name} 0 32")
    (tmp_path / "annotations.txt").write_text("\n".join(lines) + "\n")
    return {"rgb": rgb, "audio": audio, "ann": tmp_path / "annotations.txt", "root": tmp_path}


def test_eval_reads_features_split_over_folders(split_features, macil_checkpoint: Path, tmp_path: Path) -> None:
    args = ["eval", "--features", str(split_features["rgb"]), "--features", str(split_features["audio"]),
            "--annotations", str(split_features["ann"]), "--checkpoint", str(macil_checkpoint), "--device", "cpu"]  # fmt: skip
    split = runner.invoke(app, [*args, "--json"])
    assert split.exit_code == 0, split.output
    doc = json.loads(split.stdout)
    assert doc["n_videos"] == 3
    assert doc["schema_version"] == SCHEMA_VERSION and doc["version"] == __version__
    (used,) = doc["weights"]
    assert used["name"] == "macil_sd" and used["verified"] is True and len(used["sha256"]) == 64

    together = tmp_path / "together"
    together.mkdir()
    for folder in (split_features["rgb"], split_features["audio"]):
        for f in folder.iterdir():
            shutil.copy(f, together / f.name)
    flat = runner.invoke(app, ["eval", "--features", str(together), *args[5:], "--json"])
    assert json.loads(flat.stdout)["ap"] == doc["ap"]

    # --quiet hides information, never warnings (a 1-snippet trim is a warning)
    quiet = runner.invoke(app, [*args, "--quiet"])
    assert quiet.exit_code == 0 and "warning:" in quiet.stderr and "trimmed" in quiet.stderr

    shutil.copy(split_features["rgb"] / "calm_label_A__0.npy", split_features["audio"] / "calm_label_A__0.npy")
    twice = runner.invoke(app, args)
    assert twice.exit_code == 1 and "calm_label_A__0.npy: in both" in twice.stderr


def test_eval_has_the_shared_weights_options(split_features, tmp_path: Path) -> None:
    args = ["eval", "--features", str(split_features["rgb"]), "--features", str(split_features["audio"]),
            "--annotations", str(split_features["ann"]), "--device", "cpu"]  # fmt: skip
    result = runner.invoke(app, [*args, "--no-download", "--weights-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "macil_sd weights not found" in result.stderr and "(--no-download)" in result.stderr
    assert "--no-download" in runner.invoke(app, ["eval", "--help"]).stdout


def test_eval_names_the_users_own_model(split_features, own_model: Path) -> None:
    args = ["eval", "--features", str(split_features["rgb"]), "--features", str(split_features["audio"]),
            "--annotations", str(split_features["ann"]), "--device", "cpu", "--checkpoint", str(own_model)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.stderr.count("using your own model") == 1 and "not the published" not in result.stderr
    assert "(your model, sha256 " in result.stdout
    assert "using your own model" not in runner.invoke(app, [*args, "--quiet"]).stderr

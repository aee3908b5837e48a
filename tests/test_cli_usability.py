"""What a new user hit (issue 18): several -o, non-UTF-8 file names, --json on a failure,
an interrupted folder run, the files named on stderr, the weights commands' words, extract's
JSON keys; and the library's messages naming parameters, the CLI's naming flags.

Random test weights (tests/fakeweights.py), one crop, tiny clips; the networks load once.
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pytest
from fakeweights import cli_weight_args, fake_weights_folder, share_detectors
from mediagen import make_clip
from typer.testing import CliRunner

from violence_cli.cli import app
from violence_cli.errors import Terminated

runner = CliRunner()
PACKAGE = Path(__file__).resolve().parents[1] / "violence_cli"


@pytest.fixture(scope="module")
def weight_args(tmp_path_factory):
    with fake_weights_folder(tmp_path_factory, "fake-weights") as w:
        yield cli_weight_args(w)


@pytest.fixture(autouse=True)
def _load_networks_once(monkeypatch) -> None:
    share_detectors(monkeypatch)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("media") / "clip.mp4", seconds=40 / 24, fps=24)  # 2 snippets


def run(*args: object):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_several_o_each_written(clip, weight_args, tmp_path) -> None:
    outs = [tmp_path / "x.vtt", tmp_path / "sub" / "x.srt", tmp_path / "x.html"]
    r = run(clip, *weight_args, *[a for o in outs for a in ("-o", o)])
    assert r.exit_code == 0, r.stderr
    for out in outs:
        assert out.is_file() and f"wrote {out}" in r.stderr
    assert "WEBVTT" in outs[0].read_text() and "-->" in outs[1].read_text()


def test_several_o_checked_before_any_work(clip, weight_args, tmp_path) -> None:
    r = run(clip, *weight_args, "-o", tmp_path / "x.vtt", "-o", tmp_path / "x.nope")
    assert r.exit_code == 2 and "x.nope: cannot tell the output format" in r.stderr
    assert not (tmp_path / "x.vtt").exists()


def test_non_utf8_file_name_round_trips(clip, weight_args, tmp_path) -> None:
    raw = b"\xff\xfename"  # not UTF-8: legal on Linux
    folder = tmp_path / "in"
    folder.mkdir()
    video = Path(os.fsdecode(bytes(folder) + b"/" + raw + b".mp4"))
    video.write_bytes(clip.read_bytes())
    out = tmp_path / "out"
    r = run(folder, *weight_args, "--output-dir", out, "--format", "all")
    assert r.exit_code == 0, r.stderr
    assert "Traceback" not in r.stderr and "unexpected error" not in r.stderr
    names = set(os.listdir(os.fsencode(out)))  # outputs carry the input's own bytes
    for suffix in (b".json", b".csv", b".segments.csv", b".vtt", b".srt", b".html"):
        assert raw + suffix in names
    assert {b"index.html", b"results.csv"} <= names
    record = (out / os.fsdecode(raw + b".json")).read_bytes()
    assert record.isascii() and b"\\udcff\\udcfe" in record  # JSON escapes the bytes ...
    path = json.loads(record)["video"]["path"]
    assert os.fsencode(path) == os.fsencode(video)  # ... and they read back as the file's name
    assert b"\n" + raw + b"," in (out / "results.csv").read_bytes()  # the table keeps the bytes
    page = (out / os.fsdecode(raw + b".html")).read_text(encoding="utf-8")
    assert 'src="../in/%FF%FEname.mp4"' in page  # the player finds the file
    assert 'href="%FF%FEname.html"' in (out / "index.html").read_text(encoding="utf-8")
    rerun = run(folder, *weight_args, "--output-dir", out, "--format", "all")
    assert rerun.exit_code == 0 and "1 skipped" in rerun.stderr  # the record is found again


def test_json_on_a_single_failure_is_one_document(tmp_path, weight_args) -> None:
    bad = tmp_path / "notvideo.mp4"
    bad.write_text("not a video")
    r = run(bad, "--json", *weight_args)
    assert r.exit_code == 1
    doc = json.loads(r.stdout)  # exactly one JSON document, as with several inputs
    assert doc["results"] == [] and [Path(e["path"]).name for e in doc["errors"]] == ["notvideo.mp4"]
    assert "not a readable media file" in doc["errors"][0]["error"]


def _interrupt_second_video(monkeypatch, exc: type[BaseException]) -> None:
    from violence_cli.runner.jobs import DetectWorker

    real = DetectWorker.process
    calls = []

    def process(self, video, progress=None):
        calls.append(video)
        if len(calls) == 2:
            raise exc()
        return real(self, video, progress)

    monkeypatch.setattr(DetectWorker, "process", process)


@pytest.mark.parametrize(("exc", "code"), [(KeyboardInterrupt, 130), (Terminated, 143)])
def test_interrupted_folder_run_says_how_far_and_writes_the_index(
    clip, weight_args, tmp_path, monkeypatch, exc, code
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a", "b", "c"):
        (folder / f"{name}.mp4").write_bytes(clip.read_bytes())
    _interrupt_second_video(monkeypatch, exc)
    out = tmp_path / "out"
    r = run(folder, *weight_args, "--output-dir", out, "--format", "html")
    assert r.exit_code == code
    assert "stopped: 1 video: 1 scored" in r.stderr and "interrupted in" in r.stderr, r.stderr[-700:]
    assert "1 not started" in r.stderr and "rerun the same command to go on" in r.stderr
    assert (out / "index.html").is_file() and (out / "results.csv").is_file()
    assert "a.html" in (out / "index.html").read_text(encoding="utf-8")
    assert f"wrote {out / 'index.html'}" in r.stderr


def test_interrupted_while_loading_says_nothing_was_done(clip, weight_args, tmp_path, monkeypatch) -> None:
    from violence_cli.runner.jobs import DetectJob

    def load(self, device):
        raise KeyboardInterrupt

    monkeypatch.setattr(DetectJob, "load", load)
    other = tmp_path / "other.mp4"
    other.write_bytes(clip.read_bytes())
    r = run(clip, other, *weight_args)
    assert r.exit_code == 130
    assert "stopped before the first of 2 videos was scored" in r.stderr
    assert "--output-dir a rerun skips finished videos" in r.stderr


def test_run_tables_and_index_are_named_on_stderr(clip, weight_args, tmp_path) -> None:
    out = tmp_path / "out"
    r = run(clip, *weight_args, "--output-dir", out, "--format", "html")
    assert r.exit_code == 0, r.stderr
    wrote = [line for line in r.stderr.splitlines() if line.startswith("wrote ")]
    assert wrote == [f"wrote {out / f}" for f in ("clip.html", "clip.json", "index.html", "results.csv")]
    assert "wrote" not in run(clip, *weight_args, "--output-dir", out, "--format", "html", "-q").stderr


def test_unknown_subcommand_in_our_words() -> None:
    r = run("weights", "lst")
    assert r.exit_code == 2
    assert r.stderr.splitlines()[0] == "error: lst: not a command; did you mean 'list'?"
    assert "No such command" not in r.stderr and "Did you mean" not in r.stderr


def test_weights_path_of_a_missing_file_says_how_to_fetch_it(tmp_path) -> None:
    r = run("weights", "path", "macil_sd", "--weights-dir", tmp_path)
    assert r.exit_code == 1
    assert "macil_sd weights not found: macil_sd.pkl is not in" in r.stderr
    assert "downloading is off" not in r.stderr and "download=False" not in r.stderr
    assert "`violence-detect weights path macil_sd --download` fetches it" in r.stderr


def test_extract_json_keys_are_snake_case_and_its_own(tmp_path) -> None:
    r = run("extract", tmp_path / "missing.mp4", "--out", tmp_path / "feats", "--json")
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert {"done", "skipped", "failed", "failed_before"} <= doc.keys() and "failed-before" not in doc
    assert all(k.isidentifier() for k in doc)
    (video,) = doc["videos"]
    assert video["status"] == "failed"
    assert not {"peak_score", "violent_seconds", "segments", "verdict"} & video.keys()


# --- the library names parameters, the CLI names flags --------------------------------


def test_cli_words_maps_parameters_to_the_commands_flags() -> None:
    import typer

    from violence_cli.cli.wording import cli_words

    cmd = typer.main.get_command(app).commands["detect"]
    ctx = cmd.make_context("detect", ["x.mp4"], resilient_parsing=True)
    assert cli_words("failed before; retry_failed=True tries it again", ctx=ctx) == "failed before; --retry-failed tries it again"
    assert cli_words("x is not in /w (download=False)", ctx=ctx) == "x is not in /w (--no-download)"
    assert cli_words("use device='cpu'", ctx=ctx) == "use --device cpu"
    assert cli_words("threshold 2: expected at most 1", ("threshold",), ctx) == "--threshold 2: expected at most 1"
    assert cli_words("run `violence-detect weights download x`", ("download",), ctx) == (
        "run `violence-detect weights download x`"  # a command to type is left as typed
    )
    assert cli_words("the threshold_x stays", ("threshold",), ctx) == "the threshold_x stays"


def test_train_config_error_names_parameters_and_the_cli_flags(tmp_path) -> None:
    from violence_cli.errors import UsageError
    from violence_cli.training.loop import TrainConfig

    with pytest.raises(UsageError) as caught:
        TrainConfig(ema_start=2.0).check()
    assert caught.value.message == "ema_start 2: expected a number between 0 and 1"
    assert caught.value.params == ("ema_start",)
    r = run("train", "--features", tmp_path, "--labels", tmp_path / "l.csv", "--ema-start", "2", "--out", tmp_path / "o")
    assert "--ema-start 2: expected a number between 0 and 1" in r.stderr, r.stderr


LIBRARY = ["training", "live", "runner", "weights", "devices.py"]


def _strings(path: Path) -> list[tuple[int, str]]:
    """String constants of a module, docstrings left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs
    ]


def test_library_messages_name_no_cli_flags() -> None:
    import re

    found = []
    for entry in LIBRARY:
        base = PACKAGE / entry
        for path in [base] if base.is_file() else sorted(base.rglob("*.py")):
            for line, text in _strings(path):
                outside = re.sub(r"`[^`]*`", "", text)  # `violence-detect weights download` is a command to type
                if re.search(r"(?<![\w-])--[a-z]", outside):
                    found.append(f"{path.relative_to(PACKAGE)}:{line}: {text!r}")
    assert not found, "\n".join(found)


def test_default_threshold_has_one_home() -> None:
    from violence_cli.protocol import DEFAULT_THRESHOLD

    retyped = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "threshold":
                if isinstance(node.value, ast.Constant) and node.value.value is not None:
                    retyped.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
            if isinstance(node, ast.FunctionDef):
                args = node.args.args + node.args.kwonlyargs
                defaults = [None] * (len(node.args.args) - len(node.args.defaults)) + node.args.defaults
                defaults += node.args.kw_defaults
                for arg, default in zip(args, defaults):
                    if arg.arg == "threshold" and isinstance(default, ast.Constant) and default.value is not None:
                        retyped.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not retyped, retyped
    for command in ("detect", "watch"):
        param = next(p for p in typer_command(command).params if p.name == "threshold")
        assert param.default == DEFAULT_THRESHOLD


def typer_command(name: str):
    import typer

    return typer.main.get_command(app).commands[name]


def test_runner_core_and_ray_engine_do_not_import_each_other() -> None:
    def imports(path: Path) -> set[str]:
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                names.add(node.module or "")
        return names

    assert "core" not in imports(PACKAGE / "runner" / "ray_engine.py")


def test_counted_nouns_are_made_in_one_place() -> None:
    """"1 alert", "2 alerts", "1,200 snippets": messages.count, not a hand-made "(s)" or
    's' if n != 1 in each message."""
    import re

    from violence_cli.messages import count

    assert [count(1, "alert"), count(0, "alert"), count(2, "clip"), count(1200, "snippet")] == [
        "1 alert", "0 alerts", "2 clips", "1,200 snippets"
    ]  # fmt: skip
    by_hand = re.compile(r"""\}[\w ]*[a-z]\(s\)|['"]s['"] if .+ [!=]= 1 else""")  # "{n} frame(s)"
    homes = [
        f"{path.relative_to(PACKAGE)}:{number}"
        for path in PACKAGE.rglob("*.py")
        if path.name != "messages.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if by_hand.search(line)
    ]
    assert homes == []


def test_shared_messages_are_worded_once() -> None:
    from violence_cli.messages import no_audio_warning, unpublished_warning
    from violence_cli.pipeline import result_warnings
    from violence_cli.schema import VideoFacts

    for needle in ("used as audio", "are not the published file (", "are not the published file:"):
        homes = sorted(
            str(path.relative_to(PACKAGE))
            for path in PACKAGE.rglob("*.py")
            if any(needle in text for _, text in _strings(path))
        )
        assert set(homes) <= {"messages.py"}, (needle, homes)  # worded nowhere else
    facts = VideoFacts(path="v/mute.mp4", duration=2.0, fps=24.0, width=64, height=48, has_audio=False,
                       video_stream=0, audio_stream=None, container="mp4", video_codec="h264", audio_codec=None,
                       n_frames=48, n_snippets=2, scored_duration=4 / 3)  # fmt: skip
    assert result_warnings(facts, []) == [no_audio_warning("mute.mp4")]
    assert result_warnings(facts, [], already=[no_audio_warning("mute.mp4")]) == []  # the extractor said it already
    assert result_warnings(facts, [], already=["mute.mp4: no audio here, another note"]) == [no_audio_warning("mute.mp4")]
    assert "(sha256 abc): the scores" in unpublished_warning("vggish", "w/v.pth", "sha256 abc")

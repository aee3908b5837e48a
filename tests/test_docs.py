"""The README and docs/: every relative link points at a file that exists and, with an
anchor, at a heading that file has (GitHub's anchor rules); the quick start stays short."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _outside_code(text: str) -> str:
    """The text without fenced code blocks (a '# comment' there is not a heading)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation other than '-' and '_' dropped,
    spaces turned into '-'."""
    heads = re.findall(r"^#+ (.+)$", _outside_code(path.read_text()), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


def test_docs_exist():
    names = {p.name for p in DOCS}
    assert {"README.md", "detect.md", "watch.md", "weights.md", "development.md"} <= names


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(doc: Path):
    bad = []
    for target in LINK.findall(_outside_code(doc.read_text())):
        if re.match(r"[a-z]+:", target):
            continue  # http(s)://, mailto: ... are not checked offline
        file_part, _, anchor = target.partition("#")
        dest = (doc.parent / file_part).resolve() if file_part else doc
        if not dest.exists():
            bad.append(f"{target}: no such file")
        elif anchor and anchor not in _anchors(dest):
            bad.append(f"{target}: no heading with that anchor")
    assert not bad, f"{doc.name}: " + "; ".join(bad)


def test_quick_start_at_most_20_lines():
    text = (ROOT / "README.md").read_text()
    quick = re.search(r"^## Quick start\n(.*?)^## ", text, flags=re.S | re.M)
    assert quick, "README.md has no '## Quick start' section followed by another"
    lines = quick.group(1).strip("\n").splitlines()
    assert len(lines) <= 20, f"quick start is {len(lines)} lines"
    for needed in ("VIOLENCE_DETECT_WEIGHTS", "weights download"):
        assert needed in quick.group(1)


def test_readme_starts_with_install_run_and_test():
    """The README's first code blocks: the install command, the main run command, then the
    test command CI runs (.ci/run), with its extras."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"^```\w*\n(.*?)^```", text, flags=re.S | re.M)
    assert len(blocks) >= 2
    first = [line.split("#")[0].strip() for line in blocks[0].splitlines()]
    assert first[0].startswith("pip install ") and first[1].startswith("violence-detect "), first
    assert blocks[1].strip() == "python -m pytest -q -n 2"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "\nCI=true python -m pytest -q -n 2\n" in ci
    extras = re.search(r"pip install -e '(\.\[[a-z,]+\])'", text[: text.index("## ")])
    assert extras and f'-e "{extras.group(1)}"' in ci, "the README's test install is not CI's"
    assert text.index(blocks[1]) < text.index("## "), "the test command is not before the first section"


# --------------------------------------------------------------------------- docs against the CLI
# What the docs name (options in example commands, JSON fields, CSV headers) is checked against
# the real commands: their click parameters, and the outputs of a tiny run that scores feature
# files (random features, a randomly initialised MACIL-SD: nothing decoded, a second or two).


def _commands() -> tuple[dict[str, set[str]], dict[str, str]]:
    """'detect', 'weights list', ... -> every option spelling it takes ('' is the root, whose
    options go anywhere); and each command's help text."""
    import typer.main

    from violence_cli.cli import app

    def spellings(command) -> set[str]:
        names = {"-h", "--help"}
        for param in command.params:
            names.update(param.opts)
            names.update(getattr(param, "secondary_opts", ()))
        return names

    root = typer.main.get_command(app)
    options, helps = {"": spellings(root)}, {"": root.help or ""}
    for name, command in root.commands.items():
        for sub, subcommand in getattr(command, "commands", {}).items():
            options[f"{name} {sub}"], helps[f"{name} {sub}"] = spellings(subcommand), subcommand.help or ""
        options[name], helps[name] = spellings(command), command.help or ""
    return options, helps


def _unknown_options(text: str, options: dict[str, set[str]]) -> list[str]:
    """Every `violence-detect ...` command line in ``text`` (backslash continuations joined, up
    to a comment, a pipe or the end of a code span): the options its command does not take."""
    bad = []
    for m in re.finditer(r"violence-detect((?: [^`\n#|;)]*)?)", re.sub(r"\\\n\s*", " ", text)):
        run = m.group(1).strip()
        words = run.split()
        command, rest = ("detect", words)  # `violence-detect clip.mp4` is detect
        if words and words[0] in options:
            command, rest = words[0], words[1:]
            if rest and f"{command} {rest[0]}" in options:
                command, rest = f"{command} {rest[0]}", rest[1:]
        for word in rest:
            option = word.split("=")[0].rstrip(".,:")
            if option.startswith("-") and option != "-" and option not in options[command] | options[""]:
                bad.append(f"{command} has no {option} ({run[:80]})")
    return bad


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_option_in_a_documented_command_exists(doc: Path):
    bad = _unknown_options(doc.read_text(), _commands()[0])
    assert not bad, f"{doc.name}: " + "; ".join(bad)


def test_every_option_in_a_help_example_exists():
    options, helps = _commands()
    bad = [
        f"{name or 'violence-detect'} --help: {b}"
        for name, text in helps.items()
        for b in _unknown_options(text, options)
    ]
    assert not bad, "; ".join(bad)
    assert sum("violence-detect" in text for text in helps.values()) >= 8, "the help examples were not found"


def _fields(listing: str) -> dict[str, list[str]]:
    """A doc's field list such as "`a`, `b` (`x`, `y`), `c` (what it is, `z`)": the top-level
    names under "", and for each name followed by parentheses the names inside them."""
    out: dict[str, list[str]] = {"": []}
    depth, last, inner = 0, "", None
    for token in re.finditer(r"`([^`]+)`|\(|\)", listing):
        if token.group(0) == "(":
            depth += 1
            if depth == 1:
                inner = out.setdefault(last, [])
        elif token.group(0) == ")":
            depth -= 1
        elif re.fullmatch(r"[a-z_0-9]+", token.group(1)):
            if depth == 0:
                last = token.group(1)
                out[""].append(last)
            elif depth == 1 and inner is not None:
                inner.append(token.group(1))
    return out


def _between(path: Path, start: str, end: str) -> str:
    text = path.read_text()
    found = re.search(re.escape(start) + "(.*?)" + re.escape(end), text, flags=re.S)
    assert found, f"{path.name}: no text between {start!r} and {end!r}"
    return found.group(1)


@pytest.fixture(scope="module")
def feature_run(tmp_path_factory) -> dict[str, Path]:
    """Random features of one video (T = 6) in the XD-Violence layout and a randomly
    initialised MACIL-SD checkpoint: what `detect --features` needs, nothing to decode."""
    import numpy as np
    import torch
    from fakeweights import random_macil_state_dict

    root = tmp_path_factory.mktemp("feature-run")
    feats = root / "feats"
    feats.mkdir()
    rng = np.random.default_rng(0)
    np.save(feats / "clip__0.npy", rng.normal(0, 1, (6, 1024)).astype(np.float32))
    np.save(feats / "clip__vggish.npy", rng.uniform(0, 0.3, (6, 128)).astype(np.float32))
    checkpoint = root / "macil_sd.pkl"
    torch.save(random_macil_state_dict(), checkpoint)
    return {"root": root, "feats": feats, "checkpoint": checkpoint}


def _invoke(*args: object):
    from typer.testing import CliRunner

    from violence_cli.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def _detect(feature_run: dict[str, Path], *args: object):
    base = ["--features", feature_run["feats"], "--checkpoint", feature_run["checkpoint"], "--device", "cpu"]
    return _invoke(*base, "--no-download", *args)


def test_detect_json_fields_are_those_documented(feature_run):
    import json

    doc = json.loads(_detect(feature_run, "--json").stdout)
    listed = _fields(_between(ROOT / "docs" / "detect.md", "- **json**, key by key:", "- **csv**"))
    optional = {"scores_note", "features"}  # only for a model without the two heads / with --output-dir
    assert [k for k in listed[""] if k not in optional or k in doc] == list(doc)
    for key in ("video", "params"):
        assert listed[key] == list(doc[key]), key
    for key in ("weights", "segments", "snippets"):
        assert doc[key], f"the run gave no {key}: nothing to compare"
        assert listed[key] == list(doc[key][0]), key


def _header(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_csv_headers_are_those_documented(feature_run):
    out = feature_run["root"] / "out"
    _detect(feature_run, "--output-dir", out, "-f", "csv", "-f", "segments-csv", "--threshold", "0")
    detect_md, batch_md = ROOT / "docs" / "detect.md", ROOT / "docs" / "batch.md"
    expected = {
        "clip.csv": _between(detect_md, "- **csv**: one row per snippet: `", "`"),
        "clip.segments.csv": _between(detect_md, "- **segments-csv**: one row per segment: `", "`"),
        "results.csv": _between(batch_md, "one row per video (`", "`"),
    }
    for name, header in expected.items():
        assert (out / name).read_text().splitlines()[0] == _header(header), name


def test_plot_to_a_missing_folder_named_with_a_slash(feature_run):
    """detect.md: missing folders are created, `--plot DIR/` included, even for one video
    (a Path option used to drop the slash: the PNG was written to a file named DIR)."""
    plots = feature_run["root"] / "plots"
    _detect(feature_run, "--plot", f"{plots}/", "-q")
    assert plots.is_dir() and [p.name for p in plots.iterdir()] == ["clip.timeline.png"]


@pytest.fixture(scope="module")
def labelled_features(feature_run) -> dict[str, Path]:
    """Two videos, one violent (its first 32 frames annotated) and one normal: what eval and
    train need, beside the same random MACIL-SD."""
    import numpy as np

    feats = feature_run["root"] / "labelled"
    feats.mkdir()
    rng = np.random.default_rng(1)
    for name in ("fight", "walk_label_A"):
        np.save(feats / f"{name}__0.npy", rng.normal(0, 1, (6, 1024)).astype(np.float32))
        np.save(feats / f"{name}__vggish.npy", rng.uniform(0, 0.3, (6, 128)).astype(np.float32))
    annotations = feature_run["root"] / "annotations.txt"
    annotations.write_text("fight 0 32\n")
    return {**feature_run, "feats": feats, "annotations": annotations}


def test_eval_json_fields_are_those_documented(labelled_features):
    import json

    run = labelled_features
    doc = json.loads(
        _invoke("eval", "--features", run["feats"], "--annotations", run["annotations"], "--checkpoint",
                run["checkpoint"], "--device", "cpu", "--no-download", "--json", "--save-scores",
                run["root"] / "scores.npz").stdout
    )  # fmt: skip
    listed = _fields(
        _between(ROOT / "docs" / "research.md", "`--json` prints one document (", "`--save-scores` writes")
    )
    assert listed[""] == list(doc)


def test_train_json_fields_are_those_documented(labelled_features):
    import json

    run = labelled_features
    doc = json.loads(
        _invoke("train", "--features", run["feats"], "--val-features", run["feats"], "--val-annotations",
                run["annotations"], "--epochs", "1", "--batch-size", "2", "--device", "cpu", "--json",
                "--out", run["root"] / "train").stdout
    )  # fmt: skip
    listed = _fields(_between(ROOT / "docs" / "research.md", "`--json` prints one summary (", "). Also"))
    assert listed[""] == list(doc)


BAD_VALUES = [
    (["detect", "x.mp4", "--crops", "3"], "--crops 3: expected one of 5, 1"),
    (["extract", "x.mp4", "--out", "o", "--crops", "3"], "--crops 3: expected one of 5, 1"),
    (["watch", "x.mp4", "--crops", "3"], "--crops 3: expected one of 5, 1"),  # was 'crops 3: expected 5 or 1'
    (["serve", "--crops", "3"], "--crops 3: expected one of 5, 1"),
    (["serve", "--port", "-1"], "--port -1: expected 0 or more"),  # was an 'unexpected error (OverflowError...)'
    (
        ["eval", "--features", "f", "--window", "0"],
        "--window 0: expected 1 or more",
    ),  # was 'expected a greater than...'
    (["train", "--features", "f", "--out", "o", "--cache-gb", "-1"], "--cache-gb -1: expected 0 or more"),  # was run
    (
        ["train", "--features", "f", "--out", "o", "--epochs", "0"],
        "--epochs 0: expected 1 or more",
    ),  # was '... must be'
    (
        ["detect", "x.mp4", "--audio-stream", "-1"],
        "--audio-stream -1: expected 0 or more",
    ),  # was 'no stream #-1', exit 1
    (["detect", "x.mp4", "--shard", "3/2"], "--shard 3/2: expected I/N with 0 <= I < N"),  # was 'shard '3/2': ...'
    (["detect", "x.mp4", "--device", "tpu"], "--device tpu: expected auto, cpu, cuda or cuda:N"),  # 'unknown device'
    (["eval", "--features", "f", "--annotations", "a", "--device", "tpu"], "--device tpu: expected auto, cpu, cuda"),
]


@pytest.mark.parametrize(("argv", "line"), BAD_VALUES, ids=[" ".join(argv) for argv, _ in BAD_VALUES])
def test_a_bad_value_is_worded_as_detect_md_says(argv, line):
    """detect.md, one set of rules for every command: the option and its value first, then what
    was expected (`--crops 3: expected one of 5, 1`), exit 2, on every command."""
    from typer.testing import CliRunner

    from violence_cli.cli import app

    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2 and f"error: {line}" in result.output, result.output


def test_watch_md_names_every_source_scheme():
    from violence_cli.live.source import NETWORK_SCHEMES

    text = (ROOT / "docs" / "watch.md").read_text().replace("http(s)://", "http:// https://")
    missing = sorted(s for s in NETWORK_SCHEMES if not re.search(rf"(?<![\w+.-]){s}://", text))
    assert not missing, f"watch.md does not name {missing}"


def test_detect_md_lists_every_export_format():
    """The -o row of detect.md's outputs table and its per-format bullets name exactly the
    writers there are (writers.FORMATS), with the file names they write."""
    from violence_cli.writers import FORMATS, get_writer

    text = (ROOT / "docs" / "detect.md").read_text()
    row = re.search(r"^\| `-o clip\.json`(.*?)\|", text, flags=re.M)
    assert row, "detect.md has no '-o clip.json' row"
    documented = ["clip.json", *(f"clip{ext}" for ext in re.findall(r"`(\.[a-z.]+)`", row.group(1)))]
    assert documented == [get_writer(f).file_name("clip") for f in FORMATS]
    listed = _between(ROOT / "docs" / "detect.md", "\n- **json**", "\nTimes are seconds")
    bullets = re.findall(r"^- \*\*([a-z /-]+)\*\*", "- **json**" + listed, flags=re.M)
    assert [name for bullet in bullets for name in bullet.split(" / ")] == list(FORMATS)


def test_watch_json_fields_are_those_documented():
    """watch.md's fields of a --json snippet line and of an alert event, against the objects
    that write them (watch prints ``to_dict()`` of each, one per line)."""
    from violence_cli.live.alerts import AlertEvent
    from violence_cli.live.scorer import SnippetScore

    event = AlertEvent("start", 1, 0.0, None, 0.7, 0.7, 0.5, 0.0, "udp://127.0.0.1:5000")
    snippet = SnippetScore(0, 0.0, 2 / 3, 0.7, 0.6, 0.5, 0.0, 0.1, 0, 1, [event])
    watch_md = ROOT / "docs" / "watch.md"

    def listed(start: str, end: str) -> list[str]:
        text = re.sub(r'`(\w+): "\w+"`', r"`\1`", _between(watch_md, start, end))  # `type: "snippet"`
        return _fields(text)[""]

    assert listed("per snippet: ", "\n  An end event") == list(snippet.to_dict())
    assert listed("Each event is a JSON object: ", "\n- `--on-alert") == list(event.to_dict())


def test_every_option_is_documented_somewhere():
    """Each option of each command is named in the README or docs/ (in one of its spellings:
    `-o` for --output, `--no-check` for --check ...), so none exists only in --help."""
    import typer.main

    from violence_cli.cli import app

    text = " ".join(doc.read_text() for doc in DOCS)
    root = typer.main.get_command(app)
    commands = {f"{n} {s}": c for n, g in root.commands.items() for s, c in getattr(g, "commands", {}).items()}
    commands.update((n, c) for n, c in root.commands.items() if not hasattr(c, "commands"))
    missing = []
    for name, command in commands.items():
        for param in command.params:
            spellings = [*getattr(param, "opts", ()), *getattr(param, "secondary_opts", ())]
            if getattr(param, "param_type_name", "") != "option" or "--version" in spellings:
                continue
            if not any(re.search(rf"(?<![\w-]){re.escape(s)}(?![\w-])", text) for s in spellings):
                missing.append(f"{name} {spellings[0]}")
    assert not missing, "not in the docs: " + ", ".join(missing)


def test_extract_refuses_urls_and_stdin_as_detect_md_says(tmp_path):
    """detect.md: only detect reads URLs and stdin. extract said so only in the library: its
    Path arguments turned http://h/a.mp4 into http:/h/a.mp4, 'no such file or folder'."""
    from typer.testing import CliRunner

    from violence_cli.cli import app

    for source in ("http://127.0.0.1:9/a.mp4", "-"):
        result = CliRunner().invoke(app, ["extract", source, "--out", str(tmp_path / "o"), "--no-download"])
        assert result.exit_code == 1, result.output
        assert f"{source}: URLs and stdin are read by detect only" in result.output, result.output


@pytest.mark.parametrize(
    "option", [["--crops", "1"], ["--precision", "bf16"], ["--i3d-weights", "x.pt"], ["--start", "1"]]
)
def test_features_refuse_what_makes_or_decodes_features(feature_run, option):
    """detect.md: with --features nothing is decoded or made, so the options that decode or make
    features are usage errors (--crops 1 used to be ignored: every crop file was still scored)."""
    from typer.testing import CliRunner

    from violence_cli.cli import app

    base = ["--features", str(feature_run["feats"]), "--checkpoint", str(feature_run["checkpoint"]), "--no-download"]
    result = CliRunner().invoke(app, [*base, *option])
    assert result.exit_code == 2 and f"error: {option[0]}" in result.output, result.output


def test_environment_variables_documented_and_real():
    """Every VIOLENCE_DETECT_* variable the package or the tests read is in the docs, and every
    one the docs name is read somewhere."""
    name = re.compile(r"VIOLENCE_DETECT_[A-Z0-9_]*[A-Z0-9]")
    code = {ROOT / "violence_cli", ROOT / "tests", ROOT / "benchmarks"}
    used = {
        v
        for folder in code
        for f in folder.rglob("*.py")
        if f.name != "test_docs.py"
        for v in name.findall(f.read_text())
    }
    documented = {v for doc in DOCS for v in name.findall(doc.read_text())}
    assert used and used == documented, (
        f"undocumented: {sorted(used - documented)}; unused: {sorted(documented - used)}"
    )


def test_detect_json_of_several_videos_is_as_documented(labelled_features):
    """detect.md's --json row: several inputs give {"schema_version", "version", "weights",
    "results": [...], "errors": [{"path", "error"}]}."""
    import json

    run = labelled_features
    doc = json.loads(_detect(run, "--json").stdout)
    row = _between(ROOT / "docs" / "detect.md", "| `--json` | exactly one JSON document", "|\n")
    shape = re.search(r"`(\{.*\})`", row)
    assert shape, "detect.md's --json row shows no document"
    names = re.findall(r'"(\w+)"', shape.group(1))
    assert names == [*doc, "path", "error"] and len(doc["results"]) == 2 and doc["errors"] == []

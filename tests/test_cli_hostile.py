"""The CLI against hostile option values and signals: nan/inf options, SIGTERM, --debug."""

from __future__ import annotations

import math

import pytest
import typer.main
from typer.testing import CliRunner

from violence_cli.cli import app

runner = CliRunner()


def _float_options() -> list[tuple[list[str], str]]:
    """(command path, option) for every float option of every command, found by walking
    the app: an option added later is covered without editing this test."""
    found: list[tuple[list[str], str]] = []

    def walk(command, path: list[str]) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])
        for param in command.params:
            annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
            if "float" in str(annotation) and param.opts[0].startswith("--"):
                found.append((path, param.opts[0]))

    walk(typer.main.get_command(app), [])
    return found


FLOAT_OPTIONS = _float_options()


def test_the_walk_finds_the_known_float_options() -> None:
    names = {option for _, option in FLOAT_OPTIONS}
    assert {"--merge-gap", "--min-duration", "--threshold", "--lr", "--ema-start"} <= names


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN", "infinity"])
@pytest.mark.parametrize(("path", "option"), FLOAT_OPTIONS, ids=[" ".join([*p, o]) for p, o in FLOAT_OPTIONS])
def test_every_float_option_refuses_non_finite_values(path: list[str], option: str, value: str) -> None:
    assert not math.isfinite(float(value))
    result = runner.invoke(app, [*path, option, value])
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}'" in result.output and "not a finite number" in result.output


@pytest.mark.parametrize("extra", [["--json"], ["-o", "out.json"]])
def test_detect_json_with_infinite_merge_gap_is_a_usage_error(tmp_path, extra: list[str]) -> None:
    """Not a traceback from json.dump(allow_nan=False): refused before anything runs."""
    for option in ("--merge-gap", "--min-duration"):
        result = runner.invoke(app, ["detect", str(tmp_path / "v.mp4"), option, "inf", *extra])
        assert result.exit_code == 2 and "not a finite number" in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)

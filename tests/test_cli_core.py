"""The CLI shell: version, help, default command, one-line errors."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from violence_cli import __version__
from violence_cli.cli import app
from violence_cli.cli._app import cli_errors
from violence_cli.errors import InputError, UsageError

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"violence-detect {__version__}"


def test_help_lists_examples() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "violence-detect video.mp4" in result.stdout


def test_python_m_entry_point() -> None:
    proc = subprocess.run([sys.executable, "-m", "violence_cli", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert __version__ in proc.stdout


def test_cli_errors_one_line_and_exit_codes(capsys, monkeypatch) -> None:
    import typer

    monkeypatch.delenv("VIOLENCE_DETECT_DEBUG", raising=False)

    @cli_errors
    def bad_input() -> None:
        raise InputError("clip.mp4: not a video", hint="check the file")

    @cli_errors
    def bad_usage() -> None:
        raise UsageError("--crops must be 1 or 5")

    for fn, code in ((bad_input, 1), (bad_usage, 2)):
        try:
            fn()
        except typer.Exit as exc:
            assert exc.exit_code == code
        else:  # pragma: no cover - the wrapper must exit
            raise AssertionError("no exit")
    err = capsys.readouterr().err
    assert "clip.mp4: not a video" in err and "Traceback" not in err

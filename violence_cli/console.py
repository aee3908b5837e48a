"""The stderr side of the CLI: messages, one-line errors, progress bars.

Results go to stdout; everything here writes to stderr. Progress bars appear only when
stderr is a terminal and the command was not asked for ``--json`` or ``--quiet``.
Library code never imports this module: it reports progress through callbacks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ._compat import forget_live_height

stderr = Console(stderr=True, highlight=False, soft_wrap=True)

DEBUG_ENV = "VIOLENCE_DETECT_DEBUG"  # set to 1 to see tracebacks of expected errors


_debug_flag = False  # set by the CLI's --debug option


def set_debug(on: bool) -> None:
    global _debug_flag
    _debug_flag = on


def debug_enabled() -> bool:
    """True with ``--debug`` or ``VIOLENCE_DETECT_DEBUG=1``: errors show their traceback."""
    return _debug_flag or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def error(message: str, hint: str | None = None) -> None:
    """One line (plus an optional hint line) on stderr."""
    stderr.print(f"[bold red]error:[/] {_escape(message)}")
    if hint:
        stderr.print(f"[dim]hint:[/] {_escape(hint)}")


def warn(message: str) -> None:
    stderr.print(f"[yellow]warning:[/] {_escape(message)}")


def info(message: str, *, quiet: bool = False) -> None:
    if not quiet:
        stderr.print(_escape(message))


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def progress_enabled(quiet: bool = False, json_mode: bool = False) -> bool:
    return not quiet and not json_mode and stderr.is_terminal


@contextmanager
def progress_bar(enabled: bool, transient: bool = True) -> Iterator[Progress | None]:
    """A Rich progress on stderr, or ``None`` when progress is off."""
    if not enabled:
        yield None
        return
    bar = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=transient,
    )
    with bar:
        yield bar


@contextmanager
def bar_paused(bar: Progress | None) -> Iterator[None]:
    """Take the live ``bar`` off the screen while the block prints, then draw it again below.

    stdout and stderr may share the terminal: a line written to stdout while a bar is drawn
    lands on the bar's line and leaves the bar half-drawn (Rich cannot redirect a second
    console, nor ``typer.echo``). Stopping a transient bar erases it; restarting redraws it.
    """
    if bar is None or not bar.live.is_started:
        yield
        return
    overflow = bar.live.vertical_overflow  # stop() sets "visible" for its last render
    bar.stop()
    try:
        yield
    finally:
        # A transient stop erases the bar but the live render keeps its height, and the next
        # start would move up that many lines and erase what the block printed: forget it.
        forget_live_height(bar.live)
        bar.live.vertical_overflow = overflow
        bar.start()

"""The Typer application object shared by the command modules.

``violence-detect VIDEO`` is the main job, so a first argument that is not a command name
(nor a top-level option) is taken as the start of a ``detect`` call.
"""

from __future__ import annotations

import functools
import math
import signal
import sys
import threading
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperGroup

from .. import console
from .._version import __version__
from ..errors import Terminated, ViolenceDetectError

DEFAULT_COMMAND = "detect"
DEBUG_OPTION = "--debug"
_GROUP_OPTIONS = {"--help", "-h", "--version", "--install-completion", "--show-completion"}


class DefaultCommandGroup(TyperGroup):
    """A group that runs ``detect`` when the first argument is not a command.

    Every float option of every command (this group's and its subgroups') refuses nan
    and inf, naming the option: no command has a use for them, and JSON cannot hold them.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _finite_floats(self)

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        end = args.index("--") if "--" in args else len(args)  # after "--": file names, never options
        console.set_debug(DEBUG_OPTION in args[:end])  # --debug is accepted anywhere before "--"
        args = [a for i, a in enumerate(args) if not (i < end and a == DEBUG_OPTION)]
        if args and args[0] not in self.commands and args[0] not in _GROUP_OPTIONS:
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=DefaultCommandGroup,
    name="violence-detect",
    help=(
        "Find violence in videos from what is seen and what is heard (MACIL-SD over I3D "
        "RGB + VGGish audio features).\n\n"
        "Examples:\n\n"
        "  violence-detect video.mp4                 # scores + violent segments\n\n"
        "  violence-detect video.mp4 --json          # one JSON document on stdout\n\n"
        "  violence-detect weights download          # fetch the pretrained weights\n\n"
        "  violence-detect eval --features DIR --annotations annotations.txt"
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"violence-detect {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit."),
    ] = None,
    debug: Annotated[
        bool,
        typer.Option(
            DEBUG_OPTION,
            help="Show the traceback of an error, for a bug report (accepted anywhere on the command line; "
            "the same as VIOLENCE_DETECT_DEBUG=1).",
        ),
    ] = False,
) -> None:
    """Root options."""


F = TypeVar("F", bound=Callable[..., Any])


def _finite_floats(command: Any) -> None:
    """Chain a finiteness check onto the callback of each float parameter, recursively."""
    for sub in getattr(command, "commands", {}).values():
        _finite_floats(sub)
    for param in getattr(command, "params", []):
        descriptor = getattr(param, "type_descriptor", None)
        annotation = getattr(descriptor, "annotation", None)
        if annotation is float or annotation == (float | None):
            param.callback = _finite_check(param.callback)


def _finite_check(previous: Callable[..., Any] | None) -> Callable[..., Any]:
    def check(ctx: typer.Context, param: Any, value: Any) -> Any:
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, float) and not math.isfinite(item):
                raise typer.BadParameter(f"{item} is not a finite number", ctx=ctx, param=param)
        return previous(ctx, param, value) if previous is not None else value

    return check


def cli_errors(fn: F) -> F:
    """Turn errors into one line on stderr and an exit code (no traceback).

    Expected errors (:class:`ViolenceDetectError`) exit with their code (1, or 2 for usage);
    Ctrl-C exits 130, SIGTERM (:class:`Terminated`) 143; anything else is a bug: one line
    with the exception's type, exit 1. ``--debug`` or VIOLENCE_DETECT_DEBUG=1 adds the traceback.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except ViolenceDetectError as exc:
            if console.debug_enabled():
                console.stderr.print_exception()
            console.error(exc.message, exc.hint)
            raise typer.Exit(exc.exit_code) from None
        except Terminated:
            console.error("terminated (SIGTERM); temporary files removed")
            raise typer.Exit(Terminated.exit_code) from None
        except KeyboardInterrupt:
            console.error("interrupted")
            raise typer.Exit(130) from None
        except Exception as exc:  # noqa: BLE001 - the last resort: a bug, still one line
            if console.debug_enabled():
                console.stderr.print_exception()
            message = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else "no detail"
            console.error(
                f"unexpected error ({type(exc).__name__}: {message})",
                hint=None
                if console.debug_enabled()
                else f"this is a bug: rerun with {DEBUG_OPTION} to see the traceback and report it",
            )
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


_terminated = False  # set by the SIGTERM handler: the exit code is 143 whatever path the exception took


def _on_sigterm(signum: int, frame: Any) -> None:
    global _terminated
    _terminated = True
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one is enough: let the cleanup run
    raise Terminated()


def run_app() -> None:
    """The command line's entry point: SIGTERM raises :class:`Terminated` in the main thread
    (cleaned up like Ctrl-C, exit code 143)."""
    global _terminated
    _terminated = False
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        app(prog_name="violence-detect")
    except SystemExit as exc:
        if _terminated and exc.code != Terminated.exit_code:
            raise SystemExit(Terminated.exit_code) from None
        raise
    except Terminated:
        console.error("terminated (SIGTERM)")
        raise SystemExit(Terminated.exit_code) from None


def exit_code(failed: int) -> None:
    """Exit 1 when some inputs failed (after the others were processed)."""
    if failed:
        raise typer.Exit(1)


__all__ = ["app", "cli_errors", "exit_code", "sys"]

"""The Typer application object shared by the command modules.

``violence-detect VIDEO`` is the main job, so a first argument that is not a command name
(nor a top-level option) is taken as the start of a ``detect`` call.
"""

from __future__ import annotations

import difflib
import functools
import math
import re
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperGroup

from .. import console
from .._compat import click_exceptions, current_context, is_float_param, patch_help_words
from .._version import __version__
from ..errors import Terminated, UsageError, ViolenceDetectError
from .wording import cli_words

DEFAULT_COMMAND = "detect"
DEBUG_OPTION = "--debug"
_GROUP_OPTIONS = {"--help", "-h", "--version", "--install-completion", "--show-completion"}


def _looks_like_input(arg: str) -> bool:
    """An argument ``detect`` may take: an existing path, a URL, ``-`` (stdin) or an option."""
    return arg.startswith("-") or "://" in arg or Path(arg).exists()


class DefaultCommandGroup(TyperGroup):
    """A group that runs ``detect`` when the first argument is not a command.

    Every float option of every command (this group's and its subgroups') refuses nan
    and inf, naming the option: no command has a use for them, and JSON cannot hold them.
    A first argument that is neither a command nor an existing path but close to a
    command's name (``evl``) is a usage error with "did you mean ...?". Usage errors of the
    option parser are printed in the house style (see :func:`usage_error_line`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _finite_floats(self)

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        end = args.index("--") if "--" in args else len(args)  # after "--": file names, never options
        console.set_debug(DEBUG_OPTION in args[:end])  # --debug is accepted anywhere before "--"
        args = [a for i, a in enumerate(args) if not (i < end and a == DEBUG_OPTION)]
        if args and args[0] not in self.commands and args[0] not in _GROUP_OPTIONS:
            if not _looks_like_input(args[0]):
                close = difflib.get_close_matches(args[0], list(self.commands), n=1, cutoff=0.6)
                if close:
                    raise click_exceptions.UsageError(
                        f"{args[0]}: not a command, file or folder; did you mean '{close[0]}'?", ctx
                    )
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)

    def main(self, args: Sequence[str] | None = None, *pos: Any, standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, *pos, standalone_mode=False, **extra)
        try:
            code = super().main(args, *pos, standalone_mode=False, **extra)
        except click_exceptions.NoArgsIsHelpError as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click_exceptions.UsageError as exc:
            command = exc.ctx.command_path if exc.ctx is not None else "violence-detect"
            console.error(usage_error_line(exc), hint=f"{command} --help")
            sys.exit(exc.exit_code)
        except click_exceptions.ClickException as exc:
            console.error(exc.format_message())
            sys.exit(exc.exit_code)
        except typer.Abort:
            console.error("aborted")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


_NOT_A = re.compile(r"^'?(?P<value>[^' ]*)'? is not (?:a valid |an? )?(?P<what>.+?)\.?$", re.S)
_NO_SUCH_COMMAND = re.compile(r"^No such command '(?P<name>.*?)'", re.S)
_NOT_ONE_OF = re.compile(r"^'(?P<value>.*)' is not one of (?P<choices>.+?)\.?$", re.S)


def _option_name(exc: Any) -> str | None:
    param = getattr(exc, "param", None)
    if param is None:
        hint = getattr(exc, "param_hint", None)
        return hint if isinstance(hint, str) else (" / ".join(hint) if hint else None)
    opts = [o for o in getattr(param, "opts", []) if o.startswith("--")] or list(getattr(param, "opts", []))
    if getattr(param, "param_type_name", "") == "argument":
        return param.metavar or (param.name or "argument").upper()
    return opts[0] if opts else param.name


def usage_error_line(exc: Any) -> str:
    """A parser error in the house style: the option first, then what is wrong, then what
    was expected (``--crops 3: expected one of 5, 1``)."""
    if isinstance(exc, click_exceptions.NoSuchOption):
        line = f"{exc.option_name}: no such option"
        if exc.possibilities:
            close = difflib.get_close_matches(exc.option_name, list(exc.possibilities), n=1, cutoff=0.0)
            line += f"; did you mean {close[0]}?"
        return line
    name = _option_name(exc)
    if isinstance(exc, click_exceptions.MissingParameter):
        kind = "argument" if getattr(getattr(exc, "param", None), "param_type_name", "") == "argument" else "option"
        return f"{name}: missing; this {kind} is required"
    message = str(getattr(exc, "message", exc)).strip()
    message = message.removeprefix("Value error, ").rstrip(".")
    if isinstance(exc, click_exceptions.BadParameter) and name:
        if (expected := _validation_error(exc)) is not None:
            return f"{name} {expected[0]}: expected {expected[1]}"
        if match := _NOT_ONE_OF.match(message):
            choices = match["choices"].replace("'", "")
            return f"{name} {match['value']}: expected one of {choices}"
        if match := _NOT_A.match(message):
            return f"{name} {match['value']}: expected {_article(match['what'])}"
        return f"{name}: {message}"
    if isinstance(exc, click_exceptions.BadOptionUsage):
        if "requires an argument" in message:
            return f"{exc.option_name}: missing its value"
        return f"{exc.option_name}: {message[:1].lower() + message[1:]}"
    if match := _NO_SUCH_COMMAND.match(message):  # a subcommand's group: `weights lst`
        name = match["name"]
        commands = list(getattr(getattr(exc.ctx, "command", None), "commands", {}) or {})
        line = f"{name}: not a command"
        close = difflib.get_close_matches(name, commands, n=1, cutoff=0.6)
        return line + (f"; did you mean '{close[0]}'?" if close else f"; expected one of {', '.join(commands)}")
    if message.startswith("Got unexpected extra argument"):
        extra = message.split("(", 1)[-1].rstrip(")")
        return f"{extra}: unexpected extra argument"
    return message[:1].lower() + message[1:]


def _validation_error(exc: Any) -> tuple[str, str] | None:
    """(value, what was expected) from the validation error behind a Typer BadParameter."""
    errors = getattr(exc.__cause__, "errors", None)
    if not callable(errors):
        return None
    try:
        first = errors()[0]
    except (IndexError, TypeError, ValueError):
        return None
    msg = str(first.get("msg", ""))
    if not msg.startswith("Input should be "):
        return None
    what = msg.removeprefix("Input should be ").split(",")[0].replace("valid ", "")
    for bound, words in _BOUNDS:  # a range: no article ("a greater than or equal to 1")
        if what.startswith(bound):
            return str(first.get("input", "")), words.format(what.removeprefix(bound))
    return str(first.get("input", "")), _article(what.removeprefix("a ").removeprefix("an "))


_BOUNDS = (
    ("greater than or equal to ", "{} or more"),
    ("less than or equal to ", "{} or less"),
    ("greater than ", "more than {}"),
    ("less than ", "less than {}"),
)


def _article(what: str) -> str:
    """'integer' -> 'an integer'; 'float' -> 'a number'."""
    what = {"float": "number", "float range": "number in range"}.get(what, what)
    return what if what.split()[0] in ("a", "an") else ("an " if what[0] in "aeiou" else "a ") + what


patch_help_words()


app = typer.Typer(
    cls=DefaultCommandGroup,
    name="violence-detect",
    help=(
        "Find violence in videos from what is seen and what is heard (MACIL-SD over I3D "
        "RGB + VGGish audio features).\n\n"
        "Examples:\n\n"
        "\b\n"
        "  violence-detect video.mp4              # scores + violent segments\n"
        "  violence-detect video.mp4 --json       # one JSON document on stdout\n"
        "  violence-detect weights download       # fetch the pretrained weights\n"
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
        if is_float_param(param):
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
            ctx = current_context()
            hint = cli_words(exc.hint, exc.params, ctx)
            if hint is None and isinstance(exc, UsageError):  # like the parser's own usage errors
                hint = f"{ctx.command_path} --help" if ctx is not None else None
            console.error(cli_words(exc.message, exc.params, ctx) or exc.message, hint)
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

"""The Typer application object shared by the command modules.

``violence-detect VIDEO`` is the main job, so a first argument that is not a command name
(nor a top-level option) is taken as the start of a ``detect`` call.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperGroup

from .. import console
from .._version import __version__
from ..errors import ViolenceDetectError

DEFAULT_COMMAND = "detect"
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
    """Turn expected errors into one line on stderr and an exit code (no traceback).

    Set VIOLENCE_DETECT_DEBUG=1 to see the traceback as well.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ViolenceDetectError as exc:
            if console.debug_enabled():
                console.stderr.print_exception()
            console.error(exc.message, exc.hint)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            console.error("interrupted")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def exit_code(failed: int) -> None:
    """Exit 1 when some inputs failed (after the others were processed)."""
    if failed:
        raise typer.Exit(1)


__all__ = ["app", "cli_errors", "exit_code", "sys"]

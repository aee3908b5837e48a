"""Every reach into Typer's or Rich's private parts, in one place, each with its reason.

pyproject.toml bounds typer and rich to the versions CI runs (the newest, and the lowest
admitted: `.ci/run` installs those in a second environment and runs the CLI tests). When
one of these breaks on a new release, this module is the one to fix.
"""

from __future__ import annotations

from typing import Any

import typer
from typer import core as typer_core

# Typer >= 0.24 vendors Click as ``typer._click`` (and no longer depends on the click
# package); older Typer uses the click package. The CLI needs Click's exception classes (to
# print parser errors in the house style) and its current context (for ``--help`` hints).
try:
    from typer._click import exceptions as click_exceptions
    from typer._click import globals as click_globals
except ImportError:  # Typer < 0.24
    from click import exceptions as click_exceptions  # type: ignore[no-redef]
    from click import globals as click_globals  # type: ignore[no-redef]


def is_float_param(param: Any) -> bool:
    """Whether a command parameter takes a float (or floats). Typer >= 0.24 keeps the Python
    annotation in the private ``type_descriptor`` and has no Click ``type``; older Typer gives
    the Click type (``FloatParamType``, which ``FloatRange`` extends)."""
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is not None:
        annotation = descriptor.annotation
        return annotation is float or annotation == (float | None) or annotation == list[float]
    from click import types as click_types  # Typer < 0.24 depends on click (its vendored copy has no types)

    return isinstance(getattr(param, "type", None), click_types.FloatParamType)


def current_context() -> Any:
    """Click's context of the command running now, or None outside one."""
    return click_globals.get_current_context(silent=True)


# Metavars as words in --help: 'FILE' and 'N', never Python types ('<path>', '<list[Path]>').
# Typer has no setting for this; its rich help asks each parameter for
# ``display_type_rich`` (options) and ``_usage_display_name`` / ``_rich_display_name``
# (arguments), so those methods are replaced on Typer's parameter classes.
_WORDS = {"path": "PATH", "int": "N", "float": "NUMBER", "str": "TEXT", "text": "TEXT"}


def _word_type(self: Any, ctx: Any) -> str | None:
    if self.metavar is not None:
        return self.metavar
    # _TyperParameter.display_type: Typer's own rendering of the type (private, no public twin)
    label = typer_core._TyperParameter.display_type(self, ctx).strip("<>")
    if label.startswith("list["):
        label = label[5:-1]
    return _WORDS.get(label.lower(), label)


def _argument_type(self: Any, ctx: Any) -> str | None:
    return None  # the argument's name (its metavar) already says what it takes


def _argument_usage(self: Any) -> str:
    name = self.display_name_raw
    if self.nargs != 1 and not name.endswith("..."):
        name += "..."
    return name if self.required else f"[{name}]"


def _argument_name(self: Any) -> str:
    return _argument_usage(self).strip("[]")


def patch_help_words() -> None:
    """Install the help-text metavars above on Typer's parameter classes (idempotent)."""
    typer_core.TyperOption.display_type_rich = _word_type  # type: ignore[method-assign]
    typer_core.TyperArgument.display_type_rich = _argument_type  # type: ignore[method-assign]
    typer_core.TyperArgument._usage_display_name = _argument_usage  # type: ignore[method-assign]
    typer_core.TyperArgument._rich_display_name = _argument_name  # type: ignore[method-assign]


def forget_live_height(live: Any) -> None:
    """Rich: after a transient ``Live.stop()`` the live render keeps the height it last drew,
    and the next ``start()`` moves the cursor up that many lines, erasing whatever was printed
    in between. ``LiveRender._shape`` is that remembered height (private; no public reset)."""
    live._live_render._shape = None


__all__ = [
    "click_exceptions",
    "click_globals",
    "current_context",
    "forget_live_height",
    "is_float_param",
    "patch_help_words",
    "typer",
]

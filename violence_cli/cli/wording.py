"""The library's words in the CLI's terms: parameter names become the command's flags.

Library messages name parameters as Python spells them: a bare name (``threshold``, listed in
the error's ``params``) or a keyword with its value (``retry_failed=True``,
``download=False``, ``device='cpu'``). Here each becomes the current command's flag
(``--threshold``, ``--retry-failed``, ``--no-download``, ``--device cpu``), read from the
command's own declared options, so a renamed flag can never drift from what is printed.
Text between backticks (a command to type) is left as it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_KEYWORD = re.compile(r"(?<![\w.-])([a-z][a-z0-9_]*)=(True|False|'[^']*')")


def _flags(ctx: Any) -> dict[str, tuple[str, str | None]]:
    """parameter name -> (its --flag, its --no-flag or None) for the command of ``ctx``."""
    out: dict[str, tuple[str, str | None]] = {}
    command = getattr(ctx, "command", None)
    for param in getattr(command, "params", []):
        longs = [o for o in getattr(param, "opts", []) if o.startswith("--")]
        if param.name and longs:
            off = [o for o in getattr(param, "secondary_opts", []) if o.startswith("--")]
            out[param.name] = (longs[0], off[0] if off else None)
    return out


def _default(name: str) -> tuple[str, str]:
    dashed = name.replace("_", "-")
    return f"--{dashed}", f"--no-{dashed}"


def cli_words(text: str | None, params: Iterable[str] = (), ctx: Any = None) -> str | None:
    """``text`` with parameter names turned into flags: every name in ``params``, and every
    ``name=value`` whose name is in ``params`` or is one of the command's options."""
    if not text:
        return text
    if ctx is None:
        from .._compat import current_context

        ctx = current_context()
    flags = _flags(ctx)
    named = set(params)

    def keyword(match: re.Match[str]) -> str:
        name, value = match[1], match[2]
        if name not in flags and name not in named:
            return match[0]
        on, off = flags.get(name) or _default(name)
        if value == "True":
            return on
        if value == "False":
            return off or f"{on} off"
        return f"{on} {value[1:-1]}"

    def words(part: str) -> str:
        part = _KEYWORD.sub(keyword, part)
        for name in named:
            on = (flags.get(name) or _default(name))[0]
            part = re.sub(rf"(?<![\w.-]){re.escape(name)}(?![\w=])", on, part)
        return part

    # `quoted commands` are shown as they are typed: nothing inside backticks is touched
    pieces = text.split("`")
    return "`".join(words(piece) if i % 2 == 0 else piece for i, piece in enumerate(pieces))


__all__ = ["cli_words"]

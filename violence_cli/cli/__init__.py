"""The ``violence-detect`` command line: each command a thin wrapper over the library.

One module per command registers itself on the shared Typer app (``_app.app``).
"""

from __future__ import annotations

from . import detect_cmd, eval_cmd, extract_cmd, train_cmd, weights_cmd  # noqa: F401  (registration)
from ._app import app


def main() -> None:
    app(prog_name="violence-detect")


__all__ = ["app", "main"]

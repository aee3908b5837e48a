"""The ``violence-detect`` command line: each command a thin wrapper over the library.

One module per command registers itself on the shared Typer app (``_app.app``).
"""

from __future__ import annotations

from . import detect_cmd, eval_cmd, extract_cmd, serve_cmd, train_cmd, watch_cmd, weights_cmd  # noqa: F401  (registration)
from ._app import app, run_app


def main() -> None:
    run_app()


__all__ = ["app", "main"]

"""Errors the library raises on purpose.

Every expected failure (a bad input file, missing weights, a malformed feature list) is a
:class:`ViolenceDetectError`: a one-line ``message`` that names the file and the problem,
plus an optional ``hint`` saying what to do. The CLI prints both on stderr and exits 1;
anything else is a bug and keeps its traceback.

The library speaks of its own parameters (``threshold``, ``retry_failed=True``), never of
command-line flags: an error lists in ``params`` the parameter names its text uses, and the
CLI turns them into its flags (``--threshold``, ``--retry-failed``) before printing.
"""

from __future__ import annotations


class ViolenceDetectError(Exception):
    """An expected, user-facing failure: one line, optionally with a hint."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None, *, params: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.params = tuple(params)  # parameter names the message and hint mention (the CLI maps them to flags)

    def __str__(self) -> str:
        return self.message


class InputError(ViolenceDetectError):
    """A media or feature file that cannot be used (missing, unreadable, too short...)."""


class WeightsError(ViolenceDetectError):
    """Weights that are missing, fail verification, or do not fit the model."""


class UsageError(ViolenceDetectError):
    """Options that do not make sense together (exit code 2, like click's usage errors)."""

    exit_code = 2


class Terminated(KeyboardInterrupt):
    """The process was asked to stop (SIGTERM, what schedulers and containers send).

    A :class:`KeyboardInterrupt`, so every path that cleans up after Ctrl-C (temporary
    files of downloads, exports, features; the many-video runner's record of where it
    stopped) handles it the same way; the CLI exits with 143 (128 + SIGTERM) instead of 130.
    """

    exit_code = 143

"""The one way the project writes a file: a temporary name in the same folder, then a rename.

A reader (or a rerun after a crash, even a SIGKILL) sees either the old file or the whole
new one, never half of one: the data goes to ``.NAME.XXXX.tmp`` beside the target, is
flushed to disk, given its permissions and renamed over ``NAME`` with ``os.replace``.
On any exception the temporary file is removed and the target is left untouched.

Permission policy (one for every file: exports, features, checkpoints, training state,
downloaded weights, plots, tables): what a plain ``open()`` would give, ``0o666`` minus the
process umask. ``tempfile.mkstemp`` alone would leave them 0600.

A writer killed outright (SIGKILL, power loss) leaves its temporary file behind;
:func:`remove_stale` takes those away where the caller owns the target (a rerun redoing a
video, a resumed training run).

Test hook (off unless set; read once, at import): ``VIOLENCE_DETECT_TEST_KILL_BEFORE_RENAME=GLOB``
or ``GLOB@N`` makes the process SIGKILL itself after the temporary file of the ``N``-th
(default first) target whose path matches ``GLOB`` (``fnmatch``) is written and synced, just
before the rename: the worst moment to die, which tests use to prove a rerun recovers.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

TMP_SUFFIX = ".tmp"  # temporary files are ".NAME.<random>.tmp" in the target's folder
_RANDOM = r"[a-z0-9_]{8}"  # what tempfile.mkstemp puts between prefix and suffix
KILL_ENV = "VIOLENCE_DETECT_TEST_KILL_BEFORE_RENAME"


def _kill_hook(value: str | None) -> tuple[str, int] | None:
    """(glob, n) from the test hook's value, or None (the hook is off)."""
    if not value:
        return None
    glob, sep, n = value.rpartition("@")
    if sep and n.isdigit() and int(n) > 0:
        return glob, int(n)
    return value, 1


_KILL = _kill_hook(os.environ.get(KILL_ENV))
_kill_seen = 0


def _maybe_die(target: Path) -> None:
    global _kill_seen
    if _KILL is None or not fnmatch.fnmatch(str(target), _KILL[0]):
        return
    _kill_seen += 1
    if _kill_seen == _KILL[1]:
        os.kill(os.getpid(), signal.SIGKILL)

# File names that are not UTF-8 (legal on Linux, common in old archives) reach Python as lone
# surrogates (os.fsdecode's surrogateescape: byte 0xXX -> U+DCXX), which UTF-8 cannot encode.
# Text files take one of two encode error handlers, each reversible:
ESCAPED = "backslashreplace"  # U+DCXX written as the six characters \udcXX: inside JSON a valid
#   escape that json.loads turns back into U+DCXX, and os.fsencode into the byte (JSON, HTML)
RAW_BYTES = "surrogateescape"  # U+DCXX written as the original byte, as `ls` would list it (CSV)


def escaped(text: str) -> str:
    """``text`` as :data:`ESCAPED` writes it (for where no error handler applies: a plot's
    title, the terminal): a non-UTF-8 name's bytes as ``\\udcXX``, everything else unchanged."""
    return text.encode("utf-8", ESCAPED).decode("utf-8")


def _umask() -> int:
    """The process umask, read without changing it (os.umask would, for every thread)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The permission bits every written file gets (0o666 minus the umask)."""
    return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write with any library (torch.save, np.save);
    on success it is synced, given :func:`file_mode` and renamed over ``path``."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=TMP_SUFFIX)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, file_mode())
        _maybe_die(target)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def remove_stale(path: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files a killed writer left beside ``path``; return them.

    Only for a caller that owns ``path`` (no other process can be writing it right now):
    another writer's temporary file would go too."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    pattern = re.compile(re.escape(f".{target.name}.") + _RANDOM + re.escape(TMP_SUFFIX))
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    removed = []
    for name in names:
        if pattern.fullmatch(name):
            with contextlib.suppress(OSError):  # gone already, or not ours to remove: harmless
                os.unlink(folder / name)
                removed.append(folder / name)
    return removed


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """``open(path, mode)`` that lands atomically: the handle writes a temporary file that
    replaces ``path`` when the block ends without an exception."""
    if not any(c in mode for c in "wx"):
        raise ValueError(f"atomic_open writes a whole file; mode {mode!r} needs 'w'")
    with atomic_path(path) as tmp, open(tmp, mode.replace("x", "w"), **kwargs) as handle:
        yield handle


def write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8", errors: str = "strict") -> Path:
    """``text`` into ``path``; ``errors``: :data:`ESCAPED` or :data:`RAW_BYTES` for text that may
    hold a non-UTF-8 file name."""
    with atomic_open(path, "w", encoding=encoding, errors=errors, newline="") as fh:
        fh.write(text)
    return Path(path)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def write_with(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)`` (e.g. ``lambda p: torch.save(obj, p)``), then land it atomically."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def save_npy(path: str | os.PathLike[str], array: Any) -> Path:
    """``np.save`` atomically (never pickled objects)."""
    import numpy as np

    with atomic_open(path, "wb") as fh:
        np.save(fh, array, allow_pickle=False)
    return Path(path)


__all__ = [
    "ESCAPED",
    "RAW_BYTES",
    "TMP_SUFFIX",
    "atomic_open",
    "atomic_path",
    "escaped",
    "file_mode",
    "remove_stale",
    "save_npy",
    "write_bytes",
    "write_text",
    "write_with",
]

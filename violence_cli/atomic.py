"""The one way the project writes a file: a temporary name in the same folder, then a rename.

A reader (or a rerun after a crash, even a SIGKILL) sees either the old file or the whole
new one, never half of one: the data goes to ``.NAME.XXXX.tmp`` beside the target, is
flushed to disk, given its permissions and renamed over ``NAME`` with ``os.replace``.
On any exception the temporary file is removed and the target is left untouched.

Permission policy (one for every file: exports, features, checkpoints, training state,
downloaded weights, plots, tables): what a plain ``open()`` would give, ``0o666`` minus the
process umask. ``tempfile.mkstemp`` alone would leave them 0600.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

TMP_SUFFIX = ".tmp"  # temporary files are ".NAME.<random>.tmp" in the target's folder


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
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """``open(path, mode)`` that lands atomically: the handle writes a temporary file that
    replaces ``path`` when the block ends without an exception."""
    if not any(c in mode for c in "wx"):
        raise ValueError(f"atomic_open writes a whole file; mode {mode!r} needs 'w'")
    with atomic_path(path) as tmp, open(tmp, mode.replace("x", "w"), **kwargs) as handle:
        yield handle


def write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    with atomic_open(path, "w", encoding=encoding, newline="") as fh:
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
    "TMP_SUFFIX",
    "atomic_open",
    "atomic_path",
    "file_mode",
    "save_npy",
    "write_bytes",
    "write_text",
    "write_with",
]

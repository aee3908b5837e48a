"""Which videos a run covers, and the one naming rule for their outputs.

Inputs are files, folders (the videos directly inside, or the whole tree with
``recursive``) and list files (one path per line; ``-`` reads the list from stdin). Every
video gets a *relative path*: its path under the run's root, the deepest folder holding
every input (a folder given counts as itself, a file as its folder). Outputs are named
after that relative path without its extension, subfolders kept (``cam1/a.mp4`` ->
``OUT/cam1/a.json``), so two ``a.mp4`` in different subfolders never collide and a rerun
with the same inputs finds the same names. ``--shard I/N`` keeps the videos whose relative
path hashes (sha256) to I modulo N: stable across runs, processes and machines.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TextIO

from ..errors import InputError, UsageError, ViolenceDetectError

VIDEO_EXTENSIONS = frozenset(".mp4 .m4v .mkv .webm .avi .mov .mpg .mpeg .ts .mts .m2ts .wmv .flv .3gp .ogv".split())
STDIN = "-"  # a list file name meaning "read the list from stdin"


@dataclass(frozen=True)
class VideoInput:
    """One video of a run: where it is, and its path relative to the run's root."""

    path: Path
    rel: PurePosixPath  # e.g. cam1/a.mp4

    @property
    def name(self) -> str:
        """The output name: the relative path without the extension (``cam1/a``)."""
        return str(self.rel.with_suffix("")) if self.rel.suffix else str(self.rel)


@dataclass
class Discovery:
    videos: list[VideoInput]
    failures: list[tuple[str, ViolenceDetectError]] = field(default_factory=list)  # (input, why)
    root: Path | None = None


def is_video_file(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS and not path.name.startswith(".")


def _videos_in(folder: Path, recursive: bool) -> list[Path]:
    if not recursive:
        return sorted(p for p in folder.iterdir() if p.is_file() and is_video_file(p))
    found: list[Path] = []
    for top, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(top) / f for f in sorted(files) if is_video_file(Path(f)))
    return found


def read_list(source: str | os.PathLike[str], stdin: TextIO | None = None) -> list[str]:
    """Non-blank, non-comment (``#``) lines of a list file, or of stdin for ``-``."""
    if str(source) == STDIN:
        text = (stdin or sys.stdin).read()
    else:
        from ..xdfeatures import read_text_input

        text = read_text_input(Path(source), "video list")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def discover(
    inputs: Sequence[str | os.PathLike[str]],
    *,
    recursive: bool = False,
    from_list: str | os.PathLike[str] | None = None,
    stdin: TextIO | None = None,
) -> Discovery:
    """Expand the inputs into videos (sorted within each folder, in input order otherwise).

    A missing path, or a folder without videos, is a failure with its one-line error so the
    caller can go on with the others. The same file named twice counts once; two different
    files with the same output name (``a.mp4`` and ``a.mkv`` side by side) make the second
    a failure naming the first.
    """
    raw: list[str | os.PathLike[str]] = list(inputs)
    if from_list is not None:
        raw += read_list(from_list, stdin)
    found: list[tuple[Path, Path]] = []  # (video, the folder that counts as its input)
    failures: list[tuple[str, ViolenceDetectError]] = []
    for item in raw:
        path = Path(item)
        if path.is_dir():
            videos = _videos_in(path, recursive)
            if not videos:
                exts = " ".join(sorted(VIDEO_EXTENSIONS))
                where = "under" if recursive else "in"
                failures.append(
                    (str(path), InputError(f"{path}: no video files {where} this folder (looked for {exts})"))
                )
            found += [(v, path) for v in videos]
        elif path.exists():
            found.append((path, path.parent))
        else:
            failures.append((str(path), InputError(f"{path}: no such file or folder")))
    if not found:
        return Discovery([], failures, None)
    root = Path(os.path.commonpath([os.path.abspath(base) for _, base in found]))
    videos: list[VideoInput] = []
    seen: dict[str, Path] = {}
    taken: dict[str, Path] = {}
    for video, _ in found:
        absolute = os.path.abspath(video)
        if absolute in seen:
            continue
        seen[absolute] = video
        entry = VideoInput(video, PurePosixPath(Path(os.path.relpath(absolute, root)).as_posix()))
        if entry.name in taken:
            failures.append(
                (
                    str(video),
                    InputError(
                        f"{video}: same output name {entry.name!r} as {taken[entry.name]}",
                        hint="rename one of them (only the extensions differ)",
                    ),
                )
            )
            continue
        taken[entry.name] = video
        videos.append(entry)
    return Discovery(videos, failures, root)


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> (I, N) with 0 <= I < N; a :class:`UsageError` otherwise."""
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise UsageError(f"shard {text!r}: expected I/N, e.g. 0/4") from None
    if not (n >= 1 and 0 <= i < n):
        raise UsageError(f"shard {text!r}: expected 0 <= I < N")
    return i, n


def shard_of(video: VideoInput, count: int) -> int:
    """Which of ``count`` shards takes ``video`` (sha256 of its relative path)."""
    digest = hashlib.sha256(str(video.rel).encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % count


def select_shard(videos: Iterable[VideoInput], shard: tuple[int, int] | None) -> list[VideoInput]:
    if shard is None:
        return list(videos)
    i, n = shard
    return [v for v in videos if shard_of(v, n) == i]


__all__ = [
    "STDIN",
    "VIDEO_EXTENSIONS",
    "Discovery",
    "VideoInput",
    "discover",
    "parse_shard",
    "read_list",
    "select_shard",
    "shard_of",
]

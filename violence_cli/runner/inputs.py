"""Which videos a run covers, and the one naming rule for their outputs.

Inputs are files, folders (the videos directly inside, or the whole tree with
``recursive``), list files (one path per line; ``-`` reads the list from stdin), http(s)
URLs and ``-`` (the video itself on stdin); a URL or stdin is first copied into a private
temporary folder (see :func:`spool`) and then read like a file. Every
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
import shutil
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO, TextIO

from ..errors import InputError, UsageError, ViolenceDetectError

VIDEO_EXTENSIONS = frozenset(".mp4 .m4v .mkv .webm .avi .mov .mpg .mpeg .ts .mts .m2ts .wmv .flv .3gp .ogv".split())
STDIN = "-"  # a list file name meaning "read the list from stdin"; as VIDEO: the video on stdin
STDIN_NAME = "stdin"  # the output name of a video read from stdin
URL_SCHEMES = ("http://", "https://")
URL_TIMEOUT = 30.0  # seconds to connect, and for each read of a download
_CHUNK = 1 << 20


@dataclass(frozen=True)
class VideoInput:
    """One video of a run: where it is, and its path relative to the run's root."""

    path: Path
    rel: PurePosixPath  # e.g. cam1/a.mp4
    label: str | None = None  # what the user named (a URL, "-") when ``path`` is a spooled copy

    @property
    def shown(self) -> str:
        """How outputs and messages name the input: the URL or ``-`` the user gave, else the path."""
        return self.label if self.label is not None else str(self.path)

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


def is_url(item: str | os.PathLike[str]) -> bool:
    return isinstance(item, str) and item.lower().startswith(URL_SCHEMES)


def url_name(url: str) -> str:
    """The file name a URL's video goes by: its path's last segment (``video`` when none)."""
    segment = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rstrip("/").rpartition("/")[2])
    segment = segment.replace("\\", "_").lstrip(".")
    return segment or "video"


def spool(item: str, folder: Path, *, stdin: BinaryIO | None = None, timeout: float = URL_TIMEOUT) -> Path:
    """Copy a URL's video (or, for ``-``, stdin's bytes) into ``folder`` and return the copy.

    Why a copy rather than handing the URL to FFmpeg: probing, the frames and the audio
    each open the input again (three downloads), and an MP4 whose index is at its end needs
    seeking; one download into a private temporary folder (the caller removes it) makes a
    URL or a pipe an ordinary file for the rest of the run, with the same results.
    ``timeout`` bounds connecting and each read. Raises :class:`InputError` naming the URL.
    """
    if item == STDIN:
        target = folder / STDIN_NAME
        with open(target, "wb") as out:
            shutil.copyfileobj(stdin or sys.stdin.buffer, out, _CHUNK)
        if target.stat().st_size == 0:
            raise InputError("-: nothing on stdin (expected a video piped in, e.g. cat clip.mp4 | violence-detect -)")
        return target
    target = folder / str(len(list(folder.iterdir()))) / url_name(item)
    target.parent.mkdir()
    try:
        request = urllib.request.Request(item, headers={"User-Agent": "violence-detect"})
        with urllib.request.urlopen(request, timeout=timeout) as response, open(target, "wb") as out:
            shutil.copyfileobj(response, out, _CHUNK)
    except urllib.error.HTTPError as exc:
        raise InputError(f"{item}: cannot download (HTTP {exc.code} {exc.reason})") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        raise InputError(f"{item}: cannot download ({getattr(reason, 'strerror', None) or reason})") from None
    except (OSError, ValueError) as exc:  # a timeout mid-download, a malformed URL
        raise InputError(f"{item}: cannot download ({type(exc).__name__}: {exc or 'timed out'})") from None
    return target


def discover(
    inputs: Sequence[str | os.PathLike[str]],
    *,
    recursive: bool = False,
    from_list: str | os.PathLike[str] | None = None,
    stdin: TextIO | None = None,
    spool_dir: Path | Callable[[], Path] | None = None,
    stdin_bytes: BinaryIO | None = None,
) -> Discovery:
    """Expand the inputs into videos (sorted within each folder, in input order otherwise).

    A missing path, or a folder without videos, is a failure with its one-line error so the
    caller can go on with the others. The same file named twice counts once; two different
    files with the same output name (``a.mp4`` and ``a.mkv`` side by side) make the second
    a failure naming the first. With ``spool_dir``, URLs and ``-`` are copied there
    (:func:`spool`) and named after the URL's last segment, or ``stdin``; without it
    they are failures. ``spool_dir`` may be a function that makes the folder, called at the
    first URL or ``-`` only (a run over files then makes no temporary folder at all).
    """
    raw: list[str | os.PathLike[str]] = list(inputs)
    if from_list is not None:
        raw += read_list(from_list, stdin)
    found: list[tuple[Path, Path | None, str | None]] = []  # (video, the folder that counts as its input, label)
    failures: list[tuple[str, ViolenceDetectError]] = []
    for item in raw:
        if is_url(item) or (item == STDIN and item in inputs):
            label = str(item)
            if spool_dir is None:
                failures.append((label, InputError(f"{label}: URLs and stdin are read by detect only")))
                continue
            try:
                folder = spool_dir() if callable(spool_dir) else spool_dir
                found.append((spool(label, folder, stdin=stdin_bytes), None, label))
            except InputError as exc:
                failures.append((label, exc))
            continue
        path = Path(item)
        if path.is_dir():
            videos = _videos_in(path, recursive)
            if not videos:
                exts = " ".join(sorted(VIDEO_EXTENSIONS))
                where = "under" if recursive else "in"
                failures.append(
                    (str(path), InputError(f"{path}: no video files {where} this folder (looked for {exts})"))
                )
            found += [(v, path, None) for v in videos]
        elif path.exists():
            found.append((path, path.parent, None))
        else:
            failures.append((str(path), InputError(f"{path}: no such file or folder")))
    if not found:
        return Discovery([], failures, None)
    bases = [os.path.abspath(base) for _, base, _ in found if base is not None]
    root = Path(os.path.commonpath(bases)) if bases else None
    videos: list[VideoInput] = []
    seen: dict[str, Path] = {}
    taken: dict[str, Path | str] = {}
    for video, base, label in found:
        absolute = os.path.abspath(video)
        if absolute in seen:
            continue
        seen[absolute] = video
        if label is not None:  # a spooled copy: named after its file name alone
            entry = VideoInput(video, PurePosixPath(video.name), label)
        else:
            entry = VideoInput(video, PurePosixPath(Path(os.path.relpath(absolute, root)).as_posix()))
        if entry.name in taken:
            failures.append(
                (
                    entry.label or str(video),
                    InputError(
                        f"{entry.label or video}: same output name {entry.name!r} as {taken[entry.name]}",
                        hint="rename one of them (only the extensions differ)",
                    ),
                )
            )
            continue
        taken[entry.name] = entry.label or video
        videos.append(entry)
    return Discovery(videos, failures, root)


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> (I, N) with 0 <= I < N; a :class:`UsageError` otherwise."""
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise UsageError(f"shard {text}: expected I/N, e.g. 0/4", params=("shard",)) from None
    if not (n >= 1 and 0 <= i < n):
        raise UsageError(f"shard {text}: expected I/N with 0 <= I < N", params=("shard",))
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
    "STDIN_NAME",
    "VIDEO_EXTENSIONS",
    "Discovery",
    "VideoInput",
    "discover",
    "is_url",
    "spool",
    "parse_shard",
    "read_list",
    "select_shard",
    "shard_of",
]

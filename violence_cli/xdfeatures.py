"""Feature files in the XD-Violence layout: discover, list, load and check them.

One video = ``NAME__0.npy`` .. ``NAME__{C-1}.npy`` (I3D RGB features of each crop, (T, 1024)
float32; crop 0 is the centre) plus ``NAME__vggish.npy`` (VGGish embeddings, (T, 128)).
They come either as a folder, or as the official list files: an RGB list with one line per
crop file (the crops of a video on consecutive lines) and an audio list with one line per
video, in the same order. Names ending in ``_label_A`` are the normal (non-violent) videos.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .atomic import save_npy
from .errors import InputError

if TYPE_CHECKING:
    from .features.extract import VideoFeatures

MAX_CROPS = 10
NORMAL_TAG = "_label_A"  # XD-Violence names normal videos ..._label_A
AUDIO_SUFFIX = "__vggish.npy"
_FILE_RE = re.compile(r"^(?P<name>.+)__(?P<kind>\d+|vggish)\.npy$")


@dataclass
class VideoEntry:
    name: str
    crop_paths: list[Path]  # crop 0 .. C-1
    audio_path: Path


def is_normal(name: str) -> bool:
    """True for the videos XD-Violence labels normal (``_label_A`` in the name)."""
    return NORMAL_TAG in name


def _split(path: Path) -> tuple[str, str] | None:
    """``NAME__3.npy`` -> (NAME, "3"); ``NAME__vggish.npy`` -> (NAME, "vggish"); else None."""
    match = _FILE_RE.match(path.name)
    return (match["name"], match["kind"]) if match else None


def _check_crop_indices(name: str, indices: list[int], where: str) -> None:
    if indices != list(range(len(indices))):
        found = ", ".join(f"__{i}" for i in indices)
        raise InputError(f"{where}: video {name!r} has crops {found}; expected __0 .. __{len(indices) - 1} in order")
    if len(indices) > MAX_CROPS:
        raise InputError(f"{where}: video {name!r} has {len(indices)} crops; at most {MAX_CROPS} are supported")


def discover_folder(folder: str | Path | Sequence[str | Path]) -> list[VideoEntry]:
    """All videos in ``folder`` (``NAME__<crop>.npy`` + ``NAME__vggish.npy``), sorted by name.

    ``folder`` may be several folders whose files together make the videos, as XD-Violence
    is distributed (``RGBTest/`` holds the crop files, ``vggish-features/Test/`` the audio
    files). Files that do not follow the pattern are ignored. A video missing its audio
    file or its crop files, a gap in its crop numbers, or the same file name in two of the
    folders is an :class:`InputError`.
    """
    folders = [Path(folder)] if isinstance(folder, (str, Path)) else [Path(f) for f in folder]
    where = " + ".join(str(f) for f in folders)
    crops: dict[str, dict[int, Path]] = {}
    audio: dict[str, Path] = {}
    for one in folders:
        if not one.is_dir():
            raise InputError(f"{one}: no such folder")
        for path in one.iterdir():
            parts = _split(path)
            if parts is None or not path.is_file():
                continue
            name, kind = parts
            slot = audio if kind == "vggish" else crops.setdefault(name, {})
            key = name if kind == "vggish" else int(kind)
            if key in slot and slot[key] != path:
                raise InputError(f"{path.name}: in both {slot[key].parent} and {one}; expected each file once")
            slot[key] = path
    if not crops and not audio:
        raise InputError(f"{where}: no features found (expected NAME__0.npy .. and NAME__vggish.npy)")
    entries = []
    for name in sorted(set(crops) | set(audio)):
        if name not in audio:
            raise InputError(f"{where}: video {name!r} has crop files but no {name}{AUDIO_SUFFIX}")
        if name not in crops:
            raise InputError(f"{where}: video {name!r} has {name}{AUDIO_SUFFIX} but no crop files ({name}__0.npy ..)")
        indices = sorted(crops[name])
        _check_crop_indices(name, indices, where)
        entries.append(VideoEntry(name, [crops[name][i] for i in indices], audio[name]))
    return entries


def read_text_input(path: Path, what: str) -> str:
    """The text of a small input file (a list, annotations); one-line InputError otherwise."""
    try:
        return path.read_text()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file (the {what} file)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the {what} ({exc})") from None


def _read_lines(list_file: Path) -> list[tuple[int, Path]]:
    """Non-blank lines as (line number, path); relative paths are tried from the current
    folder first (as the published scripts do), then from the list file's folder."""
    text = read_text_input(list_file, "list")
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        path = Path(line)
        if not path.is_absolute() and not path.exists() and (list_file.parent / path).exists():
            path = list_file.parent / path
        lines.append((number, path))
    if not lines:
        raise InputError(f"{list_file}: the list is empty")
    return lines


def read_lists(rgb_list: str | Path, audio_list: str | Path) -> list[VideoEntry]:
    """The videos of the official XD-Violence list files, in list order.

    ``rgb_list``: one crop file per line, the crops of a video on consecutive lines in crop
    order (``NAME__0.npy``, ``NAME__1.npy``, ..). ``audio_list``: one ``NAME__vggish.npy`` per
    video, in the same order. Lines that do not group into videos, lists that do not pair
    up, and missing files are :class:`InputError` naming the list and line.
    """
    rgb_list, audio_list = Path(rgb_list), Path(audio_list)
    groups: list[tuple[str, list[int], list[Path], int]] = []
    seen: set[str] = set()
    for number, path in _read_lines(rgb_list):
        parts = _split(path)
        if parts is None or parts[1] == "vggish":
            raise InputError(f"{rgb_list}:{number}: {path.name!r} is not a crop file named NAME__<crop>.npy")
        name, kind = parts
        if groups and groups[-1][0] == name:
            groups[-1][1].append(int(kind))
            groups[-1][2].append(path)
            continue
        if name in seen:
            raise InputError(
                f"{rgb_list}:{number}: the crops of video {name!r} are not on consecutive lines",
                hint="list the crops of each video together: NAME__0.npy, NAME__1.npy, ...",
            )
        seen.add(name)
        groups.append((name, [int(kind)], [path], number))
    audio_lines = _read_lines(audio_list)
    if len(audio_lines) != len(groups):
        raise InputError(
            f"{audio_list}: {len(audio_lines)} audio files for {len(groups)} videos in {rgb_list}",
            hint="the audio list needs one NAME__vggish.npy per video, in the order of the RGB list",
        )
    entries = []
    for (name, indices, paths, first), (number, audio_path) in zip(groups, audio_lines):
        _check_crop_indices(name, indices, f"{rgb_list}:{first}")
        parts = _split(audio_path)
        if parts is None or parts[1] != "vggish":
            raise InputError(f"{audio_list}:{number}: {audio_path.name!r} is not named NAME{AUDIO_SUFFIX}")
        if parts[0] != name:
            raise InputError(
                f"{audio_list}:{number}: audio of {parts[0]!r} where the RGB list has video {name!r}",
                hint="both lists must list the same videos in the same order",
            )
        for path in (*paths, audio_path):
            if not path.is_file():
                raise InputError(f"{path}: no such feature file (video {name!r})")
        entries.append(VideoEntry(name, paths, audio_path))
    return entries


def _load_matrix(path: Path, dim: int | None) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(f"{path}: no such feature file") from None
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"{path}: not a readable .npy feature file ({exc})") from None
    if array.ndim != 2 or (dim is not None and array.shape[1] != dim) or array.shape[0] == 0:
        want = f"(T, {dim})" if dim is not None else "(T, D)"
        raise InputError(f"{path}: features of shape {array.shape}; expected {want} with T >= 1")
    if not np.issubdtype(array.dtype, np.floating) and not np.issubdtype(array.dtype, np.integer):
        raise InputError(f"{path}: features of dtype {array.dtype}; expected floats")
    array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        raise InputError(f"{path}: features contain NaN or infinite values")
    return array


def load_entry(
    entry: VideoEntry,
    on_warning: Callable[[str], None] | None = None,
    *,
    visual_dim: int | None = 1024,
    audio_dim: int | None = 128,
) -> tuple[np.ndarray, np.ndarray]:
    """Load one video: -> (rgb (C, T, visual_dim), audio (T, audio_dim)), float32.

    A length difference of one snippet between audio and video is trimmed (with a
    warning), as the XD-Violence tooling did; more is an :class:`InputError` naming the
    video. NaN/inf, a wrong shape, or crops of different lengths are errors too.
    ``None`` for a dim accepts any width.
    """
    crops = [_load_matrix(path, visual_dim) for path in entry.crop_paths]
    lengths = {c.shape[0] for c in crops}
    widths = {c.shape[1] for c in crops}
    if len(lengths) > 1 or len(widths) > 1:
        shapes = ", ".join(str(c.shape) for c in crops)
        raise InputError(f"video {entry.name!r}: its crop files differ in shape ({shapes})")
    audio = _load_matrix(entry.audio_path, audio_dim)
    t_v, t_a = crops[0].shape[0], audio.shape[0]
    if abs(t_v - t_a) > 1:
        raise InputError(
            f"video {entry.name!r}: {t_v} visual snippets but {t_a} audio snippets "
            f"({entry.audio_path.name}); they must match (a difference of 1 is trimmed)"
        )
    if t_v != t_a:
        t = min(t_v, t_a)
        if on_warning is not None:
            on_warning(f"video {entry.name!r}: {t_v} visual vs {t_a} audio snippets; trimmed to {t}")
        crops = [c[:t] for c in crops]
        audio = audio[:t]
    return np.stack(crops), np.ascontiguousarray(audio)


# --------------------------------------------------------------------------- writing


def xd_paths(out_dir: str | os.PathLike[str], name: str, crops: int) -> list[Path]:
    """NAME__0.npy .. NAME__{C-1}.npy, then NAME__vggish.npy."""
    out = Path(out_dir)
    return [out / f"{name}__{c}.npy" for c in range(crops)] + [out / f"{name}{AUDIO_SUFFIX}"]


def write_xd_features(features: VideoFeatures, out_dir: str | os.PathLike[str], name: str) -> list[Path]:
    """Write one video's features in the layout: a (T, 1024) float32 file per crop, a (T, 128) audio file.

    Each file is written atomically (:mod:`violence_cli.atomic`), the audio file last.
    Returns the paths written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = xd_paths(out, name, features.crops)
    arrays = [features.rgb[:, c] for c in range(features.crops)] + [features.audio]
    for path, array in zip(paths, arrays):
        save_npy(path, np.ascontiguousarray(array, dtype=np.float32))
    return paths


def npy_rows(path: Path, width: int) -> int | None:
    """Rows of a whole (rows, width) float32 ``.npy`` file, read from its header and size;
    None when the file is missing, empty, damaged, cut short or of another shape."""
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(fh)
            offset = fh.tell()
        size = path.stat().st_size
    except (OSError, ValueError, EOFError, SyntaxError):
        return None
    if dtype != np.float32 or len(shape) != 2 or shape[1] != width or fortran:
        return None
    return shape[0] if size == offset + shape[0] * width * 4 else None


__all__ = [
    "MAX_CROPS",
    "VideoEntry",
    "discover_folder",
    "is_normal",
    "load_entry",
    "npy_rows",
    "read_lists",
    "write_xd_features",
    "xd_paths",
]

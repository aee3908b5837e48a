"""Finding the file to load for a registry name (the order is the package docstring's),
downloading it when allowed, and hashing it once at the edge."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import WeightsError
from .download import ProgressCallback, download_weights
from .hashing import file_sha256, integrity_problem
from .manifest import WEIGHTS_ENV, WeightsEntry, cache_dir, get_entry
from .sidecars import trained_metadata


@dataclass(frozen=True)
class LocatedWeights:
    """Where a registry file sits on disk, without downloading or verifying it."""

    entry: WeightsEntry
    path: Path | None  # None: not on disk
    origin: str | None  # "weights_dir", "env" ($VIOLENCE_DETECT_WEIGHTS) or "cache"
    searched: tuple[Path, ...] = ()  # the folders looked in, in order


@dataclass(frozen=True)
class ResolvedWeights:
    """A weights file found (or downloaded) once, at the edge, and hashed: what every layer below uses."""

    name: str  # registry name
    path: Path
    sha256: str
    verified: bool  # matches the registry's integrity data
    problem: str | None  # why not, when not verified
    trained: dict[str, Any] | None = None  # the sidecar of a checkpoint our `train` wrote


def describe_weights(path: str | os.PathLike[str], name: str) -> dict[str, Any]:
    """name, path, sha256, verified (matches the manifest), problem (None when verified) and
    trained (the sidecar of a checkpoint our own ``train`` wrote, else None)."""
    problem = integrity_problem(path, get_entry(name))
    return {
        "name": name,
        "path": str(path),
        "sha256": file_sha256(path),
        "verified": problem is None,
        "problem": problem,
        "trained": None if problem is None else trained_metadata(path),
    }


def _search_folders(weights_dir: str | os.PathLike[str] | None) -> list[tuple[str, Path]]:
    folders: list[tuple[str, Path]] = []
    if weights_dir is not None:
        folders.append(("weights_dir", _existing_folder(Path(weights_dir).expanduser(), "weights folder")))
    env = os.environ.get(WEIGHTS_ENV, "").strip()
    if env:
        folders.append(("env", _existing_folder(Path(env).expanduser(), f"${WEIGHTS_ENV}")))
    folders.append(("cache", cache_dir()))
    return folders


def _existing_folder(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise WeightsError(f"{path}: {what} is not a folder")
    return path


def locate_weights(name: str, *, weights_dir: str | os.PathLike[str] | None = None) -> LocatedWeights:
    """The first folder (weights_dir, $VIOLENCE_DETECT_WEIGHTS, cache) holding the file."""
    entry = get_entry(name)
    folders = _search_folders(weights_dir)
    searched = tuple(folder for _, folder in folders)
    for origin, folder in folders:
        candidate = folder / entry.filename
        if candidate.is_file():
            return LocatedWeights(entry, candidate, origin, searched)
    return LocatedWeights(entry, None, None, searched)


def resolve_weights(
    name: str,
    path: str | os.PathLike[str] | None = None,
    *,
    weights_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    progress: ProgressCallback | None = None,
) -> Path:
    """The file to load for registry entry ``name`` (see the module docstring for the order).

    ``progress(bytes_done, total_or_None)`` is called while downloading.
    """
    entry = get_entry(name)
    if path is not None:
        explicit = Path(path).expanduser()
        if not explicit.is_file():
            raise WeightsError(f"{explicit}: {name} weights file not found")
        return explicit
    folders = _search_folders(weights_dir)
    for origin, folder in folders:
        candidate = folder / entry.filename
        if not candidate.is_file():
            continue
        if origin != "cache":
            return candidate  # a folder the user named: their files, used as they are
        problem = integrity_problem(candidate, entry)
        if problem is None:
            return candidate
        if not download:
            raise WeightsError(
                f"{candidate}: cached {name} weights fail verification ({problem})",
                hint=f"run `violence-detect weights download {name}` to fetch them again",
            )
        return download_weights(name, force=True, progress=progress).path
    if not download:
        raise _missing_error(entry, [folder for _, folder in folders])
    return download_weights(name, progress=progress).path


def resolve_weight_files(
    explicit: Mapping[str, str | os.PathLike[str] | None],
    *,
    weights_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    progress: ProgressCallback | None = None,
) -> dict[str, ResolvedWeights]:
    """Resolve and hash every file a command needs, once: registry name -> :class:`ResolvedWeights`.

    ``explicit`` maps each registry name to the user's file, or None for the registry's.
    """
    out: dict[str, ResolvedWeights] = {}
    for name, path in explicit.items():
        found = resolve_weights(name, path, weights_dir=weights_dir, download=download, progress=progress)
        described = describe_weights(found, name)
        out[name] = ResolvedWeights(
            name, found, described["sha256"], described["verified"], described["problem"], described["trained"]
        )
    return out


def _missing_error(entry: WeightsEntry, searched: list[Path]) -> WeightsError:
    where = ", ".join(str(folder) for folder in searched)
    return WeightsError(
        f"{entry.name} weights not found: {entry.filename} is not in {where} (download=False); "
        f"fetch it with `violence-detect weights download {entry.name}` (from "
        f"{entry.download_url()}) or put it in a folder named by ${WEIGHTS_ENV}",
        hint=f"offline: download on another machine with `violence-detect weights download --weights-dir DIR`, "
        f"copy DIR here and set {WEIGHTS_ENV}=DIR",
    )

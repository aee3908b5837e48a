"""``weights verify``: every registry file present checked against the manifest, and its
full sha256 remembered so a later change is reported."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..atomic import write_text as atomic_write_text
from .hashing import file_sha256, integrity_problem
from .manifest import cache_dir, get_entry, weight_names
from .resolve import _search_folders

VERIFIED_FILE = "verified.json"  # in the cache: full sha256 of every file `weights verify` passed
_VERIFIED_ABOUT = "sha256 of weights files when `violence-detect weights verify` last passed them; a change is reported"


@dataclass(frozen=True)
class WeightsCheck:
    """The outcome of verifying one file on disk against the manifest."""

    name: str
    path: Path
    origin: str
    sha256: str
    verified: bool
    problem: str | None  # what does not match, when not verified


def verify_weights(
    names: list[str] | None = None,
    *,
    weights_dir: str | os.PathLike[str] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> list[WeightsCheck]:
    """Check every registry file present in weights_dir, $VIOLENCE_DETECT_WEIGHTS and the cache.

    Beside the manifest (whose check is weak for some files: an 8-hex-digit sha256 prefix
    for VGGish), each file's full sha256 is recorded in :data:`VERIFIED_FILE` in the cache
    the first time it passes; a later verify reports a file whose content has changed
    since, even where the manifest's check would still pass. Where that record cannot be
    written (a read-only cache), the checks still stand and ``on_warning`` is told why.
    """
    checks: list[WeightsCheck] = []
    folders = _search_folders(weights_dir)
    record_path = cache_dir() / VERIFIED_FILE
    record = _read_verified(record_path)
    changed = False
    for name in names or weight_names():
        entry = get_entry(name)
        for origin, folder in folders:
            candidate = folder / entry.filename
            if candidate.is_file():
                problem = integrity_problem(candidate, entry)
                sha = file_sha256(candidate)
                key = str(candidate.resolve())
                known = record.get(key)
                if problem is None and known is not None and known != sha:
                    problem = f"changed since it was last verified (sha256 was {known}, now {sha})"
                elif problem is None and known is None:
                    record[key] = sha
                    changed = True
                checks.append(WeightsCheck(name, candidate, origin, sha, problem is None, problem))
    if changed and (problem := _write_verified(record_path, record)) is not None and on_warning is not None:
        on_warning(problem)
    return checks


def _read_verified(path: Path) -> dict[str, str]:
    """The recorded sha256 of files verified before (path -> hex digest); {} if none or unreadable."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        files = raw["files"]
        return {str(k): str(v) for k, v in files.items() if re.fullmatch(r"[0-9a-f]{64}", str(v))}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _write_verified(path: Path, record: dict[str, str]) -> str | None:
    """Write the record; what went wrong (one line naming ``path``), or None."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"schema_version": 1, "about": _VERIFIED_ABOUT, "files": record}, indent=2, sort_keys=True)
        atomic_write_text(path, text + "\n")
    except OSError as exc:
        return (
            f"{path}: the verified files' sha256 could not be recorded ({exc.strerror or exc}); "
            "a later verify cannot tell whether they changed"
        )
    return None

"""The registry of pretrained files: the manifest (weights/manifest.json, packaged in the
wheel), its entries, and where files live (the cache, the folders users name)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import WeightsError

WEIGHTS_ENV = "VIOLENCE_DETECT_WEIGHTS"  # a folder holding the files under their registry file names
WEIGHTS_URL_ENV = "VIOLENCE_DETECT_WEIGHTS_URL"  # a folder URL (https://, http://, file://) mirroring them
CACHE_SUBDIR = "violence-detect"
_REPO_MANIFEST = Path(__file__).resolve().parents[2] / "weights" / "manifest.json"
_PACKAGED_MANIFEST = "weights_manifest.json"  # the wheel's copy of weights/manifest.json


@dataclass(frozen=True)
class WeightsEntry:
    """One pretrained file: where it lives, how to check it, what it expects.

    Integrity fields that are not ``None`` must all match: ``sha256`` is the full digest,
    ``sha256_prefix`` its leading hex digits (all torchvggish publishes, in the file name),
    ``git_blob_sha1`` what ``git hash-object FILE`` prints (all GitHub trees give).
    """

    name: str
    filename: str
    url: str
    size: int | None  # bytes, checked when given
    sha256: str | None
    sha256_prefix: str | None
    git_blob_sha1: str | None
    source: str
    license: str
    metadata: dict[str, Any] = field(default_factory=dict, compare=False)
    approx_size: int | None = None  # bytes, an estimate shown where no exact size is published

    @property
    def shown_size(self) -> tuple[int | None, bool]:
        """(bytes, exact): the manifest's size, else its estimate."""
        return (self.size, True) if self.size is not None else (self.approx_size, False)

    def download_url(self) -> str:
        """The manifest's address, or the same file name under ``$VIOLENCE_DETECT_WEIGHTS_URL``."""
        mirror = os.environ.get(WEIGHTS_URL_ENV, "").strip()
        return f"{mirror.rstrip('/')}/{self.filename}" if mirror else self.url


def manifest_text() -> tuple[str, str]:
    """(text, where) of the manifest: the wheel's packaged copy, else the checkout's file."""
    packaged = resources.files("violence_cli").joinpath(_PACKAGED_MANIFEST)
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8"), str(packaged)
    try:
        return _REPO_MANIFEST.read_text(encoding="utf-8"), str(_REPO_MANIFEST)
    except OSError as exc:
        raise WeightsError(f"{_REPO_MANIFEST}: weights manifest not readable ({exc.strerror})") from None


@lru_cache(maxsize=1)
def _registry() -> dict[str, WeightsEntry]:
    text, where = manifest_text()
    try:
        raw = json.loads(text)["weights"]
        entries = {name: _entry_from_json(name, item) for name, item in raw.items()}
    except (ValueError, KeyError, TypeError) as exc:
        raise WeightsError(f"{where}: malformed weights manifest ({type(exc).__name__}: {exc})") from None
    return entries


def _entry_from_json(name: str, item: Mapping[str, Any]) -> WeightsEntry:
    entry = WeightsEntry(
        name=name,
        filename=str(item["filename"]),
        url=str(item["url"]),
        size=None if item.get("size") is None else int(item["size"]),
        sha256=_lower(item.get("sha256")),
        sha256_prefix=_lower(item.get("sha256_prefix")),
        git_blob_sha1=_lower(item.get("git_blob_sha1")),
        source=str(item["source"]),
        license=str(item["license"]),
        metadata=dict(item.get("metadata") or {}),
        approx_size=None if item.get("approx_size") is None else int(item["approx_size"]),
    )
    if entry.size is None and entry.approx_size is None:
        raise ValueError(f"entry {name!r} has neither size nor approx_size")
    if not (entry.sha256 or entry.sha256_prefix or entry.git_blob_sha1):
        raise ValueError(f"entry {name!r} has no integrity data")
    return entry


def _lower(value: Any) -> str | None:
    return None if value is None else str(value).lower()


def available_weights() -> list[WeightsEntry]:
    """Every file the registry knows, in manifest order."""
    return list(_registry().values())


def weight_names() -> list[str]:
    return list(_registry())


def get_entry(name: str) -> WeightsEntry:
    registry = _registry()
    if name not in registry:
        raise WeightsError(f"unknown weights {name!r} (known: {', '.join(registry)})")
    return registry[name]


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/violence-detect``, else ``~/.cache/violence-detect``."""
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(base) if base else Path.home() / ".cache") / CACHE_SUBDIR

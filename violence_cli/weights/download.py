"""Downloading a registry file: streamed to a temporary name, size-capped, verified, renamed."""

from __future__ import annotations

import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._version import __version__
from ..atomic import atomic_path
from ..errors import WeightsError
from .hashing import CHUNK_BYTES, integrity_problem
from .manifest import WEIGHTS_ENV, WEIGHTS_URL_ENV, cache_dir, get_entry

TIMEOUT_S = 60.0  # seconds a download may wait for data before it fails
DOWNLOAD_CAP_BYTES = 2 * 2**30  # bytes: a download of unknown size stops beyond this
ProgressCallback = Callable[[int, "int | None"], None]  # (bytes done, total bytes or None)


@dataclass(frozen=True)
class DownloadResult:
    name: str
    path: Path
    downloaded: bool  # False: a verified copy was already there


def download_weights(
    name: str,
    dest_dir: str | os.PathLike[str] | None = None,
    *,
    force: bool = False,
    progress: ProgressCallback | None = None,
) -> DownloadResult:
    """Fetch ``name`` into ``dest_dir`` (default: the cache), verified, written atomically.

    A verified copy already there (or, with the default folder, in ``$VIOLENCE_DETECT_WEIGHTS``)
    is kept unless ``force``. The file streams to a temporary
    name in the same folder and is renamed only after it matches the manifest; on any
    failure the temporary file is removed.
    """
    entry = get_entry(name)
    folder = Path(dest_dir).expanduser() if dest_dir is not None else cache_dir()
    target = folder / entry.filename
    if not force:
        env = os.environ.get(WEIGHTS_ENV, "").strip()
        shared = Path(env).expanduser() / entry.filename if env and dest_dir is None else None
        for present in (target, shared):
            if present is not None and present.is_file() and integrity_problem(present, entry) is None:
                return DownloadResult(name, present, downloaded=False)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WeightsError(f"{folder}: cannot create the weights folder ({exc.strerror})") from None
    url = entry.download_url()
    try:
        with atomic_path(target) as tmp:  # renamed over target only once verified
            with open(tmp, "wb") as out:
                _fetch(url, out, entry.size, progress, label=f"{entry.name} weights ({entry.filename})")
            problem = integrity_problem(tmp, entry)
            if problem is not None:
                raise WeightsError(
                    f"{url}: downloaded {entry.filename} fails verification ({problem}); it was deleted",
                    hint="try again; if it keeps failing, the file at that address has changed",
                )
    except OSError as exc:
        raise WeightsError(f"{folder}: cannot write the weights folder ({exc.strerror or exc})") from None
    return DownloadResult(name, target, downloaded=True)


def _fetch(
    url: str, out: Any, expected_size: int | None, progress: ProgressCallback | None, *, label: str = "download"
) -> None:
    """Stream ``url`` into ``out``; ``label`` names the file in errors (which weights, not just the URL)."""
    request = urllib.request.Request(url, headers={"User-Agent": f"violence-detect/{__version__}"})
    hint = (
        f"download it elsewhere with `violence-detect weights download --weights-dir DIR` and set "
        f"{WEIGHTS_ENV}=DIR, or set {WEIGHTS_URL_ENV} to a folder URL that mirrors the files"
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else expected_size
            cap = expected_size if expected_size is not None else DOWNLOAD_CAP_BYTES
            if total is not None and total > cap:
                raise WeightsError(_too_big(label, url, f"announces {total:,} bytes", cap, expected_size))
            done = 0
            if progress is not None:
                progress(0, total)
            while chunk := response.read(CHUNK_BYTES):
                done += len(chunk)
                if done > cap:  # stop at once: an endless answer must not fill the disk
                    raise WeightsError(_too_big(label, url, f"sent more than {cap:,} bytes", cap, expected_size))
                out.write(chunk)
                if progress is not None:
                    progress(done, total)
    except urllib.error.HTTPError as exc:
        raise WeightsError(f"{label}: download failed from {url} (HTTP {exc.code} {exc.reason})", hint=hint) from None
    except urllib.error.URLError as exc:
        raise WeightsError(f"{label}: download failed from {url} ({exc.reason})", hint=hint) from None
    except (OSError, http.client.HTTPException) as exc:
        raise WeightsError(f"{label}: download failed from {url} ({type(exc).__name__}: {exc})", hint=hint) from None


def _too_big(label: str, url: str, what: str, cap: int, expected_size: int | None) -> str:
    reason = (
        f"the manifest says {expected_size:,}"
        if expected_size is not None
        else f"the cap for a file of unknown size is {cap:,}"
    )
    return f"{label}: download from {url} stopped: the server {what} ({reason}); nothing was kept"

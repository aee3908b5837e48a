"""Hashing a weights file (size, sha256, git blob SHA-1 in one read) and checking it
against its manifest entry."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from .manifest import WeightsEntry

CHUNK_BYTES = 1 << 20  # read size when hashing and downloading
SHORT_HASH = 12  # hex digits of a hash shown on the terminal (JSON keeps the full digest)


@dataclass(frozen=True)
class FileDigest:
    size: int  # bytes
    sha256: str
    git_blob_sha1: str


_digest_memo: dict[tuple[str, int, int, int], FileDigest] = {}


def file_digest(path: str | os.PathLike[str]) -> FileDigest:
    """Size, sha256 and git blob SHA-1 in one read (remembered while the file is unchanged)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    if key in _digest_memo:
        return _digest_memo[key]
    sha256 = hashlib.sha256()
    # git's object header, then the content (SHA-1 is what git publishes; the flag lets FIPS builds run it)
    blob = hashlib.sha1(b"blob %d\0" % st.st_size, usedforsecurity=False)
    size = 0
    with open(p, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            sha256.update(chunk)
            blob.update(chunk)
            size += len(chunk)
    if size != st.st_size:  # changed while being read: hash what a later reader will see
        return file_digest(p)
    digest = FileDigest(size=size, sha256=sha256.hexdigest(), git_blob_sha1=blob.hexdigest())
    _digest_memo[key] = digest
    return digest


def file_sha256(path: str | os.PathLike[str]) -> str:
    return file_digest(path).sha256


def short_hash(digest: str | None) -> str:
    """The first :data:`SHORT_HASH` hex digits (what the terminal shows; JSON has all of them)."""
    return "" if not digest else digest[:SHORT_HASH]


def integrity_problem(path: str | os.PathLike[str], entry: WeightsEntry) -> str | None:
    """What about ``path`` does not match the manifest's integrity data; None when all match.

    Hashes in the message are short (:func:`short_hash`); :func:`file_digest` has them in full.
    """
    d = file_digest(path)
    if entry.size is not None and d.size != entry.size:
        return f"size {d.size} bytes, expected {entry.size}"
    if entry.sha256 and d.sha256 != entry.sha256:
        return f"sha256 {short_hash(d.sha256)}, expected {short_hash(entry.sha256)}"
    if entry.sha256_prefix and not d.sha256.startswith(entry.sha256_prefix):
        return f"sha256 {short_hash(d.sha256)}, expected one starting with {entry.sha256_prefix}"
    if entry.git_blob_sha1 and d.git_blob_sha1 != entry.git_blob_sha1:
        return f"git blob SHA-1 {short_hash(d.git_blob_sha1)}, expected {short_hash(entry.git_blob_sha1)}"
    return None

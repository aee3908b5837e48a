"""Checkpoints trained here: the ``NAME.pt.json`` sidecar ``train`` writes beside each
checkpoint, bound to it by its sha256, by which it is named as the user's own model."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._version import __version__
from .hashing import file_sha256

TRAINED_SUFFIX = ".json"  # sidecar of a checkpoint written by `train`: best.pt -> best.pt.json
TRAINED_KIND = "violence-detect trained checkpoint"


def trained_sidecar(checkpoint: str | os.PathLike[str]) -> Path:
    """Where the metadata of a checkpoint written by ``train`` lives: ``best.pt`` -> ``best.pt.json``."""
    p = Path(checkpoint)
    return p.with_name(p.name + TRAINED_SUFFIX)


def trained_record(checkpoint: str | os.PathLike[str], **facts: Any) -> dict[str, Any]:
    """The sidecar document for ``checkpoint``: what made it (``facts``: data, epochs, AP...)
    bound to the file by its sha256, so the sidecar never vouches for another file."""
    return {"kind": TRAINED_KIND, "version": __version__, "file": Path(checkpoint).name,
            "sha256": file_sha256(checkpoint), **facts}  # fmt: skip


def trained_metadata(checkpoint: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The sidecar of a checkpoint written by our ``train`` when it describes this very file
    (same sha256); None otherwise (no sidecar, another file, unreadable)."""
    sidecar = trained_sidecar(checkpoint)
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("kind") != TRAINED_KIND:
        return None
    if data.get("sha256") != file_sha256(checkpoint):
        return None
    return data


def describe_trained(meta: Mapping[str, Any]) -> str:
    """One line on a checkpoint trained here: data, epoch, AP."""
    parts = []
    sources = [str(s) for s in meta.get("data") or [] if s]
    if sources:
        parts.append("on " + ", ".join(sources[:2]) + (" ..." if len(sources) > 2 else ""))
    if meta.get("train_videos") is not None:
        parts.append(f"{meta['train_videos']} videos")
    if meta.get("epoch") is not None:
        parts.append(f"epoch {meta['epoch']} of {meta.get('epochs', '?')}")
    if meta.get("ap") is not None:
        parts.append(f"validation AP {float(meta['ap']):.4f}")
    return f"trained with violence-detect {meta.get('version', '?')}" + (" " + ", ".join(parts) if parts else "")

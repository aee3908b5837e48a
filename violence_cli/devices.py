"""Where the networks run: one parser for every command's ``--device``."""

from __future__ import annotations

import re

import torch

from .errors import UsageError
from .messages import count


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N`` -> a device.

    Raises :class:`~violence_cli.errors.UsageError` for anything else, or for a CUDA
    device this machine does not have.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = (spec or "auto").strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", text)
    if match is None:
        raise UsageError(f"device {spec}: expected auto, cpu, cuda or cuda:N", params=("device",))
    if not torch.cuda.is_available():
        raise UsageError(f"device {spec!r} requested but CUDA is not available here", hint="use device='cpu'")
    index = int(match.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise UsageError(f"device {spec!r} requested but this machine has {count(torch.cuda.device_count(), 'CUDA device')}")
    return torch.device("cuda", index)

"""Loading a checkpoint safely: ``torch.load(weights_only=True)`` (numeric numpy arrays
admitted), archive size checked before inflating, every tensor real-valued and finite,
keys and shapes checked against what the network expects."""

from __future__ import annotations

import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import WeightsError
from ..messages import count

if TYPE_CHECKING:
    import torch

ARCHIVE_SLACK_BYTES = 16 * 2**20  # bytes a checkpoint archive may declare beyond its expected size


def load_state_dict(
    path: str | os.PathLike[str], map_location: Any = "cpu", *, expected_bytes: int | None = None
) -> dict[str, torch.Tensor]:
    """A checkpoint's tensors by name, loaded with ``weights_only=True`` (no code can run).

    Accepts a plain state dict, one wrapped under ``state_dict`` or ``model``, DataParallel's
    ``module.`` prefix (stripped) and numpy arrays (converted, as torchvggish's PCA file holds).
    Every tensor must be of a real floating type (integers only for batch norm's
    ``num_batches_tracked`` counters) and hold no NaN or infinity. A torch zip archive that
    declares more data than :func:`archive_limit` allows (``expected_bytes``: what the
    model's tensors take in float32) is refused before anything is inflated. Anything
    else is a :class:`WeightsError` naming the file (and the first bad key).
    """
    import torch

    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"{p}: weights file not found")
    check_archive_size(p, expected_bytes)
    try:
        with torch.serialization.safe_globals(_numpy_array_globals()), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols; we report failures ourselves
            obj = torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if not re.search(r"GLOBAL|allowlisted|Can only build", str(exc)):  # damaged, not dangerous
            raise WeightsError(f"{p}: not a readable PyTorch checkpoint ({_unpickler_reason(exc)})") from None
        raise WeightsError(
            f"{p}: refused to load: it holds more than tensors ({_unpickler_reason(exc)})",
            hint="only plain state dicts load (torch.load with weights_only=True); "
            "re-save it with torch.save(model.state_dict(), PATH)",
        ) from None
    except Exception as exc:  # noqa: BLE001  (torch.load raises many types on a damaged or foreign file)
        reason = f"{type(exc).__name__}: {_first_line(exc)}"
        raise WeightsError(f"{p}: not a readable PyTorch checkpoint ({reason})") from None
    state = _as_state_dict(obj, p)
    check_tensors(state, p)
    return state


def archive_limit(file_size: int, expected_bytes: int | None) -> int:
    """Most bytes a torch zip archive may declare: 4x the expected float32 size (float64 and
    extra keys fit) or, when unknown, twice the file (torch stores tensors uncompressed);
    plus 16 MiB of slack either way."""
    if expected_bytes is not None:
        return 4 * expected_bytes + ARCHIVE_SLACK_BYTES
    return 2 * file_size + ARCHIVE_SLACK_BYTES


def check_archive_size(path: Path, expected_bytes: int | None = None) -> None:
    """Refuse a zip checkpoint whose members declare more than :func:`archive_limit`,
    reading only its directory (nothing is inflated)."""
    if not zipfile.is_zipfile(path):
        return  # legacy torch format, plain pickle: torch.load reports what it is
    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise WeightsError(f"{path}: not a readable PyTorch checkpoint (damaged zip archive: {exc})") from None
    limit = archive_limit(path.stat().st_size, expected_bytes)
    if declared > limit:
        raise WeightsError(
            f"{path}: refused to load: the archive declares {declared:,} bytes of data, "
            f"far more than the {limit:,} expected (a file that inflates to fill memory)"
        )


def check_tensors(state: Mapping[str, torch.Tensor], path: str | os.PathLike[str]) -> None:
    """Raise a WeightsError naming ``path`` and the first key whose tensor is not a real
    floating type (integer counters ``*num_batches_tracked`` excepted) or holds NaN/inf."""
    import torch

    for key, tensor in state.items():
        if tensor.is_floating_point():
            flat = tensor.reshape(-1)
            # in blocks of 2**20 values: the test's temporary stays small even for VGGish's 288 MB layer
            if not all(bool(torch.isfinite(block).all()) for block in flat.split(2**20)):
                bad = "NaN" if any(bool(torch.isnan(block).any()) for block in flat.split(2**20)) else "infinite values"
                raise WeightsError(
                    f"{path}: refused to load: {key} holds {bad}",
                    hint="the file is damaged or was saved from a diverged training run",
                )
        elif not (key.endswith("num_batches_tracked") and not tensor.is_complex() and tensor.dtype != torch.bool):
            raise WeightsError(f"{path}: refused to load: {key} is {tensor.dtype}, not a real floating type")


def _numpy_array_globals() -> list[Any]:
    """The globals a pickled numeric numpy array needs, under numpy 1.x and 2.x names."""
    import numpy as np

    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray  # type: ignore[no-redef]
    numeric_dtypes = {type(np.dtype(code)) for code in "?bhilqBHILQefd"}  # numpy 2: one class each
    return [
        np.ndarray,
        np.dtype,
        *sorted(numeric_dtypes - {np.dtype}, key=lambda t: t.__name__),
        (multiarray._reconstruct, "numpy._core.multiarray._reconstruct"),
        (multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
        (multiarray.scalar, "numpy._core.multiarray.scalar"),
        (multiarray.scalar, "numpy.core.multiarray.scalar"),
    ]


_TORCH_BOILERPLATE = ("Weights only load failed", "Check the documentation", "Please file an issue", "(1)", "(2)")


def _unpickler_reason(exc: Exception) -> str:
    """The one informative line of torch's long weights_only refusal (it varies by case)."""
    for line in str(exc).splitlines():
        line = line.strip().removeprefix("WeightsUnpickler error:").strip()
        if line and not line.startswith(_TORCH_BOILERPLATE):
            return line.split(". Please use")[0][:200]
    return _first_line(exc)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else "no detail"


def _as_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    import numpy as np
    import torch

    if isinstance(obj, Mapping) and not _all_tensors(obj):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{path}: not a state dict (the file holds a {type(obj).__name__})")
    if not obj:
        raise WeightsError(f"{path}: empty state dict")
    state: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            value = torch.from_numpy(np.array(value))
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise WeightsError(
                f"{path}: not a state dict (entry {key!r} is a {type(value).__name__}, expected a tensor)"
            )
        state[key] = value
    if all(key.startswith("module.") for key in state):
        state = {key[len("module.") :]: value for key, value in state.items()}
    return state


def _all_tensors(obj: Mapping[Any, Any]) -> bool:
    import torch

    return all(isinstance(v, torch.Tensor) for v in obj.values())


def check_state_dict(
    sd: Mapping[str, torch.Tensor],
    expected: Mapping[str, tuple[int, ...]],
    path: str | os.PathLike[str],
) -> None:
    """Raise a WeightsError naming ``path`` unless ``sd`` has exactly the expected keys and shapes."""
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    wrong = [
        f"{k} {tuple(sd[k].shape)} instead of {tuple(expected[k])}"
        for k in expected
        if k in sd and tuple(sd[k].shape) != tuple(expected[k])
    ]
    problems = []
    if missing:
        problems.append(f"{count(len(missing), 'missing key')}: {_few(missing)}")
    if unexpected:
        problems.append(f"{count(len(unexpected), 'unexpected key')}: {_few(unexpected)}")
    if wrong:
        problems.append(f"{count(len(wrong), 'wrong shape')}: {_few(wrong)}")
    if problems:
        raise WeightsError(
            f"{path}: not the expected weights: {'; '.join(problems)}",
            hint="pass weights made for this network (see `violence-detect weights list`)",
        )


def _few(items: list[str], n: int = 3) -> str:
    shown = ", ".join(items[:n])
    return shown + (f", ... ({len(items) - n} more)" if len(items) > n else "")

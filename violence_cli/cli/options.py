"""Options several commands share, defined once so their names and help never drift apart."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..precision import PRECISIONS
from ..protocol import CROP_CHOICES, DEFAULT_CROPS
from ..writers import FORMATS

if TYPE_CHECKING:  # pragma: no cover
    import torch

PANEL_MODEL = "Model and weights"

# Choices built from the library's tables, never retyped here.
Crops = Enum("Crops", {f"c{n}": str(n) for n in CROP_CHOICES}, type=str)  # type: ignore[misc]
DEFAULT_CROPS_CHOICE = Crops(str(DEFAULT_CROPS))
ALL_FORMATS = "all"
OutputFormat = Enum(  # type: ignore[misc]
    "OutputFormat", {f.replace("-", "_"): f for f in (*FORMATS, ALL_FORMATS)}, type=str
)
FORMAT_METAVAR = "[" + "|".join(f.value for f in OutputFormat) + "]"

DeviceOpt = Annotated[
    str,
    typer.Option(help="auto, cpu, cuda or cuda:N (auto picks CUDA when available).", rich_help_panel=PANEL_MODEL),
]
I3dWeightsOpt = Annotated[
    Path | None,
    typer.Option(
        help="I3D RGB weights file (default: rgb_imagenet.pt from the registry).", rich_help_panel=PANEL_MODEL
    ),
]
VggishWeightsOpt = Annotated[
    Path | None,
    typer.Option(
        help="VGGish weights file (default: vggish-10086976.pth from the registry).", rich_help_panel=PANEL_MODEL
    ),
]
WeightsDirOpt = Annotated[
    Path | None,
    typer.Option(
        help="Folder holding the weights files (else $VIOLENCE_DETECT_WEIGHTS, then the cache).",
        rich_help_panel=PANEL_MODEL,
    ),
]
DownloadOpt = Annotated[
    bool,
    typer.Option(
        "--download/--no-download", help="Download missing weights (verified by checksum).", rich_help_panel=PANEL_MODEL
    ),
]
VideoStreamOpt = Annotated[
    int | None,
    typer.Option(help="Index of the video stream to use (default: the best one).", rich_help_panel=PANEL_MODEL),
]
AudioStreamOpt = Annotated[
    int | None,
    typer.Option(help="Index of the audio stream to use (default: the best one).", rich_help_panel=PANEL_MODEL),
]

# --precision: the choices come from the library's table; each command sets its own default
# (detect and watch: auto; extract: fp32, since features are a dataset and fidelity comes first).
Precision = Enum("Precision", [(name, name) for name in PRECISIONS], type=str)  # type: ignore[misc]
PrecisionOpt = Annotated[
    Precision,
    typer.Option(
        help=(
            "Number format of I3D and VGGish: auto = bf16 on CUDA and on CPUs with native bf16 "
            "(AVX512-BF16/AMX; 2-3x faster, scores within 0.01 of fp32), fp32 elsewhere."
        ),
        rich_help_panel=PANEL_MODEL,
    ),
]


def resolve_precision_option(precision: Precision | str, device: torch.device | str) -> str:
    """``--precision`` resolved for ``device`` (``fp32`` or ``bf16``), warning on stderr when
    bf16 was asked for on a CPU that would emulate it. Call once, where the command starts."""
    from .. import console
    from ..precision import precision_warning, resolve_precision

    resolved = resolve_precision(getattr(precision, "value", precision), device)
    warning = precision_warning(resolved, device)
    if warning:
        console.warn(warning)
    return resolved

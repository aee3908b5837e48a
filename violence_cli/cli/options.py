"""Options several commands share, defined once so their names and help never drift apart."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ..protocol import CROP_CHOICES, DEFAULT_CROPS
from ..writers import FORMATS

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

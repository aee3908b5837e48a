"""Options several commands share, defined once so their names and help never drift apart."""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import UsageError
from ..models import DEFAULT_MODEL, MODEL_NAMES
from ..precision import PRECISIONS
from ..protocol import CROP_CHOICES, DEFAULT_CROPS
from ..runner.core import ENGINES
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

ModelName = Enum("ModelName", {n.replace("-", "_"): n for n in MODEL_NAMES}, type=str)  # type: ignore[misc]
DEFAULT_MODEL_CHOICE = ModelName(DEFAULT_MODEL)
ModelOpt = Annotated[
    ModelName,
    typer.Option(
        "--model",
        help="Model that scores the features: macil-sd (Yu et al. 2022: also audio-only and visual-only "
        "scores), hypervd (Peng et al. 2023: one score) or ensemble (the mean of both models' snippet "
        "probabilities).",
        rich_help_panel=PANEL_MODEL,
    ),
]
CheckpointOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--checkpoint",
        metavar="FILE",
        help="Model weights file, once per model of --model (ensemble: MACIL-SD first, then HyperVD); "
        "default: the published checkpoints from the registry.",
        rich_help_panel=PANEL_MODEL,
    ),
]


def given(ctx: typer.Context, name: str) -> bool:
    """Was option ``name`` given on the command line (not left at its default)?"""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def model_checkpoints(model: str, checkpoint: list[Path] | None) -> dict[str, Path | None]:
    """Registry name -> ``--checkpoint`` file for ``--model``; a UsageError naming the options
    when more files are given than the model has weights."""
    from ..models import MODEL_WEIGHTS, checkpoint_map

    try:
        return checkpoint_map(model, checkpoint)  # type: ignore[return-value]
    except UsageError:
        names = MODEL_WEIGHTS[model]
        raise UsageError(
            f"--checkpoint: given {len(checkpoint or [])} times; --model {model} takes at most {len(names)} "
            f"({', then '.join(names)})"
        ) from None


DeviceOpt = Annotated[
    str,
    typer.Option(
        metavar="DEVICE",
        help="auto, cpu, cuda or cuda:N (auto picks CUDA when available).",
        rich_help_panel=PANEL_MODEL,
    ),
]
CropsOpt = Annotated[
    Crops,
    typer.Option(
        help="5: centre + corners, the published protocol; 1: centre only, ~5x faster.",
        rich_help_panel=PANEL_MODEL,
    ),
]
BatchSizeOpt = Annotated[
    int | None, typer.Option(help="I3D clips per forward pass (memory vs speed).", rich_help_panel=PANEL_MODEL)
]
I3dWeightsOpt = Annotated[
    Path | None,
    typer.Option(
        metavar="FILE",
        help="I3D RGB weights file (default: rgb_imagenet.pt from the registry).",
        rich_help_panel=PANEL_MODEL,
    ),
]
VggishWeightsOpt = Annotated[
    Path | None,
    typer.Option(
        metavar="FILE",
        help="VGGish weights file (default: vggish-10086976.pth from the registry).",
        rich_help_panel=PANEL_MODEL,
    ),
]
WeightsDirOpt = Annotated[
    Path | None,
    typer.Option(
        metavar="DIR",
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
    typer.Option(
        min=0,
        metavar="N",
        help="Index of the video stream to use (default: the best one).",
        rich_help_panel=PANEL_MODEL,
    ),
]
AudioStreamOpt = Annotated[
    int | None,
    typer.Option(
        min=0,
        metavar="N",
        help="Index of the audio stream to use (default: the best one).",
        rich_help_panel=PANEL_MODEL,
    ),
]

_TIME = re.compile(r"(?:(?:(?P<h>\d+):(?P<m2>[0-5]\d))|(?P<m>\d+)):(?P<s>[0-5]\d(?:\.\d+)?)|(?P<secs>\d*\.?\d+)")
StartOpt = Annotated[
    str | None,
    typer.Option(
        "--start",
        metavar="TIME",
        help="Score from this time on (seconds like 90 or 12.5, or h:mm:ss / m:ss); times stay the whole video's.",
        show_default=False,
    ),
]
EndOpt = Annotated[
    str | None,
    typer.Option("--end", metavar="TIME", help="Score up to this time (like --start).", show_default=False),
]


def check_segment_options(threshold: float, min_duration: float, merge_gap: float = 0.0) -> None:
    """--threshold / --min-duration / --merge-gap checked by the library's own rule
    (:func:`violence_cli.segments.check_params`), its message given the option's name."""
    from ..segments import check_params

    try:
        check_params(threshold, min_duration, merge_gap)
    except ValueError as exc:  # "merge_gap -1: expected ..." -> "--merge-gap -1: expected ..."
        name, _, rest = str(exc).partition(" ")
        raise UsageError(f"--{name.replace('_', '-')} {rest}") from None


def parse_time(option: str, text: str | None) -> float | None:
    """Seconds from ``90``, ``12.5``, ``1:30``, ``1:02:03.5`` (None stays None); a UsageError
    naming ``option`` otherwise (``--start 5:99: expected seconds or h:mm:ss``)."""
    if text is None:
        return None
    match = _TIME.fullmatch(text.strip())
    if match is None:
        raise UsageError(f"{option} {text}: expected seconds or h:mm:ss")
    if match["secs"] is not None:
        return float(match["secs"])
    hours = int(match["h"] or 0)
    minutes = int(match["m2"] if match["m2"] is not None else match["m"])
    return hours * 3600 + minutes * 60 + float(match["s"])


def parse_span(start: str | None, end: str | None) -> tuple[float, float | None]:
    """(start, end) in seconds from ``--start``/``--end``; UsageError when end is not after start."""
    begin = parse_time("--start", start) or 0.0
    stop = parse_time("--end", end)
    if stop is not None and stop <= begin:
        after = f"--start ({start})" if start else "0"
        raise UsageError(f"--end {end}: expected a time after {after}")
    return begin, stop


# --precision: the choices come from the library's table; each command sets its own default
# (detect and watch: auto; extract: fp32, since features are a dataset and fidelity comes first).
Precision = Enum("Precision", [(name, name) for name in PRECISIONS], type=str)  # type: ignore[misc]
PrecisionOpt = Annotated[
    Precision,
    typer.Option(
        help=(
            "Number format of I3D and VGGish: auto = on CUDA the fastest of tf32/bf16/fp16 that keeps "
            "the features within the fidelity bounds (measured once per GPU model, cached); on a CPU "
            "bf16 with native bf16 (AVX512-BF16/AMX; 2-3x faster, scores within 0.01 of fp32), fp32 elsewhere."
        ),
        rich_help_panel=PANEL_MODEL,
    ),
]


def resolve_precision_option(precision: Precision | str, device: torch.device | str) -> str:
    """``--precision`` resolved for ``device`` (never ``auto``: on CUDA measured once per GPU,
    :mod:`violence_cli.features.autoprecision`), warning on stderr when the choice is poor on
    this device (bf16 on a CPU that would emulate it). Call once, where the command starts."""
    from .. import console
    from ..features.autoprecision import resolve
    from ..precision import precision_warning

    resolved = resolve(getattr(precision, "value", precision), device)
    warning = precision_warning(resolved, device)
    if warning:
        console.warn(warning)
    return resolved


PANEL_RUN = "Many videos"

DecodeWorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--decode-workers",
        metavar="N",
        help=(
            "Processes that decode videos ahead for the one holding the networks (frames through shared "
            "memory), so many videos on one GPU are bound by I3D, not by decoding; 0 decodes in-process. "
            "Default for several videos: half the cores, at most 8 (0 on 2 cores or fewer, or for one video)."
        ),
        rich_help_panel=PANEL_RUN,
    ),
]


def decode_workers_option(value: int | None, n_videos: int) -> int:
    """``--decode-workers``: when not given, from the cores and for several videos only (one
    video decodes in-process: workers would only add their start-up); UsageError when negative."""
    from ..features.decode_pool import default_workers

    if value is None:
        return 0 if n_videos < 2 else min(default_workers(), n_videos)
    if value < 0:
        raise UsageError(f"--decode-workers {value}: expected 0 or more")
    return value


RecursiveOpt = Annotated[
    bool, typer.Option("--recursive", "-r", help="Also take the videos in subfolders.", rich_help_panel=PANEL_RUN)
]
FromListOpt = Annotated[
    Path | None,
    typer.Option(
        "--from-list",
        metavar="FILE",
        help="Also take the videos listed in FILE, one path per line ('-': the list on stdin).",
        rich_help_panel=PANEL_RUN,
    ),
]
OverwriteOpt = Annotated[
    bool,
    typer.Option("--overwrite", help="Redo videos whose outputs are complete and current.", rich_help_panel=PANEL_RUN),
]
RetryFailedOpt = Annotated[
    bool,
    typer.Option(
        "--retry-failed", help="Try again the videos failures.jsonl lists (else skipped).", rich_help_panel=PANEL_RUN
    ),
]
ShardOpt = Annotated[
    str | None,
    typer.Option(
        "--shard",
        metavar="I/N",
        help="Do only part I of N (0 <= I < N), chosen by a hash of each video's relative path.",
        rich_help_panel=PANEL_RUN,
    ),
]
Engine = Enum("Engine", {e: e for e in ENGINES}, type=str)  # type: ignore[misc]
EngineOpt = Annotated[
    Engine,
    typer.Option(
        "--engine",
        help="local: this process; ray: a Ray cluster, one actor per GPU (pip install 'violence-detect[ray]').",
        rich_help_panel=PANEL_RUN,
    ),
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help="Ray cluster to join (default: $RAY_ADDRESS, else start one on this machine).",
        rich_help_panel=PANEL_RUN,
    ),
]
ActorsOpt = Annotated[
    int | None,
    typer.Option(
        "--actors",
        help="Ray actors (default: one per GPU; without GPUs, the CPUs less one).",
        rich_help_panel=PANEL_RUN,
    ),
]


def resolve_run_device(device: str, engine: Engine | str, ray_address: str | None) -> torch.device:
    """``--device`` resolved once, at the edge: this machine's device for the local engine;
    for ``--engine ray`` the device of every actor (CUDA where the cluster has GPUs)."""
    if getattr(engine, "value", engine) == "ray":
        from ..runner.ray_engine import worker_device

        return worker_device(device, ray_address)
    from ..devices import resolve_device

    return resolve_device(device)

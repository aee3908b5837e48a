"""``violence-detect extract VIDEO_OR_DIR... --out DIR``: XD-Violence feature files.

A thin layer over :func:`violence_cli.features.extract.extract_to_folder`: every video
becomes ``NAME__0.npy`` .. ``NAME__4.npy`` (I3D, (T, 1024) float32 per crop) and
``NAME__vggish.npy`` (VGGish, (T, 128) float32), the layout ``eval`` and ``train`` read.
Videos already done are skipped unless ``--overwrite``; a video that fails is reported
and the others go on; the exit code is 1 at the end if any failed.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from .. import console
from ..errors import UsageError
from ._app import app, cli_errors, exit_code
from .options import (
    DEFAULT_CROPS_CHOICE,
    PANEL_MODEL,
    AudioStreamOpt,
    Crops,
    DeviceOpt,
    DownloadOpt,
    I3dWeightsOpt,
    Precision,
    PrecisionOpt,
    VggishWeightsOpt,
    VideoStreamOpt,
    WeightsDirOpt,
    resolve_precision_option,
)

HELP = """Extract I3D RGB + VGGish audio features in the XD-Violence layout.

For each video NAME (files, or every video directly inside a folder) writes into --out:
NAME__0.npy .. NAME__4.npy, the I3D features of the centre, top-left, top-right,
bottom-left and bottom-right crops, (T, 1024) float32 each, and NAME__vggish.npy, the
audio features, (T, 128) float32; T = floor((frames at 24 fps - 1) / 16). `eval` and
`train` read these folders like the published XD-Violence features.

Examples:

  violence-detect extract clip.mp4 --out features/

  violence-detect extract videos/ --out features/ --crops 1 --device cuda

  violence-detect extract a.mp4 b.mkv --out feats/ --overwrite --json

  violence-detect extract videos/ --out feats/ --precision auto   # bf16 where it pays: faster, not bit-exact
"""

GROUP_OUT = "Output"
GROUP_MODEL = PANEL_MODEL


@app.command("extract", help=HELP, no_args_is_help=True)
@cli_errors
def extract_command(
    inputs: Annotated[
        list[Path],
        typer.Argument(metavar="VIDEO_OR_DIR", help="Video files or folders of videos.", show_default=False),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Folder for the feature files (created if missing).",
            show_default=False,
            rich_help_panel=GROUP_OUT,
        ),
    ],
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Extract again videos whose files already exist.", rich_help_panel=GROUP_OUT),
    ] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON document on stdout.", rich_help_panel=GROUP_OUT)
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet",
            "-q",
            help="No progress bars or summary line on stderr (warnings and errors still show).",
            rich_help_panel=GROUP_OUT,
        ),
    ] = False,
    crops: Annotated[
        Crops,
        typer.Option(
            help="5: centre + 4 corners (the published protocol); 1: centre only, ~5x faster.",
            rich_help_panel=GROUP_MODEL,
        ),
    ] = DEFAULT_CROPS_CHOICE,
    device: DeviceOpt = "auto",
    batch_size: Annotated[
        int | None,
        typer.Option(help="I3D clips per forward pass (default 5 on CPU, 40 on CUDA).", rich_help_panel=GROUP_MODEL),
    ] = None,
    precision: PrecisionOpt = Precision.fp32,
    i3d_weights: I3dWeightsOpt = None,
    vggish_weights: VggishWeightsOpt = None,
    weights_dir: WeightsDirOpt = None,
    download: DownloadOpt = True,
    video_stream: VideoStreamOpt = None,
    audio_stream: AudioStreamOpt = None,
) -> None:
    from ..devices import resolve_device
    from ..features.extract import ExtractOutcome, FeatureExtractor, extract_to_folder
    from ..pipeline import find_videos

    if batch_size is not None and batch_size < 1:
        raise UsageError(f"--batch-size {batch_size}: expected a positive number")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    n_crops = int(crops.value)
    resolved = resolve_device(device)
    resolved_precision = resolve_precision_option(precision, resolved)
    videos, not_found = find_videos(inputs)
    outcomes: list[dict[str, Any]] = []
    for path, exc in not_found:
        record = asdict(ExtractOutcome(path, Path(path).stem, "failed", error=exc.message, hint=exc.hint))
        outcomes.append(record)
        _report(record, json_out, quiet)

    def make_extractor(n_crops: int) -> FeatureExtractor:
        return FeatureExtractor(
            i3d_weights=i3d_weights,
            vggish_weights=vggish_weights,
            device=resolved,
            crops=n_crops,
            batch_size=batch_size,
            precision=resolved_precision,
            weights_dir=weights_dir,
            download=download,
        )

    if videos:
        out.mkdir(parents=True, exist_ok=True)
        with console.progress_bar(console.progress_enabled(quiet, json_out)) as bar:
            tasks: dict[int, Any] = {}

            def progress(i: int, video: Path, done: int, total: int | None) -> None:
                if bar is None:
                    return
                if i not in tasks:
                    tasks[i] = bar.add_task(video.name, total=total)
                bar.update(tasks[i], completed=done, total=total)

            for i, outcome in enumerate(
                extract_to_folder(
                    videos,
                    out,
                    make_extractor,
                    crops=n_crops,
                    overwrite=overwrite,
                    video_stream=video_stream,
                    audio_stream=audio_stream,
                    progress=progress,
                )
            ):
                if bar is not None and i in tasks:
                    bar.remove_task(tasks.pop(i))
                record = asdict(outcome)
                outcomes.append(record)
                _report(record, json_out, quiet)

    counts = {status: sum(o["status"] == status for o in outcomes) for status in ("written", "skipped", "failed")}
    if json_out:
        document = {
            "out_dir": str(out),
            "crops": n_crops,
            "device": str(resolved),
            "precision": resolved_precision,
            **counts,
            "videos": outcomes,
        }
        typer.echo(json.dumps(document, indent=2))
    else:
        console.info(
            f"{counts['written']} written, {counts['skipped']} skipped, {counts['failed']} failed -> {out}", quiet=quiet
        )
    failures = [o for o in outcomes if o["status"] == "failed"]
    for failure in failures:
        console.stderr.print(f"failed: {failure['error']}", highlight=False, markup=False)
    exit_code(len(failures))


def _report(record: dict[str, Any], json_out: bool, quiet: bool) -> None:
    """One line per video: results on stdout, problems on stderr."""
    if record["status"] == "failed":
        console.error(record["error"], record.get("hint"))
        return
    for warning in record["warnings"]:
        console.warn(warning)
    if json_out:
        return
    name, files = record["name"], record["files"]
    folder = Path(files[0]).parent if files else Path(".")
    if record["status"] == "skipped":
        typer.echo(f"skipped {record['video']}: {len(files)} files already in {folder} (--overwrite to redo)")
        return
    audio = "audio" if record["has_audio"] else "no audio: silence"
    typer.echo(
        f"wrote {folder / (name + '__*.npy')} ({len(files)} files): {record['n_snippets']} snippet(s), "
        f"{audio}, {record['precision']}, {record['seconds']:.1f} s"
    )

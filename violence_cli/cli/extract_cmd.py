"""``violence-detect extract VIDEO_OR_DIR... --out DIR``: XD-Violence feature files.

A thin layer over the library's runner (:mod:`violence_cli.runner`, the same one ``detect``
uses): every video becomes ``NAME__0.npy`` .. ``NAME__4.npy`` (I3D, (T, 1024) float32 per
crop) and ``NAME__vggish.npy`` (VGGish, (T, 128) float32), the layout ``eval`` and ``train``
read, then ``NAME.extract.json``, the record a rerun checks. Videos already done are skipped
unless ``--overwrite``; a video that fails is reported and the others go on; the exit code
is 1 at the end if any failed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from .. import console
from ..errors import UsageError
from ..messages import count, unpublished_warnings
from ..runner.records import DETECT_FIELDS, FAILED, FAILED_BEFORE, STATUSES, Outcome
from ..schema import WeightsUsed, document_header
from ._app import app, cli_errors, exit_code
from .options import (
    DEFAULT_CROPS_CHOICE,
    PANEL_MODEL,
    ActorsOpt,
    AudioStreamOpt,
    Crops,
    DecodeWorkersOpt,
    DeviceOpt,
    DownloadOpt,
    Engine,
    EngineOpt,
    FromListOpt,
    I3dWeightsOpt,
    OverwriteOpt,
    Precision,
    PrecisionOpt,
    RayAddressOpt,
    RecursiveOpt,
    RetryFailedOpt,
    ShardOpt,
    VggishWeightsOpt,
    VideoStreamOpt,
    WeightsDirOpt,
    decode_workers_option,
    resolve_precision_option,
    resolve_run_device,
)
from .run_view import closing_line, run_in_view
from .wording import cli_words

HELP = """Extract I3D RGB + VGGish audio features in the XD-Violence layout.

For each video NAME (files, the videos inside a folder, -r: and its subfolders) writes into --out:
NAME__0.npy .. NAME__4.npy, the I3D features of the centre, top-left, top-right,
bottom-left and bottom-right crops, (T, 1024) float32 each, and NAME__vggish.npy, the
audio features, (T, 128) float32; T = floor((frames at 24 fps - 1) / 16); then
NAME.extract.json (what made them: a rerun skips the video while it matches). The folder
also gets features.json (the weights and protocol, every video) and results.csv. `eval` and
`train` read these folders like the published XD-Violence features.

Examples:

\b
  violence-detect extract clip.mp4 --out features/
  violence-detect extract videos/ --out features/ --crops 1 --device cuda
  violence-detect extract a.mp4 b.mkv --out feats/ --overwrite --json
  violence-detect extract videos/ --out feats/ --precision auto
      (bf16 where it pays: faster, not bit-exact)
"""

GROUP_OUT = "Output"
GROUP_MODEL = PANEL_MODEL


@app.command("extract", help=HELP, no_args_is_help=True)
@cli_errors
def extract_command(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            metavar="DIR",
            help="Folder for the feature files (created if missing).",
            show_default=False,
            rich_help_panel=GROUP_OUT,
        ),
    ],
    inputs: Annotated[
        list[str] | None,  # not Path: Path("http://h/a.mp4") is "http:/h/a.mp4", no longer a URL to refuse
        typer.Argument(metavar="VIDEO...", help="Video files or folders of videos.", show_default=False),
    ] = None,
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
    recursive: RecursiveOpt = False,
    decode_workers: DecodeWorkersOpt = None,
    from_list: FromListOpt = None,
    overwrite: OverwriteOpt = False,
    retry_failed: RetryFailedOpt = False,
    shard: ShardOpt = None,
    engine: EngineOpt = Engine("local"),
    ray_address: RayAddressOpt = None,
    actors: ActorsOpt = None,
) -> None:
    from ..protocol import I3D_WEIGHTS, VGGISH_WEIGHTS
    from ..runner import ExtractJob, discover, parse_shard, select_shard
    from ..weights import resolve_weight_files

    if batch_size is not None and batch_size < 1:
        raise UsageError(f"--batch-size {batch_size}: expected a positive number")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    if not inputs and from_list is None:
        raise UsageError("VIDEO...: missing; expected video files or folders (or --from-list FILE)")
    parts = parse_shard(shard) if shard is not None else None
    n_crops = int(crops.value)
    resolved = resolve_run_device(device, engine, ray_address)
    resolved_precision = resolve_precision_option(precision, resolved)
    found = discover(inputs or [], recursive=recursive, from_list=from_list)
    videos = select_shard(found.videos, parts)
    workers = decode_workers_option(decode_workers, len(videos))
    outcomes: list[dict[str, Any]] = []
    for path, exc in found.failures:
        record = Outcome(path, Path(path).stem, FAILED, error=exc.message, hint=exc.hint).to_dict(DETECT_FIELDS)
        outcomes.append(record)
        _report(record, json_out)

    def on_outcome(outcome: Outcome) -> None:
        if outcome.trace and console.debug_enabled():
            sys.stderr.write(outcome.trace)
        record = outcome.to_dict(DETECT_FIELDS)  # detect's fields (peak_score, verdict...) are not extract's
        record["error"], record["hint"] = cli_words(record["error"]), cli_words(record["hint"])
        record["warnings"] = [cli_words(w) or w for w in record["warnings"]]
        outcomes.append(record)
        _report(record, json_out)

    summary = None
    used: list[WeightsUsed] = []
    if videos:
        out.mkdir(parents=True, exist_ok=True)
        show_progress = console.progress_enabled(quiet, json_out)
        with console.progress_bar(show_progress) as bar:
            weights = resolve_weight_files(
                {I3D_WEIGHTS: i3d_weights, VGGISH_WEIGHTS: vggish_weights}, weights_dir=weights_dir, download=download
            )
            used[:] = [WeightsUsed(w.name, str(w.path), w.sha256, w.verified, w.trained) for w in weights.values()]
            for line in unpublished_warnings(weights.values(), features=True):  # once, before the videos' lines
                console.warn(line)
            job = ExtractJob(out, weights, n_crops, batch_size, video_stream, audio_stream, resolved_precision)
            job.precision_asked = getattr(precision, "value", precision)
            job.decode_workers = workers
            summary = run_in_view(
                videos,
                job,
                bar,
                on_outcome,
                verb="extracted",
                device=resolved,
                engine=engine.value,
                overwrite=overwrite,
                retry_failed=retry_failed,
                want_durations=show_progress,
                ray_address=ray_address,
                actors=actors,
            )

    # counts keyed in snake_case like every other key (failed_before), statuses as the runner names them
    counts = {s.replace("-", "_"): sum(o["status"] == s for o in outcomes) for s in STATUSES}
    if json_out:
        document = {
            **document_header(used),
            "out_dir": str(out),
            "crops": n_crops,
            "device": str(resolved),
            "precision": resolved_precision,
            **counts,
            "videos": outcomes,
        }
        typer.echo(json.dumps(document, indent=2))
    elif summary is not None:
        console.info(f"{closing_line(summary, 'extracted', len(found.failures))} -> {out}", quiet=quiet)
    failures = [o for o in outcomes if o["status"] in (FAILED, FAILED_BEFORE)]
    for failure in failures:
        console.stderr.print(f"failed: {failure['error']}", highlight=False, markup=False)
    exit_code(len(failures))


def _report(record: dict[str, Any], json_out: bool) -> None:
    """One line per video: results on stdout, problems on stderr."""
    if record["status"] in (FAILED, FAILED_BEFORE):
        console.error(record["error"], record.get("hint"))
        return
    for warning in record["warnings"] if record["status"] == "done" else ():
        console.warn(warning)
    if json_out:
        return
    files = record["files"]
    folder = Path(files[0]).parent if files else Path(".")
    pattern = folder / (Path(record["name"]).name + "__*.npy")
    if record["status"] == "skipped":
        typer.echo(f"skipped {record['path']}: {len(files)} files already in {folder} (--overwrite to redo)")
        return
    audio = "audio" if record["has_audio"] else "no audio: silence"
    typer.echo(
        f"wrote {pattern} ({len(files)} files): {count(record['n_snippets'], 'snippet')}, {audio}, "
        f"{record['precision']}, {record['seconds']:.1f} s"
    )

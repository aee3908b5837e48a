"""``violence-detect [detect] VIDEO...``: scores, violent segments and exports.

A thin layer over the library's runner (:mod:`violence_cli.runner`): check the options and
every output location first, resolve the device and the weights once, then let the runner
score each video (skipping those already done in --output-dir). A video that fails is
reported on stderr and the others go on; the exit code is 1 at the end if any failed.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from .. import atomic, console
from ..errors import UsageError, ViolenceDetectError
from ..messages import count, own_model_notes
from ..models import DEFAULT_MODEL
from ..protocol import DEFAULT_THRESHOLD
from ..runner.inputs import STDIN, Discovery
from ..runner.jobs import DetectJob
from ..runner.kept import kept_bytes_per_hour
from ..runner.records import DONE, FAILED, FAILED_BEFORE, RESULTS_FILE, Outcome
from ..schema import DetectionResult
from ..timefmt import clock
from ..writers import FORMATS, WRITERS
from ._app import _version_callback, app, cli_errors, exit_code
from .options import (
    ALL_FORMATS,
    DEFAULT_CROPS_CHOICE,
    DEFAULT_MODEL_CHOICE,
    FORMAT_METAVAR,
    ActorsOpt,
    AudioStreamOpt,
    BatchSizeOpt,
    CheckpointOpt,
    CropsOpt,
    DecodeWorkersOpt,
    DeviceOpt,
    DownloadOpt,
    EndOpt,
    Engine,
    EngineOpt,
    FromListOpt,
    I3dWeightsOpt,
    ModelOpt,
    OutputFormat,
    OverwriteOpt,
    Precision,
    PrecisionOpt,
    RayAddressOpt,
    RecursiveOpt,
    RetryFailedOpt,
    ShardOpt,
    StartOpt,
    VggishWeightsOpt,
    VideoStreamOpt,
    WeightsDirOpt,
    check_segment_options,
    decode_workers_option,
    model_checkpoints,
    parse_span,
    resolve_precision_option,
    resolve_run_device,
)
from .run_view import closing_line, run_in_view
from .wording import cli_words

EXTENSIONS = " ".join(w.extension for w in WRITERS.values())

HELP = """Find violent segments in videos (several files, or a folder of videos).

Prints a summary per video: duration, whether audio was present, the violent segments
and a one-line verdict. Each 16-frame snippet (2/3 s) gets three scores in [0, 1]
(audio-visual, audio only, visual only; --model hypervd and ensemble give the first only);
snippets scoring at or above --threshold form segments.

Examples:

\b
  violence-detect samples/calm_then_chaos.mp4
  violence-detect clip.mp4 --json > clip.json
  violence-detect clip.mp4 -o clip.srt -o clip.html --plot clip.png
  violence-detect videos/ --output-dir out/ -f csv -f vtt --crops 1
  violence-detect clip.mkv -o report.html --report-proxy
  violence-detect clip.mp4 --model ensemble   # mean of MACIL-SD and HyperVD
  violence-detect archive/ -r --output-dir out/ --shard 0/2  # rerun: resumes
  violence-detect clip.mp4 --output-dir out/ --threshold 0.7  # rescored
  violence-detect --features feats/ --output-dir out/ -f html  # no video

With --output-dir each video's features are kept beside NAME.json (NAME__0.npy ..,
NAME__vggish.npy, NAME.extract.json: the files `extract` writes); a rerun with another
--threshold, --min-duration, --merge-gap or --format scores them again without decoding
when the video, the I3D/VGGish weights, --crops, --precision and --start/--end are the same.
"""

OPT_GROUP_OUT = "Output"
OPT_GROUP_SEG = "Segments"


@app.command("detect", help=HELP, no_args_is_help=True)
@cli_errors
def detect_command(
    ctx: typer.Context,
    inputs: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="VIDEO...",
            help="Video files, folders of videos, http(s) URLs, or - (one video on stdin).",
            show_default=False,
        ),
    ] = None,
    json_out: Annotated[
        bool,
        typer.Option(
            "--json",
            help='Print one JSON document on stdout (several videos: {"results": [...], "errors": [...]}).',
            rich_help_panel=OPT_GROUP_OUT,
        ),
    ] = False,
    output: Annotated[
        list[Path] | None,
        typer.Option(
            "-o",
            "--output",
            metavar="FILE",
            help=f"Write an export; the format follows the extension ({EXTENSIONS}). "
            "Repeatable: -o x.srt -o x.html writes both.",
            rich_help_panel=OPT_GROUP_OUT,
        ),
    ] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir",
            metavar="DIR",
            help="Write NAME.json (+ --format) for every video into this folder (created when missing); a rerun skips the done ones.",
            rich_help_panel=OPT_GROUP_OUT,
        ),
    ] = None,
    formats: Annotated[
        list[OutputFormat] | None,
        typer.Option(
            "--format",
            "-f",
            metavar=FORMAT_METAVAR,
            help="Formats for --output-dir (repeatable; default json). html also writes index.html.",
            rich_help_panel=OPT_GROUP_OUT,
        ),
    ] = None,
    plot: Annotated[
        str | None,  # not Path: Path("out/") drops the slash that says "a folder to be created"
        typer.Option(
            "--plot",
            metavar="FILE|DIR",
            help="Draw the score timeline into this PNG (or into this folder, one per video).",
            rich_help_panel=OPT_GROUP_OUT,
        ),
    ] = None,
    report_proxy: Annotated[
        bool,
        typer.Option(
            "--report-proxy",
            help="For an HTML report of a video browsers do not play (HEVC, MKV, AVI...): write a browser-safe "
            "copy (H.264 + AAC, at most 720p) beside the report, NAME.proxy.mp4, for the page to play.",
            rich_help_panel=OPT_GROUP_OUT,
        ),
    ] = False,
    keep_features: Annotated[
        bool,
        typer.Option(
            "--keep-features/--no-keep-features",
            help="With --output-dir: keep each video's features beside NAME.json, for rescoring without decoding "
            f"(about {kept_bytes_per_hour(5) / 1e6:.0f} MB per hour of video at 5 crops, {kept_bytes_per_hour(1) / 1e6:.0f} MB "
            "at 1; features kept earlier are reused either way).",
            rich_help_panel=OPT_GROUP_OUT,
        ),
    ] = True,
    features: Annotated[
        list[Path] | None,
        typer.Option(
            "--features",
            metavar="DIR",
            help="Score feature files instead of videos (NAME__0.npy .. + NAME__vggish.npy: from extract, an "
            "earlier --output-dir, or XD-Violence's; repeat for split folders). Nothing is decoded.",
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet",
            "-q",
            help="No progress bars or messages (warnings and errors still show).",
            rich_help_panel=OPT_GROUP_OUT,
        ),
    ] = False,
    threshold: Annotated[
        float, typer.Option(help="A snippet is violent when its score is >= this.", rich_help_panel=OPT_GROUP_SEG)
    ] = DEFAULT_THRESHOLD,
    min_duration: Annotated[
        float,
        typer.Option(
            help="Drop segments shorter than this many seconds (applied after merging).", rich_help_panel=OPT_GROUP_SEG
        ),
    ] = 0.0,
    merge_gap: Annotated[
        float, typer.Option(help="Join segments separated by at most this many seconds.", rich_help_panel=OPT_GROUP_SEG)
    ] = 0.0,
    device: DeviceOpt = "auto",
    crops: CropsOpt = DEFAULT_CROPS_CHOICE,
    batch_size: BatchSizeOpt = None,
    precision: PrecisionOpt = Precision.auto,
    model: ModelOpt = DEFAULT_MODEL_CHOICE,
    checkpoint: CheckpointOpt = None,
    i3d_weights: I3dWeightsOpt = None,
    vggish_weights: VggishWeightsOpt = None,
    weights_dir: WeightsDirOpt = None,
    download: DownloadOpt = True,
    video_stream: VideoStreamOpt = None,
    audio_stream: AudioStreamOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    recursive: RecursiveOpt = False,
    decode_workers: DecodeWorkersOpt = None,
    from_list: FromListOpt = None,
    overwrite: OverwriteOpt = False,
    retry_failed: RetryFailedOpt = False,
    shard: ShardOpt = None,
    engine: EngineOpt = Engine("local"),
    ray_address: RayAddressOpt = None,
    actors: ActorsOpt = None,
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    from ..protocol import I3D_WEIGHTS, VGGISH_WEIGHTS
    from ..runner import discover, parse_shard, select_shard
    from ..weights import resolve_weight_files

    check_segment_options(threshold, min_duration, merge_gap)
    if batch_size is not None and batch_size < 1:
        raise UsageError(f"--batch-size {batch_size}: expected a positive number")
    span = parse_span(start, end)
    checkpoints = model_checkpoints(model.value, checkpoint)
    if features:
        _check_features_options(ctx, inputs, from_list, span, report_proxy, video_stream, audio_stream)
    elif not inputs and from_list is None:
        raise UsageError("VIDEO...: missing; expected video files or folders (or --from-list FILE)")
    if STDIN in (inputs or []) and (len(inputs or []) > 1 or from_list is not None):
        raise UsageError("VIDEO -: stdin holds one video; give it alone (no other VIDEO, no --from-list)")
    parts = parse_shard(shard) if shard is not None else None
    resolved_device = resolve_run_device(device, engine, ray_address)
    resolved_precision = resolve_precision_option(precision, resolved_device)
    if features:
        from ..runner.features_job import feature_inputs
        from ..xdfeatures import discover_folder

        entries = discover_folder(features)
        found = Discovery(feature_inputs(entries))
        batch = len(entries) > 1
    else:
        batch = len(inputs or []) > 1 or any(Path(p).is_dir() for p in inputs or []) or from_list is not None
    job = plan_outputs(batch, output, output_dir, formats, plot, report_proxy)
    job.keep_features = keep_features
    if features:
        job = _features_job(job, entries)
    else:
        made: list[Path] = []

        def spool_dir() -> Path:
            """URLs and stdin are copied here first (removed on exit, error, Ctrl-C or SIGTERM
            alike); made at the first of them only, so a run over files (even one killed with
            SIGKILL) leaves nothing in the temporary folder."""
            if not made:
                made.append(Path(ctx.with_resource(tempfile.TemporaryDirectory(prefix="violence-detect-input-"))))
            return made[0]

        found = discover(inputs or [], recursive=recursive, from_list=from_list, spool_dir=spool_dir)
    videos = select_shard(found.videos, parts)
    workers = decode_workers_option(decode_workers, len(videos))
    failed: list[tuple[str, str]] = []
    for path, exc in found.failures:
        console.error(exc.message, exc.hint)
        failed.append((path, exc.message))

    results: list[DetectionResult] = []
    seen_warnings: set[str] = set()

    def on_outcome(outcome: Outcome) -> None:
        if outcome.status in (FAILED, FAILED_BEFORE):
            if outcome.trace and console.debug_enabled():
                sys.stderr.write(outcome.trace)
            error = cli_words(outcome.error) or outcome.path
            console.error(error, cli_words(outcome.hint))
            failed.append((outcome.path, error))
            return
        for warning in outcome.warnings if outcome.status == DONE or not batch else ():
            if warning not in seen_warnings:
                seen_warnings.add(warning)
                console.warn(cli_words(warning) or warning)
        if json_out:
            results.append(outcome.result)
        elif outcome.status == "done" or not batch:
            print_summary(outcome.result)
        if outcome.status == "done" and not quiet:
            for written in outcome.files:  # one line per file, after the summary (stderr: stdout stays the result)
                console.info(f"wrote {written}")
            origin = (outcome.result.features if outcome.result is not None else None) or {}
            if "kept" in origin:
                console.info(f"kept the features: {origin['kept']} (a rerun with other options rescores them)")
            elif outcome.decoded is False and not features:
                console.info(f"rescored from the features kept in {origin.get('from')}: nothing decoded")

    summary = None
    if videos:
        show_progress = console.progress_enabled(quiet, json_out)
        with console.progress_bar(show_progress) as bar:
            job.weights = resolve_weight_files(
                checkpoints if features else {I3D_WEIGHTS: i3d_weights, VGGISH_WEIGHTS: vggish_weights, **checkpoints},
                weights_dir=weights_dir,
                download=download,
                progress=_download_progress(bar),
            )
            for note in own_model_notes(job.weights.values()):
                console.info(note, quiet=quiet)
            job.crops, job.batch_size, job.precision = int(crops.value), batch_size, resolved_precision
            job.precision_asked, job.decode_workers = getattr(precision, "value", precision), workers
            job.model = model.value
            job.threshold, job.min_duration, job.merge_gap = threshold, min_duration, merge_gap
            job.video_stream, job.audio_stream = video_stream, audio_stream
            job.start, job.end = span
            try:
                summary = run_in_view(
                    videos,
                    job,
                    bar,
                    on_outcome,
                    verb="scored",
                    device=resolved_device,
                    engine=engine.value,
                    overwrite=overwrite,
                    retry_failed=retry_failed,
                    want_durations=show_progress and not features,
                    ray_address=ray_address,
                    actors=actors,
                )
            except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the index still covers what is done
                if job.index is not None:
                    _write_index(job, failed[: len(found.failures)], failed, quiet)
                raise

    if job.index is not None:
        _write_index(job, failed[: len(found.failures)], failed, quiet)
    if job.out_dir is not None and summary is not None and summary.total and not quiet:
        console.info(f"wrote {job.out_dir / RESULTS_FILE}")  # the run's table (also failures.jsonl when any)

    if json_out:
        from ..writers import batch_document

        # exactly one document: one video gives its result; several, or a single input that
        # failed before giving one, the batch document with its errors
        if batch or not results:
            document: dict[str, Any] = batch_document(results, failed)
        else:
            document = results[0].to_dict()
        typer.echo(json.dumps(document, indent=2, allow_nan=False))
    if summary is not None and (batch or len(videos) > 1):
        console.info(closing_line(summary, "scored", len(found.failures)), quiet=quiet or json_out)
    exit_code(len(failed))


def _check_features_options(
    ctx: typer.Context,
    inputs: list[str] | None,
    from_list: Path | None,
    span: tuple[float, float | None],
    report_proxy: bool,
    video_stream: int | None,
    audio_stream: int | None,
) -> None:
    """--features scores files already made: the options that choose what to decode do not apply."""
    if inputs or from_list is not None:
        raise UsageError("--features DIR scores feature files: give no VIDEO or --from-list with it")
    for flag, given in (
        ("--start/--end", span != (0.0, None)),
        ("--report-proxy", report_proxy),
        ("--video-stream/--audio-stream", video_stream is not None or audio_stream is not None),
    ):
        if given:
            raise UsageError(f"{flag} choose what is decoded from a video; --features DIR decodes nothing")
    from .options import given

    # what makes features from frames: silently ignored before (--crops 1 still scored every crop file)
    making = [f"--{n.replace('_', '-')}" for n in _FEATURE_MAKING if given(ctx, n)]
    if making:
        raise UsageError(
            f"{making[0]} makes features from a video; --features DIR scores the files as they are "
            "(their NAME.extract.json says what made them)"
        )


_FEATURE_MAKING = ("crops", "precision", "batch_size", "i3d_weights", "vggish_weights", "decode_workers")


def _features_job(job: DetectJob, entries: list[Any]) -> DetectJob:
    """The planned outputs of ``job``, for scoring feature files (``entries``) alone."""
    from dataclasses import fields

    from ..runner.features_job import FeaturesJob

    planned = {f.name: getattr(job, f.name) for f in fields(job) if f.name != "keep_features"}
    return FeaturesJob(**planned, entries={e.name: e for e in entries})


def _write_index(
    job: DetectJob, not_found: list[tuple[str, str]], failed: list[tuple[str, str]], quiet: bool = False
) -> None:
    """index.html over the output folder's results table (so every shard and earlier run is in
    it, not only this process's videos), plus the inputs that could not be read at all."""
    import csv

    from ..report import IndexRow, folder_rows, write_index
    from ..runner import RESULTS_FILE
    from ..runner.jobs import INDEX_STEM

    assert job.out_dir is not None and job.index is not None
    try:
        with open(job.out_dir / RESULTS_FILE, encoding="utf-8", errors=atomic.RAW_BYTES, newline="") as fh:
            table = list(csv.DictReader(fh))
    except (OSError, csv.Error, UnicodeDecodeError):
        table = []
    rows = folder_rows(job.out_dir, table, INDEX_STEM)
    rows += [IndexRow(video=path, error=message) for path, message in not_found]
    try:
        write_index(rows, job.index)
    except OSError as exc:
        message = f"{job.index}: could not write the index: {exc}"
        console.error(message)
        failed.append((str(job.index), message))
        return
    console.info(f"wrote {job.index}", quiet=quiet)


def _download_progress(bar: Any) -> Any:
    if bar is None:
        return None
    state: dict[str, Any] = {}

    def progress(done: int, total: int | None) -> None:
        if "task" not in state:
            state["task"] = bar.add_task("downloading weights", total=total)
        bar.update(state["task"], completed=done, total=total)

    return progress


def plan_outputs(
    batch: bool,
    output: list[Path] | None,
    output_dir: Path | None,
    formats: list[OutputFormat] | None,
    plot: str | os.PathLike[str] | None,
    report_proxy: bool = False,
) -> DetectJob:
    """Check every output location before any work: one-line errors, exit 1 (2 for misuse)."""
    from ..writers import format_for_path

    job = DetectJob(out_dir=None, weights={})
    outputs = list(dict.fromkeys(output or []))  # -o may be given several times: one export each
    if outputs:
        if batch:
            raise UsageError("-o/--output takes one video; for several use --output-dir DIR")
        for path in outputs:
            format_for_path(path)  # an unknown extension is a usage error, before any work
            _check_writable_file(path)
        job.output_files = outputs
    if formats and output_dir is None:
        raise UsageError("--format needs --output-dir DIR (or use -o FILE with an extension)")
    if output_dir is not None:
        _check_writable_dir(output_dir, "--output-dir", create=True)
        chosen = [f.value for f in (formats or [OutputFormat("json")])]
        job.formats = list(FORMATS) if ALL_FORMATS in chosen else list(dict.fromkeys(chosen))
        job.out_dir = output_dir
    wants_html = "html" in job.formats or any(format_for_path(path) == "html" for path in outputs)
    if report_proxy and not wants_html:
        raise UsageError("--report-proxy goes with an HTML report: -o report.html or --output-dir DIR --format html")
    job.report_proxy = report_proxy
    if plot is not None:
        as_given, plot = os.fspath(plot), Path(plot)  # a trailing slash marks a folder, even a missing one
        if not plot.exists() and (as_given.endswith(("/", os.sep)) or (batch and not plot.suffix)):
            _check_writable_dir(plot, "--plot", create=True)  # a folder to be: created
        if plot.is_dir():
            _check_writable_dir(plot, "--plot")
            job.plot_dir = plot
        elif batch:
            raise UsageError("--plot FILE takes one video; for several give an existing folder: --plot DIR")
        else:
            _check_writable_file(plot)
            job.plot = plot
    return job


def _probe_write(folder: Path, message: str) -> None:
    """Create and drop a temporary file in ``folder``; ``message`` (plus the reason) if that fails."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ViolenceDetectError(f"{message} ({exc.strerror or exc})") from None


def _check_writable_dir(folder: Path, option: str, create: bool = False) -> None:
    """The folder exists (``create``: created when missing, as extract and train do) and takes files."""
    if not folder.exists() and not create:
        raise ViolenceDetectError(f"{option} {folder}: no such folder", hint="create it first")
    if not folder.exists():
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ViolenceDetectError(f"{option} {folder}: cannot create the folder ({exc.strerror or exc})") from None
    if not folder.is_dir():
        raise ViolenceDetectError(f"{option} {folder}: not a folder")
    _probe_write(folder, f"{option} {folder}: cannot write here")


def _check_writable_file(path: Path) -> None:
    if path.is_dir():
        raise ViolenceDetectError(f"{path}: is a folder, expected a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ViolenceDetectError(f"{path}: cannot create the folder {parent} ({exc.strerror or exc})") from None
    if not parent.is_dir():
        raise ViolenceDetectError(f"{path}: {parent} is not a folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise ViolenceDetectError(f"{path}: the file exists and cannot be overwritten")
    _probe_write(parent, f"{path}: cannot write in {parent}")


def print_summary(result: DetectionResult) -> None:
    """The human-readable report of one video, on stdout."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    out = Console(highlight=False, soft_wrap=True)
    v = result.video
    audio = f"yes ({v.audio_codec})" if v.has_audio else "[yellow]no (scored with silence)[/]"
    out.print(f"[bold]{escape(atomic.escaped(v.path))}[/]")  # a non-UTF-8 name as \udcXX, as on stderr
    if result.from_features_alone:  # no video opened: what the features say
        source = escape(str((result.features or {}).get("from")))
        out.print(f"  duration {clock(v.duration)} ({v.duration:.1f} s) · scored from the features in {source}")
    else:
        out.print(
            f"  duration {clock(v.duration)} ({v.duration:.1f} s) · {v.width}x{v.height} · {v.fps:g} fps · audio: {audio}"
        )
    out.print(
        f"  scored {count(v.n_snippets, 'snippet')} ({v.scored_duration:.1f} s) · threshold {result.params.threshold:g} · "
        f"{count(result.params.crops, 'crop')} · {result.params.device} "
        f"{result.params.precision}"
        + (f" · model {result.params.model}" if result.params.model != DEFAULT_MODEL else "")
    )
    if result.segments:
        table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
        for col in ("#", "start", "end", "length", "peak", "mean"):
            table.add_column(col, justify="right")
        for n, seg in enumerate(result.segments, 1):
            table.add_row(
                str(n),
                clock(seg.start),
                clock(seg.end),
                f"{seg.duration:.1f} s",
                f"{seg.peak:.2f}",
                f"{seg.mean:.2f}",
            )
        out.print(table)
    color = "red" if result.verdict == "violent" else "green"
    out.print(f"  [bold {color}]{escape(result.summary())}[/]")
    out.print()

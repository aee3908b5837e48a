"""``violence-detect [detect] VIDEO...``: scores, violent segments and exports.

A thin layer over :class:`violence_cli.pipeline.Detector`: check the options and every
output location first, load the networks once, then score each video in turn. A video
that fails is reported on stderr and the others go on; the exit code is 1 at the end if
any failed.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from .. import console
from ..errors import UsageError, ViolenceDetectError
from ..schema import DetectionResult
from ..writers import FORMATS, WRITERS
from ._app import _version_callback, app, cli_errors, exit_code
from .options import (
    ALL_FORMATS,
    DEFAULT_CROPS_CHOICE,
    FORMAT_METAVAR,
    PANEL_MODEL,
    AudioStreamOpt,
    Crops,
    DeviceOpt,
    DownloadOpt,
    I3dWeightsOpt,
    OutputFormat,
    Precision,
    PrecisionOpt,
    VggishWeightsOpt,
    VideoStreamOpt,
    WeightsDirOpt,
    resolve_precision_option,
)

EXTENSIONS = " ".join(w.extension for w in WRITERS.values())
INDEX_NAME = "index.html"  # the many-video page written beside the reports

HELP = """Find violent segments in videos (several files, or a folder of videos).

Prints a summary per video: duration, whether audio was present, the violent segments
and a one-line verdict. Each 16-frame snippet (2/3 s) gets three scores in [0, 1]
(audio-visual, audio only, visual only); snippets scoring at or above --threshold form
segments.

Examples:

  violence-detect samples/calm_then_chaos.mp4

  violence-detect clip.mp4 --json > clip.json

  violence-detect clip.mp4 -o clip.srt --plot clip.png

  violence-detect videos/ --output-dir out/ --format csv --format vtt --crops 1

  violence-detect clip.mkv -o report.html --report-proxy
"""

OPT_GROUP_OUT = "Output"
OPT_GROUP_SEG = "Segments"
OPT_GROUP_MODEL = PANEL_MODEL


@dataclass
class Plan:
    """Where each video's exports go, decided (and checked) before any work."""

    output: Path | None = None
    output_dir: Path | None = None
    formats: list[str] = field(default_factory=list)
    plot: Path | None = None
    plot_dir: Path | None = None
    report_proxy: bool = False
    stems: dict[Path, str] = field(default_factory=dict)

    @property
    def index(self) -> Path | None:
        """``index.html`` in --output-dir when reports are written there."""
        return self.output_dir / INDEX_NAME if self.output_dir is not None and "html" in self.formats else None

    def targets(self, video: Path) -> tuple[list[tuple[str, Path]], Path | None]:
        from ..writers import format_for_path, get_writer

        exports: list[tuple[str, Path]] = []
        if self.output is not None:
            exports.append((format_for_path(self.output), self.output))
        if self.output_dir is not None:
            stem = self.stems[video]
            exports += [(fmt, self.output_dir / get_writer(fmt).file_name(stem)) for fmt in self.formats]
        plot = self.plot
        if self.plot_dir is not None:
            plot = self.plot_dir / f"{self.stems[video]}.timeline.png"
        return exports, plot


@app.command("detect", help=HELP, no_args_is_help=True)
@cli_errors
def detect_command(
    inputs: Annotated[
        list[Path], typer.Argument(metavar="VIDEO", help="Video files or folders of videos.", show_default=False)
    ],
    json_out: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print one JSON document on stdout (a list for several videos).",
            rich_help_panel=OPT_GROUP_OUT,
        ),
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help=f"Write one export; the format follows the extension ({EXTENSIONS}).",
            rich_help_panel=OPT_GROUP_OUT,
        ),
    ] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir",
            help="Write exports for every video into this existing folder, named after the video.",
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
        Path | None,
        typer.Option(
            "--plot",
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
    ] = 0.5,
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
    crops: Annotated[
        Crops,
        typer.Option(
            help="5: centre + corners, the published protocol; 1: centre only, ~5x faster.",
            rich_help_panel=OPT_GROUP_MODEL,
        ),
    ] = DEFAULT_CROPS_CHOICE,
    batch_size: Annotated[
        int | None, typer.Option(help="I3D clips per forward pass (memory vs speed).", rich_help_panel=OPT_GROUP_MODEL)
    ] = None,
    precision: PrecisionOpt = Precision.auto,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            help="MACIL-SD weights file (default: the published checkpoint).", rich_help_panel=OPT_GROUP_MODEL
        ),
    ] = None,
    i3d_weights: I3dWeightsOpt = None,
    vggish_weights: VggishWeightsOpt = None,
    weights_dir: WeightsDirOpt = None,
    download: DownloadOpt = True,
    video_stream: VideoStreamOpt = None,
    audio_stream: AudioStreamOpt = None,
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    from ..devices import resolve_device
    from ..pipeline import Detector, find_videos
    from ..protocol import I3D_WEIGHTS, MACIL_WEIGHTS, VGGISH_WEIGHTS
    from ..segments import check_params
    from ..weights import resolve_weight_files

    try:
        check_params(threshold, min_duration, merge_gap)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    resolved_device = resolve_device(device)
    resolved_precision = resolve_precision_option(precision, resolved_device)
    videos, failures = find_videos(inputs)
    batch = len(inputs) > 1 or any(p.is_dir() for p in inputs)
    plan = plan_outputs(videos, batch, output, output_dir, formats, plot, report_proxy)
    failed: list[tuple[str, str]] = []
    for path, exc in failures:
        console.error(exc.message, exc.hint)
        failed.append((path, exc.message))

    results: list[DetectionResult] = []
    if videos:
        show_progress = console.progress_enabled(quiet, json_out)
        with console.progress_bar(show_progress) as bar:
            loading = bar.add_task("loading the networks", total=None) if bar is not None else None
            weights = resolve_weight_files(
                {I3D_WEIGHTS: i3d_weights, VGGISH_WEIGHTS: vggish_weights, MACIL_WEIGHTS: checkpoint},
                weights_dir=weights_dir,
                download=download,
                progress=_download_progress(bar),
            )
            detector = Detector(
                device=resolved_device,
                crops=int(crops.value),
                batch_size=batch_size,
                precision=resolved_precision,
                weights=weights,
            )
            if bar is not None:
                bar.remove_task(loading)
            seen_warnings: set[str] = set()
            for video in videos:
                result = _run_one(
                    detector,
                    video,
                    plan,
                    bar,
                    seen_warnings,
                    failed,
                    threshold=threshold,
                    min_duration=min_duration,
                    merge_gap=merge_gap,
                    video_stream=video_stream,
                    audio_stream=audio_stream,
                )
                if result is None:
                    continue
                results.append(result)
                if not json_out:
                    print_summary(result)

    if plan.index is not None:
        _write_index(plan, results, failed)

    if json_out:
        from ..writers import batch_document

        if batch:
            document: dict[str, Any] | None = batch_document(results, failed)
        else:
            document = results[0].to_dict() if results else None
        if document is not None:
            typer.echo(json.dumps(document, indent=2, allow_nan=False))
    exit_code(len(failed))


def _run_one(
    detector: Any,
    video: Path,
    plan: Plan,
    bar: Any,
    seen_warnings: set[str],
    failed: list[tuple[str, str]],
    **options: Any,
) -> DetectionResult | None:
    """Score and export one video; a failure is reported and recorded, never raised."""
    from ..plot import plot_timeline
    from ..writers import get_writer

    task = bar.add_task(video.name, total=None) if bar is not None else None

    def progress(done: int, total: int | None) -> None:
        if bar is not None:
            bar.update(task, completed=done, total=total)

    try:
        result = detector.detect(video, progress=progress, **options)
        exports, plot_path = plan.targets(video)
        for fmt, target in exports:
            writer = _html_writer(result, target, plan.report_proxy, bar) if fmt == "html" else get_writer(fmt)
            writer.write(result, target)
        if plot_path is not None:
            plot_timeline(result, plot_path)
    except ViolenceDetectError as exc:
        console.error(exc.message, exc.hint)
        failed.append((str(video), exc.message))
        return None
    except OSError as exc:  # writing an export failed (disk full, permissions changed...)
        message = f"{video}: could not write an export: {exc}"
        console.error(message)
        failed.append((str(video), message))
        return None
    finally:
        if bar is not None:
            bar.remove_task(task)
    for warning in result.warnings:
        if warning not in seen_warnings:
            seen_warnings.add(warning)
            console.warn(warning)
    return result


def _html_writer(result: DetectionResult, target: Path, proxy: bool, bar: Any = None) -> Any:
    """The report's writer: it plays the video itself when browsers can, else a proxy (or says why not)."""
    from ..report import check_playback, make_proxy, proxy_path
    from ..writers import HtmlWriter

    source = Path(result.video.path)
    playback = check_playback(source, result.video.video_stream)
    if playback.safe:
        return HtmlWriter(source, playback)
    if not proxy:
        console.warn(
            f"{source.name}: {playback.reason}; the report's player may stay blank "
            "(--report-proxy writes a browser-safe copy beside the report)"
        )
        return HtmlWriter(source, playback)
    task = (
        bar.add_task(f"{source.name}: browser copy", total=result.video.duration or None) if bar is not None else None
    )
    try:
        copy = make_proxy(
            source,
            proxy_path(target),
            result.video.video_stream,
            result.video.audio_stream,
            progress=(lambda seconds: bar.update(task, completed=seconds)) if bar is not None else None,
        )
    finally:
        if bar is not None:
            bar.remove_task(task)
    return HtmlWriter(copy, check_playback(copy), source_playback=playback)


def _write_index(plan: Plan, results: list[DetectionResult], failed: list[tuple[str, str]]) -> None:
    """index.html over every video of the run: the scored ones link to their reports, failures say why."""
    from ..report import index_row, write_index
    from ..writers import get_writer

    assert plan.output_dir is not None and plan.index is not None
    by_path = {str(video): video for video in plan.stems}
    rows = []
    for result in results:
        video = by_path.get(result.video.path, Path(result.video.path))
        report = plan.output_dir / get_writer("html").file_name(plan.stems[video]) if video in plan.stems else None
        rows.append(index_row(result.video.path, plan.output_dir, result, report))
    rows += [index_row(path, plan.output_dir, error=message) for path, message in failed]
    try:
        write_index(rows, plan.index)
    except OSError as exc:
        message = f"{plan.index}: could not write the index: {exc}"
        console.error(message)
        failed.append((str(plan.index), message))


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
    videos: list[Path],
    batch: bool,
    output: Path | None,
    output_dir: Path | None,
    formats: list[OutputFormat] | None,
    plot: Path | None,
    report_proxy: bool = False,
) -> Plan:
    """Check every output location before any work: one-line errors, exit 1 (2 for misuse)."""
    from ..writers import format_for_path

    plan = Plan()
    if output is not None:
        if batch:
            raise UsageError("-o/--output takes one video; for several use --output-dir DIR")
        format_for_path(output)  # an unknown extension is a usage error, before any work
        _check_writable_file(output)
        plan.output = output
    if formats and output_dir is None:
        raise UsageError("--format needs --output-dir DIR (or use -o FILE with an extension)")
    if output_dir is not None:
        _check_writable_dir(output_dir, "--output-dir")
        chosen = [f.value for f in (formats or [OutputFormat("json")])]
        plan.formats = list(FORMATS) if ALL_FORMATS in chosen else list(dict.fromkeys(chosen))
        plan.output_dir = output_dir
    wants_html = "html" in plan.formats or (output is not None and format_for_path(output) == "html")
    if report_proxy and not wants_html:
        raise UsageError("--report-proxy goes with an HTML report: -o report.html or --output-dir DIR --format html")
    plan.report_proxy = report_proxy
    if plot is not None:
        if plot.is_dir():
            _check_writable_dir(plot, "--plot")
            plan.plot_dir = plot
        elif batch:
            raise UsageError("--plot FILE takes one video; for several give an existing folder: --plot DIR")
        else:
            _check_writable_file(plot)
            plan.plot = plot
    # a video called index.mp4 must not overwrite the index page
    plan.stems = unique_stems(videos, reserved={Path(INDEX_NAME).stem} if plan.index is not None else set())
    return plan


def unique_stems(videos: list[Path], reserved: set[str] = frozenset()) -> dict[Path, str]:  # type: ignore[assignment]
    """Export names per video: the file's stem, with -2, -3... when two videos share one (or it is reserved)."""
    stems: dict[Path, str] = {}
    used: set[str] = set(reserved)
    for video in videos:
        stem, n = video.stem, 1
        while stem in used:
            n += 1
            stem = f"{video.stem}-{n}"
        used.add(stem)
        stems[video] = stem
    return stems


def _probe_write(folder: Path, message: str) -> None:
    """Create and drop a temporary file in ``folder``; ``message`` (plus the reason) if that fails."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ViolenceDetectError(f"{message} ({exc.strerror or exc})") from None


def _check_writable_dir(folder: Path, option: str) -> None:
    if not folder.exists():
        raise ViolenceDetectError(f"{option} {folder}: no such folder", hint="create it first")
    if not folder.is_dir():
        raise ViolenceDetectError(f"{option} {folder}: not a folder")
    _probe_write(folder, f"{option} {folder}: cannot write here")


def _check_writable_file(path: Path) -> None:
    if path.is_dir():
        raise ViolenceDetectError(f"{path}: is a folder, expected a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise ViolenceDetectError(f"{path}: the folder {parent} does not exist", hint="create it first")
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
    out.print(f"[bold]{escape(v.path)}[/]")
    out.print(
        f"  duration {_clock(v.duration)} ({v.duration:.1f} s) · {v.width}x{v.height} · {v.fps:g} fps · audio: {audio}"
    )
    out.print(
        f"  scored {v.n_snippets} snippet{'s' if v.n_snippets != 1 else ''} ({v.scored_duration:.1f} s) · threshold {result.params.threshold:g} · "
        f"{result.params.crops} crop{'s' if result.params.crops != 1 else ''} · {result.params.device} "
        f"{result.params.precision}"
    )
    if result.segments:
        table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
        for col in ("#", "start", "end", "length", "peak", "mean"):
            table.add_column(col, justify="right")
        for n, seg in enumerate(result.segments, 1):
            table.add_row(
                str(n),
                _clock(seg.start),
                _clock(seg.end),
                f"{seg.duration:.1f} s",
                f"{seg.peak:.2f}",
                f"{seg.mean:.2f}",
            )
        out.print(table)
    color = "red" if result.verdict == "violent" else "green"
    out.print(f"  [bold {color}]{escape(result.summary())}[/]")
    out.print()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(max(seconds, 0.0), 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:04.1f}" if hours else f"{minutes}:{secs:04.1f}"

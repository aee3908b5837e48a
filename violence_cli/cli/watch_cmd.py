"""``violence-detect watch SOURCE``: score a live stream, a camera or a file played in real time.

A thin layer over :class:`violence_cli.live.LiveMonitor`: check the options, load the
networks, then print each update as it comes: JSON lines (``--json``) or alert lines on
stdout, a Rich live view (scores, sparkline, last alerts) or plain status lines on stderr.
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
import time
from collections import deque
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from .. import console
from ..errors import UsageError
from ..messages import count, own_model_notes, unpublished_warnings
from ..protocol import DEFAULT_THRESHOLD
from ..timefmt import clock
from ._app import app, cli_errors
from .detect_cmd import _check_writable_dir
from .options import (
    DEFAULT_MODEL_CHOICE,
    PANEL_MODEL,
    AudioStreamOpt,
    CheckpointOpt,
    Crops,
    DeviceOpt,
    DownloadOpt,
    I3dWeightsOpt,
    ModelOpt,
    Precision,
    PrecisionOpt,
    VggishWeightsOpt,
    VideoStreamOpt,
    WeightsDirOpt,
    check_segment_options,
    model_checkpoints,
)
from .wording import cli_words

PANEL_SOURCE = "Source"
PANEL_ALERTS = "Alerts"
PANEL_OUT = "Output"
SPARK = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 48  # snippets in the live view's sparkline (32 s)
CLIP_LIMIT = 30.0  # s: the most --clip-before / --clip-after may ask for

HELP = """Score a live source as it plays: every 16-frame snippet (2/3 s) gets its scores a moment
after it ends, from the last --window snippets only.

SOURCE: an rtsp://, rtmp://, http(s)://, udp:// or srt:// URL, a capture device
(/dev/video0, Linux), or a video file (--realtime plays it at its own pace, as if live).
Opening and reading time out after --timeout seconds; network sources reconnect with
backoff after a disconnect, a stall or the end of the stream (--no-reconnect to stop).
When scoring falls behind, the oldest frames are dropped (and counted).

Alerts: a violent segment starts once snippets at or above --threshold have lasted
--min-duration seconds, and ends at the first snippet below it; each start and end is one
event (printed, passed to --on-alert, clipped by --save-clips). Stop with Ctrl-C or
--duration.

Examples:

\b
  violence-detect watch rtsp://camera.local/stream --on-alert ./alert.sh
  violence-detect watch udp://127.0.0.1:5000 --json > scores.jsonl
  violence-detect watch clip.mp4 --realtime --save-clips alerts/ \\
      --min-duration 2
  violence-detect watch rtsp://camera.local/stream --model hypervd
      (HyperVD instead of MACIL-SD: one forward per snippet)
"""


class RtspTransport(str, Enum):
    tcp = "tcp"
    udp = "udp"


@app.command("watch", help=HELP, no_args_is_help=True)
@cli_errors
def watch_command(
    source: Annotated[
        str, typer.Argument(metavar="SOURCE", help="URL, /dev/videoN or video file.", show_default=False)
    ],
    realtime: Annotated[
        bool, typer.Option("--realtime", help="Play a file at its own pace, as if live.", rich_help_panel=PANEL_SOURCE)
    ] = False,
    timeout: Annotated[
        float,
        typer.Option(help="Seconds to wait when opening, and of silence before a stall.", rich_help_panel=PANEL_SOURCE),
    ] = 10.0,
    reconnect: Annotated[
        bool | None,
        typer.Option(
            "--reconnect/--no-reconnect",
            help="Reconnect after a disconnect, stall or end of stream.  [default: on for URLs and devices, off for files]",
            show_default=False,
            rich_help_panel=PANEL_SOURCE,
        ),
    ] = None,
    rtsp_transport: Annotated[
        RtspTransport, typer.Option(help="RTSP transport.", rich_help_panel=PANEL_SOURCE)
    ] = RtspTransport.tcp,
    duration: Annotated[
        float | None,
        typer.Option(help="Stop after this many seconds of watching.", rich_help_panel=PANEL_SOURCE),
    ] = None,
    window: Annotated[
        int,
        typer.Option(
            min=1, metavar="N", help="Snippets of context for each score (64 = 43 s).", rich_help_panel=PANEL_MODEL
        ),
    ] = 64,
    json_out: Annotated[
        bool,
        typer.Option(
            "--json",
            help="One JSON object per line on stdout: each snippet's scores, times, latency.",
            rich_help_panel=PANEL_OUT,
        ),
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="No live view or status lines (errors still show).", rich_help_panel=PANEL_OUT
        ),
    ] = False,
    threshold: Annotated[
        float,
        typer.Option(help="A snippet is violent at or above this score.", rich_help_panel=PANEL_ALERTS),
    ] = DEFAULT_THRESHOLD,
    min_duration: Annotated[
        float,
        typer.Option(help="Seconds a violent run must last before it is an alert.", rich_help_panel=PANEL_ALERTS),
    ] = 0.0,
    on_alert: Annotated[
        str | None,
        typer.Option(
            metavar="CMD",
            help="Run CMD (split like a shell would, run without one) for each event, the event JSON on its stdin.",
            rich_help_panel=PANEL_ALERTS,
        ),
    ] = None,
    save_clips: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="Write an MP4 (with the audio) around each alert into this folder (created if missing).",
            rich_help_panel=PANEL_ALERTS,
        ),
    ] = None,
    clip_before: Annotated[
        float,
        typer.Option(
            help=f"Seconds of video before a segment in its clip (at most {CLIP_LIMIT:g}).",
            rich_help_panel=PANEL_ALERTS,
        ),
    ] = 3.0,
    clip_after: Annotated[
        float,
        typer.Option(
            help=f"Seconds of video after a segment in its clip (at most {CLIP_LIMIT:g}).", rich_help_panel=PANEL_ALERTS
        ),
    ] = 3.0,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = Precision.auto,
    crops: Annotated[
        Crops | None,  # the choices detect takes, so a bad one is the same usage error
        typer.Option(
            metavar="5|1",
            help="Crops per snippet, as for detect.  [default: 1 on a CPU, 5 on a GPU]",
            show_default=False,
            rich_help_panel=PANEL_MODEL,
        ),
    ] = None,
    model: ModelOpt = DEFAULT_MODEL_CHOICE,
    checkpoint: CheckpointOpt = None,
    i3d_weights: I3dWeightsOpt = None,
    vggish_weights: VggishWeightsOpt = None,
    weights_dir: WeightsDirOpt = None,
    download: DownloadOpt = True,
    video_stream: VideoStreamOpt = None,
    audio_stream: AudioStreamOpt = None,
) -> None:
    from ..devices import resolve_device
    from ..live import AlertHook, ClipRecorder, LiveMonitor, LiveOptions, parse_source
    from ..pipeline import Detector
    from .options import resolve_precision_option

    _check_numbers(timeout, duration, threshold, min_duration, clip_before, clip_after)
    spec = parse_source(source, realtime)
    hook_argv = _hook_command(on_alert)
    if save_clips is not None:
        _check_writable_dir(save_clips, "--save-clips", create=True)
    torch_device = resolve_device(device)
    resolved_precision = resolve_precision_option(precision, torch_device)
    n_crops = int(crops.value) if crops is not None else (5 if torch_device.type == "cuda" else 1)
    options = LiveOptions(
        window=window,
        threshold=threshold,
        min_duration=min_duration,
        duration=duration,
        timeout=timeout,
        reconnect=reconnect,
        rtsp_transport=rtsp_transport.value,
        video_stream=video_stream,
        audio_stream=audio_stream,
    )
    view_on = console.progress_enabled(quiet, json_out)
    say = (lambda _m: None) if quiet else console.info
    say(f"loading the networks ({n_crops} crop{'s' if n_crops > 1 else ''}, {torch_device}, {resolved_precision})")
    detector = Detector(
        device=torch_device,
        crops=n_crops,
        precision=resolved_precision,
        model=model.value,
        checkpoint=list(model_checkpoints(model.value, checkpoint).values()),
        i3d_weights=i3d_weights,
        vggish_weights=vggish_weights,
        weights_dir=weights_dir,
        download=download,
    )
    for note in own_model_notes(detector.weights):
        say(note)
    for warning in unpublished_warnings(detector.weights, detector.weights_problems):
        console.warn(warning)

    monitor: LiveMonitor
    hook = AlertHook(hook_argv, lambda m: monitor.note("warning", cli_words(m, ("on_alert",)))) if hook_argv else None
    clips = None
    if save_clips is not None:
        clips = ClipRecorder(
            save_clips,
            lambda path, error: monitor.note("clip", f"clip written: {path}" if path else str(error)),
            before=clip_before,
            after=clip_after,
            reach=min_duration + 10.0,
        )
    monitor = LiveMonitor(spec, detector, options, hook=hook, clips=clips)
    view = LiveView(spec.label, threshold, window) if view_on else None
    say(f"opening {spec.label} (timeout {timeout:g} s)")
    interrupted: KeyboardInterrupt | None = None
    try:
        _run(monitor, view, json_out, quiet)
    except KeyboardInterrupt as exc:
        interrupted = exc
    finally:
        if view is not None:
            view.stop()
    for event in monitor.final_events:
        _print_event(event, json_out)
    for note in monitor.pending_notes():
        _status(note, quiet)
    s = monitor.summary
    if not quiet:
        lat = _percentiles(s.latencies)
        console.info(
            f"{'stopped' if interrupted is not None else 'done'}: {count(s.snippets, 'snippet')} in {s.seconds:.1f} s, "
            f"latency median {lat[0]:.2f} s, p95 {lat[1]:.2f} s, {count(s.dropped_frames, 'frame')} dropped ({count(s.skipped_snippets, 'snippet')} skipped), "
            f"{count(s.reconnects, 'reconnect')}, {count(s.alerts, 'alert')}" + (f", {count(len(s.clips), 'clip')}" if clips is not None else "")
        )
    if interrupted is not None and type(interrupted) is not KeyboardInterrupt:
        raise interrupted  # SIGTERM and the like keep their own exit code
    if s.lost:
        raise typer.Exit(1)  # the source went away and --no-reconnect said not to wait for it


def _check_numbers(
    timeout: float, duration: float | None, threshold: float, min_duration: float, before: float, after: float
) -> None:
    """Ranges of the float options (finiteness is checked for every command by the group)."""
    if timeout <= 0:
        raise UsageError(f"--timeout {timeout:g}: expected a positive number of seconds")
    if duration is not None and duration < 0:
        raise UsageError(f"--duration {duration:g}: expected seconds >= 0")
    check_segment_options(threshold, min_duration)
    for name, value in (("--clip-before", before), ("--clip-after", after)):
        if not 0.0 <= value <= CLIP_LIMIT:
            raise UsageError(f"{name} {value:g}: expected seconds between 0 and {CLIP_LIMIT:g}")


def _hook_command(on_alert: str | None) -> list[str] | None:
    if on_alert is None:
        return None
    try:
        argv = shlex.split(on_alert)
    except ValueError as exc:
        raise UsageError(f"--on-alert {on_alert!r}: {exc}") from None
    if not argv:
        raise UsageError("--on-alert: empty command")
    if shutil.which(argv[0]) is None:
        raise UsageError(f"--on-alert: command not found: {argv[0]}", hint="give a program on PATH or its full path")
    return argv


def _run(monitor: Any, view: LiveView | None, json_out: bool, quiet: bool) -> None:

    updates = monitor.updates()
    try:
        _print_updates(updates, view, json_out, quiet)
    finally:
        updates.close()  # Ctrl-C while printing: stop the reader, finish clips and hooks now


def _print_updates(updates: Any, view: LiveView | None, json_out: bool, quiet: bool) -> None:
    from ..live import SnippetScore

    for update in updates:
        if isinstance(update, SnippetScore):
            if json_out:
                typer.echo(json.dumps(update.to_dict(), allow_nan=False))
            for event in update.events:
                if not json_out:
                    _print_event(event, json_out, view)
                if view is not None:
                    view.alert(event)
            if view is not None:
                view.snippet(update)
        elif view is not None:
            view.status(update)
        else:
            _status(update, quiet)


def _status(update: Any, quiet: bool) -> None:
    if update.kind in ("warning",):
        console.warn(update.message)
    elif not quiet:
        console.info(update.message)


def _print_event(event: Any, json_out: bool, view: LiveView | None = None) -> None:
    """An alert event on stdout: one line of text (with --json, the final end event as JSON).
    While the live view is drawn on the same terminal, the line goes through the view's
    console, which prints it above the view and redraws the view below (written straight
    to stdout it landed inside the view and the next redraw left stale lines)."""
    if json_out:
        typer.echo(json.dumps(event.to_dict(), allow_nan=False))
        return
    when = time.strftime("%H:%M:%S", time.localtime(event.wall_time))
    if event.kind == "start":
        line = f"{when}  violence #{event.segment} started at {clock(event.start)} (peak {event.peak:.2f})"
    else:
        line = (
            f"{when}  violence #{event.segment} ended: {clock(event.start)}-{clock(event.end or event.start)} "
            f"(peak {event.peak:.2f}, mean {event.mean:.2f}{', stopped' if event.reason == 'stopped' else ''})"
        )
    if view is not None and view.shares_stdout:
        view.above(line)
    else:
        typer.echo(line)


def _heads(u: Any) -> str:
    """The live view's audio / visual scores, or nothing for a model without those heads."""
    if u.audio_score is None or u.visual_score is None:
        return ""
    return f"audio {u.audio_score:.2f}  visual {u.visual_score:.2f}  "


def _percentiles(values: list[float]) -> tuple[float, float]:
    if not values:
        return 0.0, 0.0
    import numpy as np

    return float(np.median(values)), float(np.percentile(values, 95))


def sparkline(scores: list[float]) -> str:
    """One block character per score in [0, 1]."""
    return "".join(SPARK[min(len(SPARK) - 1, max(0, int(s * len(SPARK))))] for s in scores)


class LiveView:
    """The Rich live view on stderr: scores, a sparkline, the source's state, the last alerts."""

    def __init__(self, label: str, threshold: float, window: int) -> None:
        from rich.live import Live

        self.label, self.threshold, self.window = label, threshold, window
        self.scores: deque[float] = deque(maxlen=SPARK_WIDTH)
        self.alerts: deque[str] = deque(maxlen=5)
        self.last: Any = None
        self.state = "connecting"
        # asked before the view starts: Live replaces sys.stdout with a proxy whose isatty() is
        # always False before rich 15 (Textualize/rich#4041), and the alert lines then went
        # straight to the terminal, into the view
        self.shares_stdout = sys.stdout.isatty()  # stdout is a terminal too: alert lines go above the view
        self.live = Live(self._render(), console=console.stderr, refresh_per_second=4, transient=False)
        self.live.start()

    def snippet(self, update: Any) -> None:
        self.last = update
        self.scores.append(update.score)
        self.live.update(self._render())

    def alert(self, event: Any) -> None:
        when = time.strftime("%H:%M:%S", time.localtime(event.wall_time))
        what = "started" if event.kind == "start" else "ended"
        self.alerts.append(
            f"{when} #{event.segment} {what} at {clock(event.start if event.kind == 'start' else event.end or 0)}"
        )
        self.live.update(self._render())

    def status(self, update: Any) -> None:
        if update.kind == "warning":
            self.live.console.print(f"[yellow]warning:[/] {_esc(update.message)}")
        else:
            self.state = update.kind
            self.live.console.print(_esc(update.message))
        self.live.update(self._render())

    def above(self, line: str) -> None:
        """A line of plain text above the view (the view is redrawn below it). A Text, not
        ``markup=False``: print's options also render the view redrawn with the line, whose
        own markup then showed as text ("[dim]connected[/]") until the next refresh."""
        from rich.text import Text

        self.live.console.print(Text(line))

    def stop(self) -> None:
        self.live.stop()

    def _render(self) -> Any:
        from rich.table import Table
        from rich.text import Text

        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column()
        grid.add_row("source", f"{_esc(self.label)}  [dim]{self.state}[/]")
        u = self.last
        if u is not None:
            colour = "red" if u.score >= self.threshold else "green"
            grid.add_row(
                "score",
                f"[{colour}]{u.score:.2f}[/]  {_heads(u)}"
                f"[dim]at {clock(u.end)} · latency {u.latency:.2f} s · dropped {u.dropped_frames} · "
                f"window {u.window}/{self.window}[/]",
            )
            grid.add_row("trend", Text(sparkline(list(self.scores)), style=colour))
        grid.add_row("alerts", _esc("\n".join(self.alerts)) if self.alerts else "[dim]none yet[/]")
        return grid


def _esc(text: str) -> str:
    from rich.markup import escape

    return escape(text)

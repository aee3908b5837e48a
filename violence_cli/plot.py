"""``--plot``: a timeline picture of one result (matplotlib, Agg backend, no pyplot state).

The three score curves over time (audio-visual bold, audio-only and visual-only thin),
the threshold as a dashed line, and the violent segments shaded.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from .atomic import atomic_open, escaped
from .models import MODEL_TITLES
from .schema import DetectionResult
from .timefmt import clock

COLORS = {"av": "#c0392b", "audio": "#2e86c1", "visual": "#27ae60", "segment": "#f5b7b1"}

# Time-axis tick spacings in seconds, from 1/4 s to 6 h: the first that gives at most
# MAX_TICKS intervals over the plotted span is used.
TICK_STEPS = (0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600)
MAX_TICKS = 10


def tick_step(span: float, max_ticks: int = MAX_TICKS) -> float:
    """Seconds between time-axis ticks for a plot ``span`` seconds long."""
    for step in TICK_STEPS:
        if span / step <= max_ticks:
            return float(step)
    return float(TICK_STEPS[-1] * math.ceil(span / (TICK_STEPS[-1] * max_ticks)))


def time_axis(span: float, begin: float = 0.0) -> tuple[list[float], list[str], str]:
    """(tick positions in s, their labels, axis label) for a time axis from ``begin`` to ``span`` s
    (``begin`` > 0 when only part of a video was scored: ``--start``)."""
    step = tick_step(span - begin)
    hours = span >= 3600
    first = math.ceil(begin / step - 1e-9)
    ticks = [i * step for i in range(first, int(span // step + 1e-9) + 1)]
    unit = "h:mm:ss" if hours else "m:ss"
    decimals = 0 if step >= 1 else 2
    return ticks, [clock(t, decimals, hours=hours) for t in ticks], f"time in the video ({unit})"


def plot_timeline(result: DetectionResult, path: str | os.PathLike[str], title: str | None = None) -> Path:
    """Write the timeline as an image; the format follows the extension (``.png``, ``.svg``, ``.pdf``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    fig = Figure(figsize=(11, 4), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()

    # step curves: each score holds over its snippet [start, end)
    xs = [s.start for s in result.snippets] + [result.snippets[-1].end] if result.snippets else []

    def curve(values: list[float]) -> list[float]:
        return values + values[-1:]

    for seg in result.segments:
        ax.axvspan(seg.start, seg.end, color=COLORS["segment"], alpha=0.6, lw=0, zorder=0)
    heads = not result.scores_note  # a model without audio / visual heads: the one score only
    if xs and heads:
        ax.step(
            xs,
            curve([s.audio_score for s in result.snippets]),
            where="post",
            color=COLORS["audio"],
            lw=1.2,
            alpha=0.9,
            label="audio only" if result.video.has_audio else "audio only (no audio: silence)",
        )
        ax.step(
            xs,
            curve([s.visual_score for s in result.snippets]),
            where="post",
            color=COLORS["visual"],
            lw=1.2,
            alpha=0.9,
            label="visual only",
        )
    if xs:
        ax.step(
            xs,
            curve([s.score for s in result.snippets]),
            where="post",
            color=COLORS["av"],
            lw=2.4,
            label="audio-visual (used)" if heads else f"{MODEL_TITLES.get(result.params.model)} score (used)",
        )
    if xs and not heads:
        ax.plot([], [], " ", label=f"no audio / visual curves:\n{result.scores_note}")
    threshold = result.params.threshold
    ax.axhline(threshold, color="black", ls="--", lw=1, label=f"threshold {threshold:g}")

    handles, labels = ax.get_legend_handles_labels()
    if result.segments:
        handles.append(Patch(color=COLORS["segment"], alpha=0.6))
        labels.append("violent segment")
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=10)

    end = max(result.video.scored_duration, xs[-1] if xs else 0.0, 1e-3)
    begin = min(xs[0], end - 1e-3) if xs else 0.0  # the part scored (--start) fills the plot
    ax.set_xlim(begin, end)
    ax.set_ylim(-0.02, 1.02)
    ticks, tick_labels, axis_label = time_axis(end, begin)
    ax.set_xticks(ticks, tick_labels)
    ax.set_xlabel(axis_label, fontsize=11)
    ax.set_ylabel("violence score", fontsize=11)
    ax.grid(True, axis="y", alpha=0.3)
    ax.tick_params(labelsize=10)
    name = Path(result.video.path).name
    text = title or f"{name}: {result.summary()}"
    ax.set_title(escaped(text), fontsize=11, loc="left")  # a non-UTF-8 name: \udcXX, as in JSON

    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format=fmt)
    return path

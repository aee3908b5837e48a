"""``index.html`` for a many-video run: one row per video, linking to its report.

Built over a plain list of :class:`IndexRow` (one per video: a result, or the reason it
failed), so any runner can call :func:`write_index`. The table sorts by clicking a header
(peak score, violent seconds, duration, name); each row has a small SVG sparkline of the
audio-visual scores (the highest score per bucket, so short peaks stay visible).
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .._version import __version__
from ..atomic import ESCAPED, atomic_open
from ..messages import count
from ..schema import DetectionResult
from ..timefmt import clock
from ._assets import asset
from .page import media_url

SPARK_POINTS = 120  # buckets in a sparkline
SPARK_W, SPARK_H = 160, 28  # px


@dataclass
class IndexRow:
    """One video of a run: what the index shows. ``error`` set means it failed (no report)."""

    video: str  # the input path as given
    report: str | None = None  # href of its report, relative to the index
    duration: float | None = None  # s
    peak: float | None = None  # highest audio-visual score
    violent_seconds: float | None = None
    segments: int | None = None
    verdict: str | None = None
    verified: bool | None = None  # weights verified
    threshold: float | None = None
    scores: list[float] = field(default_factory=list)  # the sparkline: at most SPARK_POINTS bucket maxima
    error: str | None = None
    label: str | None = None  # shown instead of the file name (e.g. ``cam1/a.mp4`` in a recursive run)


def index_row(
    video: str | os.PathLike[str],
    index_dir: str | os.PathLike[str],
    result: DetectionResult | None = None,
    report: str | os.PathLike[str] | None = None,
    error: str | None = None,
) -> IndexRow:
    """The row of one video: from its ``result`` and ``report`` file, or from its ``error``."""
    if result is None:
        return IndexRow(video=str(video), error=error or "failed")
    return IndexRow(
        video=str(video),
        report=media_url(report, index_dir) if report is not None else None,
        duration=result.video.duration,
        peak=result.max_score,
        violent_seconds=result.violent_seconds,
        segments=len(result.segments),
        verdict=result.verdict,
        verified=result.weights_verified,
        threshold=result.params.threshold,
        scores=spark_values([s.score for s in result.snippets]),
        error=error,
    )


def spark_values(scores: list[float]) -> list[float]:
    """``scores`` cut into at most SPARK_POINTS buckets, the highest of each (a short peak stays
    visible); what a row keeps, so an index over thousands of long videos stays small."""
    n = len(scores)
    buckets = min(SPARK_POINTS, n)
    return [max(scores[b * n // buckets : (b + 1) * n // buckets]) for b in range(buckets)]  # buckets <= n


def folder_rows(
    out_dir: str | os.PathLike[str], table: list[dict[str, str]], index_stem: str = "index"
) -> list[IndexRow]:
    """Index rows for every video a results table lists (``results.csv`` rows: ``name``, ``path``,
    ``status``, ``error``, ``duration``, ``peak_score``, ``violent_seconds``, ``segments``).

    The table is the output folder's whole story (every shard, earlier runs), so the index
    covers them all. A video's report is ``NAME.html`` (``index-2.html`` for a video named
    ``index``); its sparkline, verdict and weights come from ``NAME.json`` when it is there.
    """
    out_dir = Path(out_dir)
    rows = []
    for entry in table:
        name, path = entry.get("name", ""), entry.get("path", "")
        if entry.get("status") != "done":
            rows.append(IndexRow(video=path or name, error=entry.get("error") or "failed"))
            continue
        report = out_dir / f"{name}-2.html" if name == index_stem else out_dir / f"{name}.html"
        result = None
        try:
            result = DetectionResult.from_dict(json.loads((out_dir / f"{name}.json").read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            pass
        if result is not None:
            row = index_row(path or result.video.path, out_dir, result, report if report.is_file() else None)
        else:
            row = IndexRow(
                video=path or name,
                report=media_url(report, out_dir) if report.is_file() else None,
                duration=_number(entry.get("duration")),
                peak=_number(entry.get("peak_score")),
                violent_seconds=_number(entry.get("violent_seconds")),
                segments=int(_number(entry.get("segments")) or 0),
            )
            row.verdict = "violent" if row.segments else "non-violent"
        if "/" in name:  # a video in a subfolder: show where, as the output names do
            row.label = name + Path(path).suffix
        rows.append(row)
    return rows


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def sparkline(scores: list[float], threshold: float | None = None) -> str:
    """An inline SVG of ``scores`` (0..1), at most SPARK_POINTS buckets (max per bucket)."""
    if not scores:
        return ""
    tops = spark_values(scores)
    if len(tops) == 1:  # a polyline of one point draws nothing: a level line across instead
        tops = tops * 2
    buckets = len(tops)
    step = SPARK_W / (buckets - 1)
    points = " ".join(f"{i * step:.1f},{(1 - v) * (SPARK_H - 2) + 1:.1f}" for i, v in enumerate(tops))
    line = ""
    if threshold is not None:
        y = (1 - threshold) * (SPARK_H - 2) + 1
        line = f'<line x1="0" x2="{SPARK_W}" y1="{y:.1f}" y2="{y:.1f}" stroke="#888" stroke-dasharray="3 2"/>'
    return (
        f'<svg class="spark" width="{SPARK_W}" height="{SPARK_H}" viewBox="0 0 {SPARK_W} {SPARK_H}" role="img" '
        f'aria-label="scores over time">{line}<polyline fill="none" stroke="#c0392b" stroke-width="1.5" '
        f'points="{points}"/></svg>'
    )


def render_index(rows: list[IndexRow], title: str = "violence-detect results") -> str:
    """The index page of ``rows`` (a string of HTML)."""
    done = [r for r in rows if r.error is None]
    failed = [r for r in rows if r.error is not None]
    body = [
        f"<h1>{_e(title)}</h1>",
        f'<p class="counts">{count(len(done), "video")} scored'
        f"{f', {len(failed)} failed' if failed else ''} · "
        f"{sum(1 for r in done if r.verdict == 'violent')} violent</p>",
    ]
    if any(r.verified is False for r in done):
        body.insert(
            0,
            '<div class="banner" role="alert"><b>Unverified weights</b>: some results were made with weights '
            "that are not the published files; their scores are not those of the published model.</div>",
        )
    if done:
        body.append(_table(done))
    if failed:
        items = "".join(f"<li>{_failure(r)}</li>" for r in failed)
        body.append(f'<section id="failures"><h2>Failed</h2><ul>{items}</ul></section>')
    body.append(f"<footer>violence-detect {_e(__version__)}</footer>")
    return _PAGE.format(title=_e(title), css=asset("index.css"), body="\n".join(body), script=asset("index.js"))


def write_index(rows: list[IndexRow], path: str | os.PathLike[str], title: str = "violence-detect results") -> Path:
    """Write ``index.html`` (atomically) listing ``rows``; returns the path."""
    with atomic_open(path, "w", encoding="utf-8", errors=ESCAPED) as handle:  # non-UTF-8 names: \udcXX
        handle.write(render_index(rows, title))
    return Path(path)


def _table(rows: list[IndexRow]) -> str:
    head = (
        '<thead><tr><th data-key="name" data-type="text">video</th><th data-key="verdict" data-type="text">verdict</th>'
        '<th data-key="peak">peak</th><th data-key="violent">violent s</th><th data-key="segments">segments</th>'
        '<th data-key="duration">duration</th><th>scores</th></tr></thead>'
    )
    lines = []
    for r in sorted(rows, key=lambda r: -(r.peak or 0.0)):
        name = r.label or Path(r.video).name
        link = f'<a href="{_e(r.report)}">{_e(name)}</a>' if r.report else _e(name)
        unverified = ' <b class="warn" title="unverified weights">!</b>' if r.verified is False else ""
        lines.append(
            f'<tr data-name="{_e(name.lower())}" data-verdict="{_e(r.verdict)}" data-peak="{r.peak or 0:.6f}" '
            f'data-violent="{r.violent_seconds or 0:.3f}" data-segments="{r.segments or 0}" '
            f'data-duration="{r.duration or 0:.3f}">'
            f'<td class="name" title="{_e(r.video)}">{link}{unverified}</td>'
            f'<td class="{_e(r.verdict)}">{_e(r.verdict)}</td><td>{r.peak or 0:.2f}</td>'
            f"<td>{r.violent_seconds or 0:.1f}</td><td>{r.segments or 0}</td><td>{clock(r.duration or 0, 0)}</td>"
            f"<td>{sparkline(r.scores, r.threshold)}</td></tr>"
        )
    return f'<table id="videos">{head}<tbody>{"".join(lines)}</tbody></table>'


def _failure(row: IndexRow) -> str:
    """``path: reason``, without naming the path twice when the reason already starts with it."""
    reason = row.error or "failed"
    if reason.startswith(row.video):
        return f"<code>{_e(row.video)}</code>{_e(reason[len(row.video) :])}"
    return f"<code>{_e(row.video)}</code>: {_e(reason)}"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; \
script-src 'unsafe-inline'">
<title>{title}</title>
<style>
{css}
</style>
</head>
<body>
{body}
<script>
{script}
</script>
</body>
</html>
"""

"""One result as one self-contained HTML page: the video beside its score timeline.

The page is built with the standard library: the header and the segments table as HTML,
the result inlined as JSON (``<`` written as ``\\u003c``, so no ``</script>`` can end the
block early), and the timeline drawn by a small script on a canvas (fast for 16,200
snippets). The CSS and the script are package data (``assets/``) inlined into the page:
nothing is fetched from the network. The video is referenced, never embedded, by a URL
relative to the report's folder.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .._version import __version__
from ..messages import count
from ..models import MODEL_TITLES
from ..schema import DetectionResult, Segment
from ..timefmt import clock
from ._assets import asset
from .playback import Playback

HEARD, SEEN, BOTH = "heard", "seen", "both"
UNKNOWN = "unknown"  # the model has no audio-only / visual-only score to tell


def media_url(media: str | os.PathLike[str], report_dir: str | os.PathLike[str]) -> str:
    """The ``src`` of the player: ``media`` relative to ``report_dir``, percent-encoded.

    Spaces, ``#``, ``?`` and non-ASCII names are encoded; ``/`` separates folders. Where no
    relative path exists (another drive on Windows) the absolute ``file:`` URL is used.
    """
    media = Path(media).absolute()
    try:
        rel = os.path.relpath(media, Path(report_dir).absolute())
    except ValueError:
        return media.as_uri()
    return quote(Path(rel).as_posix(), safe="/", errors="surrogateescape")  # a non-UTF-8 name: its own bytes


def inline_json(data: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: no ``<``, ``>`` or ``&`` left raw."""
    text = json.dumps(data, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return text


def segment_driver(result: DetectionResult, segment: Segment) -> str:
    """Which modality drove a segment: ``heard`` (audio alone reaches the threshold on
    average), ``seen`` (the picture alone does), or ``both`` (both do, or neither alone:
    only the two together reach it). A video without audio is never ``heard``."""
    if result.scores_note:
        return UNKNOWN
    inside = [s for s in result.snippets if segment.start <= s.start < segment.end]
    if not inside:
        return BOTH
    threshold = result.params.threshold
    audio = sum(s.audio_score for s in inside) / len(inside) if result.video.has_audio else 0.0
    visual = sum(s.visual_score for s in inside) / len(inside)
    if audio >= threshold and visual < threshold:
        return HEARD
    if visual >= threshold and audio < threshold:
        return SEEN
    return BOTH


def _clock(seconds: float, hours: bool) -> str:
    """``m:ss.s``, or ``h:mm:ss`` for a long video (the page's script writes the same)."""
    return clock(seconds, 0 if hours else 1, hours=hours)


def timeline_extent(result: DetectionResult) -> float:
    """Seconds the timeline spans: the video's duration, or what was scored if longer/unknown."""
    last = result.snippets[-1].end if result.snippets else 0.0
    return max(result.video.duration, result.video.scored_duration, last, 1e-3)


def render_report(
    result: DetectionResult,
    report_dir: str | os.PathLike[str],
    media: str | os.PathLike[str] | None = None,
    playback: Playback | None = None,
    source_playback: Playback | None = None,
) -> str:
    """The HTML page of ``result``, for a file written into ``report_dir``.

    ``media``: the file the player plays (default: the analysed video itself; a proxy
    otherwise); ``playback``: what :func:`~violence_cli.report.playback.check_playback`
    said of it (None: not known, e.g. the file is not on this machine); ``source_playback``:
    the same for the analysed video when ``media`` is a proxy of it.
    A result scored from features alone (``result.from_features_alone``) has no video: the
    page shows the timeline without a player.
    """
    media = Path(media) if media is not None else Path(result.video.path)
    long_video = timeline_extent(result) >= 3600
    data = {
        "result": result.to_dict(),
        "extent": timeline_extent(result),
        "hours": long_video,
        "drivers": [segment_driver(result, seg) for seg in result.segments],
    }
    title = Path(result.video.path).name
    player = (
        _no_player() if result.from_features_alone else _player(result, media, report_dir, playback, source_playback)
    )
    body = "\n".join(
        [
            _header(result, title),
            '<main><div class="stage">',
            player,
            _facts(result, long_video, source_playback or playback),
            "</div>",
            _timeline(result),
            _segments(result, data["drivers"], long_video),
            "</main>",
            _details(result),
        ]
    )
    return _PAGE.format(
        title=html.escape(f"{title}: violence report"),
        css=asset("report.css"),
        body=body,
        data=inline_json(data),
        script=asset("report.js"),
    )


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; media-src 'self' file: blob:; \
img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>{title}</title>
<style>
{css}
</style>
</head>
<body>
{body}
<script type="application/json" id="report-data">{data}</script>
<script>
{script}
</script>
</body>
</html>
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _header(result: DetectionResult, title: str) -> str:
    v = result.video
    verdict_class = "violent" if result.verdict == "violent" else "calm"
    unverified = ""
    if not result.weights_verified:
        names = ", ".join(w.name for w in result.weights if not w.verified)
        unverified = (
            '<div class="banner" id="unverified" role="alert"><b>Unverified weights</b>: '
            f"{_e(names)} {'is not the published file' if ',' not in names else 'are not the published files'}. "
            "These scores are not those of the published model and may mean nothing.</div>"
        )
    return (
        f'{unverified}<header><h1 title="{_e(v.path)}">{_e(title)}</h1>'
        f'<p class="verdict {verdict_class}" id="verdict">{_e(result.summary())}</p></header>'
    )


def _facts(result: DetectionResult, long_video: bool, playback: Playback | None) -> str:
    v, p = result.video, result.params
    codec = f" ({_e(v.audio_codec)})" if v.audio_codec else ""
    audio = f"yes{codec}" if v.has_audio else '<b class="warn">no</b> (scored with silence)'
    facts = [
        ("duration", f"{_clock(v.duration, long_video)} ({v.duration:.1f} s)"),
        ("file", _e(playback.label) if playback is not None else _e(v.video_codec or "not recorded")),
        ("resolution", f"{v.width}x{v.height} · {v.fps:g} fps"),
        ("audio", audio),
        ("scored", f"{v.n_snippets} snippets ({v.scored_duration:.1f} s)"),
        (
            "parameters",
            _e(
                f"threshold {p.threshold:g} · min duration {p.min_duration:g} s · merge gap {p.merge_gap:g} s"
                f" · {count(p.crops, 'crop')} · {p.device} · {p.precision}"
            ),
        ),
        ("weights", _weights(result)),
        ("version", f"violence-detect {_e(__version__)}"),
    ]
    items = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in facts)
    return f'<dl class="facts" id="facts">{items}</dl>'


def _weights(result: DetectionResult) -> str:
    parts = []
    for w in result.weights:
        mark = '<span class="ok">verified</span>' if w.verified else '<b class="warn">UNVERIFIED</b>'
        parts.append(
            f'<span class="weights" title="{_e(w.path)} sha256 {_e(w.sha256)}">{_e(w.name)} {_e(w.sha256[:12])} {mark}</span>'
        )
    return "<br>".join(parts) or "none recorded"


def _player(
    result: DetectionResult,
    media: Path,
    report_dir: str | os.PathLike[str],
    playback: Playback | None,
    source_playback: Playback | None,
) -> str:
    note = ""
    source_name = _e(Path(result.video.path).name)
    if source_playback is not None and media != Path(result.video.path):
        note = (
            f'<p class="note" id="playback-note">The original, {source_name}, does not play in most browsers '
            f"({_e(source_playback.reason)}); the player shows a browser-safe copy, {_e(media.name)} "
            "(H.264 + AAC, at most 720p), made beside this report. The times are the same.</p>"
        )
    elif playback is not None and not playback.safe:
        note = (
            f'<p class="note bad" id="playback-note">Your browser may not play this video: {_e(playback.reason)}. '
            "Run violence-detect again with <code>--report-proxy</code> to write a browser-safe copy beside "
            "the report, or open the video in a desktop player (VLC, mpv) beside this page.</p>"
        )
    elif playback is None:
        note = (
            f'<p class="note" id="playback-note">{source_name} could not be checked when this report was made '
            "(it was not found); the player looks for it at the path below.</p>"
        )
    src = media_url(media, report_dir)
    return (
        f'<div class="player"><video id="video" controls preload="auto" src="{_e(src)}"></video>'
        f'<p class="src">video: <code>{_e(src)}</code> (relative to this report)</p>{note}</div>'
    )


def _no_player() -> str:
    # the script drives its playhead through this element; without a source it plays nothing
    return (
        '<div class="player none"><video id="video" hidden preload="none"></video>'
        '<p class="note" id="playback-note">Scored from feature files alone: there is no video to play. '
        "Click the timeline to move the playhead; the times are those of the video the features were made from.</p></div>"
    )


def _timeline(result: DetectionResult) -> str:
    audio_label = "audio only" if result.video.has_audio else "audio only (silence)"
    if result.scores_note:  # one score only: say why there are no audio / visual curves
        curves = (
            f'<label><input type="checkbox" id="show-av" checked> <span class="key av"></span>'
            f"score ({_e(MODEL_TITLES.get(result.params.model, result.params.model))})</label>\n"
            f'<span id="no-heads">no audio-only or visual-only curve: {_e(result.scores_note)}</span>'
        )
    else:
        curves = (
            '<label><input type="checkbox" id="show-av" checked> <span class="key av"></span>audio-visual</label>\n'
            f'<label><input type="checkbox" id="show-audio" checked> <span class="key audio"></span>{_e(audio_label)}'
            "</label>\n"
            '<label><input type="checkbox" id="show-visual" checked> <span class="key visual"></span>visual only</label>'
        )
    return f"""<section class="timeline">
<div class="legend">
{curves}
<span><span class="key threshold"></span>threshold {result.params.threshold:g}</span>
<span><span class="key segment"></span>violent segment</span>
<span class="keys">space play/pause · n/p next/previous segment · ←/→ one snippet</span>
</div>
<div class="canvas-wrap"><canvas id="timeline" tabindex="0" aria-label="score timeline; click to seek"></canvas>
<div id="tooltip" class="tooltip" hidden></div></div>
</section>"""


def _segments(result: DetectionResult, drivers: list[str], long_video: bool) -> str:
    if not result.segments:
        return (
            '<section><h2>Violent segments</h2><p id="no-segments">None: no snippet reached the threshold '
            f"{result.params.threshold:g} (highest score {result.max_score:.2f}).</p></section>"
        )
    rows = []
    for n, (seg, driver) in enumerate(zip(result.segments, drivers), 1):
        rows.append(
            f'<tr data-start="{seg.start!r}" data-end="{seg.end!r}" tabindex="0">'
            f"<td>{n}</td><td>{_clock(seg.start, long_video)}</td><td>{_clock(seg.end, long_video)}</td>"
            f"<td>{seg.duration:.1f} s</td><td>{seg.peak:.2f}</td><td>{seg.mean:.2f}</td>"
            f'<td class="{driver}">{driver}</td></tr>'
        )
    return (
        "<section><h2>Violent segments</h2>"
        '<table id="segments"><thead><tr><th>#</th><th>start</th><th>end</th><th>length</th><th>peak</th>'
        '<th>mean</th><th title="heard: the audio alone reaches the threshold; seen: the picture alone; '
        'both: both, or only the two together">driven by</th></tr></thead>'
        f'<tbody>{"".join(rows)}</tbody></table><p class="hint">Click a row to jump to it.</p></section>'
    )


def _details(result: DetectionResult) -> str:
    warnings = "".join(f"<li>{_e(w)}</li>" for w in result.warnings)
    block = f'<section class="warnings"><h2>Warnings</h2><ul>{warnings}</ul></section>' if warnings else ""
    return block + (
        f"<footer>Made by violence-detect ({_e(MODEL_TITLES.get(result.params.model, result.params.model))} "
        "over I3D + VGGish). "
        + (
            f"Score: the model's, used for segments ({_e(result.scores_note)}); "
            if result.scores_note
            else "Scores: audio-visual (used for segments), audio only, visual only; "
        )
        + "each 16-frame snippet covers 2/3 s.</footer>"
    )

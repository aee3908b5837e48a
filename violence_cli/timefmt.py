"""How times are written, in one place: video times (``1:00.0``), subtitle timestamps
(``00:01:00.000``), lengths (``12.5 min``) and elapsed wall time (``4 min 12 s``).

Every form rounds to its last shown digit *first* and only then splits into hours, minutes
and seconds, so 59.96 s is ``1:00.0``, never ``0:60.0``. The report page's script
(``report/assets/report.js``, function ``clock``) follows the same rule.
"""

from __future__ import annotations


def clock(seconds: float, decimals: int = 1, *, hours: bool | None = None) -> str:
    """A time in a video: ``m:ss.d`` (``decimals`` digits after the seconds), ``h:mm:ss.d``
    with ``hours`` (None: when it is an hour or more once rounded). Negative times are 0."""
    scale = 10**decimals
    total = round(max(seconds, 0.0) * scale)
    h, rest = divmod(total, 3600 * scale)
    m, s = divmod(rest, 60 * scale)
    secs = f"{s // scale:02d}" + (f".{s % scale:0{decimals}d}" if decimals else "")
    if hours is None:
        hours = h > 0
    return f"{h}:{m:02d}:{secs}" if hours else f"{h * 60 + m}:{secs}"


def timestamp(seconds: float, decimal: str = ".") -> str:
    """``HH:MM:SS.mmm``, as WebVTT writes cue times (``decimal=","`` for SRT)."""
    ms = max(0, round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{decimal}{ms:03d}"


def span(seconds: float) -> str:
    """A length of video with one decimal: ``4.2 s``, ``12.5 min``, ``212.4 h``."""
    seconds = max(seconds, 0.0)
    if round(seconds * 10) < 600:
        return f"{round(seconds * 10) / 10:.1f} s"
    if round(seconds / 6) < 600:
        return f"{round(seconds / 6) / 10:.1f} min"
    return f"{round(seconds / 360) / 10:,.1f} h"


def elapsed(seconds: float) -> str:
    """Wall time taken: ``3.1 s``, ``4 min 12 s``, ``9 h 41 min``."""
    seconds = max(seconds, 0.0)
    if round(seconds * 10) < 600:
        return f"{round(seconds * 10) / 10:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes} min"


__all__ = ["clock", "elapsed", "span", "timestamp"]

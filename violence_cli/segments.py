"""Snippet scores -> violent segments (pure functions, no I/O).

The rules, in the order they apply:

1. A snippet is *violent* when its audio-visual score is at or above ``threshold``
   (default 0.5: the model's sigmoid output, where the MIL training put the decision).
2. Consecutive violent snippets form a run.
3. Runs separated by a gap of at most ``merge_gap`` seconds are joined (the snippets in the
   gap become part of the segment).
4. Segments shorter than ``min_duration`` seconds are dropped.

Merging comes before the duration filter on purpose: two short bursts a moment apart make
one segment long enough to keep, whereas filtering first would drop both.
A segment's ``peak`` and ``mean`` are taken over every snippet it covers, gap snippets
included.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .protocol import DEFAULT_THRESHOLD, SNIPPET_SECONDS
from .schema import Segment, Snippet

_EPS = 2e-6  # s: tolerance when comparing durations (times are rounded to the microsecond)


def make_snippets(
    scores: Sequence[float] | np.ndarray,
    audio_scores: Sequence[float] | np.ndarray | None = None,
    visual_scores: Sequence[float] | np.ndarray | None = None,
    snippet_seconds: float = SNIPPET_SECONDS,
    start: float = 0.0,
) -> list[Snippet]:
    """Snippet k covers ``[start + k * snippet_seconds, start + (k + 1) * snippet_seconds)``
    (``start``: where a part of the video that was scored begins). ``audio_scores`` /
    ``visual_scores`` None (a model without those heads): the snippets' are None too."""
    av = np.asarray(scores, dtype=np.float64).reshape(-1)
    audio = None if audio_scores is None else np.asarray(audio_scores, dtype=np.float64).reshape(-1)
    visual = None if visual_scores is None else np.asarray(visual_scores, dtype=np.float64).reshape(-1)
    lengths = [len(x) for x in (av, audio, visual) if x is not None]
    if len(set(lengths)) > 1:
        raise ValueError(f"score lengths differ: {', '.join(map(str, lengths))}")
    return [
        Snippet(
            index=k,
            start=round(start + k * snippet_seconds, 6),  # µs: keeps exports free of float noise
            end=round(start + (k + 1) * snippet_seconds, 6),
            score=float(av[k]),
            audio_score=None if audio is None else float(audio[k]),
            visual_score=None if visual is None else float(visual[k]),
        )
        for k in range(len(av))
    ]


def check_params(threshold: float, min_duration: float, merge_gap: float) -> None:
    """Raise ValueError for parameters that cannot mean anything.

    The message starts with the parameter's name and value, then what was expected
    (``merge_gap -1.0: expected seconds >= 0``), so a CLI can put its option name first.
    """
    if not (0.0 <= threshold <= 1.0) or math.isnan(threshold):
        raise ValueError(f"threshold {threshold:g}: expected a score between 0 and 1")
    if not 0.0 <= min_duration < math.inf:
        raise ValueError(f"min_duration {min_duration:g}: expected a finite number of seconds >= 0")
    if not 0.0 <= merge_gap < math.inf:
        raise ValueError(f"merge_gap {merge_gap:g}: expected a finite number of seconds >= 0")


def violent_runs(scores: Sequence[float] | np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> list[tuple[int, int]]:
    """Index ranges ``[i, j)`` of consecutive scores at or above ``threshold``."""
    above = np.asarray(scores, dtype=np.float64).reshape(-1) >= threshold
    if not above.any():
        return []
    edges = np.diff(np.concatenate(([0], above.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    return [(int(i), int(j)) for i, j in zip(starts, ends)]


def merge_runs(runs: list[tuple[int, int]], snippets: Sequence[Snippet], merge_gap: float) -> list[tuple[int, int]]:
    """Join runs whose gap (next start - previous end, in seconds) is at most ``merge_gap``."""
    merged: list[tuple[int, int]] = []
    for i, j in runs:
        if merged:
            prev_i, prev_j = merged[-1]
            gap = snippets[i].start - snippets[prev_j - 1].end
            if gap <= merge_gap + _EPS:
                merged[-1] = (prev_i, j)
                continue
        merged.append((i, j))
    return merged


def find_segments(
    snippets: Sequence[Snippet],
    threshold: float = DEFAULT_THRESHOLD,
    min_duration: float = 0.0,
    merge_gap: float = 0.0,
) -> list[Segment]:
    """The violent segments of a scored video (see the module docstring for the rules)."""
    check_params(threshold, min_duration, merge_gap)
    scores = np.array([s.score for s in snippets], dtype=np.float64)
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    runs = merge_runs(violent_runs(scores, threshold), snippets, merge_gap)
    segments = []
    for i, j in runs:
        start, end = snippets[i].start, snippets[j - 1].end
        if end - start + _EPS < min_duration:
            continue
        inside = scores[i:j]
        segments.append(Segment(start=start, end=end, peak=float(inside.max()), mean=float(inside.mean())))
    return segments

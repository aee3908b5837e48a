"""Scores -> violent segments: threshold, merge gap, minimum duration and their edge cases."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from violence_cli.segments import (
    SNIPPET_SECONDS,
    find_segments,
    make_snippets,
    merge_runs,
    violent_runs,
)

D = SNIPPET_SECONDS


def segs(scores, **kw):
    return find_segments(make_snippets(scores), **kw)


def spans(segments):
    return [(round(s.start / D), round(s.end / D)) for s in segments]


def test_snippet_times_follow_16_frames_at_24_fps() -> None:
    snippets = make_snippets([0.1, 0.2, 0.3], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0])
    assert [s.index for s in snippets] == [0, 1, 2]
    assert snippets[2].start == pytest.approx(32 / 24)
    assert snippets[2].end == pytest.approx(48 / 24)
    assert snippets[1].audio_score == 0.0 and snippets[1].visual_score == 1.0


def test_snippet_times_are_rounded_to_the_microsecond() -> None:
    snippets = make_snippets([0.1] * 4)
    assert [s.start for s in snippets] == [0.0, 0.666667, 1.333333, 2.0]
    assert [s.end for s in snippets] == [0.666667, 1.333333, 2.0, 2.666667]


def test_snippet_times_start_where_the_scored_part_starts() -> None:
    snippets = make_snippets([0.1, 0.9], start=10.0)
    assert [(s.start, s.end) for s in snippets] == [(10.0, 10.666667), (10.666667, 11.333333)]
    assert [s.index for s in snippets] == [0, 1]
    (seg,) = find_segments(snippets)
    assert (seg.start, seg.end) == (10.666667, 11.333333)


def test_each_head_score_is_kept_or_left_out_on_its_own() -> None:
    only_visual = make_snippets([0.5, 0.6], visual_scores=[0.7, 0.8])
    assert [(s.audio_score, s.visual_score) for s in only_visual] == [(None, 0.7), (None, 0.8)]
    only_audio = make_snippets([0.5, 0.6], audio_scores=[0.2, 0.3])
    assert [(s.audio_score, s.visual_score) for s in only_audio] == [(0.2, None), (0.3, None)]
    neither = make_snippets([0.5])
    assert (neither[0].audio_score, neither[0].visual_score) == (None, None)


def test_make_snippets_rejects_unequal_lengths() -> None:
    with pytest.raises(ValueError):
        make_snippets([0.1, 0.2], [0.1], [0.1, 0.2])


def test_none_above_gives_no_segment() -> None:
    assert segs([0.1, 0.49, 0.2]) == []


def test_empty_input_gives_no_segment() -> None:
    assert segs([]) == []


def test_all_above_gives_one_segment_covering_everything() -> None:
    scores = [0.6, 0.9, 0.7, 0.8]
    (seg,) = segs(scores)
    assert seg.start == 0.0
    assert seg.end == pytest.approx(4 * D)
    assert seg.peak == pytest.approx(0.9)
    assert seg.mean == pytest.approx(np.mean(scores))
    assert seg.duration == pytest.approx(4 * D)


def test_single_snippet_video() -> None:
    assert spans(segs([0.7])) == [(0, 1)]
    assert segs([0.3]) == []


def test_threshold_is_inclusive() -> None:
    assert spans(segs([0.2, 0.5, 0.2])) == [(1, 2)]
    assert segs([0.2, 0.5, 0.2], threshold=0.51) == []


def test_segment_at_the_very_end() -> None:
    (seg,) = segs([0.1, 0.1, 0.1, 0.8, 0.9])
    assert spans([seg]) == [(3, 5)]
    assert seg.end == pytest.approx(5 * D)


def test_segment_at_the_very_start_and_several_segments() -> None:
    assert spans(segs([0.9, 0.2, 0.8, 0.8, 0.1, 0.7])) == [(0, 1), (2, 4), (5, 6)]


def test_merge_gap_joins_close_segments_and_counts_gap_snippets() -> None:
    scores = [0.9, 0.1, 0.8, 0.1, 0.1, 0.7]
    assert spans(segs(scores)) == [(0, 1), (2, 3), (5, 6)]
    # a gap of one snippet (2/3 s) is joined; two snippets (4/3 s) are not
    merged = segs(scores, merge_gap=0.7)
    assert spans(merged) == [(0, 3), (5, 6)]
    assert merged[0].mean == pytest.approx(np.mean([0.9, 0.1, 0.8]))
    assert merged[0].peak == pytest.approx(0.9)
    assert spans(segs(scores, merge_gap=1.4)) == [(0, 6)]


def test_merge_gap_equal_to_the_gap_merges() -> None:
    # exactly one snippet apart: the gap is D seconds, float noise must not matter
    assert spans(segs([0.9, 0.1, 0.9], merge_gap=D)) == [(0, 3)]
    assert spans(segs([0.9, 0.1, 0.9], merge_gap=D * 0.99)) == [(0, 1), (2, 3)]


def test_merge_gap_of_one_snippet_merges_wherever_the_gap_falls() -> None:
    for k in range(1, 7):
        scores = [0.1] * 8
        scores[k - 1] = scores[k + 1] = 0.9
        assert spans(segs(scores, merge_gap=D)) == [(k - 1, k + 2)], k


def test_merge_gap_just_under_the_gap_keeps_segments_apart() -> None:
    assert spans(segs([0.9, 0.1, 0.9], merge_gap=0.6665)) == [(0, 1), (2, 3)]
    assert spans(segs([0.9, 0.9, 0.1, 0.9], merge_gap=0.6665)) == [(0, 2), (3, 4)]


def test_min_duration_of_one_snippet_keeps_a_lone_snippet_wherever_it_falls() -> None:
    for k in range(8):
        scores = [0.1] * 8
        scores[k] = 0.9
        assert spans(segs(scores, min_duration=D)) == [(k, k + 1)], k
        assert spans(segs(scores, min_duration=0.666667)) == [(k, k + 1)], k


def test_min_duration_just_over_one_snippet_drops_a_lone_snippet() -> None:
    for k in range(4):
        scores = [0.1] * 4
        scores[k] = 0.9
        assert segs(scores, min_duration=0.6675) == [], k


def test_min_duration_drops_short_segments() -> None:
    scores = [0.9, 0.1, 0.8, 0.8, 0.8, 0.1]
    assert spans(segs(scores, min_duration=1.0)) == [(2, 5)]
    assert spans(segs(scores, min_duration=2.0)) == [(2, 5)]  # 3 snippets = exactly 2 s: kept
    assert segs(scores, min_duration=2.01) == []


def test_merge_happens_before_min_duration() -> None:
    # two one-snippet bursts one snippet apart: alone each is too short, merged they are 2 s
    scores = [0.1, 0.9, 0.1, 0.9, 0.1]
    assert segs(scores, min_duration=1.5) == []
    assert spans(segs(scores, min_duration=1.5, merge_gap=0.7)) == [(1, 4)]


def test_violent_runs_and_merge_runs_directly() -> None:
    scores = np.array([0.6, 0.6, 0.0, 0.6, 0.0, 0.0, 0.6])
    runs = violent_runs(scores, 0.5)
    assert runs == [(0, 2), (3, 4), (6, 7)]
    assert merge_runs(runs, make_snippets(scores), merge_gap=0.0) == runs
    assert merge_runs(runs, make_snippets(scores), merge_gap=D) == [(0, 4), (6, 7)]


def test_segments_use_the_snippets_own_times() -> None:
    snippets = make_snippets([0.1, 0.9, 0.9], snippet_seconds=1.0)
    (seg,) = find_segments(snippets)
    assert (seg.start, seg.end) == (1.0, 3.0)


@pytest.mark.parametrize(
    "kw",
    [
        {"threshold": -0.1}, {"threshold": 1.5}, {"threshold": math.nan}, {"min_duration": -1.0},
        {"merge_gap": -0.5}, {"merge_gap": math.inf}, {"min_duration": math.inf}, {"merge_gap": math.nan},
    ],  # fmt: skip
)
def test_bad_parameters_are_rejected(kw) -> None:
    with pytest.raises(ValueError):
        segs([0.5, 0.6], **kw)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"threshold": -0.1}, "threshold -0.1: expected a score between 0 and 1"),
        ({"min_duration": -1.0}, "min_duration -1: expected a finite number of seconds >= 0"),
        ({"merge_gap": -0.5}, "merge_gap -0.5: expected a finite number of seconds >= 0"),
    ],
)
def test_bad_parameter_messages_start_with_the_parameter_name_and_value(kw, message) -> None:
    with pytest.raises(ValueError) as info:
        segs([0.5, 0.6], **kw)
    assert str(info.value) == message


def test_threshold_bounds_zero_and_one_are_accepted() -> None:
    assert spans(segs([0.0, 0.3], threshold=0.0)) == [(0, 2)]
    assert spans(segs([0.99, 1.0], threshold=1.0)) == [(1, 2)]


def test_nan_scores_are_rejected() -> None:
    with pytest.raises(ValueError, match="NaN"):
        segs([0.5, math.nan])


def test_random_scores_segments_are_disjoint_sorted_and_above_threshold() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        scores = rng.random(rng.integers(1, 60))
        gap = float(rng.choice([0.0, 0.7, 1.4]))
        mind = float(rng.choice([0.0, 0.7, 2.0]))
        result = segs(scores, threshold=0.6, merge_gap=gap, min_duration=mind)
        for a, b in itertools.pairwise(result):
            assert b.start - a.end > gap  # otherwise they would have been merged
        for s in result:
            assert s.duration + 2e-6 >= mind
            assert s.peak >= 0.6
            i, j = round(s.start / D), round(s.end / D)
            assert scores[i] >= 0.6 and scores[j - 1] >= 0.6  # segments start and end violent
        covered = {k for s in result for k in range(round(s.start / D), round(s.end / D))}
        if mind == 0.0:
            assert {k for k in range(len(scores)) if scores[k] >= 0.6} <= covered

"""Exports: every format parsed back, atomic writes, format picked by name or extension, the plot."""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from violence_cli.errors import UsageError
from violence_cli.plot import plot_timeline
from violence_cli.schema import SCHEMA_VERSION, DetectionParams, DetectionResult, VideoFacts, WeightsUsed
from violence_cli.segments import find_segments, make_snippets
from violence_cli.writers import (
    FORMATS,
    atomic_open,
    batch_document,
    format_for_path,
    get_writer,
    timestamp,
)


def make_result(scores, threshold=0.5, heads=None, **kw) -> DetectionResult:
    rng = np.random.default_rng(1)
    scores = np.asarray(scores, dtype=np.float64)
    audio, visual = (rng.random(len(scores)), rng.random(len(scores))) if heads is None else heads
    snippets = make_snippets(scores, audio, visual)
    params = DetectionParams(threshold=threshold, crops=1, device="cpu", **kw)
    segments = find_segments(snippets, threshold, params.min_duration, params.merge_gap)
    video = VideoFacts(
        path="/videos/clip one.mp4",
        duration=len(scores) * 16 / 24 + 0.3,
        fps=25.0,
        width=320,
        height=180,
        has_audio=True,
        video_stream=0,
        audio_stream=1,
        n_frames=len(scores) * 16 + 7,
        n_snippets=len(scores),
        scored_duration=len(scores) * 16 / 24,
    )
    weights = [WeightsUsed("macil_sd", "/w/macil_sd.pkl", "ab" * 32, False)]
    return DetectionResult(video, snippets, segments, weights, params, ["something odd"])


@pytest.fixture
def result() -> DetectionResult:
    # segments: snippets 2-4 and the last two (a segment at the very end)
    scores = [0.1, 0.2, 0.7, 0.95, 0.6, 0.3, 0.1, 0.1, 0.8, 0.9]
    return make_result(scores)


@pytest.fixture
def exact() -> DetectionResult:
    # segments: snippets 1-2 (0.666667-2.0 s, peak 0.9, mean 0.85) and 4 (2.666667-3.333333 s)
    scores = [0.2, 0.8, 0.9, 0.1, 0.7, 0.1]
    heads = ([0.25, 0.5, 0.125, 0.0, 0.6, 0.0], [1.0, 0.75, 1 / 3, 0.0, 0.2, 0.0])
    return make_result(scores, heads=heads)


def parse_cues(text: str, decimal: str) -> list[tuple[float, float, str]]:
    pattern = re.compile(
        rf"(\d\d):(\d\d):(\d\d){re.escape(decimal)}(\d\d\d) --> (\d\d):(\d\d):(\d\d){re.escape(decimal)}(\d\d\d)\n(.+)"
    )
    cues = []
    for m in pattern.finditer(text):
        g = [int(x) for x in m.groups()[:8]]
        start = g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000
        end = g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000
        cues.append((start, end, m.group(9)))
    return cues


def test_json_round_trips(result, tmp_path) -> None:
    path = get_writer("json").write(result, tmp_path / "r.json")
    data = json.loads(path.read_text())
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["verdict"] == "violent"
    assert data["video"]["has_audio"] is True and data["video"]["fps"] == 25.0
    assert data["weights"][0]["sha256"] == "ab" * 32 and data["weights"][0]["verified"] is False
    assert data["weights_verified"] is False
    assert data["params"]["threshold"] == 0.5 and data["params"]["crops"] == 1
    assert len(data["snippets"]) == 10 and len(data["segments"]) == 2
    assert DetectionResult.from_dict(data) == result


def test_from_dict_rejects_other_schema_versions(result) -> None:
    data = result.to_dict()
    data["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(ValueError, match="schema_version"):
        DetectionResult.from_dict(data)


def test_snippet_csv_one_row_per_snippet(result, tmp_path) -> None:
    path = get_writer("csv").write(result, tmp_path / "r.csv")
    rows = list(csv.DictReader(path.open(newline="")))
    assert len(rows) == len(result.snippets)
    for row, snip in zip(rows, result.snippets):
        assert int(row["index"]) == snip.index
        assert float(row["start"]) == pytest.approx(snip.start, abs=1e-3)
        assert float(row["end"]) == pytest.approx(snip.end, abs=1e-3)
        assert float(row["score"]) == pytest.approx(snip.score, abs=1e-4)
        assert float(row["audio_score"]) == pytest.approx(snip.audio_score, abs=1e-4)
        assert float(row["visual_score"]) == pytest.approx(snip.visual_score, abs=1e-4)
    assert [int(r["in_segment"]) for r in rows] == [0, 0, 1, 1, 1, 0, 0, 0, 1, 1]


def test_segments_csv_one_row_per_segment(result, tmp_path) -> None:
    path = get_writer("segments-csv").write(result, tmp_path / "r.segments.csv")
    rows = list(csv.DictReader(path.open(newline="")))
    assert len(rows) == 2
    for row, seg in zip(rows, result.segments):
        assert float(row["start"]) == pytest.approx(seg.start, abs=1e-3)
        assert float(row["end"]) == pytest.approx(seg.end, abs=1e-3)
        assert float(row["duration"]) == pytest.approx(seg.end - seg.start, abs=1e-3)
        assert float(row["peak"]) == pytest.approx(seg.peak, abs=1e-4)
        assert float(row["mean"]) == pytest.approx(seg.mean, abs=1e-4)
    assert float(rows[-1]["end"]) == pytest.approx(10 * 16 / 24, abs=1e-3)  # ends with the video


@pytest.mark.parametrize("fmt,decimal", [("vtt", "."), ("srt", ",")])
def test_subtitles_one_cue_per_segment(result, tmp_path, fmt, decimal) -> None:
    text = get_writer(fmt).write(result, tmp_path / f"r.{fmt}").read_text()
    if fmt == "vtt":
        assert text.startswith("WEBVTT\n\n")
    else:
        assert text.startswith("1\n")
    cues = parse_cues(text, decimal)
    assert len(cues) == len(result.segments)
    for (start, end, label), seg in zip(cues, result.segments):
        assert start == pytest.approx(seg.start, abs=1e-3)
        assert end == pytest.approx(seg.end, abs=1e-3)
        assert f"{seg.peak:.2f}" in label


def test_json_is_indented_and_ends_with_a_newline(result) -> None:
    text = get_writer("json").to_string(result)
    assert text.startswith('{\n  "schema_version": ') and text.endswith("}\n")


def test_json_refuses_nan_and_leaves_no_file(tmp_path) -> None:
    broken = make_result([0.1, 0.9])
    broken.snippets[0].score = float("nan")
    with pytest.raises(ValueError):
        get_writer("json").write(broken, tmp_path / "r.json")
    assert os.listdir(tmp_path) == []


def test_json_keeps_a_non_utf8_file_name_as_an_escape(result, tmp_path) -> None:
    name = os.fsdecode(b"/videos/\xff\xfe.mp4")
    result.video.path = name
    path = get_writer("json").write(result, tmp_path / "r.json")
    assert "\\udcff\\udcfe.mp4" in path.read_text(encoding="utf-8")
    assert json.loads(path.read_text(encoding="utf-8"))["video"]["path"] == name


def test_snippet_csv_exact_text(exact) -> None:
    assert get_writer("csv").to_string(exact) == (
        "index,start,end,score,audio_score,visual_score,in_segment\n"
        "0,0.000,0.667,0.2000,0.2500,1.0000,0\n"
        "1,0.667,1.333,0.8000,0.5000,0.7500,1\n"
        "2,1.333,2.000,0.9000,0.1250,0.3333,1\n"
        "3,2.000,2.667,0.1000,0.0000,0.0000,0\n"
        "4,2.667,3.333,0.7000,0.6000,0.2000,1\n"
        "5,3.333,4.000,0.1000,0.0000,0.0000,0\n"
    )


def test_snippet_csv_without_head_scores_says_why_above_the_header() -> None:
    headless = make_result([0.2, 0.8], heads=(None, None), model="hypervd")
    assert headless.scores_note
    lines = get_writer("csv").to_string(headless).splitlines()
    assert lines == [
        f"# audio_score and visual_score are empty: {headless.scores_note}",
        "index,start,end,score,audio_score,visual_score,in_segment",
        "0,0.000,0.667,0.2000,,,0",
        "1,0.667,1.333,0.8000,,,1",
    ]


def test_segments_csv_exact_text(exact) -> None:
    rows = [
        "segment,start,end,duration,peak,mean",
        "1,0.667,2.000,1.333,0.9000,0.8500",
        "2,2.667,3.333,0.667,0.7000,0.7000",
    ]
    assert get_writer("segments-csv").to_string(exact) == "".join(f"{row}\n" for row in rows)


def test_vtt_exact_text(exact) -> None:
    assert get_writer("vtt").to_string(exact) == (
        "WEBVTT\n\n"
        "1\n00:00:00.667 --> 00:00:02.000\nviolence (peak 0.90, mean 0.85)\n\n"
        "2\n00:00:02.667 --> 00:00:03.333\nviolence (peak 0.70, mean 0.70)\n\n"
    )


def test_srt_exact_text(exact) -> None:
    assert get_writer("srt").to_string(exact) == (
        "1\n00:00:00,667 --> 00:00:02,000\nviolence (peak 0.90, mean 0.85)\n\n"
        "2\n00:00:02,667 --> 00:00:03,333\nviolence (peak 0.70, mean 0.70)\n\n"
    )


def test_vtt_without_segments_names_the_highest_score_and_the_threshold() -> None:
    quiet = make_result([0.1, 0.34, 0.2], threshold=0.45)
    note = "NOTE no violent segment: highest score 0.34 < threshold 0.45"
    assert get_writer("vtt").to_string(quiet) == f"WEBVTT\n\n{note}\n"


def test_subtitles_without_segments_are_valid(tmp_path) -> None:
    quiet = make_result([0.1, 0.2, 0.3])
    assert quiet.verdict == "non-violent"
    vtt = get_writer("vtt").to_string(quiet)
    assert vtt.startswith("WEBVTT\n\nNOTE ") and "-->" not in vtt
    assert get_writer("srt").to_string(quiet) == ""
    rows = list(csv.reader(get_writer("segments-csv").to_string(quiet).splitlines()))
    assert rows == [list(get_writer("segments-csv").columns)]


def test_timestamp_format() -> None:
    assert timestamp(0) == "00:00:00.000"
    assert timestamp(2 / 3) == "00:00:00.667"
    assert timestamp(3725.5, ",") == "01:02:05,500"


@pytest.mark.parametrize(
    "name,fmt",
    [("a.json", "json"), ("a.CSV", "csv"), ("a.segments.csv", "segments-csv"), ("x/y.vtt", "vtt"), ("a.srt", "srt"), ("A.HTML", "html")],
)
def test_format_from_extension(name, fmt) -> None:
    assert format_for_path(name) == fmt
    assert Path(get_writer(fmt).file_name("a")).suffix == Path(name.lower()).suffix


@pytest.mark.parametrize("name", ["a.txt", "a", ".csv", "out/.json"])
def test_unknown_extension_is_a_usage_error(name) -> None:
    with pytest.raises(UsageError):
        format_for_path(name)


def test_unknown_format_name() -> None:
    with pytest.raises(UsageError, match="unknown output format"):
        get_writer("xml")
    assert set(FORMATS) == {"json", "csv", "segments-csv", "vtt", "srt", "html"}


def test_atomic_write_leaves_old_file_on_failure(tmp_path) -> None:
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(target) as handle:
        handle.write("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.json"]  # no temporary file left behind


def test_atomic_write_permissions_follow_umask(result, tmp_path) -> None:
    path = get_writer("json").write(result, tmp_path / "r.json")
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_batch_document(result) -> None:
    doc = batch_document([result], [("bad.mp4", "bad.mp4: not a video"), ("b.mkv", "b.mkv: no video stream")])
    assert doc["schema_version"] == SCHEMA_VERSION
    assert doc["weights"] == [
        {"name": "macil_sd", "path": "/w/macil_sd.pkl", "sha256": "ab" * 32, "verified": False, "trained": None}
    ]
    assert doc["results"][0]["video"]["path"] == result.video.path
    assert doc["errors"] == [
        {"path": "bad.mp4", "error": "bad.mp4: not a video"},
        {"path": "b.mkv", "error": "b.mkv: no video stream"},
    ]
    json.dumps(doc, allow_nan=False)


def test_plot_writes_a_png(result, tmp_path) -> None:
    path = plot_timeline(result, tmp_path / "timeline.png")
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 800 and height > 300
    assert os.listdir(tmp_path) == ["timeline.png"]


def test_plot_without_segments_and_as_svg(tmp_path) -> None:
    path = plot_timeline(make_result([0.1, 0.2]), tmp_path / "t.svg")
    assert b"<svg" in path.read_bytes()[:500]

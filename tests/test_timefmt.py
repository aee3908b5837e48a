"""One time formatter (violence_cli.timefmt) and every place that writes a time: each rounds
to its last digit first, so 59.96 s is 1:00.0 everywhere, never 0:60.0."""

from __future__ import annotations

from types import SimpleNamespace

from test_writers import make_result

from violence_cli.timefmt import clock, elapsed, span, timestamp

LATE = 59.96  # s: rounds up across the minute


def test_clock_rounds_before_carrying() -> None:
    assert clock(LATE) == "1:00.0" and clock(59.94) == "0:59.9"
    assert clock(3599.96) == "1:00:00.0" and clock(3599.96, 0) == "1:00:00"
    assert clock(7.3) == "0:07.3" and clock(-1) == "0:00.0"
    assert clock(125, 0) == "2:05" and clock(3725, 0, hours=True) == "1:02:05" and clock(59.5, 0) == "1:00"
    assert clock(0.125, 2) == "0:00.12" or clock(0.125, 2) == "0:00.13"


def test_timestamp_span_elapsed() -> None:
    assert timestamp(59.9996) == "00:01:00.000" and timestamp(3725.5, ",") == "01:02:05,500"
    assert span(LATE) == "1.0 min" and span(3599.9) == "1.0 h" and span(4.24) == "4.2 s"
    assert span(764_640) == "212.4 h"
    assert elapsed(LATE) == "1 min 0 s" and elapsed(3599.7) == "1 h 0 min" and elapsed(3.14) == "3.1 s"
    assert elapsed(252) == "4 min 12 s" and elapsed(9 * 3600 + 41 * 60) == "9 h 41 min"


def test_clock_without_hours_counts_minutes_past_sixty_and_pads_decimals() -> None:
    assert clock(3725, 0, hours=False) == "62:05"
    assert clock(3599.96, hours=False) == "60:00.0"
    assert clock(60.05, 2) == "1:00.05" and clock(3600.5, 3) == "1:00:00.500"


def test_negative_times_and_lengths_are_zero() -> None:
    assert timestamp(-0.5) == "00:00:00.000" and timestamp(-0.5, ",") == "00:00:00,000"
    assert span(-3.0) == "0.0 s" and elapsed(-3.0) == "0.0 s"


def test_span_in_thousands_of_hours_groups_digits() -> None:
    assert span(5_400_000) == "1,500.0 h"


def test_subtitles(tmp_path) -> None:
    from violence_cli.writers import get_writer

    result = make_result([0.9] * 3)
    result.segments[0].end = 59.9996
    for fmt, mark in (("vtt", "."), ("srt", ",")):
        text = get_writer(fmt).write(result, tmp_path / f"x.{fmt}").read_text()
        assert f"--> 00:01:00{mark}000" in text


def test_plot_axis() -> None:
    from violence_cli.plot import time_axis

    ticks, labels, _ = time_axis(125.0)
    assert labels[ticks.index(60.0)] == "1:00"


def test_report_page(tmp_path) -> None:
    from violence_cli.report import render_report

    result = make_result([0.1, 0.9, 0.9, 0.1])
    result.segments[0].start = LATE
    result.video.duration = LATE
    page = render_report(result, tmp_path)
    assert "<td>1:00.0</td>" in page and "1:00.0 (60.0 s)" in page and "0:60" not in page


def test_index_page(tmp_path) -> None:
    from violence_cli.report.index import index_row, render_index

    result = make_result([0.1, 0.9])
    result.video.duration = 59.6
    page = render_index([index_row("a.mp4", tmp_path, result)])
    assert "<td>1:00</td>" in page and "0:60" not in page


def test_run_view_closing_line() -> None:
    from violence_cli.cli.run_view import closing_line
    from violence_cli.runner import RunSummary

    line = closing_line(RunSummary(total=1, done=1, video_seconds=LATE, wall_seconds=LATE), "scored")
    assert "1.0 min of video in 1 min 0 s" in line, line


def test_detect_summary(capsys) -> None:
    from violence_cli.cli.detect_cmd import print_summary

    result = make_result([0.1, 0.9, 0.9, 0.1])
    result.video.duration = LATE
    result.segments[0].start = LATE
    print_summary(result)
    out = capsys.readouterr().out
    assert "duration 1:00.0" in out and "1:00.0" in out.split("duration")[1] and "0:60" not in out


def test_watch_alert_lines(capsys) -> None:
    from violence_cli.cli.watch_cmd import _print_event

    event = SimpleNamespace(kind="start", segment=1, start=LATE, end=None, peak=0.9, mean=0.8, wall_time=0.0)
    _print_event(event, False)
    _print_event(SimpleNamespace(**{**vars(event), "kind": "end", "end": LATE + 60, "reason": "done"}), False)
    out = capsys.readouterr().out
    assert "started at 1:00.0" in out and "ended: 1:00.0-2:00.0" in out and "0:60" not in out

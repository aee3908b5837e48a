"""--start / --end: score part of a video (seek, then the same protocol from there; times stay the whole video's).

Tiny synthetic clips (tests/mediagen.py, a keyframe every 12 frames so the seek lands
before the start), random weights (tests/fakeweights.py), one crop.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fakeweights import cli_weight_args, fake_weights_folder
from mediagen import make_clip, read_index
from typer.testing import CliRunner

from violence_cli import media
from violence_cli.cli import app
from violence_cli.cli.options import parse_span, parse_time
from violence_cli.errors import UsageError
from violence_cli.features.extract import FeatureExtractor, count_snippets
from violence_cli.protocol import SNIPPET_SECONDS
from violence_cli.runner.jobs import DetectJob

runner = CliRunner()


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    with fake_weights_folder(tmp_path_factory, "fake-weights") as w:
        yield w


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """4 s at 24 fps (96 frames), each frame carrying its index; flac audio (exact after a seek)."""
    d = tmp_path_factory.mktemp("span")
    return make_clip(d / "clip.mp4", seconds=4.0, size=(64, 48), pattern="index", audio_codec="flac", gop=12)


@pytest.fixture(scope="module")
def weight_args(weights) -> list[str]:
    return cli_weight_args(weights)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90.0),
        ("12.5", 12.5),
        (".5", 0.5),
        ("1:30", 90.0),
        ("0:05.25", 5.25),
        ("1:02:03.5", 3723.5),
        ("90:00", 5400.0),
    ],
)
def test_parse_time(text, seconds) -> None:
    assert parse_time("--start", text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["5:99", "1:60:00", "nan", "inf", "-3", "", "1e3", "1::2", "abc", "1:2"])
def test_parse_time_refuses(text) -> None:
    with pytest.raises(UsageError, match=rf"^--start {text}: expected seconds or h:mm:ss$"):
        parse_time("--start", text)


def test_parse_span() -> None:
    assert parse_span(None, None) == (0.0, None)
    assert parse_span("1:00", "1:30") == (60.0, 90.0)
    assert parse_span(None, "2") == (0.0, 2.0)
    with pytest.raises(UsageError, match=r"^--end 0:30: expected a time after --start \(40\)$"):
        parse_span("40", "0:30")
    with pytest.raises(UsageError, match=r"^--end 0: expected a time after 0$"):
        parse_span(None, "0")


def test_frames_of_a_part_are_those_of_the_whole_grid(clip) -> None:
    assert [read_index(f) for f in media.iter_frames(clip, start=2.0)] == list(range(48, 96))
    # not on the grid: frame n shows start + n/24, the nearest source frame (ffmpeg's fps filter)
    assert [read_index(f) for f in media.iter_frames(clip, start=1.3, end=2.0)] == list(range(31, 48))
    assert [read_index(f) for f in media.iter_frames(clip, end=0.5)] == list(range(12))


def test_audio_of_a_part_is_that_of_the_whole(clip) -> None:
    whole = np.concatenate(list(media.iter_audio(clip)))
    part = np.concatenate(list(media.iter_audio(clip, start=2.0, end=3.0)))
    assert part.size == 16000
    np.testing.assert_array_equal(part, whole[32000:48000])


def test_features_of_a_part_equal_those_of_the_same_frames(clip, weights) -> None:
    ex = FeatureExtractor(weights["i3d_rgb_imagenet"], weights["vggish"], device="cpu", crops=1)
    whole = ex.extract(clip)
    part = ex.extract(clip, start=2.0)  # 2 s = 3 snippets: the part's snippets are the whole's 3 and 4
    assert whole.n_snippets == count_snippets(96) == 5
    assert part.n_frames == 48 and part.n_snippets == count_snippets(48) == 2
    assert part.start == 2.0
    np.testing.assert_allclose(part.rgb, whole.rgb[3:5], rtol=1e-5, atol=1e-5)
    # snippet 0's 0.975 s audio window reaches before the start (silence in the part); the next ones do not
    np.testing.assert_allclose(part.audio[1:], whole.audio[4:5], rtol=1e-5, atol=1e-5)
    assert not any("could be decoded" in w for w in part.warnings)


def run(*args: object):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_cli_part_keeps_the_whole_videos_times(clip, weight_args) -> None:
    result = run("detect", clip, "--start", "0:02", "--end", "3.5", "--json", *weight_args)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["params"]["start"] == 2.0 and doc["params"]["end"] == 3.5
    snippets = doc["snippets"]
    assert len(snippets) == count_snippets(36) == 2  # 1.5 s = 36 frames
    for k, s in enumerate(snippets):
        assert s["start"] == pytest.approx(2.0 + k * SNIPPET_SECONDS, abs=1e-6)
        assert s["end"] == pytest.approx(2.0 + (k + 1) * SNIPPET_SECONDS, abs=1e-6)
    assert doc["video"]["n_frames"] == 36
    assert not any("could be decoded" in w for w in doc["warnings"])


def test_cli_end_alone(clip, weight_args) -> None:
    result = run("detect", clip, "--end", "1.5", "--json", *weight_args)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["params"]["start"] == 0.0 and doc["params"]["end"] == 1.5
    assert [s["start"] for s in doc["snippets"]] == [0.0, round(SNIPPET_SECONDS, 6)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "5:99"], "--start 5:99: expected seconds or h:mm:ss"),
        (["--start", "nan"], "--start nan: expected seconds or h:mm:ss"),
        (["--end", "inf"], "--end inf: expected seconds or h:mm:ss"),
        (["--start", "3", "--end", "2"], "--end 2: expected a time after --start (3)"),
    ],
)
def test_cli_usage_errors(clip, weight_args, args, message) -> None:
    result = run("detect", clip, *args, *weight_args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.stderr


def test_cli_start_beyond_the_end(clip, weight_args) -> None:
    result = run("detect", clip, "--start", "1:00", *weight_args)
    assert result.exit_code == 1, result.output
    assert "start 60 s is at or after the end of the video (4.00 s)" in result.stderr
    assert "Traceback" not in result.stderr


def test_resume_record_names_the_part() -> None:
    whole = DetectJob(out_dir=None, weights={})
    assert "start" not in whole.params() and "end" not in whole.params()  # older records stay current
    part = DetectJob(out_dir=None, weights={}, start=2.0, end=3.5)
    assert part.params()["start"] == 2.0 and part.params()["end"] == 3.5

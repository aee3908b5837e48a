"""The HTML report without a browser: inlining and escaping, file names, relative paths,
codec checks, the proxy, the index page, and the CLI options that write them.

(What the page does in a browser is in test_report_browser.py.)
"""

from __future__ import annotations

import html
import json
import re

import numpy as np
import pytest
from fakeweights import cli_weight_args, fake_weights_folder, share_detectors
from mediagen import make_clip
from test_writers import make_result
from typer.testing import CliRunner

from violence_cli.cli import app
from violence_cli.media import probe
from violence_cli.report import (
    check_playback,
    folder_rows,
    index_row,
    inline_json,
    make_proxy,
    media_url,
    render_report,
    segment_driver,
    write_index,
)
from violence_cli.report.index import SPARK_POINTS, render_index
from violence_cli.report.playback import proxy_path, proxy_size
from violence_cli.schema import Segment, WeightsUsed
from violence_cli.writers import get_writer

DATA_BLOCK = re.compile(r'<script type="application/json" id="report-data">(.*?)</script>', re.S)


def page_data(page: str) -> dict:
    (block,) = DATA_BLOCK.findall(page)
    return json.loads(block)


@pytest.fixture
def result():
    return make_result([0.1, 0.2, 0.7, 0.95, 0.6, 0.3, 0.1, 0.1, 0.8, 0.9])


# --------------------------------------------------------------------------- inlining


def test_inline_json_cannot_end_its_script_block() -> None:
    data = {"a": "</script><script>alert(1)</script>", "b": "<!-- & \u2028 -->"}
    text = inline_json(data)
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == data


def test_report_inlines_the_whole_result(result, tmp_path) -> None:
    result.warnings.append("odd </script><b>bold</b> warning")
    page = render_report(result, tmp_path)
    assert page.count("</script>") == 2  # the data block and the page's script, nothing injected
    data = page_data(page)
    assert data["result"] == json.loads(json.dumps(result.to_dict()))
    assert len(data["result"]["snippets"]) == 10
    assert data["extent"] == pytest.approx(result.video.duration)
    assert "&lt;b&gt;bold&lt;/b&gt;" in page  # warnings shown as text, not markup


def test_page_is_self_contained(result, tmp_path) -> None:
    page = render_report(result, tmp_path)
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    assert "http://" not in page and "https://" not in page and "@import" not in page
    assert "default-src 'none'" in page  # the page itself forbids network requests


# --------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    "video,report_dir,url",
    [
        ("/v/clip.mp4", "/v", "clip.mp4"),
        ("/v/my clip.mp4", "/out/reports", "../../v/my%20clip.mp4"),
        ("/v/été #1?.mp4", "/v/r", "../%C3%A9t%C3%A9%20%231%3F.mp4"),
        ("/v/a/b/c.mkv", "/v", "a/b/c.mkv"),
    ],
)
def test_media_url_is_relative_and_encoded(video, report_dir, url) -> None:
    assert media_url(video, report_dir) == url


def test_report_written_in_another_folder_points_back_at_the_video(tmp_path) -> None:
    videos, reports = tmp_path / "my videos", tmp_path / "reports ü"
    videos.mkdir()
    reports.mkdir()
    video = make_clip(videos / "clip été 1.mp4", seconds=1.0)
    result = make_result([0.2, 0.8])
    result.video.path = str(video)
    page = get_writer("html").write(result, reports / "r.html").read_text(encoding="utf-8")
    src = html.unescape(re.search(r'<video[^>]* src="([^"]+)"', page).group(1))
    assert src == "../my%20videos/clip%20%C3%A9t%C3%A9%201.mp4"
    from urllib.parse import unquote

    assert (reports / unquote(src)).resolve() == video.resolve()
    assert "clip été 1.mp4" in page  # the title shows the real name
    assert 'id="playback-note"' not in page  # H.264 + AAC in MP4: no warning


def test_missing_video_is_said(result, tmp_path) -> None:
    page = render_report(result, tmp_path)  # /videos/clip one.mp4 does not exist here
    assert "could not be checked" in page


# --------------------------------------------------------------------------- header and segments


def test_unverified_weights_are_impossible_to_miss(result, tmp_path) -> None:
    page = render_report(result, tmp_path)
    assert 'id="unverified"' in page and "UNVERIFIED" in page
    result.weights = [WeightsUsed("macil_sd", "/w/m.pkl", "cd" * 32, True)]
    page = render_report(result, tmp_path)
    assert 'id="unverified"' not in page and "UNVERIFIED" not in page and "verified" in page


def test_header_facts(result, tmp_path) -> None:
    page = render_report(result, tmp_path)
    for text in ("clip one.mp4", "320x180", "threshold 0.5", "1 crop", "cpu · fp32", "violence-detect 0.", "yes"):
        assert text in page, text
    result.video.has_audio = False
    assert "scored with silence" in render_report(result, tmp_path)


def test_segments_table_rows_carry_their_start(result, tmp_path) -> None:
    page = render_report(result, tmp_path)
    starts = [float(x) for x in re.findall(r'<tr data-start="([0-9.e-]+)"', page)]
    assert starts == pytest.approx([seg.start for seg in result.segments])
    assert len(result.segments) == 2


def test_long_videos_use_hours(tmp_path) -> None:
    scores = np.zeros(16_200)
    scores[9000:9010] = 0.9
    result = make_result(scores)
    page = render_report(result, tmp_path)
    assert page_data(page)["hours"] is True
    assert "<td>1:40:00</td>" in page  # snippet 9000 starts at 6000 s
    assert len(page) < 4_000_000  # 16,200 snippets inline in a few MB


def test_segment_driver(result) -> None:
    seg = Segment(start=0.0, end=16 / 24 * 2, peak=0.9, mean=0.8)
    for audio, visual, expected in [(0.9, 0.1, "heard"), (0.1, 0.9, "seen"), (0.9, 0.9, "both"), (0.4, 0.4, "both")]:
        for s in result.snippets[:2]:
            s.audio_score, s.visual_score = audio, visual
        assert segment_driver(result, seg) == expected
    for s in result.snippets[:2]:
        s.audio_score, s.visual_score = 0.9, 0.9
    result.video.has_audio = False  # silence cannot be what was heard
    assert segment_driver(result, seg) == "seen"


# --------------------------------------------------------------------------- codecs and proxy


@pytest.mark.parametrize(
    "name,safe",
    [
        ("nasa_13013.mp4", True),
        ("hevc_aac_4s.mkv", False),
        ("h265_video.mp4", False),
        ("h264_10bits.mp4", False),
        ("av1_video.mkv", False),
    ],
)
def test_check_playback_shared_media(media_dir, name, safe) -> None:
    playback = check_playback(media_dir / name)
    assert playback.safe is safe, playback.reason


def test_check_playback_webm_and_avi(tmp_path) -> None:
    assert check_playback(
        make_clip(tmp_path / "a.webm", 0.5, codec="libvpx-vp9", audio_codec="libopus", audio_rate=48000)
    ).safe
    avi = check_playback(make_clip(tmp_path / "a.avi", 0.5, codec="mpeg4", audio=False))
    assert not avi.safe and "AVI" in avi.reason


@pytest.mark.parametrize(
    "size,expected",
    [((1920, 1080), (1280, 720)), ((1080, 1920), (720, 1280)), ((321, 241), (320, 240)), ((3840, 1600), (1280, 534))],
)
def test_proxy_size(size, expected) -> None:
    assert proxy_size(*size) == expected


def test_proxy_of_hevc_is_browser_safe(media_dir, tmp_path) -> None:
    out = make_proxy(media_dir / "hevc_aac_4s.mkv", tmp_path / "r.proxy.mp4")
    playback = check_playback(out)
    assert playback.safe and playback.video_codec == "h264" and playback.audio_codec == "aac"
    assert playback.pixel_format == "yuv420p"
    info = probe(out)
    assert info.duration == pytest.approx(4.0, abs=0.1)
    assert (info.width, info.height) == (320, 240)
    assert [p.name for p in tmp_path.iterdir()] == ["r.proxy.mp4"]  # no temporary file left
    assert proxy_path(tmp_path / "a b.html") == tmp_path / "a b.proxy.mp4"


def test_proxy_scales_to_720p(media_dir, tmp_path) -> None:
    info = probe(make_proxy(media_dir / "bt709_full_range.mp4", tmp_path / "p.mp4"))  # 1280x720 stays
    assert (info.width, info.height) == (1280, 720)


# --------------------------------------------------------------------------- index


def test_folder_rows_from_a_results_table(tmp_path) -> None:
    a = make_result([0.1, 0.9, 0.95])
    (tmp_path / "a.json").write_text(json.dumps(a.to_dict()))
    (tmp_path / "a.html").write_text("report")
    (tmp_path / "index-2.html").write_text("report")
    table = [
        {"name": "a", "path": "/v/a.mp4", "status": "done", "duration": "2.3", "peak_score": "0.95"},
        {
            "name": "index",
            "path": "/v/index.mp4",
            "status": "done",
            "duration": "4.0",
            "peak_score": "0.4",
            "violent_seconds": "0",
            "segments": "0",
        },  # no NAME.json: the table's numbers, no sparkline
        {"name": "bad", "path": "/v/bad.mp4", "status": "failed", "error": "/v/bad.mp4: not a video"},
    ]
    (tmp_path / "cam1").mkdir()
    (tmp_path / "cam1" / "c.html").write_text("report")
    table.append({"name": "cam1/c", "path": "/v/cam1/c.mkv", "status": "done", "duration": "1.0"})
    rows = folder_rows(tmp_path, table)
    assert [r.report for r in rows] == ["a.html", "index-2.html", None, "cam1/c.html"]
    assert rows[3].label == "cam1/c.mkv" and rows[0].label is None
    assert "cam1/c.mkv</a>" in render_index(rows)
    assert rows[0].scores and rows[0].peak == pytest.approx(0.95) and rows[0].verified is False
    assert rows[1].scores == [] and rows[1].peak == pytest.approx(0.4) and rows[1].verdict == "non-violent"
    assert rows[2].error == "/v/bad.mp4: not a video"


def test_index_lists_videos_and_failures(tmp_path) -> None:
    a = make_result([0.1, 0.9, 0.95])
    b = make_result(list(np.linspace(0, 0.4, 300)))
    rows = [
        index_row("/v/a clip.mp4", tmp_path, a, tmp_path / "a clip.html"),
        index_row("/v/b.mp4", tmp_path, b, tmp_path / "b.html"),
        index_row("/v/bad.mp4", tmp_path, error="/v/bad.mp4: not a readable media file"),
    ]
    page = write_index(rows, tmp_path / "index.html").read_text(encoding="utf-8")
    assert re.findall(r'<a href="([^"]+)"', page) == ["a%20clip.html", "b.html"]  # highest peak first
    assert "not a readable media file" in page and 'id="failures"' in page
    for key in ("peak", "violent", "duration", "name"):
        assert f'data-key="{key}"' in page
    points = re.findall(r'points="([^"]+)"', page)
    assert len(points) == 2 and len(points[1].split()) == SPARK_POINTS and len(points[0].split()) == 3
    assert "Unverified weights" in page


# --------------------------------------------------------------------------- CLI

runner = CliRunner()


@pytest.fixture
def _load_networks_once(monkeypatch) -> None:
    """One set of networks for the CLI tests here (what a Detector serving many videos does)."""
    share_detectors(monkeypatch)


@pytest.fixture(scope="module")
def weight_args(tmp_path_factory):
    with fake_weights_folder(tmp_path_factory, "fake-weights") as w:
        yield [*cli_weight_args(w), "--quiet"]


def run(*args):
    return runner.invoke(app, ["detect", *map(str, args)])


def test_cli_report_proxy_needs_html(tmp_path, weight_args) -> None:
    r = run(tmp_path / "x.mp4", *weight_args, "-o", tmp_path / "x.json", "--report-proxy")
    assert r.exit_code == 2 and "--report-proxy" in r.stderr


@pytest.mark.usefixtures("_load_networks_once")
def test_cli_output_dir_html_writes_reports_and_index(tmp_path, weight_args) -> None:
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "index.mp4", seconds=40 / 24)  # must not overwrite the index page
    make_clip(src / "a clip.mp4", seconds=40 / 24)
    (src / "broken.mp4").write_text("not a video")
    out = tmp_path / "out"
    out.mkdir()
    # two shards into one folder: the index written last covers both (it reads the merged results.csv)
    from violence_cli.runner import discover, select_shard

    assert all(select_shard(discover([src]).videos, (i, 2)) for i in (0, 1)), "both shards get a video"
    codes = [
        run(
            src, *weight_args, "--output-dir", out, "--format", "html", "--threshold", "0", "--shard", f"{i}/2"
        ).exit_code
        for i in (0, 1)
    ]
    assert 1 in codes  # the broken file, in one of the shards
    # NAME.json: the runner's resume record, results.csv / failures.jsonl: the run's tables
    reports = sorted(p.name for p in out.iterdir() if p.suffix == ".html")
    assert reports == ["a clip.html", "index-2.html", "index.html"]
    assert (out / "index.json").is_file() and (out / "results.csv").is_file()
    index = (out / "index.html").read_text(encoding="utf-8")
    assert sorted(re.findall(r'<a href="([^"]+)"', index)) == ["a%20clip.html", "index-2.html"]
    assert "broken.mp4" in index and 'id="failures"' in index
    data = page_data((out / "a clip.html").read_text(encoding="utf-8"))
    assert len(data["result"]["snippets"]) == 2


@pytest.mark.usefixtures("_load_networks_once")
def test_cli_report_proxy_for_hevc(media_dir, tmp_path, weight_args) -> None:
    out = tmp_path / "rep"
    out.mkdir()
    loud = [a for a in weight_args if a != "--quiet"]  # the 'wrote' lines are information
    r = run(media_dir / "hevc_aac_4s.mkv", *loud, "-o", out / "hevc.html", "--report-proxy")
    assert r.exit_code == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["hevc.html", "hevc.proxy.mp4"]
    page = (out / "hevc.html").read_text(encoding="utf-8")
    assert 'src="hevc.proxy.mp4"' in page and "does not play in most browsers" in page
    assert check_playback(out / "hevc.proxy.mp4").safe
    assert f"wrote {out / 'hevc.proxy.mp4'}" in r.stderr  # the copy is named like every file written


def test_without_proxy_an_unplayable_video_is_warned_about(media_dir, tmp_path) -> None:
    from violence_cli.runner.jobs import html_writer

    result = make_result([0.2, 0.9, 0.8, 0.1, 0.1])
    result.video.path = str(media_dir / "hevc_aac_4s.mkv")
    warnings: list[str] = []
    html_writer(result, tmp_path / "plain.html", False, warnings.append).write(result, tmp_path / "plain.html")
    assert len(warnings) == 1 and "report_proxy=True" in warnings[0]  # the library names its parameter
    page = (tmp_path / "plain.html").read_text(encoding="utf-8")
    assert "--report-proxy" in page and "HEVC" in page
    assert [p.name for p in tmp_path.iterdir()] == ["plain.html"]  # no copy without --report-proxy


def test_html_to_string_links_relative_to_the_working_folder(result, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result.video.path = str(tmp_path / "v" / "a b.mp4")
    page = get_writer("html").to_string(result)
    assert 'src="v/a%20b.mp4"' in page


def test_assets_refuse_text_that_would_end_their_block(monkeypatch, tmp_path) -> None:
    from violence_cli.report import _assets

    for name in ("report.js", "report.css", "index.js", "index.css"):
        assert "</" not in _assets.asset(name)
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "bad.js").write_text("let s = '</script>';")
    monkeypatch.setattr(_assets, "files", lambda package: tmp_path)
    _assets.asset.cache_clear()
    try:
        with pytest.raises(ValueError, match="bad.js"):
            _assets.asset("bad.js")
    finally:
        _assets.asset.cache_clear()


def _count_opens(monkeypatch, path) -> list[str]:
    """Every ``av.open`` of ``path`` (for reading) from now on, by any module."""
    import av

    opens: list[str] = []
    real = av.open

    def counting(file, *args, **kwargs):
        if str(file) == str(path) and kwargs.get("mode", args[0] if args else "r") == "r":
            opens.append(str(file))
        return real(file, *args, **kwargs)

    monkeypatch.setattr(av, "open", counting)
    return opens


@pytest.mark.usefixtures("_load_networks_once")
def test_detect_with_a_report_opens_the_video_twice(tmp_path, weight_args, monkeypatch) -> None:
    """Facts and frames from one open, the audio (its own thread) from a second; the
    report's playback check reuses the decoder's facts (it was six opens)."""
    clip = make_clip(tmp_path / "clip.mp4", seconds=40 / 24)
    opens = _count_opens(monkeypatch, clip)
    r = run(clip, *weight_args, "-o", tmp_path / "clip.html")
    assert r.exit_code == 0, r.stderr
    assert len(opens) == 2, opens
    silent = make_clip(tmp_path / "silent.mp4", seconds=40 / 24, audio=False)
    opens = _count_opens(monkeypatch, silent)
    assert run(silent, *weight_args, "-o", tmp_path / "silent.html").exit_code == 0
    assert len(opens) == 1, opens


@pytest.mark.usefixtures("_load_networks_once")
def test_detect_with_a_proxy_opens_the_video_once_more(media_dir, tmp_path, weight_args, monkeypatch) -> None:
    opens = _count_opens(monkeypatch, media_dir / "hevc_aac_4s.mkv")
    r = run(media_dir / "hevc_aac_4s.mkv", *weight_args, "-o", tmp_path / "hevc.html", "--report-proxy")
    assert r.exit_code == 0, r.stderr
    assert len(opens) == 3, opens  # facts + frames, audio, the proxy's re-encoding


@pytest.mark.parametrize("scores", [[0.7], [0.7, 0.2], list(np.linspace(0, 1, 500))])
def test_sparkline_spans_the_width_even_for_one_snippet(scores) -> None:
    """A 1-snippet video's sparkline was a polyline of one point: nothing drawn."""
    from violence_cli.report.index import SPARK_H, SPARK_W, sparkline

    (points,) = re.findall(r'points="([^"]+)"', sparkline(scores))
    xy = [tuple(map(float, p.split(","))) for p in points.split()]
    assert len(xy) >= 2 and xy[0][0] == 0 and xy[-1][0] == pytest.approx(SPARK_W)
    if len(scores) == 1:
        assert all(y == pytest.approx((1 - scores[0]) * (SPARK_H - 2) + 1, abs=0.05) for _, y in xy)

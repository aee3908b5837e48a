"""The HTML report in a real browser: Debian's headless Chromium, driven over the DevTools
protocol (tests/cdp.py, standard library only). One browser serves the whole module.

Pages are opened from file:// (how a person opens a report); every request the page makes
must stay inside the report's folder. Skipped when no Chromium is installed, except under
CI=true, where a missing browser fails the run (conftest.missing). Screenshots are saved under the test's
tmp folder and, when ``$VIOLENCE_DETECT_SCREENSHOTS`` names a folder, there too.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from cdp import Browser, find_browser
from conftest import missing
from mediagen import make_clip
from test_writers import make_result

from violence_cli.report import check_playback, make_proxy, write_index
from violence_cli.report.index import index_row
from violence_cli.report.playback import proxy_path
from violence_cli.writers import HtmlWriter

SNIPPET = 16 / 24  # s
# 12 snippets (8 s); segments over snippets 3-5 (2.0-4.0 s) and 9-10 (6.0-7.33 s)
SCORES = [0.1, 0.2, 0.3, 0.8, 0.9, 0.7, 0.2, 0.1, 0.1, 0.85, 0.9, 0.2]


@pytest.fixture(scope="module")
def browser():
    executable = find_browser()
    if executable is None:
        missing("no chromium installed (apt-get install chromium)")
    with Browser(executable, 1200, 900) as b:
        yield b


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """A report whose video lives in a sub-folder with a space and a non-ASCII name."""
    folder = tmp_path_factory.mktemp("report")
    (folder / "media files").mkdir()
    clip = make_clip(folder / "media files" / "clip é.mp4", seconds=8.0, size=(160, 96), pattern="quadrants")
    result = make_result(SCORES)
    result.video.path, result.video.duration = str(clip), 8.0
    result.video.container, result.video.video_codec, result.video.audio_codec = "mp4", "h264", "aac"
    return HtmlWriter().write(result, folder / "clip é.html")


def open_page(browser, path: Path):
    page = browser.new_page()
    page.goto(path.resolve().as_uri())
    page.wait_for("document.getElementById('video').readyState >= 1 || document.getElementById('video').error")
    return page


def outside(page, folder: Path) -> list[str]:
    """Requests that are neither inside ``folder`` nor the browser's own data: URLs (player icons)."""
    root = folder.resolve().as_uri() + "/"
    return [u for u in page.requested_urls() if not (u.startswith(root) or u.startswith("data:"))]


def screenshot(page, tmp_path: Path, name: str) -> Path:
    from PIL import Image  # matplotlib's own dependency

    shot = page.screenshot(tmp_path / name)
    with Image.open(shot) as picture:
        colours = picture.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 100, "a blank page, not a drawn one"
    wanted = os.environ.get("VIOLENCE_DETECT_SCREENSHOTS")
    if wanted:
        Path(wanted).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(wanted) / name)
    return shot


def timeline_point(page, fraction: float) -> tuple[float, float]:
    """Viewport coordinates of ``fraction`` of the way along the time axis."""
    box = page.evaluate(
        "(() => { const c = document.getElementById('timeline'), r = c.getBoundingClientRect();"
        " return [r.left, r.top, r.height, +c.dataset.plotLeft, +c.dataset.plotRight]; })()"
    )
    left, top, height, plot_left, plot_right = box
    return left + plot_left + fraction * (plot_right - plot_left), top + height / 2


AV_RGB = (0xC0, 0x39, 0x2B)  # report.js COLORS.av
BAND_RGBA = (231, 76, 60, round(0.18 * 255))  # COLORS.segment, read back un-premultiplied


def timeline_column(page, t: float) -> tuple[list[tuple[int, ...]], float, float]:
    """The timeline canvas's pixel column at ``t`` seconds (RGBA, device pixels, top to
    bottom) and the device rows where score 1 and score 0 lie."""
    column, top, bottom = page.evaluate(
        "(() => { const c = document.getElementById('timeline'), d = window.devicePixelRatio || 1;"
        " const left = +c.dataset.plotLeft, right = +c.dataset.plotRight, extent = +c.dataset.extent;"
        f" const x = Math.round((left + {t} / extent * (right - left)) * d);"
        " const px = Array.from(c.getContext('2d').getImageData(x, 0, 1, c.height).data);"
        " return [px, +c.dataset.plotTop * d, +c.dataset.plotBottom * d]; })()"
    )
    return [tuple(column[i : i + 4]) for i in range(0, len(column), 4)], top, bottom


def _near(pixel: tuple[int, ...], rgba: tuple[int, ...], tol: int = 10) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(pixel, rgba))


def test_timeline_pixels_show_the_segments_and_the_curve(browser, report) -> None:
    """Read the drawn canvas: the segment band where a segment is and not elsewhere, the
    audio-visual curve at its score's height at two times (0.9 at 3.0 s, 0.1 at 5.0 s)."""
    page = open_page(browser, report)
    page.wait_for("document.getElementById('timeline').dataset.drawn !== undefined")
    for t, score, in_segment in ((3.0, 0.9, True), (5.0, 0.1, False), (1.0, 0.2, False)):
        column, top, bottom = timeline_column(page, t)
        plot = column[int(top) + 1 : int(bottom) - 1]
        band = sum(_near(p, BAND_RGBA) for p in plot)
        if in_segment:
            assert band > 0.7 * len(plot), (t, band, len(plot))
        else:
            assert band == 0, (t, band)
        red = [y for y, p in enumerate(column) if _near(p[:3], AV_RGB, 40) and p[3] > 200]
        assert red, f"no audio-visual curve at {t} s"
        want = top + (1 - score) * (bottom - top)
        assert abs(sum(red) / len(red) - want) <= 3, (t, red, want)  # the curve at its score
    page.close()


def test_page_loads_clean_and_offline(browser, report, tmp_path) -> None:
    page = open_page(browser, report)
    assert page.evaluate("document.getElementById('video').error") is None
    assert page.evaluate("document.getElementById('video').duration") == pytest.approx(8.0, abs=0.1)
    n = page.evaluate("JSON.parse(document.getElementById('report-data').textContent).result.snippets.length")
    assert n == len(SCORES)
    assert page.evaluate("document.querySelectorAll('#segments tbody tr').length") == 2
    assert page.evaluate("!!document.getElementById('unverified')")
    screenshot(page, tmp_path, "report.png")
    assert page.console_errors() == []
    assert outside(page, report.parent) == []
    assert any("clip%20%C3%A9.mp4" in u for u in page.requested_urls())  # the video itself was read
    page.close()


def test_timeline_click_and_drag_seek(browser, report) -> None:
    page = open_page(browser, report)
    x, y = timeline_point(page, 0.5)
    page.click(x, y)
    page.wait_for("!document.getElementById('video').seeking")
    assert page.evaluate("document.getElementById('video').currentTime") == pytest.approx(4.0, abs=SNIPPET)
    assert float(page.evaluate("document.getElementById('timeline').dataset.playhead")) == pytest.approx(
        4.0, abs=SNIPPET
    )
    # drag from 25% to 75%: the video follows the pointer
    x0, _ = timeline_point(page, 0.25)
    x1, _ = timeline_point(page, 0.75)
    page.send("Input.dispatchMouseEvent", {"type": "mousePressed", "x": x0, "y": y, "button": "left", "clickCount": 1})
    page.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x1, "y": y, "button": "left", "buttons": 1})
    page.send("Input.dispatchMouseEvent", {"type": "mouseReleased", "x": x1, "y": y, "button": "left", "clickCount": 1})
    assert page.evaluate("document.getElementById('video').currentTime") == pytest.approx(6.0, abs=SNIPPET)
    # hovering shows the time and the three scores
    page.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})
    tip = page.evaluate("document.getElementById('tooltip').textContent")
    assert tip.startswith("0:04") and "av 0.70" in tip and "audio" in tip and "visual" in tip  # snippet 6 starts at 4.0
    assert page.console_errors() == []
    page.close()


def test_segment_rows_and_keys_seek(browser, report) -> None:
    page = open_page(browser, report)
    box = page.evaluate(
        "(() => { const row = document.querySelectorAll('#segments tbody tr')[1]; row.scrollIntoView({block: 'center'});"
        " const r = row.getBoundingClientRect();"
        " return [r.left + r.width / 2, r.top + r.height / 2]; })()"
    )
    page.click(*box)
    assert page.evaluate("document.getElementById('video').currentTime") == pytest.approx(6.0, abs=0.01)
    page.key("p")
    assert page.evaluate("document.getElementById('video').currentTime") == pytest.approx(2.0, abs=0.01)
    page.key("n")
    assert page.evaluate("document.getElementById('video').currentTime") == pytest.approx(6.0, abs=0.01)
    page.key("ArrowRight")
    assert page.evaluate("document.getElementById('video').currentTime") == pytest.approx(6.0 + SNIPPET, abs=0.01)
    page.key("ArrowLeft")
    page.key("ArrowLeft")
    assert page.evaluate("document.getElementById('video').currentTime") == pytest.approx(6.0 - SNIPPET, abs=0.01)
    assert page.console_errors() == []
    page.close()


def test_playhead_moves_while_playing(browser, report) -> None:
    page = open_page(browser, report)
    page.evaluate("document.getElementById('video').currentTime = 0")
    page.key(" ")  # space plays
    page.wait_for("!document.getElementById('video').paused && document.getElementById('video').currentTime > 0.3")
    first = float(page.evaluate("document.getElementById('timeline').dataset.playhead"))
    page.wait_for(f"+document.getElementById('timeline').dataset.playhead > {first + 0.3}")
    page.key(" ")  # and pauses
    page.wait_for("document.getElementById('video').paused")
    assert page.console_errors() == []
    page.close()


def test_proxy_of_hevc_plays(browser, media_dir, tmp_path) -> None:
    source = media_dir / "hevc_aac_4s.mkv"
    folder = tmp_path / "hevc report"
    folder.mkdir()
    target = folder / "hevc.html"
    proxy = make_proxy(source, proxy_path(target))
    result = make_result([0.2, 0.9, 0.8, 0.1, 0.1])
    result.video.path, result.video.duration = str(source), 4.0
    HtmlWriter(proxy, check_playback(proxy), source_playback=check_playback(source)).write(result, target)
    page = open_page(browser, target)
    page.wait_for("document.getElementById('video').readyState >= 1")
    assert page.evaluate("document.getElementById('video').duration") == pytest.approx(4.0, abs=0.1)
    assert page.evaluate("document.getElementById('video').videoWidth") == 320
    assert "does not play in most browsers" in page.evaluate("document.getElementById('playback-note').textContent")
    screenshot(page, tmp_path, "report-hevc-proxy.png")
    assert page.console_errors() == []
    assert outside(page, folder) == []
    page.close()


def test_three_hour_timeline_draws_fast(browser, report, tmp_path) -> None:
    scores = np.clip(np.sin(np.arange(16_200) / 300.0), 0, 1)
    result = make_result(scores)
    result.video.path = str(report.parent / "media files" / "clip é.mp4")  # any playable file will do
    target = HtmlWriter().write(result, report.parent / "long.html")
    page = open_page(browser, target)
    assert page.evaluate("document.getElementById('timeline').dataset.drawn") == "16200"
    assert float(page.evaluate("document.getElementById('timeline').dataset.drawMs")) < 1000
    # drawn, read from the pixels: the curve at the top at a crest of the sine (snippet 471,
    # score 1) and at the bottom in a trough (snippet 1414, clipped to 0)
    for k, score in ((471, 1.0), (1414, 0.0)):
        column, top, bottom = timeline_column(page, k * SNIPPET)
        red = [y for y, p in enumerate(column) if _near(p[:3], AV_RGB, 40) and p[3] > 200]
        want = top + (1 - score) * (bottom - top)
        assert red and abs(sum(red) / len(red) - want) <= 3, (k, red, want)
    assert page.evaluate("document.querySelectorAll('#segments tbody tr').length") == len(result.segments)
    first_start = page.evaluate("document.querySelector('#segments tbody tr').cells[1].textContent")
    assert re.fullmatch(r"\d+:\d\d:\d\d", first_start)  # h:mm:ss for a long video
    screenshot(page, tmp_path, "report-3h.png")
    assert page.console_errors() == []
    page.close()


def test_index_sorts(browser, report, tmp_path) -> None:
    folder = report.parent
    rows = [
        index_row("/v/b.mp4", folder, make_result([0.1, 0.95]), folder / "b.html"),
        index_row("/v/a.mp4", folder, make_result([0.1, 0.2, 0.6, 0.7]), folder / "a.html"),
        index_row("/v/c.mp4", folder, error="/v/c.mp4: not a readable media file"),
    ]
    index = write_index(rows, folder / "index.html")
    page = browser.new_page()
    page.goto(index.resolve().as_uri())
    names = "Array.from(document.querySelectorAll('#videos tbody tr')).map(r => r.dataset.name).join(',')"
    assert page.evaluate(names) == "b.mp4,a.mp4"  # highest peak first
    page.evaluate("document.querySelector('th[data-key=violent]').click()")
    assert page.evaluate(names) == "a.mp4,b.mp4"  # most violent seconds first
    page.evaluate("document.querySelector('th[data-key=name]').click()")
    assert page.evaluate(names) == "a.mp4,b.mp4"
    page.evaluate("document.querySelector('th[data-key=name]').click()")
    assert page.evaluate(names) == "b.mp4,a.mp4"
    assert page.evaluate("document.querySelectorAll('svg.spark').length") == 2
    screenshot(page, tmp_path, "index.png")
    assert page.console_errors() == []
    assert outside(page, folder) == []
    page.close()


def test_narrow_screen_has_no_horizontal_scroll(browser, report, tmp_path) -> None:
    """At 420 px (a phone) the page fits its width: no horizontal scroll, and no element
    (the UNVERIFIED banner, the header facts, the tables) cut off at the right edge."""
    page = open_page(browser, report)
    metrics = {"width": 420, "height": 800, "deviceScaleFactor": 1, "mobile": False}
    page.send("Emulation.setDeviceMetricsOverride", metrics)
    page.evaluate("window.dispatchEvent(new Event('resize'))")
    page.wait_for("document.documentElement.clientWidth === 420")
    widths = page.evaluate(
        "[document.documentElement.scrollWidth, document.body.scrollWidth, document.documentElement.clientWidth]"
    )
    assert max(widths[:2]) <= widths[2], widths
    cut = page.evaluate(
        "[...document.querySelectorAll('body *')].filter(e => { const r = e.getBoundingClientRect();"
        " return r.width > 0 && r.right > document.documentElement.clientWidth + 0.5 &&"
        " getComputedStyle(e).position !== 'fixed' && !(e.closest('table') && e.tagName !== 'TABLE'); })"
        ".map(e => e.tagName + '#' + e.id + '.' + e.className)"
    )
    assert cut == [], cut
    banner = page.evaluate(
        "(() => { const b = document.getElementById('unverified'); return [b.scrollWidth, b.clientWidth]; })()"
    )
    assert banner[0] <= banner[1], banner
    screenshot(page, tmp_path, "report-420px.png")


def test_tooltip_clock_rounds_before_carrying(browser, report) -> None:
    """The page's script writes times as violence_cli.timefmt does: just under a minute is
    1:00.0, never 0:60.0 (hovered pixel by pixel across 59.5-60.5 s on a wide screen)."""
    result = make_result([0.2] * 100)  # 66.7 s
    result.video.path = str(report.parent / "media files" / "clip é.mp4")
    target = HtmlWriter().write(result, report.parent / "minute.html")
    page = open_page(browser, target)
    page.send(
        "Emulation.setDeviceMetricsOverride", {"width": 3000, "height": 900, "deviceScaleFactor": 1, "mobile": False}
    )
    page.evaluate("window.dispatchEvent(new Event('resize'))")
    page.wait_for("document.documentElement.clientWidth === 3000")
    extent = float(page.evaluate("document.getElementById('timeline').dataset.extent"))
    x0, y = timeline_point(page, 59.5 / extent)
    x1, _ = timeline_point(page, 60.5 / extent)
    tips = []
    for x in range(int(x0), int(x1) + 1):
        page.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})
        tips.append(page.evaluate("document.getElementById('tooltip').textContent").split(" ")[0])
    assert "1:00.0" in tips and "0:59.9" in tips and "1:00.4" in tips, tips
    assert not any(t.startswith("0:60") for t in tips), tips
    page.close()

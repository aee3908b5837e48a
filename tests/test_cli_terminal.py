"""The CLI on a real terminal (a pseudo-terminal): what stays on the screen once it ends.

Progress bars are drawn on stderr only on a terminal, so these runs go through ``pty``;
a small screen model replays the bytes (carriage returns, cursor-up, erase-line) and the
final screen is checked: no bar left half-drawn, no result sharing a line with a bar.
"""

from __future__ import annotations

import os
import pty
import re
import select
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fakeweights import save_fake_weights
from mediagen import make_clip

REPO = Path(__file__).resolve().parents[1]
BAR_GLYPHS = "━╺╸"
_CSI = re.compile(r"\x1b\[([?0-9;]*)([A-Za-z])")


def screen(data: str, width: int = 100) -> list[str]:
    """The lines left on a terminal after writing ``data`` (enough of VT100 for Rich's live display)."""
    lines: list[list[str]] = [[]]
    row = col = 0
    i = 0
    while i < len(data):
        ch = data[i]
        if ch == "\x1b":
            match = _CSI.match(data, i)
            if match is None:  # another escape (OSC, charset): skip its introducer
                i += 2
                continue
            args, cmd = match.groups()
            n = int(args) if args.isdigit() else 1
            if cmd == "A":
                row = max(0, row - n)
            elif cmd == "B":
                row += n
            elif cmd == "G":
                col = n - 1
            elif cmd == "K" or (cmd == "J" and args in ("", "0")):
                if args == "2":
                    lines[row] = []
                else:
                    del lines[row][col:]
                if cmd == "J":
                    del lines[row + 1 :]
            i = match.end()
            while len(lines) <= row:
                lines.append([])
            continue
        if ch == "\r":
            col = 0
        elif ch == "\n":
            row, col = row + 1, 0
            while len(lines) <= row:
                lines.append([])
        elif ch >= " ":
            if col >= width:
                row, col = row + 1, 0
                while len(lines) <= row:
                    lines.append([])
            line = lines[row]
            line.extend(" " * (col - len(line)))
            if col < len(line):
                line[col] = ch
            else:
                line.append(ch)
            col += 1
        i += 1
    return ["".join(line).rstrip() for line in lines]


def run_in_terminal(args: list[str], cwd: Path, width: int = 100, timeout: float = 240) -> tuple[int, str]:
    """Run the CLI with stdin, stdout and stderr on one pseudo-terminal; (exit code, bytes as text)."""
    leader, follower = pty.openpty()
    os.set_blocking(leader, False)
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": str(width), "LINES": "50", "TERM": "xterm"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "violence_cli", *args], cwd=cwd, env=env, stdin=follower, stdout=follower,
        stderr=follower, close_fds=True,
    )  # fmt: skip
    os.close(follower)
    chunks: list[bytes] = []
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    data = os.read(leader, 65536)
                except OSError:  # the other side closed
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=timeout)
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
    return code, b"".join(chunks).decode("utf-8", "replace")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("tty")
    weights = save_fake_weights(d / "w")
    yield {
        "dir": d,
        "a": make_clip(d / "riot1.mp4", seconds=2.0, fps=24),
        "b": make_clip(d / "calm2.mp4", seconds=1.5, fps=24),
        **{k: v for k, v in weights.items()},
    }
    shutil.rmtree(d)  # 326 MB of weights: not kept for the rest of the session


def _weights(s: dict[str, Path]) -> list[str]:
    return ["--checkpoint", str(s["macil_sd"]), "--i3d-weights", str(s["i3d_rgb_imagenet"]),
            "--vggish-weights", str(s["vggish"]), "--crops", "1", "--device", "cpu", "--no-download"]  # fmt: skip


def test_detect_leaves_a_clean_screen(setup) -> None:
    out = setup["dir"] / "out"
    code, raw = run_in_terminal(
        [str(setup["a"]), str(setup["b"]), *_weights(setup), "--output-dir", str(out), "-f", "srt"], setup["dir"]
    )
    lines = screen(raw)
    text = "\n".join(lines)
    assert code == 0, text
    assert not any(g in text for g in BAR_GLYPHS), text  # every bar finished or removed
    for name in ("riot1.mp4", "calm2.mp4"):
        (heading,) = [line for line in lines if line.endswith(name)]
        assert heading.strip() == str(setup[name[:-4] == "riot1" and "a" or "b"]), heading  # alone on its line
    verdicts = [line for line in lines if "violent" in line and "segment" in line or "non-violent" in line]
    assert len(verdicts) == 2
    assert sorted(line for line in lines if line.startswith("wrote ")) == [
        f"wrote {out / name}" for name in ("calm2.json", "calm2.srt", "results.csv", "riot1.json", "riot1.srt")], text  # fmt: skip


def test_extract_leaves_a_clean_screen(setup) -> None:
    feats = setup["dir"] / "feats"
    w = ["--i3d-weights", str(setup["i3d_rgb_imagenet"]), "--vggish-weights", str(setup["vggish"])]
    code, raw = run_in_terminal(
        ["extract", str(setup["a"]), str(setup["b"]), "--out", str(feats), "--crops", "1", "--device", "cpu", *w],
        setup["dir"],
    )
    lines = screen(raw)
    text = "\n".join(lines)
    assert code == 0, text
    assert not any(g in text for g in BAR_GLYPHS), text
    wrote = [line for line in lines if line.startswith("wrote ")]
    assert len(wrote) == 2 and all(line.split()[1].endswith("__*.npy") for line in wrote), text
    unwrapped = re.sub(r" +", " ", "".join(line.ljust(100) for line in lines))  # lines wrap at 100 columns
    assert unwrapped.count("not the published file") == 2, text  # once per weights file


def test_screen_model() -> None:
    assert screen("abc\rX\n") == ["Xbc", ""]
    assert screen("bar 1\x1b[2K\rresult\n") == ["result", ""]
    assert screen("one\ntwo\n\x1b[1A\x1b[2Kthree\n") == ["one", "three", ""]


def test_watch_alert_lines_land_above_the_live_view(setup) -> None:
    """Threshold 0: "violence #1 started" comes with the first snippet, while the live view
    is drawn; it must end up on a line of its own above the view, the view once below. At
    rich 13.0 (pyproject's lowest) the line landed inside the view: the view replaces
    sys.stdout with a proxy whose isatty() was False, so the line skipped the view's console."""
    clip = make_clip(setup["dir"] / "watch.mp4", seconds=4.0, fps=24)
    code, raw = run_in_terminal(["watch", str(clip), *_weights(setup), "--threshold", "0"], setup["dir"])
    lines = screen(raw)
    text = "\n".join(lines)
    assert code == 0, text
    started = [line for line in lines if "violence #1 started" in line]
    assert len(started) == 1 and re.fullmatch(
        r"\d\d:\d\d:\d\d  violence #1 started at 0:00\.0 \(peak \d\.\d\d\)", started[0]
    ), text
    ended = [line for line in lines if "violence #1 ended" in line]
    assert len(ended) == 1 and re.fullmatch(r"\d\d:\d\d:\d\d  violence #1 ended: 0:00\.0-0:0\d\.\d .*", ended[0]), text
    assert [line.split()[0] for line in lines if line.split()[:1] in (["source"], ["score"], ["trend"])] == [
        "source", "score", "trend"], text  # fmt: skip
    assert lines.index(started[0]) < next(i for i, line in enumerate(lines) if line.startswith("source")), text
    # the view redrawn with an alert line keeps its own markup: none of it ever shows as text
    assert "[dim]" not in raw and "[/]" not in raw, raw

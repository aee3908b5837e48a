"""Fuzz the decoding layer: crafted hostile files plus seeded mutations of ../shared/media.

For every file, probe + iter_frames + iter_audio (bounded: tests/fuzz_worker.py) must
either return or raise the project's own error, within ``PER_FILE_S`` seconds, in a
subprocess (a crash by signal, a hang or a runaway allocation fails the test and names the
file). The corpus is made here: :func:`hostile.crafted_corpus` (timestamp gaps of days,
timescale 1, audio at t = 20,000 s and 1,000,000 s, negative and non-monotonic
timestamps, frames 17,000 and 20,000 pixels long, metadata that is not UTF-8, a codec
nobody knows) and :func:`hostile.mutations` of each shared file (byte flips in the header
and the body, truncations, zeroed blocks, overwritten MP4 box headers), written to
tmp_path; the shared files are read in place.

Default: 5 mutations per shared file (~100 files, ~10 s). A bigger run:
``VIOLENCE_DETECT_FUZZ=20 pytest tests/test_fuzz.py`` (mutations per file);
``VIOLENCE_DETECT_FUZZ_SEED`` changes the seed (default 9). The whole ``extract`` command
also runs on the crafted files and the mutations of the short shared files.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

import hostile
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("fuzz_worker.py")
MUTATIONS = int(os.environ.get("VIOLENCE_DETECT_FUZZ", "5"))  # per shared file
SEED = int(os.environ.get("VIOLENCE_DETECT_FUZZ_SEED", "9"))
PER_FILE_S = 30.0  # seconds one file may take (generous: the machine may be loaded)
CRAFTED = 13  # hostile.crafted_corpus()
# every file of ../shared/media the mutations start from: one that vanishes (or a new one) fails
SHARED_MEDIA = {
    "av1_video.mkv", "bt709_full_range.mp4", "h264_10bits.mp4", "h265_video.mp4", "hevc_aac_4s.mkv",
    "kinetics/label_map.txt", "kinetics/v_CricketShot_g04_c01_rgb.gif", "nasa_13013.mp4",
    "nasa_13013.mp4.audio_44100.mp3", "sine_mono_s16.wav", "vggish_test.wav", "xd/abuse1.mp4", "xd/car1.mp4",
    "xd/explosion1.mp4", "xd/fighting1.mp4", "xd/fighting2.mp4", "xd/n1.mp4", "xd/n3.mp4", "xd/riot1.mp4",
    "xd/shooting1.mp4",
}  # fmt: skip
SHORT_MEDIA = {"av1_video.mkv", "h264_10bits.mp4", "h265_video.mp4", "hevc_aac_4s.mkv", "sine_mono_s16.wav"}


def _shared(media_dir: Path) -> list[Path]:
    return sorted(p for p in media_dir.rglob("*") if p.is_file() and p.suffix != ".md")


def _corpus(media_dir: Path, out: Path) -> list[Path]:
    files = hostile.crafted_corpus(out / "crafted")
    rng = np.random.default_rng(SEED)
    (out / "mutated").mkdir()
    for i, source in enumerate(_shared(media_dir)):
        stem = source.relative_to(media_dir).with_suffix("").as_posix().replace("/", "_")
        for what, data in hostile.mutations(source.read_bytes(), rng, MUTATIONS, start=i * MUTATIONS):
            path = out / "mutated" / f"{stem}.{what}{source.suffix}"
            path.write_bytes(data)
            files.append(path)
    return files


def test_the_corpus_is_exactly_what_it_says(media_dir: Path, tmp_path: Path) -> None:
    assert {p.relative_to(media_dir).as_posix() for p in _shared(media_dir)} == SHARED_MEDIA
    files = _corpus(media_dir, tmp_path)
    assert len(set(files)) == len(files) == CRAFTED + len(SHARED_MEDIA) * MUTATIONS  # no name written twice
    assert len([p for p in files if p.parent.name == "crafted"]) == CRAFTED


def test_mutations_do_what_their_names_say() -> None:
    data = bytes(range(1, 256)) * 400  # no zero byte in it
    rng = np.random.default_rng(0)
    seen = set()
    for what, out in hostile.mutations(data, rng, 20):
        kind = what.rstrip("0123456789")
        seen.add(kind)
        if kind == "truncate":
            assert 0 < len(out) < len(data) and data.startswith(out)
            continue
        assert len(out) == len(data), what  # the others change bytes, never the length
        changed = [i for i, (a, b) in enumerate(zip(data, out)) if a != b]
        assert changed, what
        if kind == "zero_block":
            first, last = changed[0], changed[-1]
            assert last - first + 1 == len(changed) >= 16 and not any(out[first : last + 1]), what
    assert seen == {"flip_header", "flip_body", "truncate", "zero_block", "box_header"}


class _Worker:
    """One fuzz_worker subprocess and a thread turning its stdout into a queue of lines."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # FFmpeg's own log lines
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            self.lines.put(line)
        self.lines.put(None)

    def send(self, paths: list[Path]) -> None:
        self.proc.stdin.write("".join(f"{p}\n" for p in paths))  # type: ignore[union-attr]
        self.proc.stdin.close()  # type: ignore[union-attr]

    def next(self, timeout: float) -> dict | None:
        """The next JSON line; None at the end of output; raises queue.Empty on timeout."""
        line = self.lines.get(timeout=timeout)
        return None if line is None else json.loads(line)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.wait()


def _run(paths: list[Path]) -> dict[str, tuple[str, str]]:
    """path -> (outcome, detail) for every path; crashes and hangs included."""
    results: dict[str, tuple[str, str]] = {}
    todo = list(paths)
    while todo:
        worker = _Worker()
        worker.send(todo)
        current = None
        try:
            while True:
                message = worker.next(PER_FILE_S)
                if message is None:
                    break
                if "start" in message:
                    current = message["start"]
                else:
                    results[message["done"]] = (message["outcome"], message["detail"])
                    current = None
        except queue.Empty:
            results[current or str(todo[0])] = ("hang", f"no answer within {PER_FILE_S:g} s")
            worker.stop()
        else:
            code = worker.stop()
            if current is not None:
                results[current] = ("crash", f"worker exited with {code} (negative: killed by that signal)")
        todo = [p for p in todo if str(p) not in results]
    return results


def test_decoding_layer_survives_hostile_files(media_dir: Path, tmp_path: Path) -> None:
    files = _corpus(media_dir, tmp_path)
    results = _run(files)
    counts: dict[str, int] = {}
    for outcome, _ in results.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    print(f"fuzz: tried {len(files)} files (seed {SEED}, {MUTATIONS} mutation(s) per shared file): {counts}")
    assert len(results) == len(files) == CRAFTED + len(SHARED_MEDIA) * MUTATIONS
    bad = {path: r for path, r in results.items() if r[0] not in ("ok", "input_error")}
    assert not bad, "\n".join(f"{Path(p).name}: {o}: {d}" for p, (o, d) in sorted(bad.items()))
    # the crafted cases: decoded with warnings or refused with the project's error, as designed
    crafted = {Path(p).name: r for p, r in results.items() if "/crafted/" in p}
    assert crafted["tall_17000.nut"][0] == crafted["wide_8x20000.nut"][0] == "input_error"
    assert crafted["delta_7fffffff.mp4"] == ("ok", "2 frames, 0 samples, 1 warning(s)")  # not days of repeats
    assert crafted["timescale_1.mp4"] == ("ok", "48 frames, 0 samples, 1 warning(s)")
    assert crafted["gap_1e5s.mkv"] == crafted["gap_1e5s.nut"] == ("ok", "4 frames, 0 samples, 1 warning(s)")
    for late in ("late_audio_20000.mp4", "late_audio_1e6.mp4"):  # no silence padded past the video
        assert crafted[late] == ("ok", "48 frames, 0 samples, 1 warning(s)")
    assert crafted["bad_utf8.mp4"][0] == crafted["unknown_codec.mkv"][0] == "ok"


def test_the_harness_sees_crashes_and_hangs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The harness itself can fail: a worker killed by a signal, or one that stops answering."""
    import test_fuzz

    dummy = [tmp_path / "a", tmp_path / "b"]
    crash = tmp_path / "crash.py"
    crash.write_text(
        "import json, os, signal, sys\n"
        "for line in sys.stdin:\n"
        "    print(json.dumps({'start': line.strip()}), flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGSEGV)\n"
    )
    monkeypatch.setattr(test_fuzz, "WORKER", crash)
    results = _run(dummy)
    assert {o for o, _ in results.values()} == {"crash"} and "-11" in results[str(dummy[0])][1]
    hang = tmp_path / "hang.py"
    hang.write_text(
        "import json, sys, time\n"
        "for line in sys.stdin:\n"
        "    print(json.dumps({'start': line.strip()}), flush=True)\n"
        "    time.sleep(60)\n"
    )
    monkeypatch.setattr(test_fuzz, "WORKER", hang)
    monkeypatch.setattr(test_fuzz, "PER_FILE_S", 0.5)
    assert _run(dummy[:1]) == {str(dummy[0]): ("hang", "no answer within 0.5 s")}


def test_extract_on_the_corpus_fails_cleanly_or_writes_whole_features(media_dir: Path, tmp_path: Path) -> None:
    """The whole command on the crafted files and the mutations of the short shared files:
    each video done (whole .npy files, as many rows as snippets) or failed with one line
    naming it; no traceback, no temporary file, exit status 1."""
    from fakeweights import save_fake_weights

    files = _corpus(media_dir, tmp_path / "corpus")
    short = tuple(Path(s).with_suffix("").as_posix().replace("/", "_") + "." for s in SHORT_MEDIA)
    chosen = [p for p in files if p.parent.name == "crafted" or p.name.startswith(short)]
    assert len(chosen) == CRAFTED + len(SHORT_MEDIA) * MUTATIONS
    weights_dir = tmp_path / "weights"
    save_fake_weights(weights_dir)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "VIOLENCE_DETECT_WEIGHTS": str(weights_dir)}
    cmd = [sys.executable, "-m", "violence_cli", "extract", *map(str, chosen), "--out", str(out), "--crops", "1"]
    cmd += ["--device", "cpu", "--no-download", "--json"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    videos = {Path(v["path"]).name: v for v in json.loads(proc.stdout)["videos"]}
    assert set(videos) == {p.name for p in chosen}
    for name, v in videos.items():
        if v["status"] == "failed":
            assert "\n" not in v["error"] and name in v["error"], v["error"]
            continue
        assert v["status"] == "done", (name, v["status"])
        rows = [np.load(f).shape for f in v["files"]]
        assert rows == [(v["n_snippets"], 1024), (v["n_snippets"], 128)], (name, rows)
    assert not [p for p in out.rglob(".*") if p.name.endswith(".tmp")]
    # the crafted cases, as designed: too few frames for one 16-frame snippet, or refused
    crafted = {p.name for p in chosen if p.parent.name == "crafted"}
    done = {"timescale_1.mp4", "late_audio_20000.mp4", "late_audio_1e6.mp4", "bad_utf8.mp4", "unknown_codec.mkv"}
    assert {n: videos[n]["status"] for n in crafted} == {n: "done" if n in done else "failed" for n in crafted}

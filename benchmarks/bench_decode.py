"""Decoding speed: media.iter_frames with the RGB conversion inline and on N threads.

    python benchmarks/bench_decode.py [--seconds 4] [--threads 1,2,4] [--repeat 3] [--quick]

Makes two H.264 clips with PyAV (30 fps, x264 veryfast crf 20, a moving pattern with
per-frame grain so the bitrate is like real footage): 640x360 and 1920x1080. For each,
timed in turns (best of ``--repeat``):

- decode only: PyAV with FFmpeg's automatic threads, no conversion (the ceiling);
- decode + ``to_ndarray(format="rgb24")``: PyAV's default, swscale's automatic threads
  in each frame's own context (what media did before it asked for one thread);
- ``media.iter_frames`` (24 fps RGB, what extraction consumes) with the conversion as
  before this change (default swscale threads, inline), then with ``rgb_threads`` = each
  of ``--threads`` (1 = inline in the decoding thread).

Frames/s count the frames each row produces (30 fps source frames for the first two rows,
24 fps output frames for iter_frames); "x real time" divides by the clip's rate; "cpu
ms/frame" is the process's CPU time (all its threads) per frame, the work done whatever the
machine's load. The load average is printed before and after: figures from a shared machine
are only comparable within one run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from violence_cli import media  # noqa: E402

SIZES = ((640, 360), (1920, 1080))
SOURCE_FPS = 30


def make_clip(path: Path, seconds: float, width: int, height: int) -> Path:
    """A moving gradient with fresh grain in every frame (x264 veryfast, crf 20)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=SOURCE_FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "20"}
        for i in range(round(seconds * SOURCE_FPS)):
            base = np.stack([(xx + 4 * i) % 256, (yy + 2 * i) % 256, (xx + yy) // 8 % 256], -1)
            grain = rng.integers(0, 12, (height, width, 1))
            rgb = np.clip(base + grain, 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def decode_only(path: Path, convert: bool) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        n = 0
        for frame in container.decode(stream):
            if convert:
                frame.to_ndarray(format="rgb24")
            n += 1
    return n


def _old_to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """media._to_rgb before this change: swscale's default (automatic) threads."""
    rgb = frame.to_ndarray(format="rgb24")
    turns = media._quarter_turns(frame)
    return np.ascontiguousarray(np.rot90(rgb, turns) if turns else rgb)


def iter_frames(path: Path, threads: int, old: bool = False) -> int:
    current = media._to_rgb
    if old:
        media._to_rgb = _old_to_rgb
    try:
        return sum(1 for _ in media.iter_frames(path, rgb_threads=threads))
    finally:
        media._to_rgb = current


def best_rates(runs: dict[str, Callable[[], int]], repeat: int) -> dict[str, tuple[float, float]]:
    """(frames/s, process CPU ms per frame) of each run, best of ``repeat``, the runs taken in turns."""
    best: dict[str, tuple[float, float]] = {}
    for _ in range(repeat):
        for name, run in runs.items():
            start, cpu = time.perf_counter(), time.process_time()
            frames = run()
            rate = frames / (time.perf_counter() - start)
            cost = 1000 * (time.process_time() - cpu) / frames
            if rate > best.get(name, (0.0, 0.0))[0]:
                best[name] = (rate, cost)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each clip")
    parser.add_argument("--threads", default="1,2,4", help="rgb_threads values to time, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each row; the best is kept")
    parser.add_argument("--quick", action="store_true", help="1 s clips, one run each (proves the script works)")
    args = parser.parse_args()
    seconds, repeat = (1.0, 1) if args.quick else (args.seconds, args.repeat)
    threads = [int(t) for t in args.threads.split(",")]
    print(f"cpu cores: {os.cpu_count()}; default rgb_threads: {media._RGB_THREADS}; PyAV {av.__version__}")
    print(f"load average before: {Path('/proc/loadavg').read_text().split()[:3]}")
    with tempfile.TemporaryDirectory() as tmp:
        for width, height in SIZES:
            path = make_clip(Path(tmp) / f"{width}x{height}.mp4", seconds, width, height)
            runs: dict[str, Callable[[], int]] = {
                "decode only (FFmpeg auto threads)": lambda: decode_only(path, False),
                "decode + to_ndarray(rgb24), PyAV default": lambda: decode_only(path, True),
                "iter_frames, conversion as before (inline)": lambda: iter_frames(path, 1, old=True),
            }
            for n in threads:
                runs[f"iter_frames, rgb_threads={n}"] = lambda n=n: iter_frames(path, n)
            rates = best_rates(runs, repeat)
            print(f"\n{width}x{height}, {seconds:g} s at {SOURCE_FPS} fps (best of {repeat})")
            print(f"  {'':44} {'frames/s':>10} {'x real time':>12} {'cpu ms/frame':>13}")
            for name, (rate, cost) in rates.items():
                per_second = media.VIDEO_FPS if name.startswith("iter_frames") else SOURCE_FPS
                print(f"  {name:44} {rate:10.1f} {rate / per_second:12.1f} {cost:13.2f}")
    print(f"\nload average after: {Path('/proc/loadavg').read_text().split()[:3]}")


if __name__ == "__main__":
    main()

"""Memory must not grow with a video's duration: three measurements, each in its own process.

    python benchmarks/bench_memory.py                  # all three parts (~10 min on 2 CPU cores)
    python benchmarks/bench_memory.py --part model     # one part
    python benchmarks/bench_memory.py --minutes 10 --detect-seconds 60   # quicker

1. ``decode``: the streaming picture path of ``detect`` -- PyAV decode at 24 fps ->
   resize (shorter side 256) -> five 224x224 crops -> float clips in batches -- over a
   synthetic 30-minute 640x360 H.264 video (made here with PyAV: simple moving shapes,
   ``ultrafast`` preset, cached in --workdir). No network runs; it reports the peak RSS of
   the process after 5, 15 and 30 minutes of video: flat numbers mean memory does not
   depend on duration.
2. ``model``: MACIL-SD scoring (``score_snippets``, 5 crops) over T = 16,200 snippets of
   random features (3 hours of video). The features themselves are 16,200 x 5 x 1024
   float32 = 332 MB; a T x T attention matrix would need 16,200^2 x 4 heads x 5 crops x
   4 B = 21 GB, so a peak under 2 GB shows the attention never builds it.
3. ``detect``: a real ``violence-detect VIDEO --json`` run (the CLI, as a child process)
   on a synthetic 2-minute 640x360 video with audio, end to end (model loading, decode,
   I3D, VGGish, MACIL-SD, JSON). It uses RANDOM weights files (tests/fakeweights.py): the
   scores are meaningless, the memory and time are representative. One crop by default
   (five on 2 CPU cores would take ~15 min); ``--detect-crops 5`` for the published protocol.

Peak RSS is ``getrusage().ru_maxrss`` of the process that did the work.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT, FPS = 640, 360, 24  # the synthetic videos: pixels, pixels, frames per second
CHECKPOINTS_MIN = (5, 15, 30)  # minutes of video at which part 1 reports the peak RSS


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux: kilobytes


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# ------------------------------------------------------------------------- synthetic video


def make_video(path: Path, seconds: float, audio: bool) -> Path:
    """A cheap-to-encode 640x360 H.264 video (+ AAC audio): a few shapes moving on a flat ground."""
    import av

    if path.exists():
        return path
    tmp = path.with_suffix(".partial" + path.suffix)
    n_frames = round(seconds * FPS)
    pool = []  # 48 distinct pictures, reused: encoding dominates, not drawing
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    for i in range(48):
        img = np.full((HEIGHT, WIDTH, 3), (40 + 3 * i, 90, 130), np.uint8)
        cx, cy = 40 + 11 * i, 180 + 60 * np.sin(i / 7.6)
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < 30**2] = (230, 200, 60)
        img[40:80, (7 * i) % WIDTH : (7 * i) % WIDTH + 60] = (200, 40, 40)
        pool.append(img)
    with av.open(str(tmp), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "32", "g": "240"}
        sound = None
        if audio:
            sound = out.add_stream("aac", rate=16000, layout="mono")
        frames = [av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p") for img in pool]
        for i in range(n_frames):
            frame = frames[i % len(frames)]
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
        if sound is not None:
            rng = np.random.default_rng(0)
            step = 1024
            total = int(seconds * 16000)
            for start in range(0, total, step):
                t = (start + np.arange(min(step, total - start))) / 16000
                wave = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(len(t))
                frame = av.AudioFrame.from_ndarray(wave.astype(np.float32)[None], format="fltp", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = 16000, start, Fraction(1, 16000)
                out.mux(sound.encode(frame))
            out.mux(sound.encode())
    tmp.replace(path)
    return path


# ------------------------------------------------------------------------- the three parts


def part_decode(workdir: Path, minutes: float) -> dict:
    import torch

    from violence_cli import media
    from violence_cli.features.extract import make_clips, resize_frames, resized_size
    from violence_cli.protocol import SNIPPET_FRAMES as CLIP_FRAMES

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    video = decode_video_path(workdir, minutes)  # made beforehand by the parent process
    marks = [m for m in CHECKPOINTS_MIN if m <= minutes] or [minutes]
    report = {"video": str(video), "video_mb": round(video.stat().st_size / 2**20, 1)}
    start_rss = peak_rss_mb()
    t0 = time.perf_counter()
    frames_done, snippets_done, checksum = 0, 0, 0.0
    pending: list[np.ndarray] = []
    batch: list[torch.Tensor] = []
    per_batch = 5  # snippets per step: 5 snippets x 5 crops = 25 clips (the extractor's CPU default is 5 clips)
    target = None
    at = {}
    for frame in media.iter_frames(video, media.VIDEO_FPS):
        frames_done += 1
        pending.append(frame)
        if target is None:
            target = resized_size(*frame.shape[:2])
        if len(pending) == CLIP_FRAMES:
            batch.append(resize_frames(torch.from_numpy(np.stack(pending)), target))  # (16, 256, 455, 3)
            pending = []
            if len(batch) == per_batch:
                clips = make_clips(torch.stack(batch), crops=5)  # (25, 3, 16, 224, 224) float32
                checksum += float(clips[:, 0, 0, 0, 0].sum())
                snippets_done += len(batch)
                batch = []
        minute = frames_done / (media.VIDEO_FPS * 60)
        for m in marks:
            if m not in at and minute >= m:
                at[m] = {
                    "peak_rss_mb": round(peak_rss_mb(), 1),
                    "rss_mb": round(current_rss_mb(), 1),
                    "elapsed_s": round(time.perf_counter() - t0, 1),
                }
    report.update(
        frames=frames_done,
        snippets=snippets_done,
        rss_before_mb=round(start_rss, 1),
        at_minute=at,
        decode_s=round(time.perf_counter() - t0, 1),
        checksum=checksum,
    )
    return report


def decode_video_path(workdir: Path, minutes: float) -> Path:
    return workdir / f"synthetic_{minutes:g}min_{WIDTH}x{HEIGHT}.mp4"


def part_model(snippets: int, crops: int) -> dict:
    import torch

    from violence_cli.model import MacilSD, score_snippets

    torch.manual_seed(0)
    model = MacilSD().eval()
    rng = np.random.default_rng(0)
    rgb = rng.standard_normal((snippets, crops, 1024), dtype=np.float32)  # (T, C, 1024)
    audio = rng.random((snippets, 128), dtype=np.float32)  # (T, 128)
    inputs_rss = peak_rss_mb()
    t0 = time.perf_counter()
    scores = score_snippets(model, rgb, audio, device="cpu")
    seconds = time.perf_counter() - t0
    return {
        "snippets": snippets,
        "crops": crops,
        "inputs_mb": round((rgb.nbytes + audio.nbytes) / 2**20, 1),
        "peak_rss_before_mb": round(inputs_rss, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "score_s": round(seconds, 1),
        "finite": bool(np.isfinite(scores.av).all()),
        "txt_attention_gb_avoided": round(snippets**2 * 4 * crops * 4 / 2**30, 1),
    }


def part_detect(workdir: Path, seconds: float, crops: int) -> dict:
    sys.path.insert(0, str(REPO / "tests"))
    from fakeweights import save_fake_weights

    video = make_video(workdir / f"synthetic_{seconds:g}s_{WIDTH}x{HEIGHT}_audio.mp4", seconds, audio=True)
    weights = save_fake_weights(workdir / "random-weights")
    cmd = [
        sys.executable,
        "-m",
        "violence_cli",
        str(video),
        "--json",
        "--quiet",
        "--device",
        "cpu",
        "--crops",
        str(crops),
        "--checkpoint",
        str(weights["macil_sd"]),
        "--i3d-weights",
        str(weights["i3d_rgb_imagenet"]),
        "--vggish-weights",
        str(weights["vggish"]),
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"error": proc.stderr.strip()[-2000:]}
    doc = json.loads(proc.stdout)
    return {
        "video_s": seconds,
        "crops": crops,
        "snippets": doc["video"]["n_snippets"],
        "wall_s": round(wall, 1),
        "peak_rss_mb": round(peak_rss_mb(resource.RUSAGE_CHILDREN), 1),
        "weights_verified": doc["weights_verified"],
    }


# ------------------------------------------------------------------------- driver


def run_part(name: str, args: argparse.Namespace) -> dict:
    """Run one part in a fresh interpreter so its peak RSS is its own."""
    cmd = [
        sys.executable,
        __file__,
        "--_child",
        name,
        "--workdir",
        str(args.workdir),
        "--minutes",
        str(args.minutes),
        "--snippets",
        str(args.snippets),
        "--detect-seconds",
        str(args.detect_seconds),
        "--detect-crops",
        str(args.detect_crops),
    ]
    made = None
    if name == "decode":  # make the video here so the child's peak RSS is decoding alone
        t0 = time.perf_counter()
        make_video(decode_video_path(args.workdir, args.minutes), args.minutes * 60, audio=False)
        made = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip()[-2000:]}
    report = {"make_s": made} | json.loads(proc.stdout.strip().splitlines()[-1])
    report["part_wall_s"] = round(time.perf_counter() - t0, 1)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("all", "decode", "model", "detect"), default="all")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "violence-detect-bench")
    parser.add_argument("--minutes", type=float, default=30.0, help="length of the part-1 video")
    parser.add_argument("--snippets", type=int, default=16_200, help="T for part 2 (16,200 = 3 hours)")
    parser.add_argument("--detect-seconds", type=float, default=120.0, help="length of the part-3 video")
    parser.add_argument("--detect-crops", type=int, choices=(1, 5), default=1)
    parser.add_argument("--_child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)

    if args._child:
        if args._child == "decode":
            out = part_decode(args.workdir, args.minutes)
        elif args._child == "model":
            out = part_model(args.snippets, 5)
        else:
            out = part_detect(args.workdir, args.detect_seconds, args.detect_crops)
        print(json.dumps(out))
        return

    parts = ("decode", "model", "detect") if args.part == "all" else (args.part,)
    print(f"bench_memory: {os.cpu_count()} CPU cores, workdir {args.workdir}")
    for name in parts:
        r = run_part(name, args)
        if "error" in r:
            print(f"\n[{name}] FAILED:\n{r['error']}")
            continue
        if name == "decode":
            print(
                f"\n[1 decode] decode -> resize 256 -> 5 crops 224 -> float batches of 25 clips, "
                f"{args.minutes:g} min {WIDTH}x{HEIGHT} H.264 ({r['video_mb']} MB, made in {r['make_s']} s)"
            )
            print(
                f"  {r['frames']} frames at 24 fps, {r['snippets']} snippets in {r['decode_s']} s "
                f"({r['frames'] / max(r['decode_s'], 1e-9):.0f} frames/s); RSS after imports {r['rss_before_mb']} MB"
            )
            for m, v in r["at_minute"].items():
                print(
                    f"  after {float(m):>4g} min of video: peak RSS {v['peak_rss_mb']:>7.1f} MB, "
                    f"current {v['rss_mb']:>7.1f} MB ({v['elapsed_s']} s)"
                )
        elif name == "model":
            print(
                f"\n[2 model] MACIL-SD score_snippets over T={r['snippets']} random snippets x {r['crops']} crops "
                f"(inputs {r['inputs_mb']} MB; a T x T attention would need {r['txt_attention_gb_avoided']} GB)"
            )
            print(
                f"  peak RSS {r['peak_rss_mb']} MB (with the inputs alone: {r['peak_rss_before_mb']} MB), "
                f"{r['score_s']} s, scores finite: {r['finite']}; target < 2048 MB: "
                f"{'OK' if r['peak_rss_mb'] < 2048 else 'OVER'}"
            )
        else:
            print(
                f"\n[3 detect] violence-detect VIDEO --json, {r['video_s']:g} s 640x360 video with audio, "
                f"{r['crops']} crop(s), RANDOM weights (scores meaningless, verified={r['weights_verified']})"
            )
            print(f"  {r['snippets']} snippets in {r['wall_s']} s; end-to-end peak RSS {r['peak_rss_mb']} MB")


if __name__ == "__main__":
    main()

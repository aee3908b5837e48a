"""Latency of `violence-detect watch`: a 640x360 24 fps source streamed in real time.

Makes a synthetic 640x360 24 fps H.264 + AAC clip (audio interleaved as a live stream's is), plays it in real time through the live
chain (``LiveMonitor``: decode thread, drop-oldest queue, I3D + VGGish per snippet, MACIL-SD
over the last 64 snippets) and reports the latency of each score (from the snippet's last
frame arriving to its score), its median / 95th percentile, the frames dropped because
scoring fell behind, and the snippets scored out of those the source held. ``--udp`` sends
the stream as MPEG-TS over UDP on 127.0.0.1 from a subprocess instead (tests/livegen.py).
Networks use random weights in the published layouts (speed does not depend on the values)
unless ``--weights-dir`` is given.

    python benchmarks/bench_live.py                       # CPU, --crops 1, 60 s
    python benchmarks/bench_live.py --seconds 15          # a quick run
    python benchmarks/bench_live.py --device cuda         # GPU, --crops 5 (the published protocol)

Prints one screen; with $OUT set, also writes $OUT/bench_live.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from violence_cli.live import LiveMonitor, LiveOptions, SnippetScore, StatusUpdate, parse_source  # noqa: E402
from violence_cli.pipeline import Detector  # noqa: E402
from violence_cli.protocol import SNIPPET_FRAMES, VIDEO_FPS  # noqa: E402


def _udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the source (default 60)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--crops", type=int, default=None, help="default: 1 on CPU, 5 on CUDA")
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--weights-dir", type=Path, default=None, help="real weights (default: random, same speed)")
    parser.add_argument("--udp", action="store_true", help="stream MPEG-TS over UDP on 127.0.0.1 instead of a file")
    args = parser.parse_args()
    width, height = (int(x) for x in args.size.split("x"))
    device = torch.device(args.device)
    crops = args.crops or (5 if device.type == "cuda" else 1)

    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
        weights = args.weights_dir
        if weights is None:
            from fakeweights import save_fake_weights

            weights = Path(tmp) / "weights"
            save_fake_weights(weights)
        started = time.perf_counter()
        detector = Detector(device=device, crops=crops, weights_dir=weights, download=False)
        load_s = time.perf_counter() - started
        sender = None
        if args.udp:
            url = f"udp://127.0.0.1:{_udp_port()}"
            cmd = [sys.executable, str(ROOT / "tests" / "livegen.py"), f"{url}?pkt_size=1316"]
            cmd += ["--seconds", str(args.seconds), "--size", args.size]
            sender = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
            spec = parse_source(url)
            options = LiveOptions(window=args.window, timeout=5.0, reconnect=False)
        else:
            from livegen import stream

            clip = Path(tmp) / "source.mp4"  # audio interleaved with the video, as in a live stream
            stream(str(clip), args.seconds, VIDEO_FPS, (width, height), container_format="mp4", realtime=False)
            spec = parse_source(str(clip), realtime=True)
            options = LiveOptions(window=args.window)
        monitor = LiveMonitor(spec, detector, options)
        compute: list[float] = []
        score = monitor.scorer.score

        def timed(snippets):  # the networks' time per batch of snippets
            t = time.perf_counter()
            out = score(snippets)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            compute.append((time.perf_counter() - t) / max(1, len(snippets)))
            return out

        monitor.scorer.score = timed  # type: ignore[method-assign]
        results: list[SnippetScore] = []
        statuses: list[str] = []
        watch_started = time.perf_counter()
        try:
            for update in monitor.updates():
                if isinstance(update, SnippetScore):
                    results.append(update)
                elif isinstance(update, StatusUpdate):
                    statuses.append(f"{update.kind}: {update.message}")
        finally:
            if sender is not None:
                sender.terminate()
                sender.wait(10)
        wall = time.perf_counter() - watch_started

    latency = np.array([r.latency for r in results]) if results else np.zeros(1)
    expected = int(args.seconds * VIDEO_FPS) // SNIPPET_FRAMES  # live scores a snippet at its last frame
    load = os.getloadavg()
    report = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch_threads": torch.get_num_threads(),
        "crops": crops,
        "window": args.window,
        "source": "udp mpegts" if args.udp else "file --realtime",
        "size": args.size,
        "seconds": args.seconds,
        "watched_s": round(wall, 2),
        "load_s": round(load_s, 2),
        "snippets_scored": len(results),
        "snippets_in_source": expected,
        "dropped_frames": monitor.summary.dropped_frames,
        "skipped_snippets": monitor.summary.skipped_snippets,
        "frames_in_source": int(args.seconds * VIDEO_FPS),
        "latency_median_s": round(float(np.median(latency)), 3),
        "latency_p95_s": round(float(np.percentile(latency, 95)), 3),
        "latency_max_s": round(float(latency.max()), 3),
        "compute_per_snippet_median_s": round(float(np.median(compute)), 3) if compute else None,
        "load_average": [round(x, 2) for x in load],
        "statuses": statuses,
    }
    print(
        f"bench_live: {report['source']} {args.size} 24 fps, {args.seconds:g} s, {crops} crop(s), window {args.window}"
    )
    print(f"  device           {report['device']} ({report['device_name']}), {report['torch_threads']} torch threads")
    print(f"  load average     {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (figures under load are pessimistic)")
    print(f"  networks loaded  {load_s:.1f} s")
    print(f"  scored           {len(results)} of {expected} snippets in {wall:.1f} s of watching")
    print(
        f"  latency          median {report['latency_median_s']:.3f} s, p95 {report['latency_p95_s']:.3f} s, "
        f"max {report['latency_max_s']:.3f} s (last frame of a snippet -> its score)"
    )
    print(f"  compute          {report['compute_per_snippet_median_s']} s per snippet (median; a snippet is 0.667 s)")
    print(
        f"  dropped frames   {report['dropped_frames']} of {report['frames_in_source']} "
        f"({report['skipped_snippets']} snippets skipped: more than half their frames dropped)"
    )
    out = os.environ.get("OUT")
    if out:
        path = Path(out) / "bench_live.json"
        path.write_text(json.dumps(report, indent=2))
        print(f"  json             {path}")


if __name__ == "__main__":
    main()

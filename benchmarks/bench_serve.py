"""``serve``'s own cost: jobs per minute and per-job overhead against the CLI, and the time
from upload to result on an idle server.

Makes N short clips (2 s, 64x48, H.264 + AAC) and one 10 s clip, with random test weights in
the published layouts (so the scores mean nothing; the timings are those of the real
networks), one crop, CPU, fp32, one worker, torch's default threads in both (the tests run theirs
with one):

- **CLI**: ``violence-detect detect`` (a subprocess) over 1 clip and over all N clips;
  (wall(N) - wall(1)) / (N - 1) is the CLI's time per video without its start and network load;
- **serve**: a server started once (``--workers 1``), warmed with one job (the networks load
  at the first job), then the N clips uploaded at once; jobs/minute = N / (time from the first
  upload to the last result), and the per-job overhead is serve's time per job minus the CLI's
  per video (HTTP, the store, the worker loop, polling);
- **latency**: the 10 s clip uploaded R times, one at a time, on the otherwise idle server;
  upload to ``done`` (polled every 20 ms), p50 and p95.

    python benchmarks/bench_serve.py              # 50 clips, 10 latency runs (~5 min on 2 quiet cores)
    python benchmarks/bench_serve.py --quick      # 5 clips, 3 runs: proves the script works
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from fakeweights import save_fake_weights  # noqa: E402
from mediagen import make_clip  # noqa: E402
from servehelp import MODEL_ARGS, ServeProcess, call, upload, wait_job  # noqa: E402


def cli_seconds(clips: list[Path], weights: Path, out: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "violence_cli", "detect", *map(str, clips), "--output-dir", str(out)]
    command += ["--weights-dir", str(weights), "--quiet", *MODEL_ARGS]
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def wait_done(base: str, job_id: str, poll: float = 0.02) -> float:
    """Seconds until the job is done (polled every ``poll`` s)."""
    while True:
        job = call("GET", f"{base}/v1/jobs/{job_id}").json()
        if job["status"] == "done":
            return time.perf_counter()
        if job["status"] in ("failed", "cancelled"):
            raise RuntimeError(f"job {job_id}: {job['status']} {job['error']}")
        time.sleep(poll)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--clips", type=int, default=50)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    n, runs = (5, 3) if args.quick else (args.clips, args.runs)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        root = Path(tmp)
        weights = root / "weights"
        save_fake_weights(weights)
        clips = [
            make_clip(root / f"clip{i:03d}.mp4", 2.0, size=(64, 48), tone_hz=200 + 7 * i) for i in range(n)
        ]
        long_clip = make_clip(root / "long.mp4", 10.0, size=(64, 48))

        one = cli_seconds(clips[:1], weights, root / "cli1")
        many = cli_seconds(clips, weights, root / "clin")
        cli_per_video = (many - one) / (n - 1)

        server = ServeProcess(root / "data", weights, "--workers", "1", threads=None)  # torch's threads, as the CLI
        try:
            warm = upload(server.base, clips[0]).json()["id"]
            wait_job(server.base, warm, timeout=300)
            ids: list[str] = [""] * n
            started = time.perf_counter()

            def send(i: int) -> None:
                ids[i] = upload(server.base, clips[i]).json()["id"]

            threads = [threading.Thread(target=send, args=(i,)) for i in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            ended = max(wait_done(server.base, job_id) for job_id in ids)
            serve_wall = ended - started
            latencies = []
            for _ in range(runs):
                t0 = time.perf_counter()
                job_id = upload(server.base, long_clip).json()["id"]
                latencies.append(wait_done(server.base, job_id) - t0)
        finally:
            server.stop()
    per_job = serve_wall / n
    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
    print(f"load average at start {load:.2f}, at end {os.getloadavg()[0]:.2f} (2-core VM)")
    print(f"CLI: 1 clip {one:.1f} s, {n} clips {many:.1f} s -> {cli_per_video * 1000:.0f} ms per video")
    print(
        f"serve: {n} jobs in {serve_wall:.1f} s = {60 * n / serve_wall:.1f} jobs/min "
        f"({per_job * 1000:.0f} ms per job, overhead {(per_job - cli_per_video) * 1000:+.0f} ms per job vs the CLI)"
    )
    print(
        f"10 s clip, upload to result, {runs} runs: p50 {statistics.median(latencies):.2f} s, p95 {p95:.2f} s "
        f"(min {latencies[0]:.2f}, max {latencies[-1]:.2f})"
    )


if __name__ == "__main__":
    main()

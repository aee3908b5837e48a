"""The many-video runner's own cost: per-video overhead, Ray against local, memory over a run.

Makes N tiny videos (2 s, 64x48, H.264 + AAC; random test weights in the published layouts)
and runs ``detect --crops 1 --output-dir`` over them through the library runner (the code the
CLI calls, :func:`violence_cli.runner.run`), so each video's time inside the networks is
known:

- **per-video overhead** = (wall time of the run - time loading the networks - time inside
  decoding + networks) / videos: discovery, resume checks, JSON export, results.csv, events;
- **Ray vs local**: the same videos through ``--engine ray`` on ``ray.init(num_cpus=2)``
  (one CPU actor, one CPU left for Ray), wall time per video against the local engine's,
  plus Ray's start (init + actor start + network load, up to the first result);
- **RSS** of the process after 1/4, 1/2 and all of the videos (it must not grow per video);
- **resume**: a second run over the finished folder (every video skipped), per video.

    python benchmarks/bench_runner.py                 # 200 videos, local then Ray (~15 min on 2 cores)
    python benchmarks/bench_runner.py --quick         # 20 videos: proves the script works
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from fakeweights import save_fake_weights  # noqa: E402
from mediagen import make_clip  # noqa: E402

from violence_cli.runner import DetectJob, RunEvents, discover, run  # noqa: E402
from violence_cli.weights import resolve_weight_files  # noqa: E402

NAMES = ("i3d_rgb_imagenet", "vggish", "macil_sd")


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class Probe(RunEvents):
    """Times the network load and the first result; RSS at the checkpoints."""

    def __init__(self, checkpoints: set[int]) -> None:
        self.checkpoints = checkpoints
        self.t_start = time.perf_counter()
        self.load_s = 0.0
        self.first_result_s: float | None = None
        self.done = 0
        self.rss: dict[int, float] = {}
        self._t = 0.0

    def loading(self, active: bool) -> None:
        if active:
            self._t = time.perf_counter()
        else:
            self.load_s += time.perf_counter() - self._t

    def finished(self, outcome) -> None:
        if self.first_result_s is None:
            self.first_result_s = time.perf_counter() - self.t_start
        self.done += 1
        if self.done in self.checkpoints:
            self.rss[self.done] = rss_mb()


def one_run(videos, job, engine: str, checkpoints: set[int]) -> dict:
    probe = Probe(checkpoints)
    t0 = time.perf_counter()
    summary = run(videos, job, engine=engine, device="cpu" if engine == "local" else None, events=probe)
    wall = time.perf_counter() - t0
    assert summary.failed == 0, [o.error for o in summary.outcomes if o.error]
    return {"wall": wall, "work": summary.work_seconds, "probe": probe, "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each video")
    parser.add_argument("--quick", action="store_true", help="20 videos")
    parser.add_argument("--no-ray", action="store_true", help="local engine only")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads of the local run (default 1: what the Ray actor gets on 2 CPUs)",
    )
    args = parser.parse_args()
    n = 20 if args.quick else args.videos
    if args.threads:
        torch.set_num_threads(args.threads)
    checkpoints = {max(1, n // 4), max(1, n // 2), n}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        src = root / "videos"
        for i in range(n):
            folder = src / f"d{i % 10}"
            folder.mkdir(parents=True, exist_ok=True)
            make_clip(folder / f"v{i:04d}.mp4", seconds=args.seconds, fps=24, size=(64, 48))
        w = save_fake_weights(root / "weights")
        weights = resolve_weight_files({k: w[k] for k in NAMES})
        videos = discover([src], recursive=True).videos
        print(
            f"{n} videos of {args.seconds:g} s (64x48, H.264 + AAC), detect --crops 1 --output-dir, CPU, "
            f"torch threads {torch.get_num_threads()}; load average {open('/proc/loadavg').read().split()[:3]}"
        )

        def job(out: Path) -> DetectJob:
            out.mkdir()
            return DetectJob(out_dir=out, weights=weights, crops=1, formats=["json"], precision="fp32")

        local = one_run(videos, job(root / "out-local"), "local", checkpoints)
        p = local["probe"]
        overhead = (local["wall"] - p.load_s - local["work"]) / n
        print(
            f"local: wall {local['wall']:.1f} s = load {p.load_s:.1f} s + networks/decoding {local['work']:.1f} s "
            f"+ runner {local['wall'] - p.load_s - local['work']:.2f} s -> runner overhead "
            f"{overhead * 1000:.1f} ms per video ({overhead / (local['work'] / n) * 100:.1f} % of a video's work)"
        )
        print("local RSS after " + ", ".join(f"{k} videos: {v:.0f} MB" for k, v in sorted(p.rss.items())))
        t0 = time.perf_counter()
        again = run(
            videos, DetectJob(out_dir=root / "out-local", weights=weights, crops=1, formats=["json"], precision="fp32")
        )
        resumed = time.perf_counter() - t0
        assert again.skipped == n, again
        print(f"resume: {n} done videos checked and skipped in {resumed:.2f} s ({resumed / n * 1000:.1f} ms per video)")

        if args.no_ray:
            return
        import ray

        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        init_s = time.perf_counter() - t0
        try:
            far = one_run(videos, job(root / "out-ray"), "ray", checkpoints)
        finally:
            ray.shutdown()
        q = far["probe"]
        steady = (far["wall"] - q.first_result_s) / max(1, n - 1)
        local_steady = (local["wall"] - local["probe"].first_result_s) / max(1, n - 1)
        print(
            f"ray: init {init_s:.1f} s; run wall {far['wall']:.1f} s, first result after {q.first_result_s:.1f} s "
            f"(actor start + network load + 1 video); then {steady:.3f} s per video against "
            f"{local_steady:.3f} s local -> Ray overhead {(steady - local_steady) * 1000:+.0f} ms per video "
            f"({(steady / local_steady - 1) * 100:+.1f} %); work inside the actors {far['work']:.1f} s"
        )
        print("driver RSS (Ray) after " + ", ".join(f"{k} videos: {v:.0f} MB" for k, v in sorted(q.rss.items())))
        print(f"load average after: {open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main()

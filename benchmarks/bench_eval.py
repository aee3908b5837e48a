"""Benchmark `violence-detect eval` on an XD-Violence-sized synthetic test set.

800 videos (500 violent, 300 normal ``_label_A``) x 5 crops, lengths drawn like real videos
(log-normal, median ~110 snippets = 73 s, clipped to 1..1000 snippets; the longest one is
exactly 1000), I3D-like (T, 1024) and VGGish-like (T, 128) float32 .npy files, plus an
annotations.txt. Times the whole evaluation (load every file, score every crop, build the
frame-level gt, PR-AUC and ROC-AUC) and, beside it, the metric alone.

    python benchmarks/bench_eval.py                    # generates ~2.5 GB under a temp dir
    python benchmarks/bench_eval.py --dir /data/bench  # keep (and reuse) the synthetic set

The files were just written, so they are read from the page cache (a warm cache); a cold
disk adds its read time (~2.5 GB).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from violence_cli.evaluate import (
    evaluate,
    gt_from_annotations,
    paper_metrics,
    read_annotations,
)
from violence_cli.model import MacilSD, load_model, score_snippets
from violence_cli.xdfeatures import discover_folder, load_entry

N_VIOLENT, N_NORMAL, CROPS = 500, 300, 5


def lengths(n: int, rs: np.random.RandomState) -> np.ndarray:
    t = np.clip(np.round(rs.lognormal(np.log(110), 0.8, n)), 1, 1000).astype(int)
    t[rs.randint(n)] = 1000
    return t


def generate(folder: Path, seed: int = 0) -> None:
    rs = np.random.RandomState(seed)
    names = [f"v=synth{i:04d}__#1_label_B{1 + i % 6}-0-0" for i in range(N_VIOLENT)]
    names += [f"Normal.{i:04d}__#1_label_A" for i in range(N_NORMAL)]
    pool_v = np.abs(rs.standard_normal((1100, 1024))).astype(np.float32)  # sliced per file: fast to write
    pool_a = np.maximum(rs.standard_normal((1100, 128)) * 0.3, 0).astype(np.float32)
    lines = []
    for name, t in zip(names, lengths(len(names), rs)):
        for c in range(CROPS):
            start = rs.randint(0, 1100 - t + 1)
            np.save(folder / f"{name}__{c}.npy", pool_v[start : start + t])
        start = rs.randint(0, 1100 - t + 1)
        np.save(folder / f"{name}__vggish.npy", pool_a[start : start + t])
        if "_label_A" not in name:
            s = rs.randint(0, 16 * t)
            lines.append(f"{name} {s} {s + rs.randint(16, 16 * t + 17)}")
    (folder / "annotations.txt").write_text("\n".join(lines) + "\n")
    (folder / ".complete").write_text("ok")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, help="where to keep the synthetic set (default: a temp dir, removed)")
    ap.add_argument("--checkpoint", type=Path, help="MACIL-SD weights (default: random weights; speed is the same)")
    ap.add_argument("--compare", type=int, default=50, help="videos for the thread-count comparison")
    args = ap.parse_args()

    folder = args.dir or Path(tempfile.mkdtemp(prefix="bench_eval_"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        if not (folder / ".complete").exists():
            t0 = time.perf_counter()
            generate(folder)
            print(f"generated the synthetic set in {time.perf_counter() - t0:.1f} s: {folder}")
        checkpoint = args.checkpoint
        if checkpoint is None:
            torch.manual_seed(0)
            checkpoint = folder / "random_macil.pkl"
            torch.save(MacilSD().state_dict(), checkpoint)
        size = sum(p.stat().st_size for p in folder.glob("*.npy"))

        t0 = time.perf_counter()
        entries = discover_folder(folder)
        result = evaluate(entries, annotations=folder / "annotations.txt", checkpoint=checkpoint)
        total = time.perf_counter() - t0

        t1 = time.perf_counter()
        gt, _ = gt_from_annotations([(n, s.av.shape[0]) for n, s in result.scores.items()],
                                    read_annotations(folder / "annotations.txt"))
        paper_metrics(gt, np.concatenate([s.av for s in result.scores.values()]))
        metric = time.perf_counter() - t1

        # Side by side: the scoring loop with one intra-op thread (what evaluate does on CPU)
        # and with torch's default thread count, on the same videos.
        sample = entries[:: max(1, len(entries) // args.compare)][: args.compare]
        model = load_model(checkpoint)
        data = [load_entry(e) for e in sample]
        timings = {}
        for label, threads in (("1 thread", 1), (f"{torch.get_num_threads()} threads (default)", torch.get_num_threads())):
            before = torch.get_num_threads()
            torch.set_num_threads(threads)
            t2 = time.perf_counter()
            for rgb, audio in data:
                score_snippets(model, rgb.transpose(1, 0, 2), audio)
            timings[label] = time.perf_counter() - t2
            torch.set_num_threads(before)

        longest = max(s.av.shape[0] for s in result.scores.values())
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs")
        print(f"test set: {result.n_videos} videos x {CROPS} crops, {result.n_snippets} snippets "
              f"(longest {longest}), {result.n_frames} frames, {size / 1e9:.2f} GB of features")
        print(f"eval end to end: {total:.1f} s ({result.n_snippets / total:.0f} snippets/s), AP {result.ap:.4f}")
        print(f"  of which gt + PR-AUC + ROC-AUC on {result.n_frames} frames: {metric:.1f} s")
        n = sum(a.shape[0] for _, a in data)
        base = timings["1 thread"]
        for label, seconds in timings.items():
            print(f"scoring {len(sample)} videos ({n} snippets) with {label}: {seconds:.2f} s ({seconds / base:.2f}x)")
        print(f"load average during the run: {os.getloadavg()[0]:.1f}")
    finally:
        if args.dir is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

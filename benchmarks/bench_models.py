"""Scoring time of each model per hour of video: MACIL-SD, HyperVD and their ensemble.

Only the model step is timed (``Scorer.score`` on features already made): I3D and VGGish,
which cost far more, are the same for every model. The features are synthesised (random
values at the scale of the XD-Violence features), so the timings are real and the scores are
not: an hour of video is T = 5,400 snippets, 5 crops by default. The published checkpoints
are loaded from the registry (``--weights-dir``, ``$VIOLENCE_DETECT_WEIGHTS``, the cache).
Peak RSS growth of the process is printed beside each model.

    python benchmarks/bench_models.py                   # 1 hour, 5 crops, CPU
    python benchmarks/bench_models.py --minutes 10 --crops 1 --repeat 3
    python benchmarks/bench_models.py --device cuda --json

Say the machine's load (``uptime``) with each figure you record: scoring is CPU-bound.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_hostile import vm_hwm_mb  # noqa: E402 - this process's own peak RSS

from violence_cli.models import MODEL_NAMES, MODEL_WEIGHTS, load_scorer  # noqa: E402
from violence_cli.protocol import AUDIO_DIM, RGB_DIM, SNIPPET_SECONDS  # noqa: E402
from violence_cli.weights import resolve_weights  # noqa: E402


def synthetic_features(snippets: int, crops: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(T, C, 1024) I3D-like values >= 0 and (T, 128) VGGish-like values after a ReLU."""
    rs = np.random.default_rng(seed)
    rgb = np.abs(rs.standard_normal((snippets, crops, RGB_DIM), dtype=np.float32)) * 0.6
    audio = np.maximum(rs.standard_normal((snippets, AUDIO_DIM), dtype=np.float32) * 0.25, 0)
    return rgb, audio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0, help="video length (default 60: one hour)")
    ap.add_argument("--crops", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=1, help="timed runs per model (the best is kept)")
    ap.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--weights-dir", type=Path, default=None)
    ap.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = ap.parse_args()

    snippets = max(1, round(args.minutes * 60 / SNIPPET_SECONDS))
    rgb, audio = synthetic_features(snippets, args.crops)
    load = os.getloadavg()
    rows = []
    for name in args.models:
        paths = {w: resolve_weights(w, None, weights_dir=args.weights_dir) for w in MODEL_WEIGHTS[name]}
        scorer = load_scorer(name, paths, device=args.device)
        scorer.score(rgb[:8], audio[:8])  # warm-up: one-time library set-up is not the model's cost
        before = vm_hwm_mb()
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            scorer.score(rgb, audio)
            if torch.device(args.device).type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - started)
        grown = vm_hwm_mb() - before
        best = min(times)
        rows.append(
            {
                "model": name,
                "seconds": round(best, 3),
                "seconds_per_hour_of_video": round(best * 3600 / (snippets * SNIPPET_SECONDS), 3),
                "peak_rss_growth_mib": round(grown, 1),
            }
        )
        if not args.json:
            r = rows[-1]
            print(
                f"{name:9s} {r['seconds']:8.2f} s for {snippets} snippets x {args.crops} crops  "
                f"({r['seconds_per_hour_of_video']:.2f} s per hour of video; peak RSS +{grown:.0f} MiB)",
                flush=True,
            )
    info = {
        "snippets": snippets,
        "crops": args.crops,
        "device": args.device,
        "threads": torch.get_num_threads(),
        "load_before": [round(x, 2) for x in load],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "results": rows,
    }
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"load average before {info['load_before']}, after {info['load_after']}; {info['threads']} threads")


if __name__ == "__main__":
    main()

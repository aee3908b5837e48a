"""Peak RSS of HyperVD over a long video, by row-block size (random features, CPU, float64).

    python benchmarks/bench_hypervd_memory.py --block-mib 64 --crops 5 --snippets 16200
    python benchmarks/bench_hypervd_memory.py --embed-rows 0 --no-trim   # as before 2026-12-02

Run each setting in its own process (peak RSS is per process). Prints one line.
``--embed-rows 0`` embeds each crop whole (a float64 copy of its features), ``--no-trim``
keeps what a crop freed in the C heap (no ``malloc_trim`` between crops).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_hostile import vm_hwm_mb  # noqa: E402 - this process's own peak RSS

from violence_cli import hypervd  # noqa: E402
from violence_cli.hypervd import BLOCK_BYTES, EMBED_ROWS, HyperVD, hypervd_probabilities  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--block-mib", type=float, default=BLOCK_BYTES / 2**20)
    parser.add_argument("--crops", type=int, default=5)
    parser.add_argument("--snippets", type=int, default=16200, help="T (16,200 = 3 hours)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--embed-rows", type=int, default=EMBED_ROWS, help="snippets embedded at a time (0: all)")
    parser.add_argument("--no-trim", action="store_true", help="no malloc_trim between crops")
    args = parser.parse_args()
    hypervd.EMBED_ROWS = args.embed_rows or args.snippets
    if args.no_trim:
        hypervd.release_free_memory = lambda: None
    torch.set_num_threads(args.threads)
    model = HyperVD(block_bytes=int(args.block_mib * 2**20)).double().eval()
    rng = np.random.default_rng(0)
    rgb = rng.random((args.snippets, args.crops, 1024), dtype=np.float32)
    audio = rng.random((args.snippets, 128), dtype=np.float32)
    before = vm_hwm_mb()
    start = time.perf_counter()
    hypervd_probabilities(model, rgb, audio)
    seconds = time.perf_counter() - start
    peak = vm_hwm_mb()
    print(
        f"block {args.block_mib:g} MiB, embed {hypervd.EMBED_ROWS} rows, trim {not args.no_trim}, {args.crops} crops, T = {args.snippets}: peak RSS {peak:,.0f} MiB "
        f"(+{peak - before:,.0f} MiB while scoring), {seconds:.1f} s"
    )


if __name__ == "__main__":
    main()

"""Peak RSS of HyperVD over a long video, by row-block size (random features, CPU, float64).

    python benchmarks/bench_hypervd_memory.py --block-mib 64 --crops 5 --snippets 16200

Run each block size in its own process (peak RSS is per process). Prints one line.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from violence_cli.hypervd import BLOCK_BYTES, HyperVD, hypervd_probabilities


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--block-mib", type=float, default=BLOCK_BYTES / 2**20)
    parser.add_argument("--crops", type=int, default=5)
    parser.add_argument("--snippets", type=int, default=16200, help="T (16,200 = 3 hours)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = HyperVD(block_bytes=int(args.block_mib * 2**20)).double().eval()
    rng = np.random.default_rng(0)
    rgb = rng.random((args.snippets, args.crops, 1024), dtype=np.float32)
    audio = rng.random((args.snippets, 128), dtype=np.float32)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    hypervd_probabilities(model, rgb, audio)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"block {args.block_mib:g} MiB, {args.crops} crops, T = {args.snippets}: peak RSS {peak / 1024:,.0f} MiB "
        f"(+{(peak - before) / 1024:,.0f} MiB while scoring), {seconds:.1f} s"
    )


if __name__ == "__main__":
    main()

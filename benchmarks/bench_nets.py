"""Throughput of the feature networks beside the machine's practical ceiling, in one run.

Prints: GFLOP/s of a large fp32 matrix product (the ceiling), I3D clips/s and achieved
GFLOP/s (55.6 GFLOP per 16x224x224 clip) for each inference option and batch size, and
VGGish examples/s (1.73 GFLOP each). Every figure is the best of ``--repeats`` timed runs,
with the variants interleaved round by round, so load from other processes hurts them all
alike; the load average is printed at the start and the end.

    python benchmarks/bench_nets.py                 # CPU, ~2-4 minutes on 2 cores
    python benchmarks/bench_nets.py --device cuda   # adds bf16/fp16 autocast variants
    python benchmarks/bench_nets.py --quick         # fewer variants and repeats

Weights are random (tests/fakeweights.py): speed does not depend on their values.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from fakeweights import random_i3d_state_dict, random_vggish_state_dict  # noqa: E402

from violence_cli.features.i3d import GFLOP_PER_CLIP, InceptionI3d  # noqa: E402
from violence_cli.features.vggish import GFLOP_PER_EXAMPLE, VGGish  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_times(runs: dict[str, Callable[[], object]], repeats: int, device: torch.device) -> dict[str, float]:
    """Best wall time of each callable, variants interleaved round by round after a warm-up."""
    best = dict.fromkeys(runs, float("inf"))
    for fn in runs.values():
        fn()
    _sync(device)
    for _ in range(repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            _sync(device)
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def matmul_ceiling(device: torch.device, repeats: int, n: int = 4096) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    out = torch.empty(n, n, device=device)
    t = best_times({"mm": lambda: torch.mm(a, b, out=out)}, repeats + 2, device)["mm"]
    return 2 * n**3 / t / 1e9


class _Malloc:
    """glibc only: keep freed memory in the heap instead of returning it to the kernel.

    Large activations are otherwise mmap-ed and page-faulted afresh on every forward.
    """

    def __init__(self) -> None:
        try:
            self.libc = ctypes.CDLL("libc.so.6")
        except OSError:
            self.libc = None

    def keep(self, enabled: bool) -> bool:
        if self.libc is None:
            return False
        m_mmap_max, m_trim_threshold = -4, -1
        if enabled:
            return bool(self.libc.mallopt(m_mmap_max, 0)) and bool(self.libc.mallopt(m_trim_threshold, 2**31 - 1))
        return bool(self.libc.mallopt(m_mmap_max, 65536)) and bool(self.libc.mallopt(m_trim_threshold, 128 * 1024))


def i3d_variants(device: torch.device, quick: bool) -> dict[str, InceptionI3d]:
    state = random_i3d_state_dict(0)

    def build(fuse: bool, channels_last: bool, merge: bool = True) -> InceptionI3d:
        model = InceptionI3d().eval().requires_grad_(False)
        model.load_state_dict(state)
        model.to(device)
        if channels_last:
            model.use_channels_last()
        model.fuse_bn(fuse)
        if fuse and not merge:
            for block in model.modules():
                if hasattr(block, "merge"):
                    block.merge(False)
        return model

    variants = {"fused+channels_last (load_i3d)": build(True, True)}
    if not quick:
        variants["fused+channels_last, 1x1 unmerged"] = build(True, True, merge=False)
        variants["channels_last only"] = build(False, True)
        variants["fused only (contiguous)"] = build(True, False)
        variants["plain (unfused, contiguous)"] = build(False, False)
    return variants


def bench_i3d(args: argparse.Namespace, device: torch.device, ceiling: float, malloc: _Malloc) -> None:
    variants = i3d_variants(device, args.quick)
    default = next(iter(variants))
    gen = torch.Generator().manual_seed(0)
    clips = {b: (torch.rand(b, 3, 16, 224, 224, generator=gen) * 2 - 1).to(device) for b in args.batch_sizes}

    def run(model: InceptionI3d, x: torch.Tensor, autocast: torch.dtype | None = None) -> Callable[[], object]:
        def go() -> object:
            ctx = torch.autocast(device.type, dtype=autocast) if autocast else nullcontext()
            with torch.inference_mode(), ctx:
                return model(x)

        return go

    def report(title: str, times: dict[str, float], batch: dict[str, int]) -> None:
        print(f"\n{title}")
        print(f"  {'variant':44s} {'batch':>5s} {'clips/s':>8s} {'GFLOP/s':>8s} {'of ceiling':>10s}")
        for name, t in times.items():
            b = batch[name]
            gflops = GFLOP_PER_CLIP * b / t
            print(f"  {name:44s} {b:5d} {b / t:8.2f} {gflops:8.1f} {gflops / ceiling:9.0%}")

    # 1. Every option at one batch (5 = the crops of one snippet), interleaved.
    b = args.variant_batch
    clips.setdefault(b, (torch.rand(b, 3, 16, 224, 224, generator=gen) * 2 - 1).to(device))
    runs = {name: run(model, clips[b]) for name, model in variants.items()}
    times = best_times(runs, args.repeats, device)
    report(f"I3D options, batch {b} (fp32)", times, dict.fromkeys(runs, b))

    # 2. Batch sizes for the default path; with and without keeping freed memory (CPU).
    model = variants[default]
    runs, batch = {}, {}
    for size in args.batch_sizes:
        runs[f"default, batch {size}"] = run(model, clips[size])
        batch[f"default, batch {size}"] = size
    times = best_times(runs, args.repeats, device)
    if device.type == "cpu" and malloc.keep(True):
        kept = best_times(runs, args.repeats, device)
        malloc.keep(False)
        for name, t in kept.items():
            times[name.replace("default", "default + freed memory kept")] = t
            batch[name.replace("default", "default + freed memory kept")] = batch[name]
    report("I3D batch sizes (fp32, fused+channels_last)", times, batch)

    # 3. Reduced precision: the GPU path (bf16 also runs on CPUs with AMX/AVX512-BF16).
    dtypes = [torch.bfloat16, torch.float16] if device.type == "cuda" else ([] if args.quick else [torch.bfloat16])
    if dtypes:
        size = max(args.batch_sizes)
        runs = {f"autocast {str(d).split('.')[1]}, batch {size}": run(model, clips[size], d) for d in dtypes}
        times = best_times(runs, args.repeats, device)
        print(f"\nI3D reduced precision (GFLOP/s against the fp32 ceiling, for scale)")
        report("", times, dict.fromkeys(runs, size))


def bench_vggish(args: argparse.Namespace, device: torch.device, ceiling: float) -> None:
    state = random_vggish_state_dict(0)
    models = {}
    for channels_last in ((True, False) if not args.quick else (True,)):
        model = VGGish().eval().requires_grad_(False)
        model.load_state_dict(state)
        models[f"channels_last={channels_last}"] = model.to(device).use_channels_last(channels_last)
    gen = torch.Generator().manual_seed(0)
    runs, batch = {}, {}
    for size in args.vggish_batches:
        x = (torch.randn(size, 96, 64, generator=gen) - 3).to(device)
        for name, model in models.items():

            def go(model: VGGish = model, x: torch.Tensor = x) -> object:
                with torch.inference_mode():
                    return model(x)

            runs[f"{name}, batch {size}"] = go
            batch[f"{name}, batch {size}"] = size
    times = best_times(runs, args.repeats, device)
    print("\nVGGish (fp32)")
    print(f"  {'variant':44s} {'batch':>5s} {'ex/s':>8s} {'GFLOP/s':>8s} {'of ceiling':>10s}")
    for name, t in times.items():
        b = batch[name]
        gflops = GFLOP_PER_EXAMPLE * b / t
        print(f"  {name:44s} {b:5d} {b / t:8.1f} {gflops:8.1f} {gflops / ceiling:9.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-sizes", type=lambda s: [int(v) for v in s.split(",")], default=None)
    parser.add_argument("--variant-batch", type=int, default=5)
    parser.add_argument("--vggish-batches", type=lambda s: [int(v) for v in s.split(",")], default=[16, 64])
    parser.add_argument("--quick", action="store_true", help="default variants only, 2 repeats")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.repeats = min(args.repeats, 2)
    if args.batch_sizes is None:
        args.batch_sizes = [1, 5, 10] if device.type == "cpu" else [5, 20, 40]
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        args.variant_batch = max(args.variant_batch, 20)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"torch {torch.__version__}, device {device} ({name}), {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    ceiling = matmul_ceiling(device, args.repeats)
    print(f"fp32 matmul 4096x4096 (practical ceiling): {ceiling:.1f} GFLOP/s")
    bench_i3d(args, device, ceiling, _Malloc())
    bench_vggish(args, device, ceiling)
    again = matmul_ceiling(device, args.repeats)
    print(f"\nfp32 matmul again at the end: {again:.1f} GFLOP/s; load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

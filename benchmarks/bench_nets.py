"""Throughput of the feature networks beside the machine's practical ceiling, in one run.

Prints: GFLOP/s of a large fp32 matrix product (the ceiling), I3D clips/s and achieved
GFLOP/s (55.6 GFLOP per 16x224x224 clip) for each inference option and batch size, and
VGGish examples/s (1.73 GFLOP each). Every figure is the best of ``--repeats`` timed runs,
with the variants AND the matrix product interleaved round by round, so load from other
processes hurts them all alike, and each table's "of ceiling" compares with the matrix
product timed in that same table; the load average is printed at the start and the end.

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

from fakeweights import random_i3d_state_dict, random_vggish_state_dict

from violence_cli.features import i3d
from violence_cli.features.i3d import GFLOP_PER_CLIP, InceptionI3d
from violence_cli.features.vggish import GFLOP_PER_EXAMPLE, VGGish


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


MATMUL_N = 4096
CEILING = "fp32 matmul 4096x4096 (ceiling)"


def matmul_run(device: torch.device) -> Callable[[], object]:
    a, b = torch.randn(MATMUL_N, MATMUL_N, device=device), torch.randn(MATMUL_N, MATMUL_N, device=device)
    out = torch.empty(MATMUL_N, MATMUL_N, device=device)
    return lambda: torch.mm(a, b, out=out)


def matmul_gflops(seconds: float) -> float:
    return 2 * MATMUL_N**3 / seconds / 1e9


def timed_with_ceiling(
    runs: dict[str, Callable[[], object]], repeats: int, device: torch.device
) -> tuple[dict[str, float], float]:
    """Best times of ``runs`` and the ceiling (GFLOP/s) measured interleaved with them."""
    times = best_times({CEILING: matmul_run(device), **runs}, repeats, device)
    return times, matmul_gflops(times.pop(CEILING))


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


def report(title: str, unit: str, gflop_each: float, times: dict[str, float], batch: dict[str, int], ceiling: float) -> None:
    print(f"\n{title}   [ceiling measured alongside: {ceiling:.1f} GFLOP/s]")
    print(f"  {'variant':52s} {'batch':>5s} {unit:>9s} {'GFLOP/s':>8s} {'of ceiling':>10s}")
    for name, t in times.items():
        b = batch[name]
        gflops = gflop_each * b / t
        print(f"  {name:52s} {b:5d} {b / t:9.2f} {gflops:8.1f} {gflops / ceiling:9.0%}")


def unfused_relu(fn: Callable[[], object]) -> Callable[[], object]:
    """Run ``fn`` with the conv+ReLU oneDNN call switched off (plain conv, then ReLU)."""

    def go() -> object:
        saved, i3d._fused_conv_relu_ok = i3d._fused_conv_relu_ok, False
        try:
            return fn()
        finally:
            i3d._fused_conv_relu_ok = saved

    return go


def bench_i3d(args: argparse.Namespace, device: torch.device, malloc: _Malloc) -> None:
    variants = i3d_variants(device, args.quick)
    default = next(iter(variants))
    gen = torch.Generator().manual_seed(0)
    sizes = sorted({*args.batch_sizes, args.variant_batch})
    clips = {b: (torch.rand(b, 3, 16, 224, 224, generator=gen) * 2 - 1).to(device) for b in sizes}

    def run(model: InceptionI3d, x: torch.Tensor, autocast: torch.dtype | None = None) -> Callable[[], object]:
        def go() -> object:
            ctx = torch.autocast(device.type, dtype=autocast) if autocast else nullcontext()
            with torch.inference_mode(), ctx:
                return model(x)

        return go

    # 1. Every option at one batch (5 = the crops of one snippet).
    b = args.variant_batch
    model = variants[default]
    if "options" in args.tables:
        runs = {name: run(m, clips[b]) for name, m in variants.items()}
        if device.type == "cpu" and not args.quick:
            runs = {default: runs[default], f"{default}, ReLU not fused": unfused_relu(runs[default]), **runs}
        times, ceiling = timed_with_ceiling(runs, args.repeats, device)
        report(f"I3D options, batch {b}, fp32", "clips/s", GFLOP_PER_CLIP, times, dict.fromkeys(runs, b), ceiling)

    # 2. Batch sizes of the default path.
    if "batches" in args.tables:
        runs = {f"{default}, batch {size}": run(model, clips[size]) for size in args.batch_sizes}
        batch = {f"{default}, batch {size}": size for size in args.batch_sizes}
        times, ceiling = timed_with_ceiling(runs, args.repeats, device)
        report("I3D batch sizes, fp32", "clips/s", GFLOP_PER_CLIP, times, batch, ceiling)

    # 3. keep_freed_memory() (opt-in): glibc reuses freed memory instead of fresh pages.
    if "memory" in args.tables and device.type == "cpu" and not args.quick and malloc.keep(True):
        runs = {f"{default}, batch {b}": run(model, clips[b])}
        times, ceiling = timed_with_ceiling(runs, args.repeats, device)
        malloc.keep(False)
        report("I3D with keep_freed_memory()", "clips/s", GFLOP_PER_CLIP, times, dict.fromkeys(times, b), ceiling)

    # 4. Reduced precision: the GPU path (bf16 also runs on CPUs with AMX/AVX512-BF16).
    dtypes = [torch.bfloat16, torch.float16] if device.type == "cuda" else ([] if args.quick else [torch.bfloat16])
    if dtypes and "autocast" in args.tables:
        size = max(args.batch_sizes)
        runs = {f"autocast {str(d).split('.')[1]}, batch {size}": run(model, clips[size], d) for d in dtypes}
        times, ceiling = timed_with_ceiling(runs, args.repeats, device)
        report("I3D reduced precision (against the fp32 ceiling, for scale)", "clips/s", GFLOP_PER_CLIP, times, dict.fromkeys(runs, size), ceiling)


def bench_vggish(args: argparse.Namespace, device: torch.device) -> None:
    state = random_vggish_state_dict(0)
    models = {}
    for channels_last in (True, False) if not args.quick else (True,):
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
    times, ceiling = timed_with_ceiling(runs, args.repeats, device)
    report("VGGish, fp32", "ex/s", GFLOP_PER_EXAMPLE, times, batch, ceiling)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-sizes", type=lambda s: [int(v) for v in s.split(",")], default=None)
    parser.add_argument("--variant-batch", type=int, default=5)
    parser.add_argument("--vggish-batches", type=lambda s: [int(v) for v in s.split(",")], default=[32, 128])
    parser.add_argument("--quick", action="store_true", help="default variants only, 2 repeats")
    parser.add_argument(
        "--tables",
        type=lambda s: set(s.split(",")),
        default={"options", "batches", "memory", "autocast", "vggish"},
        help="comma-separated subset of: options,batches,memory,autocast,vggish",
    )
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
    malloc = _Malloc()

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"torch {torch.__version__}, device {device} ({name}), {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, "
          f"THP_MEM_ALLOC_ENABLE={os.environ.get('THP_MEM_ALLOC_ENABLE')}")
    bench_i3d(args, device, malloc)
    if "vggish" in args.tables:
        bench_vggish(args, device)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

"""Seconds per training epoch on an XD-Violence-sized synthetic training set.

XD-Violence trains on 3,954 videos x 5 crop files = 19,770 bags, each subsampled to at most
200 snippets. This script runs the real training step (violence_cli.training.loop:
audio-visual model + teacher, MIL + contrastive losses, both Adam steps) on batches drawn
from such a set and extrapolates a full epoch from a few timed steps (a full CPU epoch takes
minutes). Bag lengths: min(200, T) with T from a log-normal around 150 snippets (100 s),
so about a third of the bags are full length; as in the published loop, a batch is padded to
its longest bag, so nearly every batch of 128 is 200 long.

Printed beside it, measured in the same run:
- the contrastive losses vectorised vs the straightforward per-bag loop, one batch;
- reading features from disk (the one-time check, and per epoch for bags that do not fit
  the RAM cache), measured on a sample of real .npy files and extrapolated;
- validation on an XD-test-sized set (800 videos x 5 crops), extrapolated from a sample.

Usage: python benchmarks/bench_train.py [--steps 4] [--batch-size 128] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from violence_cli.devices import resolve_device
from violence_cli.model import MacilSD, VisualOnlyNet
from violence_cli.training import (
    TrainConfig,
    TrainingSet,
    ValidationSet,
    build_training_set,
)
from violence_cli.training.data import Bag
from violence_cli.training.loop import _build, train_one_epoch
from violence_cli.training.losses import cross_modal_losses, cross_modal_losses_per_item
from violence_cli.training.synthetic import make_synthetic_xd
from violence_cli.xdfeatures import discover_folder

XD_VIDEOS, XD_CROPS, XD_TEST_VIDEOS = 3954, 5, 800


def xd_lengths(n: int, rng: np.random.Generator) -> np.ndarray:
    raw = np.exp(rng.normal(np.log(150), 0.8, n)).astype(int).clip(2, None)  # snippets before subsampling
    return raw


class PooledSet(TrainingSet):
    """19,770 bags whose features come from a small in-RAM pool (no disk, no 16 GB of RAM);
    ``limit`` stops each epoch after that many batches."""

    def __init__(self, lengths: np.ndarray, limit: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        bags = []
        for v, t in enumerate(lengths):
            label = float(v % 3 != 0)
            for c in range(XD_CROPS):
                bags.append(Bag(f"v{v}", c, Path("-"), Path("-"), label, int(t), int(min(t, 200))))
        super().__init__(bags, 200)
        self.pool_v = np.abs(rng.normal(0.3, 0.3, (64, 200, 1024))).astype(np.float32)
        self.pool_a = np.abs(rng.normal(0.1, 0.1, (64, 200, 128))).astype(np.float32)
        self.limit = limit

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        n = self.bags[i].length
        return self.pool_v[i % 64, :n], self.pool_a[i % 64, :n]

    def batches(self, batch_size, generator=None):
        for k, batch in enumerate(super().batches(batch_size, generator)):
            if k == self.limit:
                return
            yield batch

    def n_batches(self, batch_size: int) -> int:
        return min(self.limit, super().n_batches(batch_size))


def time_training(args, dev) -> tuple[float, int]:
    rng = np.random.default_rng(0)
    lengths = xd_lengths(XD_VIDEOS, rng)
    full = PooledSet(lengths, limit=1 << 30)
    steps_per_epoch = full.n_batches(args.batch_size)
    cfg = TrainConfig(batch_size=args.batch_size)
    model, teacher, opt_av, opt_t, _, _, shuffle = _build(cfg, dev)
    warm = PooledSet(lengths, limit=1)
    train_one_epoch(model, teacher, opt_av, opt_t, warm, cfg, 5, shuffle, dev)  # warm-up, lambda > 0
    timed = PooledSet(lengths, limit=args.steps)
    stamps: list[float] = []

    def on_step(step: int, total: int) -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())

    on_step(0, 0)
    train_one_epoch(model, teacher, opt_av, opt_t, timed, cfg, 5, shuffle, dev, on_step)
    per_step = (stamps[-1] - stamps[0]) / args.steps
    fastest = float(np.min(np.diff(stamps)))
    frac_full = float(np.mean(np.minimum(lengths, 200) == 200))
    print(
        f"training set: {XD_VIDEOS} videos x {XD_CROPS} crops = {len(full)} bags, "
        f"{frac_full:.0%} of them 200 snippets long; batch {args.batch_size} -> {steps_per_epoch} steps per epoch"
    )
    print(
        f"train step (AV model + teacher, forward + backward + 2 Adam steps): {per_step:.3f} s "
        f"(mean of {args.steps} timed steps after 1 warm-up; fastest {fastest:.3f} s)"
    )
    epoch = per_step * steps_per_epoch
    print(
        f"=> training compute per epoch: {epoch:.1f} s on {dev} (extrapolated from {args.steps} of "
        f"{steps_per_epoch} steps)"
    )
    return epoch, steps_per_epoch


def time_losses(dev) -> None:
    g = torch.Generator().manual_seed(0)
    b, t, h = 128, 200, 128
    lengths = torch.randint(20, t + 1, (b,), generator=g)
    lengths[0] = t
    scores = [torch.randn(b, generator=g), torch.randn(b, t, generator=g), torch.randn(b, t, generator=g), lengths]
    scores = [x.to(dev) for x in scores]
    times = {}
    for name, fn in (("vectorised", cross_modal_losses), ("per-bag loop", cross_modal_losses_per_item)):
        runs = []
        for _ in range(4):
            reps = [torch.randn(b, t, h, generator=g).to(dev).requires_grad_() for _ in range(2)]
            t0 = time.perf_counter()
            terms = fn(*scores, *reps)
            sum(terms[:4]).backward()
            runs.append(time.perf_counter() - t0)
        times[name] = min(runs[1:])
    print(
        f"contrastive losses forward + backward, batch 128 x 200 (best of 3): vectorised "
        f"{times['vectorised'] * 1e3:.0f} ms, per-bag loop {times['per-bag loop'] * 1e3:.0f} ms "
        f"(x{times['per-bag loop'] / times['vectorised']:.1f})"
    )


def time_disk(args, workdir: Path) -> tuple[float, float]:
    n = args.disk_videos
    data = make_synthetic_xd(workdir / "disk", n // 2, n - n // 2, crops=XD_CROPS, min_len=40, max_len=400, seed=3)
    mean_len = np.mean([v.length for v in data.videos])
    entries = discover_folder(data.root)
    os.sync()
    t0 = time.perf_counter()
    ts = build_training_set(entries, cache_bytes=0)
    check = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for i in range(len(ts)):
        ts.load(i)
    reread = (time.perf_counter() - t0) / n
    print(
        f"disk ({n} sample videos x 5 crops, mean {mean_len:.0f} snippets; page cache warm): "
        f"check {check * 1e3:.1f} ms/video, re-read of the subsampled rows {reread * 1e3:.1f} ms/video"
    )
    print(
        f"=> one-time check of {XD_VIDEOS} videos ~{check * XD_VIDEOS:.0f} s; per-epoch re-read when "
        f"nothing fits --cache-gb ~{reread * XD_VIDEOS:.0f} s"
    )
    return check * XD_VIDEOS, reread * XD_VIDEOS


def time_validation(args, dev, workdir: Path) -> float:
    n = args.val_videos
    data = make_synthetic_xd(workdir / "val", n // 2, n - n // 2, crops=XD_CROPS, min_len=60, max_len=300, seed=4)
    vs = ValidationSet(discover_folder(data.root), annotations=data.annotations)
    model, teacher = MacilSD().to(dev), VisualOnlyNet().to(dev)
    t0 = time.perf_counter()
    vs(model)
    vs(teacher)
    per_video = (time.perf_counter() - t0) / n
    mean_len = np.mean([v.length for v in data.videos])
    print(
        f"validation (AV model + teacher, {n} sample videos x 5 crops, mean {mean_len:.0f} snippets): "
        f"{per_video * 1e3:.1f} ms/video => ~{per_video * XD_TEST_VIDEOS:.0f} s for {XD_TEST_VIDEOS} videos"
    )
    return per_video * XD_TEST_VIDEOS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=4, help="timed training steps")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--disk-videos", type=int, default=40)
    parser.add_argument("--val-videos", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    torch.manual_seed(0)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {dev}, "
        f"load average {os.getloadavg()[0]:.1f} (other processes slow every figure down)"
    )
    if dev.type == "cuda":
        print(f"GPU: {torch.cuda.get_device_name(dev)}")
    epoch, _ = time_training(args, dev)
    time_losses(dev)
    with tempfile.TemporaryDirectory() as tmp:
        _, reread = time_disk(args, Path(tmp))
        val = time_validation(args, dev, Path(tmp))
    print(
        f"=> epoch with validation: ~{epoch + val:.0f} s (features cached in RAM), "
        f"~{epoch + val + reread:.0f} s (re-read from disk every epoch)"
    )
    print("published code on a V100 (its log): about 87 s per epoch including its test pass")


if __name__ == "__main__":
    main()

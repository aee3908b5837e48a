"""gpu_check section 5: the acceptance figures of issue 19, in the same one call.

- the **precision matrix**: I3D clips/s at batch 40 for fp32 / TF32 / bf16 / fp16 x
  ``cudnn.benchmark`` off / on x channels-last / contiguous, and what ``--precision auto``
  chooses there (the real measurement, :func:`violence_cli.features.autoprecision.choose`);
- the **bf16 hypotheses** (why bf16 may be slower than TF32): the 3-channel first
  convolution alone against the same layer with its input padded to 8 channels; the share
  of layout copies and of non-cuDNN 3-D convolution kernels in a profiled bf16 forward
  (kernel names from torch.profiler);
- a **per-layer profile**: each I3D block's time in one forward, per precision;
- **NVDEC vs CPU decoding**: 24-fps frames/s both ways for 640x360 and 1920x1080, and the
  largest pixel difference (<= 1 grey level);
- **end to end** at 1 and 5 crops for 640x360 and 1920x1080, in the extractor's precision
  ``auto`` (1080p with NVDEC where it works);
- **many videos**: hours of video per hour with 1, 4 and 8 decode workers;
- a **verdict** naming the bound and the three **targets**: 640x360 at 5 crops >= 150x real
  time on one video; many 640x360 videos at 5 crops >= 150x; 1080p at 5 crops >= 100x with NVDEC.

On the CPU (``--quick``, CI) every part runs on tiny inputs with the CUDA-only parts noted,
so the code keeps working between GPU sessions; its figures prove nothing about a GPU.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gpu_media import make_video
from gpu_report import Deadline, Report, log, median_time, sync

TARGET_ONE = 150.0  # x real time: 640x360, 5 crops, one video
TARGET_MANY = 150.0  # x real time: many 640x360 videos, 5 crops
TARGET_1080 = 100.0  # x real time: 1920x1080, 5 crops, with NVDEC
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")

ACCEPT_FULL = {
    "batch": 40,
    "min_time": 0.3,
    "sizes": ((640, 360), (1920, 1080)),
    "seconds": 20.0,
    "many_n": 16,
    "many_seconds": 10.0,
    "workers": (1, 4, 8),
    "decode_cap": 3.0,
}
ACCEPT_QUICK = {
    "batch": 1,
    "min_time": 0.0,
    "sizes": ((320, 180),),
    "seconds": 1.0,
    "many_n": 2,
    "many_seconds": 1.0,
    "workers": (1,),
    "decode_cap": 0.5,
}


def section_acceptance(rep: Report, ctx: Any, deadline: Deadline) -> None:
    sizes = ACCEPT_QUICK if ctx.args.quick else ACCEPT_FULL
    ctx.ensure_detectors(rep)
    rates = precision_matrix(rep, ctx, sizes, deadline)
    if deadline.left() > 20:
        layer_profile(rep, ctx, sizes)
    if ctx.cuda and deadline.left() > 30:
        bf16_hypotheses(rep, ctx, sizes)
        auto_choice(rep, ctx)
    videos = make_clips(rep, ctx, sizes, deadline)
    decode = nvdec_vs_cpu(rep, ctx, videos, sizes) if deadline.left() > 15 else {}
    e2e = end_to_end(rep, ctx, videos, deadline)
    many = many_videos(rep, ctx, sizes, deadline) if deadline.left() > 20 else {}
    verdict(rep, ctx, rates, decode, e2e, many)


def _network(ctx: Any, precision: str, channels_last: bool) -> Any:
    """A copy of the extractor's I3D in ``precision`` and layout (its weights, refolded)."""
    from violence_cli.precision import compute_dtype

    base = ctx.detector.extractor.i3d
    net = copy.deepcopy(base)
    net.use_channels_last(channels_last)
    return net.fuse_bn(True, dtype=compute_dtype(precision))


def _clips(n: int, device: torch.device, channels_last: bool) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(n, 3, 16, 224, 224, generator=gen) * 2 - 1).to(device)
    return x.contiguous(memory_format=torch.channels_last_3d if channels_last else torch.contiguous_format)


def _forward(net: Any, x: torch.Tensor, precision: str, device: torch.device):
    from violence_cli.precision import matmul_flags

    def go() -> object:
        with torch.inference_mode(), matmul_flags(precision, device):
            return net(x)

    return go


def precision_matrix(rep: Report, ctx: Any, sizes: dict, deadline: Deadline) -> dict[str, float]:
    """clips/s per (precision, cudnn.benchmark, layout); on the CPU fp32 and bf16 only."""
    dev, b = ctx.device, sizes["batch"]
    precisions = PRECISIONS if ctx.cuda else ("fp32", "bf16")
    benchmarks = (False, True) if ctx.cuda else (False,)
    layouts = (True, False) if ctx.cuda else (True,)
    table: dict[str, float] = {}
    saved = torch.backends.cudnn.benchmark
    try:
        for precision in precisions:
            for layout in layouts:
                x = _clips(b, dev, layout)
                net = _network(ctx, precision, layout)
                for bench in benchmarks:
                    if deadline.left() < 30:
                        rep.note(f"precision matrix cut short at {precision}: section time cap")
                        break
                    torch.backends.cudnn.benchmark = bench
                    t = median_time(
                        _forward(net, x, precision, dev),
                        dev,
                        sizes["min_time"],
                        warmup=2 if ctx.cuda else 0,
                        min_reps=3 if ctx.cuda else 1,
                    )
                    key = f"{precision}, benchmark {'on' if bench else 'off'}, {'channels-last' if layout else 'contiguous'}"
                    table[key] = b / t
                net = x = None
                if ctx.cuda:
                    torch.cuda.empty_cache()
    finally:
        torch.backends.cudnn.benchmark = saved
    rep.figure(f"I3D precision matrix at batch {b}", {k: round(v, 1) for k, v in table.items()}, "clips/s")
    if not ctx.cuda:
        rep.note("precision matrix on the CPU: fp32 and bf16 only (TF32/fp16 and cudnn.benchmark are CUDA matters)")
    if table:
        best = max(table, key=table.get)
        rep.figure("I3D fastest configuration", f"{best}: {table[best]:,.1f} clips/s")
    return table


def layer_profile(rep: Report, ctx: Any, sizes: dict) -> None:
    """Seconds per I3D block in one forward (synchronised hooks), per precision."""
    dev, b = ctx.device, sizes["batch"]
    for precision in PRECISIONS if ctx.cuda else ("fp32",):
        net = _network(ctx, precision, True)
        x = _clips(b, dev, True)
        times: dict[str, float] = {}
        marks: dict[str, float] = {}

        def pre(name: str):
            def hook(module: Any, args: Any) -> None:
                sync(dev)
                marks[name] = time.perf_counter()

            return hook

        def post(name: str):
            def hook(module: Any, args: Any, output: Any) -> None:
                sync(dev)
                times[name] = times.get(name, 0.0) + time.perf_counter() - marks[name]

            return hook

        handles = []
        for name, module in net._stages():  # the convolutions and inception blocks, in order
            handles += [module.register_forward_pre_hook(pre(name)), module.register_forward_hook(post(name))]
        go = _forward(net, x, precision, dev)
        go()  # warm
        times.clear()
        go()
        for h in handles:
            h.remove()
        total = sum(times.values()) or float("nan")
        rep.figure(
            f"I3D per-layer profile ({precision}, batch {b})",
            {k: f"{1000 * v:.2f} ms ({100 * v / total:.0f}%)" for k, v in times.items()},
            "ms per forward",
        )


def bf16_hypotheses(rep: Report, ctx: Any, sizes: dict) -> None:
    """CUDA: the 3-channel first convolution vs an 8-channel one; layout copies and
    non-cuDNN convolution kernels in a profiled bf16 forward."""
    dev, b = ctx.device, sizes["batch"]
    conv = torch.nn.Conv3d(3, 64, (7, 7, 7), stride=(2, 2, 2), padding=3).to(dev)
    for precision, dtype in (("tf32", torch.float32), ("bf16", torch.bfloat16)):
        for cin in (3, 8):
            layer = torch.nn.Conv3d(cin, 64, (7, 7, 7), stride=(2, 2, 2), padding=3).to(dev, dtype)
            layer = layer.to(memory_format=torch.channels_last_3d)
            x = torch.randn(b, cin, 16, 224, 224, device=dev, dtype=dtype).contiguous(
                memory_format=torch.channels_last_3d
            )
            saved = torch.backends.cudnn.benchmark
            torch.backends.cudnn.benchmark = True
            try:
                t = median_time(_forward(layer, x, precision, dev), dev, 0.2, warmup=2)
            finally:
                torch.backends.cudnn.benchmark = saved
            rep.figure(f"first conv 7x7x7, cin {cin}, {precision}", 1000 * t, "ms per batch")
    del conv
    net = _network(ctx, "bf16", True)
    x = _clips(b, dev, True)
    go = _forward(net, x, "bf16", dev)
    go()
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
        go()
        sync(dev)
    kernels: dict[str, float] = {}
    for evt in prof.key_averages():
        cuda_us = getattr(evt, "device_time_total", None) or getattr(evt, "cuda_time_total", 0.0)
        if cuda_us:
            kernels[evt.key] = kernels.get(evt.key, 0.0) + cuda_us
    total = sum(kernels.values()) or float("nan")
    copies = sum(
        v for k, v in kernels.items() if "copy" in k.lower() or "contiguous" in k.lower() or "nchw" in k.lower()
    )
    slow = sum(
        v for k, v in kernels.items() if any(s in k.lower() for s in ("slow_conv", "vol2col", "im2col", "native"))
    )
    top = dict(sorted(kernels.items(), key=lambda kv: -kv[1])[:8])
    rep.figure("bf16 forward: top kernels", {k[:56]: f"{v / 1000:.2f} ms" for k, v in top.items()}, "device time")
    rep.figure("bf16 forward: layout copies", 100 * copies / total, "% of device time")
    rep.figure("bf16 forward: non-cuDNN convolution kernels", 100 * slow / total, "% of device time")


def auto_choice(rep: Report, ctx: Any) -> None:
    """What --precision auto picked on this GPU: the detector's own choice (measured when it
    loaded, or read from the cache), else measured now into a scratch cache."""
    from violence_cli.features import autoprecision

    choice = getattr(ctx.detector.extractor, "precision_choice", None)
    start = time.perf_counter()
    if choice is None or choice.source not in ("measured", "cache"):
        choice = autoprecision.choose(ctx.device, cache_folder=ctx.tmp / "precision-cache")
    rep.figure(
        "--precision auto chooses", choice.precision, note=f"{choice.source}; {time.perf_counter() - start:.1f} s here"
    )
    rep.figure("--precision auto: why", choice.reason, device="-")
    figures = {f"{p}: {k}": round(v, 6) for p, m in choice.measurements.items() for k, v in m.items()}
    rep.figure("--precision auto: measurements", figures)


def make_clips(rep: Report, ctx: Any, sizes: dict, deadline: Deadline) -> dict[str, tuple[Path, float]]:
    out: dict[str, tuple[Path, float]] = {}
    for w, h in sizes["sizes"]:
        name = f"{w}x{h}"
        if name in ctx.videos and ctx.videos[name][1] >= sizes["seconds"] * 0.5:
            out[name] = ctx.videos[name]
            continue
        log(f"acceptance: encoding a {sizes['seconds']:.0f} s {name} clip")
        start = time.perf_counter()
        out[name] = make_video(
            ctx.tmp / f"accept_{name}.mp4", sizes["seconds"], (w, h), 30, deadline=start + max(5.0, deadline.left() / 8)
        )
    return out


def nvdec_vs_cpu(rep: Report, ctx: Any, videos: dict[str, tuple[Path, float]], sizes: dict) -> dict[str, float]:
    """24-fps frames/s decoded in software and on NVDEC; the largest pixel difference."""
    from violence_cli import media
    from violence_cli.hwdecode import Nvdec

    rates: dict[str, float] = {}
    nvdec = Nvdec(ctx.device)
    for name, (path, _) in videos.items():
        for label, accel in (("cpu", None), ("nvdec", nvdec.accel)):
            if label == "nvdec":
                warnings: list[str] = []
                accel = nvdec.accel_for(path, None, warnings.append)
                if accel is None:
                    rep.figure(f"{name}: NVDEC", "not used", device="-", note="; ".join(warnings) or "no CUDA device")
                    continue
            n, start = 0, time.perf_counter()
            frames = media.iter_frames(path, hwaccel=accel)
            try:
                for _ in frames:
                    n += 1
                    if time.perf_counter() - start > sizes["decode_cap"]:
                        break
            finally:
                frames.close()
            rate = n / (time.perf_counter() - start)
            rates[f"{name} {label}"] = rate / 24
            rep.figure(
                f"{name}: decode ({label}), 24-fps RGB",
                rate,
                "frames/s",
                device=ctx.host if label == "cpu" else None,
                note=f"{rate / 24:.0f}x real time",
            )
        if f"{name} nvdec" in rates:
            soft = media.iter_frames(path)
            hard = media.iter_frames(path, hwaccel=nvdec.accel)
            try:
                worst = max(
                    int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max()) for a, b, _ in zip(soft, hard, range(24))
                )
            finally:
                soft.close()
                hard.close()
            rep.check(f"{name}: NVDEC frames within one grey level of software", worst <= 1, worst, "<= 1")
    return rates


def end_to_end(rep: Report, ctx: Any, videos: dict[str, tuple[Path, float]], deadline: Deadline) -> dict[str, float]:
    """x real time of FeatureExtractor.extract, precision auto, 5 and 1 crops."""
    from violence_cli.features.extract import FeatureExtractor

    out: dict[str, float] = {}
    fx0 = ctx.detector.extractor
    for crops in (5, 1):
        fx = FeatureExtractor(
            fx0.i3d_path,
            fx0.vggish_path,
            device=ctx.device,
            crops=crops,
            download=False,
            precision="auto" if ctx.cuda else fx0.precision,
        )
        for name, (path, seconds) in videos.items():
            if deadline.left() < 15:
                rep.note(f"skipped end to end {name} {crops} crop(s): section time cap")
                continue
            fx.extract(ctx.clip)  # warm: cuDNN plans, the pinned pool
            start = time.perf_counter()
            feats = fx.extract(path)
            took = time.perf_counter() - start
            x = feats.n_frames / 24 / took
            out[f"{name} {crops}"] = x
            nv = "NVDEC" if fx.nvdec.used.get(str(path)) else "CPU decoding"
            rep.figure(
                f"end to end {name}, {crops} crop{'s' if crops > 1 else ''} ({fx.precision}, {nv})",
                x,
                "x real time",
                note=f"{feats.n_snippets} snippets in {took:.2f} s",
            )
        fx.close()
    return out


def many_videos(rep: Report, ctx: Any, sizes: dict, deadline: Deadline) -> dict[int, float]:
    """Hours of video per hour for many 640x360 videos at 5 crops, by decode workers."""
    from violence_cli.runner import ExtractJob, discover, run
    from violence_cli.weights import resolve_weight_files

    folder = ctx.tmp / "accept_many"
    folder.mkdir(exist_ok=True)
    size = (640, 360) if not ctx.args.quick else (160, 120)
    first, made = make_video(folder / "m_00.mp4", sizes["many_seconds"], size, 30)
    for i in range(1, sizes["many_n"]):
        (folder / f"m_{i:02d}.mp4").write_bytes(first.read_bytes())
    fx0 = ctx.detector.extractor
    weights = resolve_weight_files({"i3d_rgb_imagenet": fx0.i3d_path, "vggish": fx0.vggish_path}, download=False)
    out: dict[int, float] = {}
    for workers in sizes["workers"]:
        if deadline.left() < 15:
            rep.note(f"skipped many videos with {workers} decode worker(s): section time cap")
            continue
        job = ExtractJob(
            out_dir=ctx.tmp / f"accept_out_{workers}",
            weights=weights,
            crops=5,
            precision=fx0.precision,
            decode_workers=workers,
        )
        job.precision_asked = "auto" if ctx.cuda else fx0.precision
        log(f"acceptance: {sizes['many_n']} videos, {workers} decode worker(s)")
        summary = run(discover([str(folder)]).videos, job, device=ctx.device, overwrite=True)
        rate = summary.video_seconds / max(summary.wall_seconds, 1e-9)
        out[workers] = rate
        rep.figure(
            f"many videos, {workers} decode worker(s)",
            rate,
            "hours of video per hour",
            note=f"{summary.done}/{summary.total} done in {summary.wall_seconds:.1f} s (with start-up)",
        )
        rep.check(
            f"many videos, {workers} decode worker(s): every video done",
            summary.done == summary.total,
            f"{summary.done}/{summary.total}",
            "all",
        )
    return out


def verdict(
    rep: Report,
    ctx: Any,
    rates: dict[str, float],
    decode: dict[str, float],
    e2e: dict[str, float],
    many: dict[int, float],
) -> None:
    """What bounds a 5-crop run, and the three targets (checked on CUDA only)."""
    best = max(rates.values(), default=float("nan"))
    i3d_cap = best / (5 * 1.5)  # x real time at 5 crops: 1.5 snippets/s of video, 5 clips each
    dec = {k: v for k, v in decode.items() if k.startswith("640x360")}
    dec_cap = max(dec.values(), default=float("nan"))
    bound = "I3D" if i3d_cap <= dec_cap or not np.isfinite(dec_cap) else "decoding"
    rep.figure(
        "verdict: capacities at 5 crops (x real time)",
        {
            "I3D at its fastest configuration": round(i3d_cap, 1),
            "one decoder, 640x360": round(dec_cap, 1),
            **{f"measured: {k} crop(s)": round(v, 1) for k, v in e2e.items()},
            **{f"measured: many videos, {w} worker(s)": round(v, 1) for w, v in many.items()},
        },
    )
    one, big, pool = e2e.get("640x360 5"), e2e.get("1920x1080 5"), max(many.values(), default=None)
    parts = [f"bound by {bound}"]
    if one is not None and one < 0.8 * min(i3d_cap, dec_cap):
        parts.append(
            f"one video reaches {one:.0f}x of {min(i3d_cap, dec_cap):.0f}x: the pipeline does not overlap fully"
        )
    rep.figure("verdict", "; ".join(parts), device="-")
    if not ctx.cuda:
        rep.note("targets are checked on CUDA only")
        return
    rep.check(
        "target: 640x360, 5 crops, one video", one is not None and one >= TARGET_ONE, one, f">= {TARGET_ONE:.0f}x"
    )
    rep.check(
        "target: many 640x360 videos, 5 crops", pool is not None and pool >= TARGET_MANY, pool, f">= {TARGET_MANY:.0f}x"
    )
    rep.check(
        "target: 1920x1080, 5 crops, NVDEC", big is not None and big >= TARGET_1080, big, f">= {TARGET_1080:.0f}x"
    )

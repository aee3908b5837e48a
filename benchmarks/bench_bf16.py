"""bf16 against fp32 on the CPU, and our extractor against a researcher-style loop, in one run.

    python benchmarks/bench_bf16.py                     # the figures of benchmarks/README.md
    python benchmarks/bench_bf16.py --quick             # a short run that proves it works
    python benchmarks/bench_bf16.py --sections tune     # batch / threads / channels-last for bf16
    python benchmarks/bench_bf16.py --sections fidelity # bf16 vs fp32 on the XD sample clips

Sections (``--sections``, comma-separated; default ``nets,e2e,peer``):

- ``nets``: I3D clips/s in fp32 and bf16 (the network alone, batch 5, interleaved round by
  round so load from elsewhere hits both alike), VGGish examples/s in both;
- ``e2e``: ``FeatureExtractor.extract`` on a 60 s 640x360 30 fps H.264 + AAC clip made here:
  seconds of video per second at 5 and 1 crops, fp32 and bf16 (and what ``auto`` picks);
- ``peer``: the same clip through a loop written the way research scripts extract features:
  per-frame PIL resize, one clip at a time through the reference I3D (the published port's
  computation: unfused batch norm, contiguous tensors, fp32), VGGish on the whole soundtrack
  afterwards, nothing overlapped. Targets: ours (``auto``) >= 2.5x the peer at 5 crops, and
  5-crop real time or better (>= 1 s of video per second) on a 2-core bf16 CPU;
- ``tune``: bf16 I3D by batch size, torch threads and memory format; end to end by batch;
- ``fidelity``: bf16 against fp32 features and published-model scores on the XD sample clips
  (needs ../shared/media/xd; tests/fidelity.py).

Weights are RANDOM (tests/fakeweights.py): speed does not depend on their values. The load
average is printed at the start and the end: figures taken on a busy machine are low.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fakeweights import save_fake_weights  # noqa: E402

from violence_cli.features import load_i3d, load_vggish  # noqa: E402
from violence_cli.features.i3d import GFLOP_PER_CLIP, InceptionI3d  # noqa: E402
from violence_cli.precision import cpu_has_native_bf16, resolve_precision  # noqa: E402
from violence_cli.protocol import CROP_SIZE, SNIPPET_FRAMES, VIDEO_FPS  # noqa: E402

# The sections that decode video import PyAV (violence_cli.media, the extractor) when they
# run, so `--sections nets --device cuda` needs nothing but torch.
SNIPPET_S = SNIPPET_FRAMES / VIDEO_FPS


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def best_times(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Best wall time of each callable, interleaved round by round after one warm-up each."""
    sync = torch.cuda.synchronize if torch.cuda.is_initialized() else (lambda: None)
    for fn in runs.values():
        fn()
    sync()
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            sync()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


# --------------------------------------------------------------------------- networks


def bench_nets(weights: dict[str, Path], repeats: int, device: torch.device) -> None:
    """Throughput of both networks in fp32 and bf16, and how far bf16's outputs are from fp32's."""
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    batch, examples = (40, 256) if cuda else (5, 32)
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(batch, 3, 16, 224, 224, generator=gen) * 2 - 1).to(device)
    mel = (torch.randn(examples, 96, 64, generator=gen) - 3).to(device)
    print(f"\n== networks alone on {device} (best of {repeats}, interleaved)")
    i3d = {p: load_i3d(weights["i3d_rgb_imagenet"], device=device, precision=p) for p in ("fp32", "bf16")}
    vgg = {p: load_vggish(weights["vggish"], device=device, precision=p) for p in ("fp32", "bf16")}

    def run(model, inp, autocast: bool = False) -> Callable[[], torch.Tensor]:
        def go() -> torch.Tensor:
            with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                return model(inp).float()

        return go

    runs = {f"I3D {p}": run(m, x) for p, m in i3d.items()}
    runs["I3D fp32 under bf16 autocast"] = run(i3d["fp32"], x, autocast=True)  # what CUDA ran before
    runs |= {f"VGGish {p}": run(m, mel) for p, m in vgg.items()}
    t = best_times(runs, repeats)
    for name in ("I3D fp32", "I3D bf16", "I3D fp32 under bf16 autocast"):
        rate = batch / t[name]
        print(f"  {name + f', batch {batch}':38s} {rate:8.2f} clips/s   {rate * GFLOP_PER_CLIP:7.0f} GFLOP/s")
    print(f"  {'I3D bf16 / fp32':38s} {t['I3D fp32'] / t['I3D bf16']:8.2f}x")
    for p in ("fp32", "bf16"):
        print(f"  {f'VGGish {p}, batch {examples}':38s} {examples / t[f'VGGish {p}']:8.1f} examples/s")
    print(f"  {'VGGish bf16 / fp32':38s} {t['VGGish fp32'] / t['VGGish bf16']:8.2f}x")
    for net, a, b in (
        ("I3D", runs["I3D fp32"], runs["I3D bf16"]),
        ("VGGish", runs["VGGish fp32"], runs["VGGish bf16"]),
    ):
        ya, yb = a(), b()
        cos = torch.nn.functional.cosine_similarity(ya, yb, dim=1).min().item()
        print(
            f"  {net} bf16 vs fp32 outputs: cosine >= {cos:.6f}, max abs {(ya - yb).abs().max().item():.3g} "
            f"(largest value {ya.abs().max().item():.3g}; random weights, random inputs)"
        )


# --------------------------------------------------------------------------- end to end


def extract_rate(fx, video: Path, repeat: int) -> tuple[float, int]:
    """(seconds of video per second, snippets) of FeatureExtractor.extract, best of ``repeat``."""
    best, snippets = float("inf"), 0
    for _ in range(repeat):
        start = time.perf_counter()
        feats = fx.extract(video)
        best = min(best, time.perf_counter() - start)
        snippets = feats.n_snippets
    return snippets * SNIPPET_S / best, snippets


def bench_e2e(weights: dict[str, Path], video: Path, repeat: int, batch: int | None = None) -> dict[tuple, float]:
    from violence_cli.features.extract import FeatureExtractor

    print(f"\n== end to end: FeatureExtractor.extract (best of {repeat}), {load()}")
    rates = {}
    for crops in (5, 1):
        for p in ("fp32", "bf16"):
            fx = FeatureExtractor(
                weights["i3d_rgb_imagenet"], weights["vggish"], crops=crops, precision=p, batch_size=batch
            )
            if repeat > 1:  # a warm-up when there is time for it
                fx.extract(video)
            rate, snippets = extract_rate(fx, video, repeat)
            rates[crops, p] = rate
            print(
                f"  {crops} crop{'s' if crops > 1 else ' '} {p}  batch {fx.batch_size:2d}   {rate:6.2f} s of video/s   "
                f"({snippets} snippets, {snippets * crops / (snippets * SNIPPET_S / rate):.2f} clips/s)"
            )
        print(
            f"  {crops} crop{'s' if crops > 1 else ' '} bf16 / fp32            {rates[crops, 'bf16'] / rates[crops, 'fp32']:6.2f}x"
        )
    return rates


# --------------------------------------------------------------------------- the peer loop


def _pil_resize(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    h, w = size
    return np.asarray(Image.fromarray(frame).resize((w, h), Image.BILINEAR))


def peer_extract(video: Path, i3d: InceptionI3d, vggish, crops: int) -> tuple[np.ndarray, np.ndarray]:
    """Features the way research scripts compute them: frame by frame, clip by clip, fp32."""
    from violence_cli import media
    from violence_cli.features import frontend
    from violence_cli.features.extract import crop_boxes, resized_size

    rgb, frames = [], []
    boxes = None
    with torch.inference_mode():
        for frame in media.iter_frames(video):
            if boxes is None:
                size = resized_size(*frame.shape[:2])
                boxes = crop_boxes(*size, crops)
            frames.append(_pil_resize(frame, size))
            if len(frames) == SNIPPET_FRAMES + 1:  # a snippet is complete when the next frame exists
                clip = np.stack(frames[:SNIPPET_FRAMES]).astype(np.float32) / 127.5 - 1.0  # (16, h, w, 3)
                frames = frames[SNIPPET_FRAMES:]
                per_crop = []
                for top, left in boxes:
                    crop = clip[:, top : top + CROP_SIZE, left : left + CROP_SIZE]
                    x = torch.from_numpy(np.ascontiguousarray(crop.transpose(3, 0, 1, 2)))[None]  # (1, 3, 16, 224, 224)
                    per_crop.append(i3d(x)[0].numpy())
                rgb.append(np.stack(per_crop))
        examples = np.concatenate(list(frontend.aligned_examples(media.iter_audio(video), n_snippets=len(rgb))))
        audio = vggish(torch.from_numpy(examples)).numpy()
    return np.stack(rgb), audio


def bench_peer(weights: dict[str, Path], video: Path, ours: dict[tuple, float], crops_list: tuple[int, ...]) -> None:
    print(f"\n== peer loop: per-frame PIL resize, batch-1 reference I3D (unfused, contiguous, fp32), {load()}")
    i3d = load_i3d(weights["i3d_rgb_imagenet"], fuse_bn=False, channels_last=False)
    vggish = load_vggish(weights["vggish"], channels_last=False)
    auto = resolve_precision("auto", "cpu")
    for crops in crops_list:
        start = time.perf_counter()
        rgb, _ = peer_extract(video, i3d, vggish, crops)
        seconds = time.perf_counter() - start
        rate = len(rgb) * SNIPPET_S / seconds
        print(
            f"  peer, {crops} crop{'s' if crops > 1 else ' '}         {rate:6.2f} s of video/s   ({len(rgb)} snippets, {seconds:.1f} s)"
        )
        if (crops, auto) in ours:
            ratio = ours[crops, auto] / rate
            line = f"  ours (auto = {auto}) / peer, {crops} crop{'s' if crops > 1 else ''}: {ratio:.2f}x"
            if crops == 5:
                real_time = ours[crops, auto]
                line += (
                    f"   [target >= 2.5x: {'met' if ratio >= 2.5 else 'NOT met'}; 5-crop real time "
                    f"(>= 1.0 s/s): {real_time:.2f} {'met' if real_time >= 1.0 else 'NOT met'}]"
                )
            print(line)


# --------------------------------------------------------------------------- tuning


def bench_tune(weights: dict[str, Path], video: Path, repeats: int, quick: bool) -> None:
    from violence_cli.features.extract import FeatureExtractor

    print(f"\n== tuning bf16 (best of {repeats}, interleaved), {load()}")
    gen = torch.Generator().manual_seed(0)
    sizes = (1, 5) if quick else (1, 2, 5, 10, 20)
    clips = {b: torch.rand(b, 3, 16, 224, 224, generator=gen) * 2 - 1 for b in sizes}
    models = {
        "channels-last": load_i3d(weights["i3d_rgb_imagenet"], precision="bf16"),
        "contiguous": load_i3d(weights["i3d_rgb_imagenet"], precision="bf16", channels_last=False),
    }

    def run(model, x) -> Callable[[], object]:
        def go() -> object:
            with torch.inference_mode():
                return model(x)

        return go

    runs = {f"channels-last, batch {b}": run(models["channels-last"], clips[b]) for b in sizes}
    runs["contiguous, batch 5"] = run(models["contiguous"], clips[5])
    t = best_times(runs, repeats)
    for name, seconds in t.items():
        b = int(name.rsplit(" ", 1)[1])
        print(f"  I3D bf16 {name:24s} {b / seconds:7.2f} clips/s")
    threads = torch.get_num_threads()

    def with_threads(n: int) -> Callable[[], object]:
        go = run(models["channels-last"], clips[5])

        def timed() -> object:
            torch.set_num_threads(n)
            try:
                return go()
            finally:
                torch.set_num_threads(threads)

        return timed

    counts = sorted({1, threads})
    t = best_times({n: with_threads(n) for n in counts}, repeats)  # interleaved, like the rest
    for n in counts:
        print(f"  I3D bf16 batch 5, {n} torch thread{'s' if n > 1 else ' '}   {5 / t[n]:7.2f} clips/s")
    for crops in (1, 5):
        for batch in (5, 10):
            fx = FeatureExtractor(
                weights["i3d_rgb_imagenet"], weights["vggish"], crops=crops, precision="bf16", batch_size=batch
            )
            rate, _ = extract_rate(fx, video, 1)
            print(
                f"  end to end bf16, {crops} crop{'s' if crops > 1 else ' '}, batch {batch:2d}   {rate:6.2f} s of video/s"
            )


# --------------------------------------------------------------------------- fidelity


def bench_fidelity(weights: dict[str, Path], seconds: float, crops: int, tmp: Path) -> None:
    from fidelity import compare, trim

    from violence_cli.features.extract import FeatureExtractor
    from violence_cli.model import load_model

    shared = Path(os.environ.get("VIOLENCE_DETECT_SHARED", REPO.parent / "shared"))
    xd = shared / "media" / "xd"
    model = load_model(shared / "weights" / "macil_sd.pkl")
    common = {"i3d_weights": weights["i3d_rgb_imagenet"], "vggish_weights": weights["vggish"], "crops": crops}
    fp32, bf16 = FeatureExtractor(**common), FeatureExtractor(**common, precision="bf16")
    print(
        f"\n== fidelity: bf16 vs fp32 on {xd} (first {seconds:g} s, {crops} crops), scores at XD-like magnitudes shifted to 0.3-0.7"
    )
    print(
        f"  {'clip':14s} {'T':>3s} {'RGB cos min':>11s} {'RGB max abs':>11s} {'(rel)':>7s} {'aud cos min':>11s} "
        f"{'aud max abs':>11s} {'(rel)':>7s} {'score diff':>10s} segments@0.5"
    )
    worst = {"rgb": 1.0, "aud": 1.0, "score": 0.0}
    for clip in sorted(xd.glob("*.mp4")):
        short = trim(clip, tmp / clip.name, seconds)
        r = compare(fp32, bf16, short, model)
        same = "identical" if r.segments_fp32 == r.segments_bf16 else "DIFFER"
        print(
            f"  {clip.stem:14s} {r.snippets:3d} {r.rgb_cosine_min:11.6f} {r.rgb_max_abs:11.4f} {r.rgb_max_rel:7.2%} "
            f"{r.audio_cosine_min:11.6f} {r.audio_max_abs:11.4f} {r.audio_max_rel:7.2%} {r.score_max_diff:10.2g} {same}"
        )
        worst = {
            "rgb": min(worst["rgb"], r.rgb_cosine_min),
            "aud": min(worst["aud"], r.audio_cosine_min),
            "score": max(worst["score"], r.score_max_diff),
        }
    print(f"  worst: RGB cosine {worst['rgb']:.6f}, audio cosine {worst['aud']:.6f}, score diff {worst['score']:.2g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the synthetic 640x360 clip")
    parser.add_argument("--repeat", type=int, default=1, help="end-to-end runs per setting (best kept)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds of the network tables")
    parser.add_argument("--batch-size", type=int, default=None, help="I3D clips per forward (default: the extractor's)")
    parser.add_argument("--sections", type=lambda s: s.split(","), default=["nets", "e2e", "peer"])
    parser.add_argument("--peer-crops", type=lambda s: tuple(int(v) for v in s.split(",")), default=(5, 1))
    parser.add_argument("--fidelity-seconds", type=float, default=10.0)
    parser.add_argument("--fidelity-crops", type=int, default=5, choices=(1, 5))
    parser.add_argument("--quick", action="store_true", help="a 6 s clip, 2 rounds, the peer at 5 crops only")
    parser.add_argument("--device", default="cpu", help="for the nets section (cuda: batch 40; others: CPU only)")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.repeats = min(args.seconds, 6.0), 2
        args.peer_crops = (5,)
        args.fidelity_seconds = min(args.fidelity_seconds, 3.0)

    print(
        f"CPU: {cpu_model()} ({os.cpu_count()} logical CPUs), native bf16: {cpu_has_native_bf16()}, "
        f"auto -> {resolve_precision('auto', 'cpu')}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"{load()}"
    )
    print("RANDOM weights: speed only")
    tmp = Path(tempfile.mkdtemp(prefix="bench_bf16_"))
    weights = save_fake_weights(tmp / "weights")
    video = None
    if {"e2e", "peer", "tune"} & set(args.sections):
        from bench_extract import make_video

        video = make_video(tmp / "bench.mp4", args.seconds, 640, 360)
        print(f"video: {args.seconds:g} s, 640x360 30 fps H.264 + stereo AAC (made here)")
    ours: dict[tuple, float] = {}
    if "nets" in args.sections:
        bench_nets(weights, args.repeats, torch.device(args.device))
    if "e2e" in args.sections:
        ours = bench_e2e(weights, video, args.repeat, args.batch_size)
    if "peer" in args.sections:
        bench_peer(weights, video, ours, args.peer_crops)
    if "tune" in args.sections:
        bench_tune(weights, video, args.repeats, args.quick)
    if "fidelity" in args.sections:
        bench_fidelity(weights, args.fidelity_seconds, args.fidelity_crops, tmp)
    print(f"\nat the end: {load()}")


if __name__ == "__main__":
    main()

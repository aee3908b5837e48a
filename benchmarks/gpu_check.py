"""The GPU path proven in one call: correctness against the CPU, speed, many videos.

    python benchmarks/gpu_check.py                       # on a CUDA machine: everything, < 5 min on an H100
    python benchmarks/gpu_check.py --device cpu --quick  # CI: every part on tiny inputs, < 1 min

Sections (each one timed and capped; a section that fails is recorded and the next runs):

1. environment: GPU, driver, CUDA, cuDNN, torch/torchvision/PyAV, CPU cores;
2. correctness on the device against CPU fp32, with random I3D/VGGish weights in the
   published layouts (tests/fakeweights.py) and the published MACIL-SD checkpoint: the GPU
   resize, I3D through the extractor's own path (pinned memory, non-blocking copy, GPU
   resize, channels-last, detect's precision: bf16 on CUDA), VGGish, MACIL-SD scores from the
   same features (<= 1e-4) and from the device's bf16 features (<= 0.01), and a whole ``detect`` of a real
   XD-Violence clip (same snippets, scores within 0.01, same segments);
3. speed: I3D clips/s and TFLOP/s at batch 1, 8, 40, 80; decode frames/s (1 thread and the
   pipeline's threads) for 640x360 and 1920x1080 H.264; resize, transfer and audio stages;
   end-to-end ``extract`` at 5 and 1 crops on 60 s clips made here with PyAV, as x real
   time, with GPU utilisation, peak GPU memory and what bounds it;
4. many videos: 40 short clips with 1 and 2 workers on the one device: videos/s;
5. acceptance (benchmarks/gpu_accept.py): the precision matrix (fp32/TF32/bf16/fp16 x
   cudnn.benchmark x layout at batch 40) and what --precision auto picks, the bf16
   hypotheses, a per-layer profile, NVDEC vs CPU decoding, end to end at 1 and 5 crops for
   640x360 and 1920x1080, many videos with 1, 4 and 8 decode workers, the verdict and the
   three targets.

The report framework is benchmarks/gpu_report.py, the media made here benchmarks/gpu_media.py.

Random weights give features far larger than real ones, which would saturate every
MACIL-SD score; so features are scaled to XD-Violence magnitudes (RGB mean 0.4, audio
mean 0.1, as tests/test_precision.py does) before scoring, and for ``detect`` the last
layers of the random I3D and VGGish are scaled by the same factors.

Prints a readable report on stdout (progress with timestamps on stderr) and writes the
same figures as JSON to ``--json PATH`` and to ``$OUT/gpu_check.json`` when ``OUT`` is set,
rewritten after every section. Every figure and check names the device that produced it.
Exit status: 0 every check passed; 10 the report is complete but a check failed or a
section did not finish; 2 bad arguments; anything else: the script itself crashed.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for _p in (REPO, REPO / "tests", REPO / "benchmarks"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import numpy as np  # noqa: E402
import torch  # noqa: E402

XD_CLIP = "explosion1.mp4"  # 640x360: not 256 on its short side, so the resize runs too
RGB_MEAN, AUDIO_MEAN = 0.4, 0.1  # XD-Violence-like feature magnitudes (REFERENCE.md; test_precision)
MACIL_FP32_TOL, MACIL_BF16_TOL, DETECT_TOL = 1e-4, 0.01, 0.01
TARGET_X_REALTIME = 150.0  # 5 crops, 640x360, one H100
I3D, VGG, MACIL = "i3d_rgb_imagenet", "vggish", "macil_sd"  # registry names of the weights files
I3D_LAST = [f"Mixed_5c.{b}.bn.{p}" for b in ("b0", "b1b", "b2b", "b3b") for p in ("weight", "bias")]
VGGISH_LAST = ["embeddings.4.weight", "embeddings.4.bias"]

# Sizes of everything, full run and --quick. Budgets are seconds (hard caps per section).
FULL = {
    "crops": 5,
    "snippets": 8,  # snippets compared in the I3D check: 40 clips = one CUDA batch
    "examples": 64,
    "long_t": 400,
    "batches": (1, 8, 40, 80),
    "bench_seconds": 60.0,
    "sizes": ((640, 360), (1920, 1080)),
    "src_fps": 30,
    "decode_cap": 4.0,  # s of wall time per decode measurement
    "many_n": 40,
    "many_seconds": 4.0,
    "many_size": (480, 270),
    "budget": {"environment": 20, "correctness": 120, "speed": 150, "many_videos": 45, "acceptance": 170},
}
QUICK = {
    "crops": 1,
    "snippets": 2,
    "examples": 4,
    "long_t": 20,
    "batches": (1, 2),
    "bench_seconds": 1.0,
    "sizes": ((320, 180),),
    "src_fps": 30,
    "decode_cap": 1.0,
    "many_n": 3,
    "many_seconds": 1.0,
    "many_size": (160, 120),
    "budget": {"environment": 30, "correctness": 120, "speed": 120, "many_videos": 90, "acceptance": 300},
}

from gpu_accept import section_acceptance  # noqa: E402
from gpu_media import GRAIN, decode_rate, first_frames, make_video, pipeline_decode_rate  # noqa: E402,F401
from gpu_report import (  # noqa: E402,F401
    CPU_NOTE,
    EXIT_FAILED_CHECKS,
    SCHEMA,
    SECTIONS,
    T0,
    Deadline,
    Report,
    Sampler,
    SectionTimeout,
    _fmt,
    _plain,
    compare_features,
    cosines,
    log,
    median_time,
    out,
    rss_mb,
    sync,
    time_cap,
)

# --------------------------------------------------------------------------- the networks


def scale_outputs(module: torch.nn.Module, keys: list[str], factor: float) -> None:
    """Multiply the last layer's scale and shift by ``factor``: the ReLU'd outputs scale by it.

    Done through load_state_dict, so I3D's folded batch norm is recomputed (its load hook).
    """
    state = module.state_dict()
    for key in keys:
        state[key] = state[key] * factor
    module.load_state_dict(state)


def twin_extractor(fx: Any, crops: int) -> Any:
    """A second FeatureExtractor sharing ``fx``'s loaded networks, with its own buffers.

    Avoids loading the 290 MB VGGish again for another crop count or another worker
    thread; inference on shared modules is thread-safe, the per-call buffers are not.
    """
    twin = copy.copy(fx)
    twin.crops = crops
    twin.snippets_per_step = max(1, fx.batch_size // crops)
    for attr in ("_clip_buffer", "_silence"):
        if hasattr(twin, attr):
            setattr(twin, attr, None)
    return twin


def twin_detector(det: Any) -> Any:
    twin = copy.copy(det)
    twin.extractor = twin_extractor(det.extractor, det.crops)
    return twin


class Context:
    """What the sections share: device, sizes, weights, the clip, the loaded detectors."""

    def __init__(self, args: argparse.Namespace, device: torch.device, device_label: str) -> None:
        self.args = args
        self.device = device
        self.label = device_label
        self.cuda = device.type == "cuda"
        self.host = "host cpu" if self.cuda else "cpu"
        self.sizes = QUICK if args.quick else FULL
        self.tmp = Path(tempfile.mkdtemp(prefix="gpu_check_"))
        self.shared = Path(args.shared)
        self.weights: dict[str, Path] = {}
        self.checkpoint: Path | None = None
        self.clip: Path | None = None
        self.detector: Any = None
        self.reference: Any = None
        self.fx32: Any = None  # CUDA: the feature networks in fp32 on the device, for comparison
        self.i3d_fp32_rates: dict[int, float] = {}
        self.precision = args.precision or ("auto" if self.cuda else "fp32")
        self.scales: tuple[float, float] | None = None
        self.videos: dict[str, tuple[Path, float]] = {}
        self.stage_rates: dict[str, float] = {}

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- set up on first use, so a section can run alone
    def ensure_detectors(self, rep: Report) -> None:
        if self.detector is not None:
            return
        from fakeweights import random_macil_state_dict, save_fake_weights

        from violence_cli.pipeline import Detector

        log("writing random I3D/VGGish weights (published layouts)")
        self.weights = save_fake_weights(self.tmp / "weights")
        published = self.shared / "weights" / "macil_sd.pkl"
        if published.is_file():
            self.checkpoint = published
        else:
            self.checkpoint = self.tmp / "weights" / "macil_sd.pkl"
            torch.save(random_macil_state_dict(0), self.checkpoint)
            rep.note(f"published MACIL-SD checkpoint not found at {published}: a RANDOM one is used")
        xd = self.shared / "media" / "xd"
        candidates = [xd / XD_CLIP] + sorted(xd.glob("*.mp4")) if xd.is_dir() else []
        found = next((p for p in candidates if p.is_file()), None)
        if self.args.quick or found is None:
            if found is None:
                rep.note(f"no XD-Violence clip under {xd}: a synthetic clip is used for detect")
            self.clip, _ = make_video(self.tmp / "detect_clip.mp4", 1.6 if self.args.quick else 8.0, (160, 120), fps=24)
        else:
            self.clip = found
        options = dict(
            crops=self.sizes["crops"],
            checkpoint=self.checkpoint,
            i3d_weights=self.weights["i3d_rgb_imagenet"],
            vggish_weights=self.weights["vggish"],
            download=False,
        )
        log(f"loading the detector on {self.device} (precision {self.precision})")
        self.detector = Detector(device=str(self.device), precision=self.precision, **options)
        if self.cuda or self.detector.precision != "fp32":
            log("loading the reference detector on cpu (fp32)")
            self.reference = Detector(device="cpu", precision="fp32", **options)
        else:
            self.reference = self.detector
        if self.cuda and self.detector.precision != "fp32":  # the device in fp32: precision loss vs a wrong result
            from violence_cli.features.extract import FeatureExtractor

            log(f"loading an fp32 extractor on {self.device}")
            self.fx32 = FeatureExtractor(
                self.weights["i3d_rgb_imagenet"],
                self.weights["vggish"],
                device=self.device,
                crops=self.sizes["crops"],
                download=False,
                precision="fp32",
            )
        rep.figure("MACIL-SD checkpoint", str(self.checkpoint), device="-")
        rep.figure("clip for the checks", str(self.clip), device="-")
        rep.figure("feature networks' precision (detect's default: auto)", self.detector.precision)


# --------------------------------------------------------------------------- 1. environment


def section_environment(rep: Report, ctx: Context, deadline: Deadline) -> None:
    import violence_cli

    rep.figure("python", platform.python_version(), device=ctx.host)
    rep.figure("platform", platform.platform(), device=ctx.host)
    rep.figure("cpu model", _cpu_model(), device=ctx.host)
    rep.figure("cpu cores (os.cpu_count)", os.cpu_count(), device=ctx.host)
    if hasattr(os, "sched_getaffinity"):
        rep.figure("cpu cores usable (affinity)", len(os.sched_getaffinity(0)), device=ctx.host)
    rep.figure("torch threads", torch.get_num_threads(), device=ctx.host)
    rep.figure("load average (1 min)", os.getloadavg()[0] if hasattr(os, "getloadavg") else None, device=ctx.host)
    rep.figure("violence-detect", getattr(violence_cli, "__version__", "?"), device="-")
    rep.figure("git commit", _git_commit(), device="-", note="a copied checkout may carry stale git metadata")
    rep.figure(
        "source sha256 (violence_cli + this script)", _source_hash(), device="-", note="identifies the code that ran"
    )
    rep.figure("torch", torch.__version__, device="-")
    rep.figure("torch CUDA (build)", torch.version.cuda, device="-")
    try:
        import torchvision

        rep.figure("torchvision", torchvision.__version__, device="-")
    except Exception as exc:  # noqa: BLE001 - report, do not fail: the project does not need it
        rep.figure("torchvision", f"not importable ({type(exc).__name__})", device="-")
    import av

    rep.figure("PyAV", av.__version__, device="-")
    rep.figure("FFmpeg libavcodec", ".".join(map(str, av.library_versions.get("libavcodec", ()))), device="-")
    rep.figure("numpy", np.__version__, device="-")
    rep.figure("cuda available", torch.cuda.is_available(), device="-")
    if not ctx.cuda:
        rep.note(CPU_NOTE)
        return
    dev = ctx.device
    props = torch.cuda.get_device_properties(dev)
    rep.figure("gpu", props.name)
    rep.figure("gpu memory", props.total_memory / 2**30, "GiB")
    rep.figure("compute capability", f"{props.major}.{props.minor}")
    rep.figure("multiprocessors", props.multi_processor_count)
    l2 = getattr(props, "L2_cache_size", None)
    if l2:
        rep.figure("L2 cache", l2 / 2**20, "MiB")
    rep.figure("cuDNN", torch.backends.cudnn.version())
    rep.figure("cudnn.benchmark (as run)", torch.backends.cudnn.benchmark)
    rep.figure("TF32 matmul / cuDNN", f"{torch.backends.cuda.matmul.allow_tf32} / {torch.backends.cudnn.allow_tf32}")
    rep.figure("bf16 supported", torch.cuda.is_bf16_supported())
    smi = _nvidia_smi("driver_version,name,memory.total")
    rep.figure("driver", smi.split(",")[0].strip() if smi else "nvidia-smi not available")
    if smi:
        rep.figure("nvidia-smi", smi)
        extra = _nvidia_smi("clocks.max.sm,power.limit,temperature.gpu,utilization.gpu,persistence_mode")
        rep.figure("nvidia-smi: max SM clock, power limit, temperature, utilisation, persistence", extra or "?")
    x = torch.ones(1, device=dev)
    rep.check("a CUDA tensor computes", float((x + 1).item()) == 2.0, float((x + 1).item()), "== 2")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str:
    try:
        res = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        )
        return res.stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def _source_hash() -> str:
    """sha256 over the package's .py files and this script, path and bytes, in path order (12 hex)."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted([*(REPO / "violence_cli").rglob("*.py"), Path(__file__).resolve()]):
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def _nvidia_smi(fields: str) -> str | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        res = subprocess.run(
            [exe, f"--query-gpu={fields}", "--format=csv,noheader"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip().splitlines()[0] if res.returncode == 0 and res.stdout.strip() else None


# --------------------------------------------------------------------------- 2. correctness


def section_correctness(rep: Report, ctx: Context, deadline: Deadline) -> None:
    from violence_cli import media
    from violence_cli.features import frontend
    from violence_cli.features.extract import resize_frames, resized_size
    from violence_cli.model import score_snippets

    ctx.ensure_detectors(rep)
    dev, label = ctx.device, ctx.label
    fx, fx_ref = ctx.detector.extractor, ctx.reference.extractor
    n_snip = ctx.sizes["snippets"]
    log(f"decoding {n_snip} snippets of {ctx.clip.name}")
    frames = first_frames(ctx.clip, 16 * n_snip)
    n_snip = len(frames) // 16
    frames = frames[: 16 * n_snip]
    h, w = frames.shape[1:3]
    rep.figure("frames compared", f"{len(frames)} x {w}x{h} -> {n_snip} snippets x {fx.crops} crops", device="-")

    # GPU resize (float, then rounded) against the CPU's uint8 kernel
    raw = torch.from_numpy(frames)
    target = resized_size(h, w)
    ref_resized = resize_frames(raw, target)
    got_resized = resize_frames(raw.to(dev), target).cpu()
    diff = (got_resized.int() - ref_resized.int()).abs()
    rep.figure("resize: values differing", float((diff > 0).float().mean()), "fraction")
    rep.check("resize to short side 256: max difference", int(diff.max()) <= 1, int(diff.max()), "<= 1 grey level")

    # I3D through the extractor's own path: pinned batch, non-blocking copy, GPU resize, bf16
    snippets = [raw[16 * k : 16 * k + 16] for k in range(n_snip)]
    batch = staged(snippets, ctx.cuda)  # as the decode thread writes them: pinned on CUDA
    if ctx.cuda:
        rep.check("snippet batch in pinned memory (async copy)", batch.is_pinned(), batch.is_pinned(), "True")
    log("I3D on the device and on the cpu")
    same = ctx.reference is ctx.detector  # on the CPU: compute once (CPU vs CPU proves nothing anyway)
    got = fx.rgb_features(batch)
    ref = got.copy() if same else fx_ref.rgb_features(torch.stack(snippets))
    compare_features(rep, f"I3D (extractor path, {fx.precision})", got, ref, label)
    if ctx.fx32 is not None:  # the same path in fp32: tells a precision loss from a wrong result
        got32 = ctx.fx32.rgb_features(staged(snippets, ctx.cuda))
        cos32 = cosines(got32, ref)
        rep.figure("I3D fp32 on device: min cosine", float(cos32.min()), note="TF32 convolutions if cuDNN allows")
        rep.figure("I3D fp32 on device: max abs error", float(np.abs(got32 - ref).max()))

    # VGGish on log-mel examples of the clip's audio (padded with perturbed copies)
    log("VGGish on the device and on the cpu")
    chunks = media.iter_audio(ctx.clip)
    try:
        examples = np.concatenate(list(frontend.aligned_examples(chunks)))
    finally:
        chunks.close()
    want = ctx.sizes["examples"]
    rng = np.random.default_rng(1)
    while len(examples) < want:
        examples = np.concatenate([examples, examples[: want - len(examples)] + rng.normal(0, 0.3, examples[:1].shape)])
    examples = examples[:want].astype(np.float32)
    a_got = fx.audio_features(examples)
    a_ref = a_got.copy() if same else fx_ref.audio_features(examples)
    compare_features(rep, f"VGGish ({fx.precision})", a_got, a_ref, label)
    if ctx.fx32 is not None:
        rep.figure("VGGish fp32 on device: min cosine", float(cosines(ctx.fx32.audio_features(examples), a_ref).min()))

    # MACIL-SD: scales that bring the random features to XD-like magnitudes
    k_rgb = RGB_MEAN / max(float(ref.mean()), 1e-12)
    k_aud = AUDIO_MEAN / max(float(a_ref[:n_snip].mean()), 1e-12)
    ctx.scales = (k_rgb, k_aud)
    rep.figure("feature scale (rgb, audio)", f"{k_rgb:.3g}, {k_aud:.3g}", device="-", note="to XD-like means 0.4 / 0.1")
    model, model_ref = ctx.detector.model, ctx.reference.model
    rgb_ref, aud_ref = ref * k_rgb, a_ref[:n_snip] * k_aud
    rng = np.random.default_rng(2)
    t_long = ctx.sizes["long_t"]
    pick = rng.integers(0, n_snip, t_long)
    jitter = rng.lognormal(0, 0.3, (t_long, 1, 1)).astype(np.float32)
    rgb_long = rgb_ref[pick] * jitter
    aud_long = aud_ref[pick] * jitter[:, 0]
    worst = 0.0
    for rgb_in, aud_in in ((rgb_ref, aud_ref), (rgb_long, aud_long)):
        s_got = score_snippets(model, rgb_in, aud_in)
        s_ref = score_snippets(model_ref, rgb_in, aud_in)
        worst = max(
            worst, *(float(np.abs(getattr(s_got, k) - getattr(s_ref, k)).max()) for k in ("av", "audio", "visual"))
        )
    rep.figure("MACIL-SD snippets scored", f"T = {n_snip} and T = {t_long}, {fx.crops} crops", device="-")
    rep.check("MACIL-SD scores, same fp32 features", worst <= MACIL_FP32_TOL, worst, f"<= {MACIL_FP32_TOL:g}")

    s_ref = score_snippets(model_ref, rgb_ref, aud_ref)
    s_got = score_snippets(model, got * k_rgb, a_got[:n_snip] * k_aud)
    spread = (float(s_ref.visual.min()), float(s_ref.visual.max()))
    rep.check(
        "MACIL-SD visual scores not saturated (the next check can fail)",
        0.001 < spread[0] and spread[1] < 0.999,
        f"{spread[0]:.3f}..{spread[1]:.3f}",
        "within (0.001, 0.999)",
        device="cpu",
    )
    worst = max(float(np.abs(getattr(s_got, k) - getattr(s_ref, k)).max()) for k in ("av", "audio", "visual"))
    what = fx.precision if ctx.cuda else "device"
    rep.check(
        f"MACIL-SD scores from {what} features vs CPU fp32 features",
        worst <= MACIL_BF16_TOL,
        worst,
        f"<= {MACIL_BF16_TOL:g}",
    )

    # Whole detect with the last layers scaled the same way
    for det in {id(ctx.detector): ctx.detector, id(ctx.reference): ctx.reference}.values():
        scale_outputs(det.extractor.i3d, I3D_LAST, k_rgb)
        scale_outputs(det.extractor.vggish, VGGISH_LAST, k_aud)
    log(f"detect {ctx.clip.name} on {dev}")
    r_got = ctx.detector.detect(ctx.clip)
    if same:
        r_ref = r_got
    else:
        log(f"detect {ctx.clip.name} on cpu")
        r_ref = ctx.reference.detect(ctx.clip)
    compare_detect(rep, r_got, r_ref)

    # DeepMind's trained I3D: Kinetics top-1, every inference path vs CPU fp32 (benchmarks/trained_i3d_check.py)
    if ctx.cuda:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from trained_i3d_check import record as record_trained_i3d

        record_trained_i3d(rep, dev, ctx.shared, ctx.checkpoint)
    else:
        rep.note("trained I3D checks run on CUDA only here (tests/test_trained_i3d.py runs them on the CPU)")


def compare_detect(rep: Report, got: Any, ref: Any) -> None:
    from violence_cli.segments import find_segments

    n_got, n_ref = len(got.snippets), len(ref.snippets)
    rep.check("detect: same number of snippets", n_got == n_ref and n_ref > 0, f"{n_got} vs {n_ref}", "equal, > 0")
    if n_got != n_ref:
        return
    worst = {}
    for attr in ("score", "audio_score", "visual_score"):
        a = np.array([getattr(s, attr) for s in got.snippets])
        b = np.array([getattr(s, attr) for s in ref.snippets])
        worst[attr] = float(np.abs(a - b).max())
        rep.figure(f"detect: cpu {attr} range", f"{b.min():.3f}..{b.max():.3f}", device="cpu")
    rep.check(
        "detect: scores within 0.01",
        max(worst.values()) <= DETECT_TOL,
        max(worst.values()),
        f"<= {DETECT_TOL:g}",
        detail=", ".join(f"{k} {v:.2g}" for k, v in worst.items()),
    )
    threshold = ref.params.threshold
    same, detail = segments_agree(got.segments, ref.segments, got.snippets, ref.snippets, threshold)
    rep.check(
        f"detect: same segments (threshold {threshold:g})",
        same,
        len(got.segments),
        f"== {len(ref.segments)}",
        detail=detail,
    )
    # the default threshold may leave no segment at all: also cut at the median CPU score
    median = float(np.median([s.score for s in ref.snippets]))
    seg_got, seg_ref = find_segments(got.snippets, median), find_segments(ref.snippets, median)
    same, detail = segments_agree(seg_got, seg_ref, got.snippets, ref.snippets, median)
    rep.check(
        f"detect: same segments (threshold {median:.4f}, the median)",
        same,
        len(seg_got),
        f"== {len(seg_ref)}",
        detail=detail,
    )
    rep.figure("detect: verdict (device / cpu)", f"{got.verdict} / {ref.verdict}", device="-")


def segments_agree(seg_got: list, seg_ref: list, snip_got: list, snip_ref: list, threshold: float) -> tuple[bool, str]:
    """Equal segments, or differences only from snippets whose two scores both lie within 0.01 of the threshold."""
    times_got = [(round(s.start, 3), round(s.end, 3)) for s in seg_got]
    times_ref = [(round(s.start, 3), round(s.end, 3)) for s in seg_ref]
    if times_got == times_ref:
        return True, f"{len(times_ref)} segment(s), identical"
    flips = [r.index for r, g in zip(snip_ref, snip_got) if (r.score >= threshold) != (g.score >= threshold)]
    near = bool(flips) and all(
        abs(snip_ref[i].score - threshold) <= DETECT_TOL and abs(snip_got[i].score - threshold) <= DETECT_TOL
        for i in flips
    )
    detail = f"device {times_got[:4]} vs cpu {times_ref[:4]}; snippets on the other side: {flips[:8]}"
    return near, detail + (" (all within 0.01 of the threshold: accepted)" if near else "")


# --------------------------------------------------------------------------- 3. speed


def section_speed(rep: Report, ctx: Context, deadline: Deadline) -> None:
    ctx.ensure_detectors(rep)
    fx = ctx.detector.extractor
    i3d_rates = bench_i3d(rep, ctx, fx, deadline)
    ctx.stage_rates["i3d_by_batch"] = i3d_rates  # type: ignore[assignment]

    # the 60 s clips
    sizes, secs, fps = ctx.sizes["sizes"], ctx.sizes["bench_seconds"], ctx.sizes["src_fps"]
    for size in sizes:
        name = f"{size[0]}x{size[1]}"
        if name in ctx.videos:
            continue
        log(f"encoding a {secs:.0f} s {name} {fps} fps H.264 clip")
        start = time.perf_counter()
        ctx.videos[name] = make_video(
            ctx.tmp / f"bench_{name}.mp4", secs, size, fps, deadline=start + max(10.0, deadline.left() / 5)
        )
        took = time.perf_counter() - start
        path, got = ctx.videos[name]
        rep.figure(
            f"clip {name}: made",
            f"{got:.1f} s, {path.stat().st_size * 8 / got / 1e6:.1f} Mbit/s",
            device=ctx.host,
            note=f"x264 veryfast crf 20 + AAC, {took:.1f} s to encode",
        )

    per_size: dict[str, dict[str, float]] = {}
    for name, (path, _) in ctx.videos.items():
        per_size[name] = bench_stages(rep, ctx, fx, name, path, deadline)
    crops_runs = (5, 1)
    for crops in crops_runs:
        extractor = fx if fx.crops == crops else twin_extractor(fx, crops)
        for name, (path, seconds) in ctx.videos.items():
            if deadline.left() < 5:
                rep.note(f"skipped extract {name} {crops} crop(s): section time cap")
                continue
            run_extract(rep, ctx, extractor, name, path, seconds, per_size[name], i3d_rates, deadline)
    small = next(iter(ctx.videos))
    if ctx.fx32 is not None and deadline.left() > 15:  # what `extract` runs by default (fp32: a dataset)
        fx32 = ctx.fx32 if ctx.fx32.crops == 5 else twin_extractor(ctx.fx32, 5)
        path, seconds = ctx.videos[small]
        run_extract(rep, ctx, fx32, small, path, seconds, per_size[small], ctx.i3d_fp32_rates, deadline)
    if ctx.cuda:
        bench_i3d_variants(rep, ctx, fx, deadline)


def _i3d_forward(fx: Any, x: torch.Tensor) -> Callable[[], object]:
    """One I3D forward as the extractor runs it (in the extractor's precision; fp32 clips in)."""

    def go() -> object:
        with torch.inference_mode():
            return fx.i3d(x)

    return go


def _random_clips(n: int, device: torch.device) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    clips = (torch.rand(n, 3, 16, 224, 224, generator=gen) * 2 - 1).to(device)
    return clips.contiguous(memory_format=torch.channels_last_3d)  # as make_clips lays them out


def bench_i3d(rep: Report, ctx: Context, fx: Any, deadline: Deadline) -> dict[int, float]:
    """I3D clips/s at each batch size, the path extract runs (cudnn.benchmark as it is)."""
    from violence_cli.features.i3d import GFLOP_PER_CLIP

    dev, quick = ctx.device, ctx.args.quick
    rates: dict[int, float] = {}
    if ctx.cuda:
        n = 8192
        a, b = (torch.randn(n, n, device=dev, dtype=torch.bfloat16) for _ in range(2))
        t = median_time(lambda: a @ b, dev, 0.3)
        rep.figure("bf16 matmul 8192^3 (ceiling)", 2 * n**3 / t / 1e12, "TFLOP/s")
        a = b = None
    batches = ctx.sizes["batches"]
    clips = _random_clips(max(batches), dev)
    precision = fx.precision
    for b in batches:
        if deadline.left() < 10:
            rep.note(f"skipped I3D batch {b}: section time cap")
            continue
        run = _i3d_forward(fx, clips[:b])
        t = median_time(run, dev, 0.05 if quick else 0.6, warmup=0 if quick else 2, min_reps=1 if quick else 3)
        rates[b] = b / t
        rep.figure(
            f"I3D batch {b:2d} ({precision})", b / t, "clips/s", note=f"{b / t * GFLOP_PER_CLIP / 1000:.2f} TFLOP/s"
        )
    if ctx.fx32 is not None and deadline.left() > 15:  # what `extract` runs by default
        b = 40 if 40 in batches else batches[-1]
        t = median_time(_i3d_forward(ctx.fx32, clips[:b]), dev, 0.6)
        ctx.i3d_fp32_rates = {b: b / t}
        note = f"{b / t * GFLOP_PER_CLIP / 1000:.1f} TFLOP/s (TF32 convolutions: {torch.backends.cudnn.allow_tf32})"
        rep.figure(f"I3D batch {b} (fp32)", b / t, "clips/s", note=note)
    if ctx.cuda:
        torch.cuda.reset_peak_memory_stats(dev)
        _i3d_forward(fx, clips)()
        sync(dev)
        rep.figure(f"I3D peak memory at batch {len(clips)}", torch.cuda.max_memory_allocated(dev) / 2**30, "GiB")
        clips = None
        torch.cuda.empty_cache()
    return rates


def bench_i3d_variants(rep: Report, ctx: Context, fx: Any, deadline: Deadline) -> None:
    """CUDA only, last (cuDNN autotuning takes a while): I3D with cudnn.benchmark on."""
    from violence_cli.features.i3d import GFLOP_PER_CLIP

    dev = ctx.device
    b = 40
    clips = _random_clips(b, dev)
    saved = torch.backends.cudnn.benchmark
    if deadline.left() > 25:
        torch.backends.cudnn.benchmark = True
        try:
            t = median_time(_i3d_forward(fx, clips), dev, 0.6, warmup=3)
        except SectionTimeout:  # cuDNN's autotuning ran into the cap: it is the last step, keep the rest
            rep.note("I3D with cudnn.benchmark: autotuning ran past the section's cap (not measured)")
            return
        finally:
            torch.backends.cudnn.benchmark = saved
        note = f"{b / t * GFLOP_PER_CLIP / 1000:.1f} TFLOP/s (extract does not set it)"
        rep.figure(f"I3D batch {b} {fx.precision} with cudnn.benchmark", b / t, "clips/s", note=note)


def bench_stages(rep: Report, ctx: Context, fx: Any, name: str, path: Path, deadline: Deadline) -> dict[str, float]:
    """Per-stage capacities, in seconds of video per second (x real time)."""
    from violence_cli import media
    from violence_cli.features import frontend
    from violence_cli.features.extract import resize_frames, resized_size

    dev, host, cap = ctx.device, ctx.host, ctx.sizes["decode_cap"]
    info = media.probe(path)
    src_fps = info.fps or ctx.sizes["src_fps"]
    stages: dict[str, float] = {}
    r1, _ = decode_rate(path, 1, cap)
    rep.figure(f"{name}: decode+RGB, 1 thread", r1, "frames/s", device=host, note=f"{r1 / src_fps:.0f}x real time")
    rn, _ = decode_rate(path, 0, cap)
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    rep.figure(
        f"{name}: decode+RGB, FFmpeg auto threads",
        rn,
        "frames/s",
        device=host,
        note=f"{threads} cores; {rn / src_fps:.0f}x real time",
    )
    rp, _ = pipeline_decode_rate(path, cap)
    stages["decode (media.iter_frames)"] = rp / media.VIDEO_FPS
    rep.figure(
        f"{name}: media.iter_frames (24 fps RGB)",
        rp,
        "frames/s",
        device=host,
        note=f"{rp / media.VIDEO_FPS:.0f}x real time",
    )

    step_for = getattr(fx, "step_for", None)
    step = step_for(info.width, info.height) if step_for else fx.snippets_per_step  # snippets per I3D step
    frames = first_frames(path, 16 * max(1, step))
    h, w = frames.shape[1:3]
    target = resized_size(h, w)
    raw = torch.from_numpy(frames)
    one = raw[:16]

    def resize_cpu() -> None:  # what the decode thread does on the CPU path: each frame as it comes
        for k in range(len(one)):
            resize_frames(one[k : k + 1], target)

    with _torch_threads(1):
        t = median_time(resize_cpu, torch.device("cpu"), 0.2 if not ctx.args.quick else 0.02)
    rep.figure(
        f"{name}: resize on cpu (1 thread, frame by frame)",
        16 / t,
        "frames/s",
        device=host,
        note=f"{16 / t / 24:.0f}x real time",
    )
    if not ctx.cuda:
        stages["resize (cpu, decode thread)"] = 16 / t / 24
        return stages

    snippets = [raw[16 * k : 16 * k + 16] for k in range(len(frames) // 16)]
    pinned = staged(snippets, True)
    flat = [f for snip in snippets for f in snip]  # each frame written once into its slot, as decoded
    t_stack = median_time(lambda: [pinned.view(-1, h, w, 3)[i].copy_(f) for i, f in enumerate(flat)], torch.device("cpu"), 0.2)
    stages["write frames into pinned staging"] = len(frames) / t_stack / 24
    rep.figure(f"{name}: write {len(frames)} frames into pinned staging", len(frames) / t_stack, "frames/s", device=host)
    t_copy = median_time(lambda: pinned.to(dev, non_blocking=True), dev, 0.2)
    gbps = pinned.numel() / t_copy / 1e9
    stages["host-to-device copy"] = len(frames) / t_copy / 24
    rep.figure(
        f"{name}: host-to-device copy (pinned)", gbps, "GB/s", note=f"{len(frames) / t_copy / 24:.0f}x real time"
    )
    pageable = raw.clone()
    t_page = median_time(lambda: pageable.to(dev), dev, 0.2)
    rep.figure(f"{name}: host-to-device copy (pageable)", pageable.numel() / t_page / 1e9, "GB/s")
    on_dev = pinned.to(dev)
    t_rs = median_time(lambda: resize_frames(on_dev.view(-1, h, w, 3), target), dev, 0.2)
    stages["resize (gpu)"] = len(frames) / t_rs / 24
    rep.figure(
        f"{name}: resize on gpu ({len(frames)} frames)",
        len(frames) / t_rs,
        "frames/s",
        note=f"{len(frames) / t_rs / 24:.0f}x real time",
    )
    torch.cuda.reset_peak_memory_stats(dev)
    resize_frames(on_dev.view(-1, h, w, 3), target)
    sync(dev)
    rep.figure(f"{name}: resize on gpu, peak memory", torch.cuda.max_memory_allocated(dev) / 2**30, "GiB")

    # audio thread: decode + resample + aligned log-mel; VGGish in the main thread
    chunks = media.iter_audio(path)
    start = time.perf_counter()
    try:
        examples = np.concatenate(list(frontend.aligned_examples(chunks)))
    finally:
        chunks.close()
    t_audio = time.perf_counter() - start
    stages["audio decode + log-mel"] = info.duration / t_audio
    rep.figure(f"{name}: audio decode + log-mel", info.duration / t_audio, "x real time", device=host)
    t_vgg = median_time(lambda: fx.audio_features(examples), dev, 0.2)
    stages["VGGish"] = len(examples) / t_vgg / 1.5
    rep.figure(
        f"{name}: VGGish ({len(examples)} examples)",
        len(examples) / t_vgg,
        "examples/s",
        note=f"{len(examples) / t_vgg / 1.5:.0f}x real time",
    )
    on_dev = pinned = pageable = None  # free the device copy before the next stage
    torch.cuda.empty_cache()
    return stages


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_extract(
    rep: Report,
    ctx: Context,
    fx: Any,
    name: str,
    path: Path,
    seconds: float,
    stages: dict[str, float],
    i3d_rates: dict[int, float],
    deadline: Deadline,
) -> None:
    dev = ctx.device
    key = f"extract {name}, {fx.crops} crop{'s' if fx.crops > 1 else ''}"
    if getattr(fx, "precision", "fp32") != "fp32" or ctx.fx32 is not None:
        key += f", {fx.precision}"
    if ctx.cuda:
        fx.extract(ctx.clip)  # warm-up: cuDNN handles, the pinned pool, the clip buffer
        torch.cuda.reset_peak_memory_stats(dev)
    log(f"{key}: {seconds:.0f} s of video")
    cpu0 = time.process_time()
    with Sampler(dev) as sampler, timed_methods(fx, MAIN_THREAD_METHODS) as busy:
        start = time.perf_counter()
        feats = fx.extract(path)
        took = time.perf_counter() - start
    cpu_cores = (time.process_time() - cpu0) / took
    x_rt = feats.n_frames / 24 / took
    targeted = fx.crops == 5 and name == "640x360" and ctx.cuda
    target = f"target >= {TARGET_X_REALTIME:.0f}x" if targeted else ""
    rep.figure(key, x_rt, "x real time", note=f"{feats.n_snippets} snippets in {took:.2f} s; {target}")
    s = sampler.summary()
    figures = {
        "gpu util mean %": s["gpu_util_mean"],
        "host cpu cores busy": cpu_cores,
        "host rss peak MB": s["host_rss_peak_mb"],
    }
    step_for = getattr(fx, "step_for", None)
    figures["snippets per step"] = step_for(feats.info.width, feats.info.height) if step_for else fx.snippets_per_step
    if ctx.cuda:
        figures["gpu peak memory GiB"] = torch.cuda.max_memory_allocated(dev) / 2**30
        figures["gpu peak reserved GiB"] = torch.cuda.max_memory_reserved(dev) / 2**30
    rep.figure(
        f"{key}: load",
        {k: (round(v, 2) if isinstance(v, float) else v) for k, v in figures.items()},
        note=f"util from {s['gpu_util_source']} ({s['gpu_util_samples']} samples)",
    )
    if targeted:
        rep.check(
            f"{key}: >= {TARGET_X_REALTIME:.0f}x real time",
            x_rt >= TARGET_X_REALTIME,
            x_rt,
            f">= {TARGET_X_REALTIME:.0f}",
        )
    # what bounds it: each stage's capacity in x real time, chains in one thread combined
    batch = fx.batch_size
    measured = batch if batch in i3d_rates else max(i3d_rates, default=None)  # else the largest batch timed
    rate = i3d_rates[measured] if measured is not None else float("nan")
    cap = dict(stages)
    label = f"I3D at batch {batch}" + (f" (rate timed at batch {measured})" if measured != batch else "")
    cap[label] = rate / (fx.crops * 1.5)
    decode_thread = [k for k in cap if k.startswith("decode") or k.startswith("resize (cpu")]
    main_thread = [k for k in cap if k not in decode_thread and not k.startswith("audio")]
    chains = {
        "decode thread (" + " + ".join(decode_thread) + ")": _serial(cap, decode_thread),
        "main thread (" + " + ".join(main_thread) + ")": _serial(cap, main_thread),
    }
    if "audio decode + log-mel" in cap:
        chains["audio thread (decode + log-mel)"] = cap["audio decode + log-mel"]
    bound, value = min(chains.items(), key=lambda kv: kv[1])
    verdict = f"{bound}: {_fmt(value)}x real time"
    if x_rt < 0.6 * value:
        verdict += f"; measured {_fmt(x_rt)}x is well below it: the threads do not overlap (GIL, per-batch sync)"
    rep.figure(f"{key}: capacities", {k: round(v, 1) for k, v in {**cap, **chains}.items()}, "x real time")
    # measured: where the calling thread spent the run (the rest is waiting for frames and audio)
    spent = {f"in {k}": v for k, v in busy.items()}
    waiting = max(0.0, took - sum(busy.values()))
    spent["waiting for frames (queue) and other"] = waiting
    rep.figure(f"{key}: main thread", {k: round(100 * v / took, 1) for k, v in spent.items()}, "% of the run")
    if waiting > 0.5 * took and not ctx.cuda:  # on CUDA rgb_device only queues: waiting includes the GPU
        verdict += f"; measured: the main thread waited {100 * waiting / took:.0f}% of the run for frames: decode-bound"
    elif busy.get("rgb_device", 0.0) > 0.5 * took:
        what = "copy, resize, crops, I3D, sync: GPU/I3D-bound" if ctx.cuda else "crops, I3D: I3D-bound"
        verdict += f"; measured: rgb_device took {100 * busy['rgb_device'] / took:.0f}% of the run ({what})"
    rep.figure(f"{key}: bound by", verdict, device="-")


@contextlib.contextmanager
def timed_methods(obj: Any, names: tuple[str, ...]) -> Iterator[dict[str, float]]:
    """Seconds spent in each of ``obj``'s methods ``names`` meanwhile (instance attributes shadow them)."""
    totals = {name: 0.0 for name in names if hasattr(obj, name)}
    for name in totals:
        original = getattr(obj, name)

        def wrapped(*args: Any, _original: Any = original, _name: str = name, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                totals[_name] += time.perf_counter() - start

        setattr(obj, name, wrapped)
    try:
        yield totals
    finally:
        for name in totals:
            delattr(obj, name)


MAIN_THREAD_METHODS = ("rgb_device", "audio_device")  # what extract's calling thread does (queued on CUDA)


def staged(snippets: list[torch.Tensor], pin: bool) -> torch.Tensor:
    """(S, 16, H, W, 3) uint8 in one (pinned) buffer, like the extractor's step buffers."""
    out = torch.empty((len(snippets), *snippets[0].shape), dtype=torch.uint8, pin_memory=pin)
    for i, snip in enumerate(snippets):
        out[i] = snip
    return out


def _serial(cap: dict[str, float], keys: list[str]) -> float:
    """Capacity of stages run one after another in one thread: 1 / sum(1 / c)."""
    parts = [cap[k] for k in keys if cap.get(k) and math.isfinite(cap[k])]
    return 1.0 / sum(1.0 / c for c in parts) if parts else float("inf")


# --------------------------------------------------------------------------- 4. many videos


def library_runner() -> Any:
    """``violence_cli.runner`` (issue 8) when this checkout has it, else None."""
    try:
        from violence_cli import runner
        from violence_cli.weights import resolve_weight_files

        runner.DetectJob, runner.RunEvents, runner.discover, runner.run  # noqa: B018 - the API used here
    except (ImportError, AttributeError):
        return None
    runner.resolve_weight_files = resolve_weight_files
    return runner


def runner_detect(runner: Any, ctx: Context, videos: list[Path], workers: int) -> tuple[float, float, list[str]]:
    """The library runner, one ``run()`` per worker thread (each loads its own networks) over
    its share of ``videos``; returns (wall s after the slowest load, wall s in all, errors)."""
    names = {I3D: ctx.weights["i3d_rgb_imagenet"], VGG: ctx.weights["vggish"], MACIL: ctx.checkpoint}
    weights = runner.resolve_weight_files(names, download=False)
    inputs = runner.discover([str(v) for v in videos]).videos
    job = runner.DetectJob(out_dir=None, weights=weights, crops=ctx.detector.crops, precision=ctx.detector.precision)

    class Events(runner.RunEvents):  # notes when the worker's networks are loaded
        loaded_at: float | None = None

        def loading(self, active: bool) -> None:
            if not active:
                self.loaded_at = time.perf_counter()

    results: list[Any] = [None] * workers
    events = [Events() for _ in range(workers)]
    errors: list[str] = []

    def work(i: int) -> None:
        try:
            results[i] = runner.run(inputs[i::workers], job, device=ctx.device, events=events[i])
        except Exception as exc:  # noqa: BLE001 - reported as this worker's failure
            errors.append(f"worker {i}: {type(exc).__name__}: {exc}")

    start = time.perf_counter()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    end = time.perf_counter()
    for summary in results:
        for outcome in getattr(summary, "outcomes", []):
            if getattr(outcome, "status", "done") not in ("done", "skipped"):
                errors.append(f"{outcome.name}: {getattr(outcome, 'error', outcome.status)}")
    loaded = max((e.loaded_at for e in events if e.loaded_at is not None), default=start)
    return end - loaded, end - start, errors


def loop_detect(detectors: list[Any], videos: list[Path]) -> list[str]:
    """Share ``videos`` among one thread per detector; returns the errors."""
    errors: list[str] = []
    todo = iter(videos)
    lock = threading.Lock()

    def work(det: Any) -> None:
        while True:
            with lock:
                video = next(todo, None)
            if video is None:
                return
            try:
                det.detect(video)
            except Exception as exc:  # noqa: BLE001 - counted and reported, like a runner would
                errors.append(f"{video.name}: {exc}")

    threads = [threading.Thread(target=work, args=(d,)) for d in detectors]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def section_many(rep: Report, ctx: Context, deadline: Deadline) -> None:
    ctx.ensure_detectors(rep)
    n, secs, size = ctx.sizes["many_n"], ctx.sizes["many_seconds"], ctx.sizes["many_size"]
    folder = ctx.tmp / "many"
    folder.mkdir(exist_ok=True)
    first, made = make_video(folder / "clip_00.mp4", secs, size, fps=30)
    videos = [first]
    for i in range(1, n):
        videos.append(Path(shutil.copyfile(first, folder / f"clip_{i:02d}.mp4")))
    rep.figure(
        "videos", f"{n} x {made:.1f} s {size[0]}x{size[1]} 30 fps + AAC, {ctx.detector.crops} crop(s)", device="-"
    )
    runner = library_runner()
    how = (
        "violence_cli.runner.run (local engine), one run per worker thread, each loading its own networks"
        if runner is not None
        else "no library runner in this checkout: a plain loop over Detector, one thread per worker sharing the networks"
    )
    rep.figure("runner", how, device="-")
    base = ctx.detector
    base.detect(first)  # warm-up
    for workers in (1, 2):
        if deadline.left() < 10:
            rep.note(f"skipped {workers} worker(s): section time cap")
            continue
        log(f"{n} videos, {workers} worker(s)")
        with Sampler(ctx.device) as sampler:
            if runner is not None:
                took, total, errors = runner_detect(runner, ctx, videos, workers)
                note = f"{total:.1f} s with loading the networks"
            else:
                detectors = [base] + [twin_detector(base) for _ in range(workers - 1)]
                start = time.perf_counter()
                errors = loop_detect(detectors, videos)
                took = time.perf_counter() - start
                note = "networks loaded before"
        s = sampler.summary()
        util = f"gpu util {s['gpu_util_mean']:.0f}%" if s["gpu_util_mean"] is not None else "no gpu util"
        rep.figure(
            f"{workers} worker(s)", n / took, "videos/s", note=f"{n * made / took:.0f}x real time; {util}; {note}"
        )
        rep.check(
            f"{workers} worker(s): every video scored",
            not errors,
            len(errors),
            "0 errors",
            detail="; ".join(errors[:3]),
        )


# --------------------------------------------------------------------------- main


def run_section(
    rep: Report, ctx: Context, key: str, title: str, fn: Callable[[Report, Context, Deadline], None]
) -> None:
    scale = ctx.args.budget_scale
    budget = float(ctx.sizes["budget"][key]) * scale if scale > 0 else None  # None: no cap
    rep.begin(key, title, budget)
    start = time.perf_counter()
    status, error = "ok", None
    try:
        with time_cap(budget) if budget is not None else contextlib.nullcontext():
            fn(rep, ctx, Deadline(budget * 0.9 if budget is not None else 1e9))
    except SectionTimeout as exc:
        status, error = "timeout", str(exc)
    except Exception as exc:  # noqa: BLE001 - recorded in the report; the next section runs
        status, error = "failed", f"{type(exc).__name__}: {exc}"
        tb = traceback.format_exc().strip().splitlines()
        rep.section["traceback"] = tb[-12:]  # type: ignore[index]
        for line in tb[-12:]:
            out(f"  | {line}")
    rep.end(status, time.perf_counter() - start, error)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    default_shared = os.environ.get("VIOLENCE_DETECT_SHARED") or str(REPO.parent / "shared")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto (default: CUDA when available), cuda, cuda:N or cpu")
    parser.add_argument("--quick", action="store_true", help="tiny inputs: every part in under a minute (CI)")
    parser.add_argument(
        "--shared",
        default=default_shared,
        help=f"test assets: weights/macil_sd.pkl, media/xd/*.mp4 (default {default_shared})",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="also write the report here (always $OUT/gpu_check.json when OUT is set)",
    )
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}"
    )
    parser.add_argument(
        "--precision", default=None, help="of the feature networks on the device (default: auto on CUDA, fp32 on cpu)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument(
        "--budget-scale", type=float, default=1.0, help="multiply every section's time cap (0: no caps, as CI runs it)"
    )
    args = parser.parse_args(argv)
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        parser.error(f"--sections: unknown {', '.join(unknown)} (choose from {', '.join(SECTIONS)})")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    json_paths = [args.json] if args.json else []
    if os.environ.get("OUT"):
        json_paths.append(Path(os.environ["OUT"]) / "gpu_check.json")
    wanted = args.device.strip().lower()
    no_cuda = wanted == "auto" and not torch.cuda.is_available()
    device = torch.device("cpu") if no_cuda or wanted == "cpu" else None
    if device is None:
        try:
            from violence_cli.devices import resolve_device

            device = resolve_device(wanted)
        except Exception as exc:  # noqa: BLE001 - a usage error: one line, exit 2
            print(f"gpu_check: --device {args.device}: {exc}", file=sys.stderr)
            return 2
    label = str(device)
    if device.type == "cuda":
        label = f"{device} ({torch.cuda.get_device_name(device)})"
    rep = Report(label, args, json_paths)
    ctx = Context(args, device, label)
    out(
        f"violence-detect GPU check: device {label}, {'quick' if args.quick else 'full'} run, sections {', '.join(args.sections)}"
    )
    if device.type == "cpu":
        out(f"NOTE: {CPU_NOTE}")
    if device.type == "cpu" and not args.quick:
        out("NOTE: a full run on the CPU takes long; --quick is the CI mode")
    titles = {
        "environment": "1. Environment",
        "correctness": f"2. Correctness: {label} against cpu fp32",
        "speed": f"3. Speed on {label}",
        "many_videos": f"4. Many videos on one {'GPU' if device.type == 'cuda' else 'CPU'}",
        "acceptance": f"5. Acceptance (issue 19): precision, layers, NVDEC, end to end, decode workers on {label}",
    }
    functions = {
        "environment": section_environment,
        "correctness": section_correctness,
        "speed": section_speed,
        "many_videos": section_many,
        "acceptance": section_acceptance,
    }
    sections = args.sections
    if no_cuda and not args.quick:  # on a GPU machine whose CUDA is broken: say so, do not crawl on the CPU
        out(
            "NOTE: no CUDA device (torch.cuda.is_available() is False): environment only; "
            "use --device cpu --quick for the CPU check"
        )
        sections = [s for s in sections if s == "environment"]
    try:
        for key in sections:
            run_section(rep, ctx, key, titles[key], functions[key])
        if no_cuda and not args.quick and "environment" in rep.data["sections"]:
            env = rep.data["sections"]["environment"]
            env["checks"].append(
                {
                    "name": "CUDA available",
                    "passed": False,
                    "value": False,
                    "bound": "True",
                    "device": label,
                    "reference": "-",
                    "detail": "torch.cuda.is_available() is False",
                }
            )
            out("  FAIL  CUDA available: False")
    finally:
        ctx.close()
    return rep.summarise()


if __name__ == "__main__":
    sys.exit(main())

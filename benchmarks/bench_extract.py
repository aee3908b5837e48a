"""Feature extraction speed, per stage and end to end, measured side by side in one run.

    python benchmarks/bench_extract.py [--seconds 8] [--size 640x360] [--crops 5] [--device cpu]

Prints, for one synthetic H.264 video (30 fps, stereo 44.1 kHz AAC, made here with PyAV):

- the machine's practical ceiling: GFLOP/s of a large fp32 matrix product;
- decode: frames/s of media.iter_frames (decode + 24 fps + RGB), and with the resize to
  shorter side 256 that the decode thread also does;
- I3D: clips/s and GFLOP/s (55.6 GFLOP per 16x224x224 clip), network alone and as the
  I3D stage of the extractor (crops + scaling + network);
- VGGish: examples/s (and the audio front end: decode + resample + aligned log-mel);
- end to end (FeatureExtractor.extract): seconds of video per second, and its ratio to the
  I3D stage alone (target >= 0.90: decoding and audio overlapped with compute).

The networks use RANDOM weights (tests/fakeweights.py): speed does not depend on the values,
but the features mean nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from fakeweights import save_fake_weights

from violence_cli import media
from violence_cli.features import frontend
from violence_cli.features.extract import (
    FeatureExtractor,
    make_clips,
    resize_frames,
    resized_size,
)
from violence_cli.features.i3d import GFLOP_PER_CLIP


def make_video(path: Path, seconds: float, width: int, height: int, fps: int = 30) -> Path:
    """A moving colour pattern with a noisy texture (so the encoder has work) and a stereo chirp."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 40, (height, width, 1), dtype=np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "veryfast", "crf": "23"}
        audio = out.add_stream("aac", rate=44100)
        audio.layout = "stereo"
        for i in range(int(seconds * fps)):
            phase = (xx + 3 * i) % 256
            img = np.stack([phase, (yy + 2 * i) % 256, (xx + yy - i) % 256], -1).astype(np.uint8) // 2 + texture
            frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        n, block = int(seconds * 44100), 1024
        for start in range(0, n, block):
            t = (start + np.arange(min(block, n - start))) / 44100
            chirp = 0.3 * np.sin(2 * np.pi * (200 + 400 * t) * t)
            frame = av.AudioFrame.from_ndarray(
                np.stack([chirp, -chirp]).astype(np.float32), format="fltp", layout="stereo"
            )
            frame.sample_rate, frame.pts, frame.time_base = 44100, start, Fraction(1, 44100)
            for packet in audio.encode(frame):
                out.mux(packet)
        for packet in audio.encode():
            out.mux(packet)
    return path


def timed(fn, repeat: int = 1) -> float:
    """Best wall time of ``repeat`` calls, seconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_ceiling(device: torch.device, n: int = 4096) -> float:
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    a @ b
    sync(device)

    def run() -> None:
        for _ in range(3):
            a @ b
        sync(device)

    return 3 * 2 * n**3 / timed(run, 3) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the synthetic video")
    parser.add_argument(
        "--repeat", type=int, default=3, help="alternate I3D-stage and end-to-end runs this often (best kept)"
    )
    parser.add_argument("--size", default="640x360", help="WIDTHxHEIGHT of the synthetic video")
    parser.add_argument("--crops", type=int, default=5, choices=(1, 5))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=None, help="I3D clips per forward")
    parser.add_argument("--precision", default="fp32", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--video", type=Path, default=None, help="benchmark this file instead")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))

    tmp = Path(tempfile.mkdtemp(prefix="bench_extract_"))
    weights = save_fake_weights(tmp / "weights")
    video = args.video or make_video(tmp / "bench.mp4", args.seconds, width, height)
    fx = FeatureExtractor(
        weights["i3d_rgb_imagenet"],
        weights["vggish"],
        device=args.device,
        crops=args.crops,
        batch_size=args.batch_size,
        precision=args.precision,
    )
    device = fx.device
    info = media.probe(video)
    print(
        f"device {device} ({torch.get_num_threads()} torch threads), crops {fx.crops}, {fx.precision}, "
        f"batch {fx.batch_size} clips; RANDOM weights (speed only)"
    )
    print(
        f"video: {info.width}x{info.height} {info.fps:.0f} fps {info.video_codec}, {info.duration:.1f} s, "
        f"audio {info.audio_codec} {info.audio_sample_rate} Hz x{info.audio_channels}"
    )

    ceiling = matmul_ceiling(device)  # measured again beside each later run; the best is kept

    # -- decode
    frames: list[np.ndarray] = []
    t = timed(lambda: frames.extend(media.iter_frames(video)))
    n_frames = len(frames)
    print(f"{'decode (24 fps RGB)':34s} {n_frames / t:9.1f} frames/s   ({n_frames} frames, {t:.2f} s)")
    target = resized_size(*frames[0].shape[:2])
    stack = torch.from_numpy(np.stack(frames))
    t_resize = timed(lambda: [resize_frames(stack[i : i + 16], target) for i in range(0, n_frames, 16)])
    print(f"{'decode + resize to short side 256':34s} {n_frames / (t + t_resize):9.1f} frames/s")

    # -- I3D network alone and as a stage
    n_snip = max(1, (n_frames - 1) // 16)
    snippets = torch.stack([resize_frames(stack[16 * k : 16 * k + 16], target) for k in range(n_snip)])
    step = fx.snippets_per_step
    clips = make_clips(snippets[:step], fx.crops).to(device)[: fx.batch_size]

    @torch.inference_mode()
    def network() -> None:
        fx.i3d(clips)
        sync(device)

    network()  # warm-up
    t_net = timed(network)

    def stage() -> None:
        for k in range(0, n_snip, step):
            fx.rgb_features(snippets[k : k + step])
        sync(device)

    # -- audio
    chunks: list[np.ndarray] = []
    t_dec = timed(lambda: chunks.extend(media.iter_audio(video)))
    examples: list[np.ndarray] = []
    t_mel = timed(lambda: examples.extend(frontend.aligned_examples(chunks, n_snippets=n_snip)))
    ex = np.concatenate(examples)
    print(f"{'audio decode+resample 16 kHz':34s} {info.duration / t_dec:9.1f} s of audio/s")
    print(f"{'aligned log-mel examples':34s} {len(ex) / t_mel:9.1f} examples/s")
    fx.audio_features(ex[:4])
    t_vgg = timed(lambda: fx.audio_features(ex), 2)
    print(f"{'VGGish':34s} {len(ex) / t_vgg:9.1f} examples/s ({len(ex)} examples)")

    # -- I3D stage and end to end, alternated so that load from elsewhere hits both alike
    feats = fx.extract(video)  # warm-up
    t_stage = t_e2e = float("inf")
    for _ in range(args.repeat):
        t_net = min(t_net, timed(network))
        t_stage = min(t_stage, timed(stage))
        t_e2e = min(t_e2e, timed(lambda: fx.extract(video)))
        ceiling = max(ceiling, matmul_ceiling(device))
    net_rate = clips.shape[0] / t_net
    print(f"{'matmul fp32 4096^3 (best of runs)':34s} {ceiling:9.1f} GFLOP/s (the practical ceiling)")
    print(f"{'I3D network (one batch)':34s} {net_rate:9.2f} clips/s  {net_rate * GFLOP_PER_CLIP:7.1f} GFLOP/s")
    print(
        f"{'I3D network vs ceiling':34s} {100 * net_rate * GFLOP_PER_CLIP / ceiling:8.0f}%   "
        f"(stage: {100 * n_snip * fx.crops / t_stage * GFLOP_PER_CLIP / ceiling:.0f}%)"
    )
    stage_rate = n_snip * fx.crops / t_stage
    print(
        f"{'I3D stage (crops+scale+network)':34s} {stage_rate:9.2f} clips/s  {stage_rate * GFLOP_PER_CLIP:7.1f} GFLOP/s "
        f"-> {n_snip * 16 / 24 / t_stage:.2f} s of video/s"
    )
    video_s = feats.n_frames / 24
    e2e_clips = feats.n_snippets * fx.crops / t_e2e
    print(
        f"{'end to end (extract)':34s} {video_s / t_e2e:9.2f} s of video/s  ({feats.n_snippets} snippets, {t_e2e:.2f} s; "
        f"{e2e_clips:.2f} clips/s)"
    )
    ratio = e2e_clips / stage_rate
    print(f"{'end to end / I3D stage':34s} {ratio:9.2f}   (target >= 0.90: {'met' if ratio >= 0.9 else 'NOT met'})")


if __name__ == "__main__":
    main()

"""Regenerate the sample clip(s) in this folder with PyAV (no FFmpeg binary needed).

    python samples/make_samples.py            # writes samples/calm_then_chaos.mp4

``calm_then_chaos.mp4``: 8 s, 320x180, 24 fps H.264 + 44.1 kHz stereo AAC. The first 4 s
are calm (a slow colour drift, one slowly moving ball, a soft hum); the last 4 s are
chaotic (fast flashing shapes, camera shake, loud noise bursts and bangs). It is synthetic:
it shows the command working end to end, it is not footage the model was trained on, so do
not read much into its scores. The output is deterministic for a given PyAV/FFmpeg build.
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

HERE = Path(__file__).resolve().parent
WIDTH, HEIGHT, FPS = 320, 180, 24  # pixels, pixels, frames per second
SAMPLE_RATE = 44100  # Hz
SECONDS = 8.0
CALM_SECONDS = 4.0


def draw_frame(i: int, rng: np.random.Generator) -> np.ndarray:
    """One (H, W, 3) uint8 RGB frame: calm before CALM_SECONDS, chaotic after."""
    t = i / FPS
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    if t < CALM_SECONDS:
        base = np.array([70 + 20 * np.sin(t * 0.8), 120, 160 + 20 * np.cos(t * 0.5)])
        frame = np.broadcast_to(base, (HEIGHT, WIDTH, 3)).copy()
        frame[..., 1] += (yy / HEIGHT * 40)[...]
        cx, cy = 60 + 50 * t, 90 + 10 * np.sin(t)
        ball = (xx - cx) ** 2 + (yy - cy) ** 2 < 18**2
        frame[ball] = (240, 220, 120)
        return frame.clip(0, 255).astype(np.uint8)
    flash = rng.integers(0, 3) == 0
    frame = np.full((HEIGHT, WIDTH, 3), 240 if flash else 25, dtype=np.float64)
    for _ in range(rng.integers(3, 8)):
        x0, y0 = rng.integers(-40, WIDTH), rng.integers(-40, HEIGHT)
        w, h = rng.integers(20, 120), rng.integers(20, 90)
        frame[max(y0, 0) : y0 + h, max(x0, 0) : x0 + w] = rng.integers(0, 256, 3)
    dx, dy = rng.integers(-12, 13, 2)  # camera shake
    frame = np.roll(frame, (dy, dx), axis=(0, 1))
    return frame.astype(np.uint8)


def make_audio(rng: np.random.Generator) -> np.ndarray:
    """(2, n) float32 stereo in [-1, 1]: a soft hum, then noise bursts and bangs."""
    n = int(SECONDS * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    audio = 0.05 * np.sin(2 * np.pi * 110 * t) + 0.03 * np.sin(2 * np.pi * 165 * t)
    chaos = t >= CALM_SECONDS
    audio[chaos] = 0.08 * rng.standard_normal(chaos.sum())
    starts = np.arange(CALM_SECONDS, SECONDS - 0.3, 0.35)  # s: a bang every ~0.35 s
    for start in starts + rng.uniform(0, 0.2, len(starts)):
        i = int(start * SAMPLE_RATE)
        length = int(rng.uniform(0.08, 0.25) * SAMPLE_RATE)
        decay = np.exp(-np.arange(length) / (0.04 * SAMPLE_RATE))
        audio[i : i + length] += 0.9 * decay * rng.standard_normal(length)[: len(audio[i : i + length])]
    audio = np.clip(audio, -1, 1).astype(np.float32)
    return np.stack([audio, audio * 0.9])


def write_clip(path: Path, seed: int = 7) -> Path:
    rng = np.random.default_rng(seed)
    audio = make_audio(rng)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.options = {"crf": "30", "preset": "medium"}
        sound = out.add_stream("aac", rate=SAMPLE_RATE, layout="stereo")
        sound.bit_rate = 64000
        for i in range(int(SECONDS * FPS)):
            frame = av.VideoFrame.from_ndarray(draw_frame(i, rng), format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, FPS)
            out.mux(video.encode(frame))
        out.mux(video.encode())
        step = 1024
        for start in range(0, audio.shape[1], step):
            chunk = np.ascontiguousarray(audio[:, start : start + step])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate = SAMPLE_RATE
            frame.pts = start
            frame.time_base = Fraction(1, SAMPLE_RATE)
            out.mux(sound.encode(frame))
        out.mux(sound.encode())
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=HERE)
    args = parser.parse_args()
    path = write_clip(args.out_dir / "calm_then_chaos.mp4")
    print(f"{path} ({path.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()

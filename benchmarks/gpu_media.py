"""gpu_check's media made here: H.264 + AAC clips that compress like real footage, and decode rates."""

from __future__ import annotations

import itertools
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

GRAIN = 2.0  # luma noise of the synthetic clips: ~1 Mbit/s at 360p, ~6 at 1080p (x264 crf 20), like real footage


def make_video(
    path: Path, seconds: float, size: tuple[int, int], fps: int = 30, audio: bool = True, deadline: float | None = None
) -> tuple[Path, float]:
    """H.264 (x264 veryfast, crf 20) + stereo 44.1 kHz AAC: a textured scene panning and drifting.

    Content compresses like real footage (a few Mbit/s at 1080p), not like noise. Stops
    early, with a shorter clip, at ``deadline`` (perf_counter); returns (path, seconds written).
    """
    import av

    width, height = size
    n = max(1, round(seconds * fps))
    rng = np.random.default_rng(0)

    def smooth(h: int, w: int, cell: int) -> np.ndarray:
        coarse = torch.from_numpy(rng.standard_normal((1, 1, h // cell + 3, w // cell + 3)).astype(np.float32))
        return torch.nn.functional.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)[0, 0].numpy()

    ph, pw = height + 64, width + 64
    luma = sum(a * smooth(ph, pw, c) for c, a in ((max(8, width // 24), 50.0), (16, 20.0), (4, 8.0)))
    luma = np.clip(128 + luma + rng.normal(0, 3.0, (ph, pw)), 16, 235).astype(np.uint8)
    grain = rng.normal(0, GRAIN, (4, height, width)).round().astype(np.int16)  # sensor noise, cycled
    chroma = smooth(ph // 2, pw // 2, max(8, width // 48)) * 25
    u = np.clip(128 + chroma, 16, 240).astype(np.uint8)
    v = np.clip(128 - chroma, 16, 240).astype(np.uint8)
    written = 0
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "20"}
        sound = None
        if audio:
            sound = container.add_stream("aac", rate=44100)
            sound.layout = "stereo"
        audio_pos, block = 0, 1024
        for i in range(n):
            if deadline is not None and i and i % fps == 0 and time.perf_counter() > deadline:
                break
            t = i % 128
            dy = dx = t if t < 64 else 128 - t  # the camera pans back and forth over 64 pixels
            y = luma[dy : dy + height, dx : dx + width]
            uu = u[dy // 2 : dy // 2 + height // 2, dx // 2 : dx // 2 + width // 2]
            vv = v[dy // 2 : dy // 2 + height // 2, dx // 2 : dx // 2 + width // 2]
            box = (i * 7) % max(1, width - 64)  # a bright block crossing the frame
            y = np.clip(y + grain[i % 4], 0, 255).astype(np.uint8)
            y[height // 3 : height // 3 + 48, box : box + 48] = 230
            planes = np.concatenate([y.ravel(), uu.ravel(), vv.ravel()]).reshape(-1, width)  # PyAV's yuv420p layout
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
            written = i + 1
            while sound is not None and audio_pos < (i + 1) / fps * 44100:
                t_a = (audio_pos + np.arange(block)) / 44100
                wave = 0.2 * np.sin(2 * np.pi * (220 + 200 * np.sin(t_a)) * t_a) + 0.02 * rng.standard_normal(block)
                samples = np.stack([wave, 0.8 * wave]).astype(np.float32)
                aframe = av.AudioFrame.from_ndarray(samples, format="fltp", layout="stereo")
                aframe.sample_rate, aframe.pts, aframe.time_base = 44100, audio_pos, Fraction(1, 44100)
                for packet in sound.encode(aframe):
                    container.mux(packet)
                audio_pos += block
        for packet in stream.encode():
            container.mux(packet)
        if sound is not None:
            for packet in sound.encode():
                container.mux(packet)
    return path, written / fps


def decode_rate(path: Path, threads: int, cap: float) -> tuple[float, int]:
    """Source frames/s of plain PyAV decoding + RGB conversion with ``threads`` (0: FFmpeg's auto)."""
    import av

    n = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        start = time.perf_counter()
        for frame in container.decode(stream):
            frame.to_ndarray(format="rgb24")
            n += 1
            if time.perf_counter() - start > cap:
                break
        seconds = time.perf_counter() - start
    return n / seconds, n


def pipeline_decode_rate(path: Path, cap: float) -> tuple[float, int]:
    """24-fps RGB frames/s of media.iter_frames (the pipeline's decoder and threads)."""
    from violence_cli import media

    n = 0
    frames = media.iter_frames(path)
    start = time.perf_counter()
    try:
        for _ in frames:
            n += 1
            if time.perf_counter() - start > cap:
                break
    finally:
        frames.close()
    return n / (time.perf_counter() - start), n


def first_frames(path: Path, count: int) -> np.ndarray:
    """(count, H, W, 3) uint8: the first frames at 24 fps."""
    from violence_cli import media

    frames = media.iter_frames(path)
    try:
        got = list(itertools.islice(frames, count))
    finally:
        frames.close()
    return np.stack(got)

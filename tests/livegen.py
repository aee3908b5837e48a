"""A live source for tests: synthetic video + audio as MPEG-TS over UDP, paced in real time.

Run as a script (the tests start it as a subprocess and stop it)::

    python tests/livegen.py udp://127.0.0.1:PORT --seconds 6 [--pause-at 2 --pause-for 3]

It writes ``--seconds`` of stream time (pictures from :mod:`mediagen`'s gradient, a sine
tone), each frame sent when its time comes on the wall clock; with ``--pause-at`` it sends
nothing for ``--pause-for`` seconds (a stalled camera) and then goes on. Key frames every
half second and PAT/PMT resent often, so a receiver that (re)joins mid-stream starts
quickly. It only ever sends to the address given (the tests use 127.0.0.1) and stops by
itself after the stream time plus the pauses.
"""

from __future__ import annotations

import argparse
import sys
import time
from fractions import Fraction
from pathlib import Path

import av

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mediagen import _audio_frame, _picture, tone  # noqa: E402


def stream(
    url: str,
    seconds: float,
    fps: int = 24,
    size: tuple[int, int] = (320, 180),
    pause_at: float | None = None,
    pause_for: float = 0.0,
    audio_rate: int = 16000,
    container_format: str = "mpegts",
    realtime: bool = True,
) -> None:
    """Write the stream to ``url``; ``realtime=False`` writes as fast as it encodes (a file
    whose audio and video are interleaved the way a live stream's are)."""
    width, height = size
    options = {"pat_period": "0.1"} if container_format == "mpegts" else {}
    with av.open(url, mode="w", format=container_format, options=options) as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(fps // 2), "crf": "23"}
        sound = out.add_stream("aac", rate=audio_rate)
        sound.layout = "mono"
        block = sound.codec_context.frame_size or 1024
        fmt = sound.codec_context.format.name
        start = time.monotonic()
        paused = 0.0
        sample = 0
        for i in range(round(seconds * fps)):
            t = i / fps
            if pause_at is not None and not paused and t >= pause_at:
                time.sleep(pause_for)
                paused = pause_for
            delay = start + paused + t - time.monotonic()
            if realtime and delay > 0:
                time.sleep(delay)
            frame = av.VideoFrame.from_ndarray(_picture("gradient", i, height, width), format="rgb24")
            frame = frame.reformat(format="yuv420p")
            frame.pts = i
            for packet in video.encode(frame):
                out.mux(packet)
            while sample < round((i + 1) * audio_rate / fps):  # audio up to the next frame
                samples = tone(block, audio_rate, 440.0 + 200.0 * (i // fps % 2), 1, start=sample)
                aframe = _audio_frame(samples, fmt, "mono")
                aframe.sample_rate, aframe.pts, aframe.time_base = audio_rate, sample, Fraction(1, audio_rate)
                for packet in sound.encode(aframe):
                    out.mux(packet)
                sample += block
        for stream_ in (video, sound):
            for packet in stream_.encode():
                out.mux(packet)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--fps", type=int, default=24)
    parser.add_argument("--size", default="320x180")
    parser.add_argument("--pause-at", type=float, default=None)
    parser.add_argument("--pause-for", type=float, default=0.0)
    args = parser.parse_args(argv)
    w, h = (int(x) for x in args.size.split("x"))
    print("sending", flush=True)  # imports done: what a test waits for before it connects
    stream(args.url, args.seconds, args.fps, (w, h), args.pause_at, args.pause_for)


if __name__ == "__main__":
    main()

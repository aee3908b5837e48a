"""Decode the files named on stdin (one path a line) through violence_cli.media, bounded.

Run by tests/test_fuzz.py in a subprocess, so that a crash (a signal) or a hang in FFmpeg
or PyAV is seen by the test instead of taking the test run down. For every file it prints
one JSON line ``{"start": path}``, then one ``{"done": path, "outcome": ..., "detail": ...}``:
``ok`` (decoded, maybe with warnings), ``input_error`` (the project's own error, the
expected refusal) or ``other`` (any other exception: a failure of the test). Memory is
capped (address space, ``FUZZ_MAX_BYTES``) so an allocation gone wild is an error here.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from itertools import islice

MAX_FRAMES = 480  # frames at 24 fps read per file (20 s): enough to meet every timestamp case
MAX_AUDIO_CHUNKS = 12  # chunks of 10 s read per file
MAX_BYTES = int(os.environ.get("FUZZ_MAX_BYTES", 4 * 2**30))


def _decode(path: str) -> dict[str, object]:
    from violence_cli import media
    from violence_cli.errors import ViolenceDetectError

    warnings: list[str] = []
    try:
        info = media.probe(path)
        frames = samples = 0
        if info.has_video:
            frames = sum(1 for _ in islice(media.iter_frames(path, on_warning=warnings.append), MAX_FRAMES))
        if info.has_audio:
            chunks = islice(media.iter_audio(path, on_warning=warnings.append), MAX_AUDIO_CHUNKS)
            samples = sum(chunk.size for chunk in chunks)
    except ViolenceDetectError as exc:
        return {"outcome": "input_error", "detail": exc.message}
    except Exception as exc:  # noqa: BLE001 - reported to the test, which fails on it
        return {"outcome": "other", "detail": f"{type(exc).__name__}: {exc}"}
    return {"outcome": "ok", "detail": f"{frames} frames, {samples} samples, {len(warnings)} warning(s)"}


def main() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MAX_BYTES, MAX_BYTES))
    for line in sys.stdin:
        path = line.rstrip("\n")
        if not path:
            continue
        print(json.dumps({"start": path}), flush=True)
        print(json.dumps({"done": path, **_decode(path)}), flush=True)


if __name__ == "__main__":
    main()

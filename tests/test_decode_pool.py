"""Decode worker processes feeding the networks' process (violence_cli.features.decode_pool).

On the CPU: the features through the pool equal those decoded in-process (bitwise: the
workers resize exactly as the CPU path does); frames travel through shared memory (the
messages name buffers); a video that fails is reported as its own failure; the workers and
their shared memory are gone after close, after an error, and after SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from fakeweights import fake_weights_folder
from mediagen import make_clip

from violence_cli.errors import InputError
from violence_cli.features.decode_pool import DecodePool, default_workers, segment_name
from violence_cli.features.extract import FeatureExtractor

REPO = Path(__file__).resolve().parents[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purpose
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _segments(pids: list[int]) -> set[str]:
    """The shared-memory segments made by these decode workers (not by other tests running beside)."""
    shm = Path("/dev/shm")
    mine = tuple(segment_name(pid)[: -len("12345678")] for pid in pids)
    return {p.name for p in shm.iterdir() if p.name.startswith(mine)} if shm.is_dir() else set()


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory):
    with fake_weights_folder(tmp_path_factory, "weights") as w:
        yield w


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("videos")
    sizes = [(64, 48), (80, 60), (64, 48)]
    return [
        make_clip(folder / f"v{i}.mp4", seconds=1.6, fps=30, size=s, tone_hz=300.0 + 90 * i)
        for i, s in enumerate(sizes)
    ]


def test_default_from_the_cores() -> None:
    assert [default_workers(c) for c in (1, 2, 3, 4, 16, 64)] == [0, 0, 1, 2, 8, 8]


def test_pooled_features_equal_in_process_decoding(weights: dict[str, Path], videos: list[Path]) -> None:
    fx = FeatureExtractor(weights["i3d_rgb_imagenet"], weights["vggish"], device="cpu", crops=1)
    want = [fx.extract(v) for v in videos]
    pooled = FeatureExtractor(weights["i3d_rgb_imagenet"], weights["vggish"], device="cpu", crops=1, decode_workers=2)
    pooled.i3d, pooled.vggish = fx.i3d, fx.vggish  # the same networks: only the decoding differs
    try:
        for v in videos:  # announced ahead, as the runner does: two decode at once
            pooled.prefetch(v)
        got = [pooled.extract(v) for v in videos]
        pids = pooled.pool.pids
        assert len(pids) == 2 and all(_alive(p) for p in pids)
    finally:
        pooled.close()
    for a, b in zip(want, got):
        assert b.n_frames == a.n_frames and b.n_snippets == a.n_snippets == 2
        assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.audio, b.audio)
        assert b.warnings == a.warnings
    time.sleep(0.2)
    assert not any(_alive(p) for p in pids)
    assert not _segments(pids)  # every shared buffer unlinked


def test_a_failing_video_fails_alone(weights: dict[str, Path], videos: list[Path], tmp_path: Path) -> None:
    bad = tmp_path / "cut.mp4"
    bad.write_bytes(videos[0].read_bytes()[:2000])  # a header and no frames
    fx = FeatureExtractor(weights["i3d_rgb_imagenet"], weights["vggish"], device="cpu", crops=1, decode_workers=1)
    try:
        with pytest.raises(InputError, match="cut.mp4"):
            fx.extract(bad)
        assert fx.extract(videos[1]).n_snippets == 2  # the worker goes on with the next video
    finally:
        fx.close()


def test_workers_are_stopped_on_close_even_mid_video(videos: list[Path]) -> None:
    pool = DecodePool(2)
    pids = pool.pids
    assert all(_alive(p) for p in pids)
    pool.close()
    pool.close()  # idempotent
    assert not any(_alive(p) for p in pids)


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="needs POSIX shared memory in /dev/shm")
def test_sigterm_leaves_no_worker_and_no_shared_memory(
    weights: dict[str, Path], videos: list[Path], tmp_path: Path
) -> None:
    """A run killed by SIGTERM (the CLI turns it into KeyboardInterrupt) mid-video: the
    workers exit and their buffers are unlinked."""
    long = make_clip(tmp_path / "long.mp4", seconds=20, fps=24, size=(64, 48))
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent(f"""
        import signal, sys, time
        sys.path.insert(0, {str(REPO / "tests")!r})
        from violence_cli.features.extract import FeatureExtractor
        signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))

        class Slow:
            def __call__(self, x):
                print("forward", flush=True)
                time.sleep(0.5)
                import torch
                return torch.zeros(x.shape[0], 1024)

        if __name__ == "__main__":  # spawned workers import this file again
            fx = FeatureExtractor({str(weights["i3d_rgb_imagenet"])!r}, {str(weights["vggish"])!r}, device="cpu",
                                  crops=1, decode_workers=2)
            fx.i3d = Slow()
            try:
                fx.prefetch({str(videos[0])!r})
                print("pids", *fx._ensure_pool().pids, flush=True)
                fx.extract({str(long)!r})
            finally:
                fx.close()
    """)
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, str(script)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    assert line.startswith("pids"), proc.stderr.read()
    pids = [int(p) for p in line.split()[1:]]
    while proc.stdout.readline().strip() != "forward":  # frames are flowing (I3D runs the long video)
        assert proc.poll() is None, proc.stderr.read()
    for _ in range(3):  # the long video's buffers exist while it runs
        proc.stdout.readline()
    assert _segments(pids), "no shared buffer while a video is decoded"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    time.sleep(0.5)
    assert not any(_alive(p) for p in pids)
    assert not _segments(pids), "shared memory left behind"


def test_cli_default_decodes_in_process_for_one_video(monkeypatch: pytest.MonkeyPatch) -> None:
    from violence_cli.cli.options import decode_workers_option
    from violence_cli.errors import UsageError
    from violence_cli.features import decode_pool

    monkeypatch.setattr(decode_pool, "default_workers", lambda cores=None: 8)
    assert [decode_workers_option(None, n) for n in (0, 1, 3, 50)] == [0, 0, 3, 8]
    assert decode_workers_option(2, 1) == 2  # asked for: as asked
    with pytest.raises(UsageError, match="--decode-workers -1: expected 0 or more"):
        decode_workers_option(-1, 5)

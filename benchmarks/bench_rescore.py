"""A full run, then rescoring the features it kept: seconds each and the ratio.

    python benchmarks/bench_rescore.py                  # 10 minutes of video at 5 crops (long on a CPU)
    python benchmarks/bench_rescore.py --minutes 1      # what a 2-core machine can run in a few minutes
    python benchmarks/bench_rescore.py --minutes 0.2 --crops 1   # a quick check that it works

A 640x360 30 fps H.264 + stereo AAC clip is made here (bench_extract.make_video), then three
real ``violence-detect`` processes run one after the other, as a user would type them:

1. ``VIDEO --output-dir OUT --threshold 0.5``: decode, I3D, VGGish, MACIL-SD; the features are kept;
2. ``VIDEO --output-dir OUT --threshold 0.65``: rescored from the kept features (the JSON must
   say ``"reused": true``, else the script stops: a rescore that decoded is no figure);
3. ``... --model hypervd --checkpoint HYPERVD``: HyperVD rescoring the features the MACIL-SD
   run kept (its published checkpoint: ``--hypervd FILE``, by default ``../shared/weights/
   hypervd.pkl`` beside this checkout, else the registry's cached copy).

Each figure is the wall time of the whole process (start-up, weights hashing and loading
included), then, in this process, ``Detector.score`` alone on the features read back: the
model step a rescore cannot avoid. I3D, VGGish and MACIL-SD weights are RANDOM
(tests/fakeweights.py): speed does not depend on their values. The load average is printed
before and after. ``--workdir DIR`` keeps the clip and the kept features there (a rerun reuses
the clip; its full run starts from an empty output folder).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's violence_cli, as the subprocesses get it
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_extract import make_video  # noqa: E402
from fakeweights import save_fake_weights  # noqa: E402


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def cli(*args: object) -> tuple[float, dict]:
    """Run ``violence-detect ARGS --json`` in a new process: (wall seconds, its JSON document)."""
    argv = [sys.executable, "-m", "violence_cli", *map(str, args), "--json", "--quiet"]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"violence-detect failed ({done.returncode}):\n{done.stderr}")
    return seconds, json.loads(done.stdout)


def hypervd_file(given: str | None) -> Path | None:
    """The HyperVD checkpoint to rescore with: the option's, shared's, else the registry's cache."""
    if given:
        return Path(given)
    shared = REPO.parent / "shared" / "weights" / "hypervd.pkl"
    if shared.is_file():
        return shared
    from violence_cli.weights import resolve_weights

    return resolve_weights("hypervd", None, download=False)


def score_alone(out: Path, name: str, weights: dict[str, Path], repeats: int = 5) -> float:
    """Seconds of ``Detector.score`` on the kept features (best of ``repeats``), in this process."""
    from violence_cli.pipeline import Detector
    from violence_cli.runner.features_job import load_features
    from violence_cli.xdfeatures import discover_folder

    (entry,) = [e for e in discover_folder(out) if e.name == name]
    features, _, _ = load_features(entry, name)
    detector = Detector(device="cpu", checkpoint=weights["macil_sd"], i3d_weights=weights["i3d_rgb_imagenet"],
                        vggish_weights=weights["vggish"], download=False, defer_features=True)  # fmt: skip
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        detector.score(features, threshold=0.65)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the clip (default 10)")
    parser.add_argument("--crops", type=int, default=5, choices=(1, 5))
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--hypervd", help="HyperVD's published checkpoint (default: shared's, else the cache)")
    parser.add_argument("--workdir", help="keep the clip and outputs here (default: a temporary folder)")
    args = parser.parse_args()
    hypervd = hypervd_file(args.hypervd)  # before the long run: a missing file stops it now
    print(f"load average before: {load()}  ({os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory(prefix="bench-rescore-") as tmp:
        root = Path(args.workdir or tmp)
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(root / "out", ignore_errors=True)  # the full run must decode
        weights = save_fake_weights(root / "weights")
        started = time.perf_counter()
        video = root / f"clip-{args.minutes:g}min.mp4"
        if not video.is_file():
            make_video(video, args.minutes * 60, 640, 360)
        print(f"clip: {args.minutes:g} min 640x360 30 fps H.264 + AAC, ready in {time.perf_counter() - started:.1f} s")
        common = [
            "--output-dir", root / "out", "--crops", args.crops, "--precision", args.precision, "--device", "cpu",
            "--no-download", "--i3d-weights", weights["i3d_rgb_imagenet"], "--vggish-weights", weights["vggish"],
        ]  # fmt: skip
        macil = ["--checkpoint", weights["macil_sd"]]
        full, first = cli(video, *common, *macil, "--threshold", "0.5")
        assert first["features"]["reused"] is False, first["features"]
        print(f"full run ({args.crops} crops, {first['params']['precision']}): {full:.1f} s "
              f"({first['video']['n_snippets']} snippets; {args.minutes * 60 / full:.2f} s of video per second)")  # fmt: skip
        rescore, second = cli(video, *common, *macil, "--threshold", "0.65")
        if second.get("features", {}).get("reused") is not True:
            raise SystemExit(f"the rescore did not reuse the kept features: {second.get('features')}")
        print(f"rescore, --threshold 0.65: {rescore:.2f} s (nothing decoded): full / rescore = {full / rescore:.0f}x")
        other, third = cli(video, *common, "--threshold", "0.65", "--model", "hypervd", "--checkpoint", hypervd)
        if third.get("features", {}).get("reused") is not True:
            raise SystemExit(f"the HyperVD rescore did not reuse the kept features: {third.get('features')}")
        print(f"rescore, --model hypervd: {other:.2f} s (nothing decoded): full / rescore = {full / other:.0f}x")
        alone = score_alone(root / "out", video.stem, weights)
        print(f"Detector.score alone on the kept features (MACIL-SD + segments): {alone * 1000:.1f} ms")
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()

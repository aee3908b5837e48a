"""What the live mode's causal window costs: AP of `eval --window N` for N in 8 .. 200 and whole.

`violence-detect watch` scores each snippet with only the N snippets up to it
(:func:`violence_cli.model.score_causal`); the paper's protocol scores each video whole, future
included. This script prints AP / ROC-AUC for N in {8, 16, 32, 64, 128, 200}, for an unbounded
causal window ("causal") and for the whole video ("whole", the paper's number), side by side.

Synthetic (default): trains MACIL-SD for 4 epochs on a synthetic XD-layout set with a
planted signal (``violence_cli.training.synthetic``), then evaluates on a held-out synthetic
set whose videos run up to 400 snippets (4.4 min), so long windows matter. The planted
signal is weak (``--strength 0.3``; at 1.0 every window reaches AP 1.0) and local to the
violent snippets, so on these features context matters less than on real video::

    python benchmarks/bench_window.py            # ~3 min on 2 quiet CPU cores
    python benchmarks/bench_window.py --quick    # smaller sets, 2 epochs (a smoke test)

Real XD-Violence test features (the published checkpoint by default)::

    python benchmarks/bench_window.py --features RGBTest/ --annotations annotations.txt
    python benchmarks/bench_window.py --features RGBTest/ --gt gt.npy --checkpoint macil_sd.pkl
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from violence_cli.evaluate import evaluate  # noqa: E402
from violence_cli.model import load_model  # noqa: E402
from violence_cli.xdfeatures import discover_folder  # noqa: E402

WINDOWS = (8, 16, 32, 64, 128, 200)


def synthetic_model(root: Path, quick: bool, epochs: int, strength: float) -> tuple[Path, Path, Path]:
    """Train on a synthetic set; return (test features folder, annotations, checkpoint)."""
    from violence_cli.training.data import build_training_set
    from violence_cli.training.loop import TrainConfig, train
    from violence_cli.training.synthetic import make_synthetic_xd

    n_train, n_test = (12, 10) if quick else (60, 40)
    common = {"crops": 1, "min_len": 32, "strength": strength}
    train_set = make_synthetic_xd(root / "train", n_train, n_train, max_len=200, seed=1, **common)
    test_set = make_synthetic_xd(root / "test", n_test, n_test, max_len=160 if quick else 400, seed=2, **common)
    data = build_training_set(discover_folder(train_set.root))
    cfg = TrainConfig(epochs=epochs, batch_size=16, seed=2333)
    result = train(data, root / "run", cfg, device="cpu")
    assert test_set.annotations is not None
    return test_set.root, test_set.annotations, result.last_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=Path, help="XD-layout feature folder (default: synthetic)")
    parser.add_argument("--annotations", type=Path)
    parser.add_argument("--gt", type=Path)
    parser.add_argument("--checkpoint", type=Path, help="MACIL-SD weights (default: published / trained here)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=None, help="synthetic training epochs (default 4; 2 --quick)")
    parser.add_argument("--strength", type=float, default=0.3, help="synthetic signal strength (1.0: an easy task)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory(prefix="bench-window-") as tmp:
        if args.features is None:
            epochs = args.epochs or (2 if args.quick else 4)
            started = time.perf_counter()
            features, annotations, checkpoint = synthetic_model(Path(tmp), args.quick, epochs, args.strength)
            gt = None
            print(
                f"synthetic set (signal strength {args.strength:g}): trained {epochs} epochs "
                f"in {time.perf_counter() - started:.0f} s"
            )
        else:
            features, annotations, gt, checkpoint = args.features, args.annotations, args.gt, args.checkpoint
        entries = discover_folder(features)
        model = load_model(checkpoint, device=args.device)
        rows = []
        for window in (*WINDOWS, "causal", "whole"):
            started = time.perf_counter()
            if window == "whole":
                r = evaluate(entries, gt=gt, annotations=annotations, model=model, device=args.device)
            else:
                n = 10**9 if window == "causal" else int(window)  # noqa: PLR2004
                r = evaluate(entries, gt=gt, annotations=annotations, model=model, device=args.device, window=n)
            rows.append({"window": window, "ap": r.ap, "auc": r.auc, "seconds": time.perf_counter() - started})
        lengths = [len(s.av) for s in r.scores.values()]

    load = os.getloadavg()
    print(
        f"{len(entries)} videos, {sum(lengths)} snippets, longest {max(lengths)} (median {sorted(lengths)[len(lengths) // 2]})"
    )
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; device {args.device}")
    print(f"{'window':>11}  {'AP':>7}  {'ROC-AUC':>7}  {'vs whole':>8}  {'seconds':>7}")
    whole = rows[-1]["ap"]
    for row in rows:
        label = (
            f"{row['window']}" if isinstance(row["window"], str) else f"{row['window']} ({row['window'] * 2 / 3:.0f} s)"
        )
        print(f"{label:>11}  {row['ap']:7.4f}  {row['auc']:7.4f}  {row['ap'] - whole:+8.4f}  {row['seconds']:7.2f}")
    out = os.environ.get("OUT")
    if out:
        Path(out, "bench_window.json").write_text(json.dumps({"rows": rows, "load": load}, indent=2))


if __name__ == "__main__":
    main()

"""Regenerate tests/data/hypervd_golden.npz: the PUBLISHED HyperVD code's outputs on fixed inputs.

Usage (outside the test suite; needs a checkout of github.com/xiaogangpeng/HyperVD, commit
b87b354, and its two helper packages, geoopt and scipy, which violence-detect does not use):

    pip install --target /tmp/geoopt_site geoopt        # or into a scratch virtual environment
    PYTHONPATH=/tmp/geoopt_site python tests/data/make_hypervd_golden.py PATH/TO/HyperVD \\
        [--checkpoint hypervd.pkl]

The published code (``model.py`` with its ``layers``, ``manifolds``, ``models`` and ``utils``
packages) is copied to a temporary folder with one change: the two ``np.float32`` casts in
``model.py`` (the Lorentz metric's diagonal and the temporal distances) become
``np.float64``, so that the model runs in float64 (``model.double()``) on CPU with the
published checkpoint, exactly as its ``test.py`` calls it: ``_, logits = model(inputs,
None)`` with ``inputs`` = the crops' (T, 1024) RGB features with the video's (T, 128) VGGish
features appended. Why float64: in float32 the published code's feature-similarity matrix is
dominated by rounding (time coordinates up to cosh(10) cancel in the Lorentz inner product),
so its own logits move by up to 2.5 between one and two CPU threads; in float64 they agree to
1e-10. Nothing from that repository is stored here: only the seeded random inputs and the
outputs it produced.

Two feature scales per shape, as for the MACIL-SD golden: ``relu`` (I3D-like values >= 0,
VGGish after its ReLU; HyperVD's scores saturate near 0 there, so the logits are what a test
compares) and ``normal`` (standard normal values, where the scores do not saturate).
Recorded per case: the inputs (float16, cast to float64 before use), the logits (B, T) and
the score (T,) = mean over the crops of sigmoid(logit).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
DEFAULT_CKPT = HERE.parents[2] / "shared" / "weights" / "hypervd.pkl"
# (name, crops, T, seed). B = T = 1 is left out: the published forward's MIL pooling
# (``clas``, unused by test.py) squeezes it to a scalar and fails.
SHAPES = [("c5_t1", 5, 1, 11), ("c5_t7", 5, 7, 12), ("c1_t48", 1, 48, 13)]
SCALES = ("relu", "normal")


def make_inputs(crops: int, t: int, seed: int, scale: str) -> tuple[np.ndarray, np.ndarray]:
    """(crops, T, 1024) visual and (crops, T, 128) audio (the same audio for every crop)."""
    rs = np.random.RandomState(seed)
    if scale == "relu":  # as make_macil_golden.py: I3D pooled features >= 0, VGGish after ReLU
        visual = np.abs(rs.standard_normal((crops, t, 1024))) * 0.6
        audio = np.maximum(rs.standard_normal((1, t, 128)) * 0.25, 0.0)
    else:
        visual = rs.standard_normal((crops, t, 1024))
        audio = rs.standard_normal((1, t, 128))
    audio = np.ascontiguousarray(np.broadcast_to(audio, (crops, t, 128)))
    return visual.astype(np.float16), audio.astype(np.float16)


def load_published(checkout: Path, checkpoint: Path):
    tmp = Path(tempfile.mkdtemp(prefix="hypervd_published_"))
    for name in ("model.py", "option.py"):
        shutil.copy(checkout / name, tmp / name)
    for package in ("layers", "manifolds", "models", "utils"):
        shutil.copytree(checkout / package, tmp / package, ignore=shutil.ignore_patterns("__pycache__"))
    text = (tmp / "model.py").read_text()
    assert text.count("np.float32") == 2, "not the published model.py of commit b87b354"
    (tmp / "model.py").write_text(text.replace("np.float32", "np.float64"))
    sys.path.insert(0, str(tmp))
    import option  # the published option.py
    from model import Model  # the published model.py

    args = option.parser.parse_args([])
    args.device = "cpu"
    model = Model(args)
    model.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True), strict=True)
    return model.double().eval(), tmp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkout", type=Path, help="folder with the published model.py, option.py, layers/, manifolds/")
    ap.add_argument("--checkpoint", type=Path, default=DEFAULT_CKPT)
    ap.add_argument("--out", type=Path, default=HERE / "hypervd_golden.npz")
    args = ap.parse_args()

    model, tmp = load_published(args.checkout, args.checkpoint)
    out: dict[str, np.ndarray] = {}
    cases = []
    with torch.no_grad():
        for shape, crops, t, seed in SHAPES:
            for scale in SCALES:
                name = f"{scale}_{shape}"
                visual, audio = make_inputs(crops, t, seed, scale)
                inputs = torch.from_numpy(np.concatenate([visual, audio], axis=-1).astype(np.float64))
                _, logits = model(inputs, None)  # (crops, T, 1), as test.py calls it
                out[f"{name}/visual"], out[f"{name}/audio"] = visual, audio
                out[f"{name}/logits"] = logits[..., 0].numpy()
                out[f"{name}/score"] = torch.sigmoid(logits).mean(0)[..., 0].numpy()  # test.py's pred
                cases.append(name)
    out["cases"] = np.array(cases)
    np.savez_compressed(args.out, **out)
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()

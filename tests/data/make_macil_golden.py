"""Regenerate tests/data/macil_golden.npz: the PUBLISHED MACIL-SD code's outputs on fixed inputs.

Usage (outside the test suite; needs a checkout of github.com/JustinYuu/MACIL_SD):

    python tests/data/make_macil_golden.py PATH/TO/MACIL_SD [--checkpoint macil_sd.pkl]

The published ``avce_network.py`` and ``Transformer.py`` are copied to a temporary folder
with every ``.cuda()`` call removed (nothing else is changed), imported from there and run
on CPU in float32 with the published checkpoint. Nothing from that repository is stored
here: only the seeded random inputs and the outputs it produced.

Two regimes: seeded random features at the scale of real ones (the published network is
sure of itself there: probabilities 1e-4 to 0.03, compared as logits), and "mid" cases whose
probabilities sit around 0.5, where the sigmoid is steepest and an error shows the most:
small random features plus, per snippet, a random amount of the published network's own
most violent direction (the positive part of the av logit's gradient at zero input).

Recorded per case (B crops/videos, T snippets): the inputs (float16, cast to float32 before
use), their av logits, audio/visual probabilities, both attended representations, and the
visual-only network (``Single_Model``, given the checkpoint's shared weights, the way the
self-distillation shares them) logits. Plus their MIL pooling (``Att_MMIL.clas``) on fixed
logits with padded lengths.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
DEFAULT_CKPT = HERE.parents[2] / "shared" / "weights" / "macil_sd.pkl"
# (name, B, T, seed, shared_audio): T = 1 and 5-crop batches included. A 5-crop batch pairs
# the five crops of one video with the same audio, as the published test loader does.
CASES = [("c5_t1", 5, 1, 1, True), ("c5_t7", 5, 7, 2, True), ("c1_t48", 1, 48, 3, True), ("c2_t17", 2, 17, 4, False)]
MID_CASES = [
    ("mid_c5_t1", 5, 1, 9, True),
    ("mid_c5_t7", 5, 7, 6, True),
    ("mid_c1_t48", 1, 48, 7, True),
    ("mid_c2_t17", 2, 17, 8, False),
]
MID_SCALE, MID_VISUAL, MID_AUDIO = 0.06, 0.15, 0.1  # random part <= 6 %; direction lengths


def import_published(checkout: Path):
    tmp = Path(tempfile.mkdtemp(prefix="macil_published_"))
    for name in ("avce_network.py", "Transformer.py"):
        text = (checkout / name).read_text()
        (tmp / name).write_text(text.replace(".cuda()", ""))
    sys.path.insert(0, str(tmp))
    try:
        net = importlib.import_module("avce_network")
    finally:
        sys.path.remove(str(tmp))
    return net, tmp


def make_inputs(b: int, t: int, seed: int, shared_audio: bool) -> tuple[np.ndarray, np.ndarray]:
    rs = np.random.RandomState(seed)
    visual = np.abs(rs.standard_normal((b, t, 1024))) * 0.6  # I3D pooled features are >= 0
    audio = np.maximum(rs.standard_normal((1 if shared_audio else b, t, 128)) * 0.25, 0.0)  # VGGish after ReLU
    audio = np.ascontiguousarray(np.broadcast_to(audio, (b, t, 128)))
    return visual.astype(np.float16), audio.astype(np.float16)


def violent_direction(av_model) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors (1024,), (128,): the positive part of d(av logit)/d(input) at zero input
    (features are >= 0, so only the positive part is a feature)."""
    f_v = torch.zeros(1, 1, 1024, requires_grad=True)
    f_a = torch.zeros(1, 1, 128, requires_grad=True)
    v_out, a_out = av_model.cma(av_model.fc_v(f_v), av_model.fc_a(f_a))
    x = torch.cat([a_out.unsqueeze(-2), v_out.unsqueeze(-2)], dim=-2)
    av_model.att_mmil.fc(x).sum().backward()
    d_v, d_a = f_v.grad[0, 0].clamp(min=0), f_a.grad[0, 0].clamp(min=0)
    return (d_v / d_v.norm()).numpy(), (d_a / d_a.norm()).numpy()


def make_mid_inputs(b: int, t: int, seed: int, shared_audio: bool, direction) -> tuple[np.ndarray, np.ndarray]:
    visual, audio = (x.astype(np.float32) for x in make_inputs(b, t, seed, shared_audio))
    rs = np.random.RandomState(seed + 100)
    scale, amount = rs.uniform(0, MID_SCALE, (1, t, 1)), rs.uniform(0, 1, (1, t, 1))  # per snippet
    visual = visual * scale + amount * MID_VISUAL * direction[0]
    audio = audio * scale + amount * MID_AUDIO * direction[1]
    return visual.astype(np.float16), audio.astype(np.float16)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkout", type=Path, help="folder with the published avce_network.py and Transformer.py")
    ap.add_argument("--checkpoint", type=Path, default=DEFAULT_CKPT)
    ap.add_argument("--out", type=Path, default=HERE / "macil_golden.npz")
    args = ap.parse_args()

    net, tmp = import_published(args.checkout)
    opts = SimpleNamespace(dropout=0.1, nhead=4, hid_dim=128, ffn_dim=128, num_classes=1, v_feature_size=1024)
    state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    av_model = net.AVCE_Model(opts)
    av_model.load_state_dict(state, strict=True)
    av_model.eval()
    # The teacher gets the weights the audio-visual model shares with it (fc <- att_mmil.fc).
    v_state = {k: v for k, v in state.items() if not k.startswith(("fc_a.", "att_mmil."))}
    v_state.update({"fc.weight": state["att_mmil.fc.weight"], "fc.bias": state["att_mmil.fc.bias"]})
    v_model = net.Single_Model(opts)
    v_model.load_state_dict(v_state, strict=True)
    v_model.eval()

    out: dict[str, np.ndarray] = {}
    torch.manual_seed(0)
    direction = violent_direction(av_model)
    with torch.no_grad():
        for name, b, t, seed, shared_audio in CASES + MID_CASES:
            if name.startswith("mid_"):
                visual, audio = make_mid_inputs(b, t, seed, shared_audio, direction)
            else:
                visual, audio = make_inputs(b, t, seed, shared_audio)
            f_v, f_a = torch.from_numpy(visual.astype(np.float32)), torch.from_numpy(audio.astype(np.float32))
            # Their forward also runs the training-time MIL pooling, whose squeeze() breaks for
            # B = T = 1; it does not touch the outputs recorded here, so call the parts directly
            # in exactly the order their forward does.
            v_in, a_in = av_model.fc_v(f_v), av_model.fc_a(f_a)
            v_out, a_out = av_model.cma(v_in, a_in)
            x = torch.cat([a_out.unsqueeze(-2), v_out.unsqueeze(-2)], dim=-2)
            frame_prob = av_model.att_mmil.fc(x)
            if b * t > 1:  # the whole published forward must agree with the parts
                full = av_model(f_a, f_v, None)
                assert torch.equal(full[3], frame_prob.sum(dim=2))
            out[f"{name}/visual"], out[f"{name}/audio"] = visual, audio
            out[f"{name}/av_logits"] = frame_prob.sum(dim=2)[..., 0].numpy()
            out[f"{name}/audio_prob"] = torch.sigmoid(frame_prob[:, :, 0, 0]).numpy()
            out[f"{name}/visual_prob"] = torch.sigmoid(frame_prob[:, :, 1, 0]).numpy()
            out[f"{name}/visual_repr"] = v_out.numpy()
            out[f"{name}/audio_repr"] = a_out.numpy()
            out[f"{name}/teacher_logits"] = v_model(f_v, None)[..., 0].numpy()
        rs = np.random.RandomState(5)
        logits = rs.standard_normal((4, 40, 1)).astype(np.float32)
        lengths = np.array([40, 17, 1, 33])
        out["mil/logits"], out["mil/lengths"] = logits[..., 0], lengths
        out["mil/bag_prob"] = av_model.att_mmil.clas(torch.from_numpy(logits), torch.from_numpy(lengths)).numpy()
    out["cases"] = np.array([c[0] for c in CASES + MID_CASES])
    np.savez_compressed(args.out, **out)
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()

"""Regenerate tests/data/logmel_*.npz: the reference VGGish front end's output.

The golden examples come from the reference implementation itself
(``torchvggish/vggish_input.py``'s ``waveform_to_examples``), run outside this package:

    git -C /path/to/torchvggish.git archive HEAD | tar -x -C /tmp/torchvggish
    python tests/data/make_logmel_golden.py /tmp/torchvggish [--media DIR]

The checkout used for the committed files: harritaylor/torchvggish at
f3f90969ce8fb77a05d984b892ddf662e8466377. The reference needs numpy, torch and resampy;
it imports soundfile only for reading WAV files, so a stand-in module is provided when
soundfile is not installed (the WAVs are read here with the standard library, as int16 /
32768 exactly like its ``wavfile_to_examples``).
"""

from __future__ import annotations

import argparse
import sys
import types
import wave
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_MEDIA = HERE.parents[2] / "shared" / "media"

WAV_FILES = {"vggish_test": "vggish_test.wav", "sine": "sine_mono_s16.wav"}
NOISE_SEED = 2024  # the noise input is rebuilt by the test from these two numbers
NOISE_SAMPLES = 16000 * 2 + 777


def noise_signal(seed: int = NOISE_SEED, n: int = NOISE_SAMPLES) -> np.ndarray:
    """Seeded uniform noise in [-1, 1) with a slow amplitude ramp (loud and quiet frames)."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0.001, 1.0, n)
    return (2.0 * rng.random(n) - 1.0) * ramp


def read_wav_int16(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2, f"{path}: not 16-bit PCM"
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, w.getnchannels())
        return (data / 32768.0).squeeze(1) if data.shape[1] == 1 else data / 32768.0, w.getframerate()


def load_reference(checkout: Path) -> types.ModuleType:
    if "soundfile" not in sys.modules:
        try:
            import soundfile  # noqa: F401
        except ImportError:
            sys.modules["soundfile"] = types.ModuleType("soundfile")
    sys.path.insert(0, str(checkout))
    from torchvggish import vggish_input  # type: ignore[import-not-found]

    return vggish_input


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkout", type=Path, help="a work tree of harritaylor/torchvggish")
    parser.add_argument("--media", type=Path, default=DEFAULT_MEDIA, help="the shared media folder")
    args = parser.parse_args()
    ref = load_reference(args.checkout)

    inputs: dict[str, tuple[np.ndarray, int, dict]] = {}
    for name, filename in WAV_FILES.items():
        data, rate = read_wav_int16(args.media / filename)
        inputs[name] = (data, rate, {"source": np.array(filename)})
    inputs["noise"] = (noise_signal(), 16000, {"seed": np.array(NOISE_SEED), "n": np.array(NOISE_SAMPLES)})

    for name, (data, rate, meta) in inputs.items():
        examples = ref.waveform_to_examples(data, rate, return_tensor=False).astype(np.float32)
        out = HERE / f"logmel_{name}.npz"
        np.savez_compressed(out, examples=examples, sample_rate=np.array(rate), **meta)
        print(f"{out.name}: {examples.shape}, range [{examples.min():.3f}, {examples.max():.3f}]")


if __name__ == "__main__":
    main()

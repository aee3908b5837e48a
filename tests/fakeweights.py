"""Random weights in the published layouts, so tests never need the real files.

- ``random_i3d_state_dict``: piergiaj's ``rgb_imagenet.pt`` layout (BN with four tensors,
  no ``num_batches_tracked``; the 400-class ``logits`` included).
- ``random_vggish_state_dict``: torchvggish's ``vggish-10086976.pth`` layout.
- ``random_vggish_pca``: torchvggish's PCA file (``pca_eigen_vectors`` (128, 128),
  ``pca_means`` (128,)).
- ``save_fake_weights(dir)``: all of them (plus a random MACIL-SD state dict when
  ``violence_cli.model`` exists) under the registry's file names, for ``weights_dir=``.
- ``fake_weights_folder(tmp_path_factory, name)``: the same in a new temporary folder that
  is removed when the ``with`` block ends, for module-scoped fixtures.

Values are scaled so activations neither vanish nor explode through the networks
(He-style conv weights, batch-norm statistics near identity), and depend only on ``seed``.
"""

from __future__ import annotations

import math
import shutil
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import torch

from violence_cli.errors import ViolenceDetectError

# Registry names -> the published file names (used when weights.get_entry is unavailable).
DEFAULT_FILENAMES = {
    "i3d_rgb_imagenet": "rgb_imagenet.pt",
    "vggish": "vggish-10086976.pth",
    "vggish_pca": "vggish_pca_params-970ea276.pth",
    "macil_sd": "macil_sd.pkl",
}


def _shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(t.shape) for name, t in module.state_dict().items()}


def _fill(name: str, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """A plausible random value for one tensor, chosen by its role in the layout."""
    leaf = name.rsplit(".", 1)[-1]
    parent = name.rsplit(".", 2)[-2] if name.count(".") >= 1 else ""
    if leaf == "weight" and len(shape) >= 2:  # conv / linear: He scaling keeps ReLU nets stable
        fan_in = math.prod(shape[1:])
        return torch.randn(shape, generator=gen) * math.sqrt(2.0 / fan_in)
    if parent == "bn":
        if leaf == "weight":
            return 1.0 + 0.1 * torch.randn(shape, generator=gen)
        if leaf == "running_var":
            return 0.5 + torch.rand(shape, generator=gen)
        return 0.05 * torch.randn(shape, generator=gen)  # bias, running_mean
    return 0.01 * torch.randn(shape, generator=gen)  # conv / linear biases


def _random_like(shapes: dict[str, tuple[int, ...]], seed: int) -> OrderedDict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return OrderedDict((name, _fill(name, shape, gen)) for name, shape in shapes.items())


@lru_cache(maxsize=4)
def _cached(network: str, seed: int) -> OrderedDict[str, torch.Tensor]:
    """Drawing VGGish's 72 M values takes seconds: draw once per process and seed."""
    from violence_cli.features.i3d import InceptionI3d
    from violence_cli.features.vggish import VGGish

    with torch.device("meta"):
        shapes = _shapes(InceptionI3d() if network == "i3d" else VGGish())
    return _random_like(shapes, seed)


def random_i3d_state_dict(seed: int = 0) -> OrderedDict[str, torch.Tensor]:
    """A random state dict that loads strictly into piergiaj's InceptionI3d(400).

    A new dict each call; its tensors are shared between calls: replace them, never edit them in place.
    """
    return OrderedDict(_cached("i3d", seed))


def random_vggish_state_dict(seed: int = 0) -> OrderedDict[str, torch.Tensor]:
    """A random state dict in torchvggish's VGGish layout (tensors shared as above)."""
    return OrderedDict(_cached("vggish", seed))


def random_vggish_pca(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random PCA parameters: an orthonormal (128, 128) basis and (128,) means."""
    gen = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(128, 128, generator=gen, dtype=torch.float64))
    scale = torch.linspace(8.0, 0.5, 128, dtype=torch.float64)  # whitening-like row scales
    return {
        "pca_eigen_vectors": (basis.T * scale[:, None]).float(),
        "pca_means": (0.1 * torch.rand(128, generator=gen, dtype=torch.float64)).float(),
    }


def random_macil_state_dict(seed: int = 0) -> OrderedDict[str, torch.Tensor]:
    """A randomly initialised MACIL-SD state dict (needs ``violence_cli.model``)."""
    from violence_cli.model import MacilSD

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return OrderedDict(MacilSD().state_dict())


def _filename(name: str) -> str:
    try:
        from violence_cli.weights import get_entry

        return get_entry(name).filename
    except (ImportError, KeyError, ViolenceDetectError):  # no registry or no entry: the published names
        return DEFAULT_FILENAMES[name]


def save_fake_weights(directory: str | Path, seed: int = 0) -> dict[str, Path]:
    """Write every fake weights file into ``directory``; returns registry name -> path.

    ``macil_sd`` is included only when ``violence_cli.model`` can be imported.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    makers = {
        "i3d_rgb_imagenet": random_i3d_state_dict,
        "vggish": random_vggish_state_dict,
        "vggish_pca": random_vggish_pca,
        "macil_sd": random_macil_state_dict,
    }
    paths: dict[str, Path] = {}
    for name, make in makers.items():
        try:
            state = make(seed)
        except ImportError:
            continue
        path = directory / _filename(name)
        torch.save(state, path)
        paths[name] = path
    return paths


@contextmanager
def fake_weights_folder(tmp_path_factory, name: str = "fake-weights", seed: int = 0) -> Iterator[dict[str, Path]]:
    """``save_fake_weights`` into ``tmp_path_factory.mktemp(name)``, removed when the block ends.

    One set is 326 MB (VGGish alone 288 MB). A module fixture's folder from ``mktemp`` stays
    until the session ends: twenty of them kept 7 GB in /tmp at the end of a whole run.
    """
    folder = tmp_path_factory.mktemp(name)
    try:
        yield save_fake_weights(folder, seed)
    finally:
        shutil.rmtree(folder)


def cli_weight_args(paths: dict[str, Path]) -> list[str]:
    """The CLI options that point detect at these files: one crop, CPU, no download."""
    return [
        "--checkpoint",
        str(paths["macil_sd"]),
        "--i3d-weights",
        str(paths["i3d_rgb_imagenet"]),
        "--vggish-weights",
        str(paths["vggish"]),
        "--crops",
        "1",
        "--device",
        "cpu",
        "--no-download",
    ]


_DETECTORS: dict[tuple, object] = {}


def share_detectors(monkeypatch) -> None:
    """Make ``pipeline.Detector`` hand out one loaded instance per set of options, for the
    whole test process (what a Detector serving many videos does): CLI tests stay fast."""
    from violence_cli import pipeline

    real = pipeline.Detector

    def shared(**options):
        key = tuple(sorted((k, str(v)) for k, v in options.items() if k != "download_progress"))
        if key not in _DETECTORS:
            _DETECTORS[key] = real(**options)
        return _DETECTORS[key]

    monkeypatch.setattr(pipeline, "Detector", shared)

"""violence-detect: find violence in videos from both what is seen and what is heard.

The public API is imported lazily so that ``import violence_cli`` stays cheap:

- :func:`detect` and :class:`Detector` run video -> features -> MACIL-SD -> segments;
- :func:`load_model` loads the MACIL-SD network from a checkpoint (default: the registry's);
- :func:`available_weights` lists the pretrained files the registry knows;
- :class:`FeatureExtractor` turns a video into XD-Violence I3D + VGGish features;
- :func:`train` is the library side of ``violence-detect train`` (evaluation:
  ``violence_cli.evaluate.evaluate``).
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__

_LAZY = {
    "detect": "violence_cli.pipeline",
    "Detector": "violence_cli.pipeline",
    "DetectionResult": "violence_cli.schema",
    "load_model": "violence_cli.model",
    "available_weights": "violence_cli.weights",
    "FeatureExtractor": "violence_cli.features.extract",
    "train": "violence_cli.training.loop",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'violence_cli' has no attribute {name!r}")

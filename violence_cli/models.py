"""The models that score features, by name: MACIL-SD, HyperVD and their ensemble.

Each name maps to the registry weights it needs and to a loader returning a
:class:`Scorer`, one object with ``score(rgb, audio) -> SnippetScores`` that the pipeline,
the live mode and the evaluation all call. To add a model: write its network and strict
loader (as :mod:`violence_cli.hypervd`), add its weights to ``weights/manifest.json`` and
its name to :data:`MODEL_NAMES` / :data:`MODEL_WEIGHTS`, and a scorer class below.

- ``macil-sd``: MACIL-SD (Yu et al., ACM MM 2022): audio-visual score plus audio-only and
  visual-only scores from its two heads.
- ``hypervd``: HyperVD (Peng et al., arXiv 2305.18797): one score; it has no audio-only or
  visual-only head, so those scores are ``None`` (null in JSON), never a copy of the score.
- ``ensemble``: the mean of the two models' snippet probabilities, ``(macil + hypervd) / 2``;
  no audio-only or visual-only score either (only one of its members has them).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import UsageError
from .protocol import HYPERVD_WEIGHTS, MACIL_WEIGHTS

if TYPE_CHECKING:  # torch is imported when a model is loaded, not by the CLI's option tables
    import torch

    from .model import SnippetScores

MACIL_SD, HYPERVD, ENSEMBLE = "macil-sd", "hypervd", "ensemble"
MODEL_NAMES = (MACIL_SD, HYPERVD, ENSEMBLE)
DEFAULT_MODEL = MACIL_SD
# the registry weights each model loads, in the order --checkpoint files are matched to them
MODEL_WEIGHTS: dict[str, tuple[str, ...]] = {
    MACIL_SD: (MACIL_WEIGHTS,),
    HYPERVD: (HYPERVD_WEIGHTS,),
    ENSEMBLE: (MACIL_WEIGHTS, HYPERVD_WEIGHTS),
}
MODEL_TITLES = {MACIL_SD: "MACIL-SD", HYPERVD: "HyperVD", ENSEMBLE: "MACIL-SD + HyperVD ensemble"}  # for people
# why a model's results have no audio-only / visual-only scores (None: it has them)
NO_HEADS: dict[str, str | None] = {
    MACIL_SD: None,
    HYPERVD: "HyperVD has no separate audio or visual head",
    ENSEMBLE: "the ensemble has no separate audio or visual head (HyperVD has none)",
}


def check_model(name: str) -> str:
    """``name`` if it is one of :data:`MODEL_NAMES`; else a UsageError naming the choices."""
    if name not in MODEL_NAMES:
        raise UsageError(f"model {name}: expected one of {', '.join(MODEL_NAMES)}")
    return name


def checkpoint_map(
    model: str, checkpoints: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None
) -> dict[str, str | os.PathLike[str] | None]:
    """Registry name -> explicit file for ``model``'s weights: ``checkpoints`` in the order of
    :data:`MODEL_WEIGHTS` (the ensemble: MACIL-SD first, then HyperVD); missing ones are None
    (the registry finds them). More files than the model has weights is a UsageError."""
    names = MODEL_WEIGHTS[check_model(model)]
    if checkpoints is None:
        files: list[Any] = []
    elif isinstance(checkpoints, (str, os.PathLike)):
        files = [checkpoints]
    else:
        files = list(checkpoints)
    if len(files) > len(names):
        raise UsageError(
            f"checkpoint: {len(files)} files for model {model}, which takes at most {len(names)} "
            f"({', then '.join(names)})"
        )
    return {name: (files[i] if i < len(files) else None) for i, name in enumerate(names)}


class Scorer:
    """A loaded model: ``score(rgb (T, C, 1024) or (T, 1024), audio (T, 128))`` -> scores."""

    name: str = ""

    @property
    def no_heads(self) -> str | None:
        """Why ``audio``/``visual`` are None in this model's scores (None when they are not)."""
        return NO_HEADS[self.name]

    def score(self, rgb: np.ndarray | torch.Tensor, audio: np.ndarray | torch.Tensor) -> SnippetScores:
        raise NotImplementedError

    def score_causal(
        self,
        rgb: np.ndarray | torch.Tensor,
        audio: np.ndarray | torch.Tensor,
        window: int | None = None,
        last: int | None = None,
    ) -> SnippetScores:
        """The live mode's scores: row t sees only snippets ``t - window + 1 .. t`` (``None``: all
        up to t). ``last``: only the last rows are needed (the others may be skipped)."""
        raise NotImplementedError


class MacilScorer(Scorer):
    name = MACIL_SD

    def __init__(self, model: Any, device: torch.device) -> None:
        self.model, self.device = model, device

    def score(self, rgb, audio) -> SnippetScores:  # type: ignore[no-untyped-def]
        from .model import score_snippets

        return score_snippets(self.model, rgb, audio, device=self.device)

    def score_causal(self, rgb, audio, window=None, last=None) -> SnippetScores:  # type: ignore[no-untyped-def]
        from .model import score_causal

        return score_causal(self.model, rgb, audio, window, device=self.device)


class HyperVDScorer(Scorer):
    name = HYPERVD

    def __init__(self, model: Any, device: torch.device) -> None:
        self.model, self.device = model, device

    def score(self, rgb, audio) -> SnippetScores:  # type: ignore[no-untyped-def]
        from .hypervd import hypervd_probabilities
        from .model import SnippetScores

        return SnippetScores(
            av=hypervd_probabilities(self.model, rgb, audio, device=self.device), audio=None, visual=None
        )

    def score_causal(self, rgb, audio, window=None, last=None) -> SnippetScores:  # type: ignore[no-untyped-def]
        """Row t is the last score of a forward over rows ``t - window + 1 .. t`` alone (one
        forward per row: HyperVD's graphs have no mask); rows before ``last`` are NaN."""
        from .model import SnippetScores

        t_all = len(audio)
        av = np.full(t_all, np.nan, dtype=np.float32)
        for t in range(0 if last is None else max(0, t_all - last), t_all):
            first = 0 if window is None else max(0, t - window + 1)
            av[t] = self.score(rgb[first : t + 1], audio[first : t + 1]).av[-1]
        return SnippetScores(av=av, audio=None, visual=None)


class EnsembleScorer(Scorer):
    name = ENSEMBLE

    def __init__(self, members: Sequence[Scorer]) -> None:
        self.members = list(members)

    def _mean(self, parts: list[SnippetScores]) -> SnippetScores:
        from .model import SnippetScores

        av = np.mean(np.stack([p.av for p in parts]), axis=0, dtype=np.float64).astype(np.float32)
        return SnippetScores(av=av, audio=None, visual=None, parts={m.name: p.av for m, p in zip(self.members, parts)})

    def score(self, rgb, audio) -> SnippetScores:  # type: ignore[no-untyped-def]
        return self._mean([m.score(rgb, audio) for m in self.members])

    def score_causal(self, rgb, audio, window=None, last=None) -> SnippetScores:  # type: ignore[no-untyped-def]
        return self._mean([m.score_causal(rgb, audio, window, last) for m in self.members])


def load_scorer(
    model: str,
    paths: Mapping[str, str | os.PathLike[str]],
    device: str | torch.device = "cpu",
) -> Scorer:
    """Load ``model`` from ``paths`` (registry name -> file, e.g. from
    :func:`~violence_cli.weights.resolve_weight_files`), strictly, on ``device``."""
    from .devices import resolve_device
    from .hypervd import load_hypervd
    from .model import load_model

    dev = resolve_device(device)
    check_model(model)
    if model == MACIL_SD:
        return MacilScorer(load_model(paths[MACIL_WEIGHTS], device=dev), dev)
    if model == HYPERVD:
        return HyperVDScorer(load_hypervd(paths[HYPERVD_WEIGHTS], device=dev), dev)
    return EnsembleScorer([load_scorer(MACIL_SD, paths, dev), load_scorer(HYPERVD, paths, dev)])


__all__ = [
    "DEFAULT_MODEL",
    "MODEL_NAMES",
    "MODEL_TITLES",
    "MODEL_WEIGHTS",
    "NO_HEADS",
    "Scorer",
    "check_model",
    "checkpoint_map",
    "load_scorer",
]

"""Held-out scoring during training, with the paper's metric.

Each video is scored on its own (all crops at once, full length, no padding), as the
published test loop does: per-snippet sigmoid(logit) averaged over the crops, repeated 16
times per frame, concatenated in video order and compared with the frame-level ground truth.
The audio-visual model is scored on its audio-visual logit; the visual-only teacher on its
own logit. AP and ROC-AUC come from :func:`violence_cli.evaluate.paper_metrics`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..evaluate import (
    check_gt_length,
    gt_from_annotations,
    load_gt,
    paper_metrics,
    read_annotations,
)
from ..model import MacilSD, score_snippets
from ..xdfeatures import VideoEntry, load_entry

DEFAULT_CACHE_BYTES = 4 << 30  # held-out features kept in RAM (4 GiB)


class ValidationSet:
    """Held-out videos + their frame-level ground truth; call it to score a model.

    The ground truth is ``gt`` (a frame-level ``gt.npy`` path or array, videos in order) or
    ``annotations`` (an XD ``annotations.txt`` path or its parsed dict). Every feature file
    is read once here, so a bad file fails before training starts.
    """

    def __init__(
        self,
        entries: Sequence[VideoEntry],
        *,
        gt: str | Path | np.ndarray | None = None,
        annotations: str | Path | dict | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        on_warning: Callable[[str], None] | None = None,
    ) -> None:
        if (gt is None) == (annotations is None):
            raise ValueError("pass exactly one of gt and annotations")
        if not entries:
            raise InputError("the validation set is empty: no videos found")
        self.entries = list(entries)
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        lengths, used = [], 0
        for i, entry in enumerate(self.entries):
            rgb, audio = load_entry(entry, on_warning=on_warning)  # (C, T, 1024), (T, 128)
            lengths.append(audio.shape[0])
            if used + rgb.nbytes + audio.nbytes <= cache_bytes:
                self._cache[i] = (rgb, audio)
                used += rgb.nbytes + audio.nbytes
        if gt is not None:
            source = gt if isinstance(gt, (str, Path)) else "ground truth"
            self.gt = load_gt(gt) if isinstance(gt, (str, Path)) else np.asarray(gt, np.float32)
            check_gt_length(self.gt, lengths, source)
        else:
            parsed = annotations if isinstance(annotations, dict) else read_annotations(annotations)
            self.gt, unannotated = gt_from_annotations([(e.name, t) for e, t in zip(self.entries, lengths)], parsed)
            if unannotated and on_warning is not None:
                on_warning(
                    f"{len(unannotated)} validation videos are not named normal (_label_A) but have no "
                    f"annotation; their frames count as normal (first: {unannotated[0]!r})"
                )
        positives = int(self.gt.sum())
        if positives == 0 or positives == self.gt.shape[0]:
            kind = "no violent" if positives == 0 else "only violent"
            raise InputError(
                f"the validation ground truth has {kind} frames: AP is undefined",
                hint="check that the annotation names match the validation feature names",
            )

    def __len__(self) -> int:
        return len(self.entries)

    def _load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if i in self._cache:
            return self._cache[i]
        return load_entry(self.entries[i])  # warned about (if at all) when first read

    @torch.inference_mode()
    def snippet_scores(self, model: torch.nn.Module) -> np.ndarray:
        """Snippet scores of every video, concatenated in video order."""
        parts = []
        for i in range(len(self.entries)):
            rgb, audio = self._load(i)
            if isinstance(model, MacilSD):
                scores = score_snippets(model, rgb.transpose(1, 0, 2), audio, device=None).av
            else:
                scores = _teacher_scores(model, rgb)
            parts.append(scores)
        return np.concatenate(parts)

    def __call__(self, model: torch.nn.Module) -> tuple[float, float]:
        """(AP, ROC-AUC) of ``model``: a :class:`MacilSD` on its audio-visual score, or the
        visual-only teacher on its own score. Runs on the model's device."""
        return paper_metrics(self.gt, self.snippet_scores(model))


def _teacher_scores(model: torch.nn.Module, rgb: np.ndarray) -> np.ndarray:
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        logits = model(torch.as_tensor(rgb, dtype=torch.float32, device=device))  # (C, T)
        return torch.sigmoid(logits).mean(0).float().cpu().numpy()
    finally:
        model.train(was_training)


__all__ = ["ValidationSet"]

"""Training MACIL-SD on features in the XD-Violence layout (``violence-detect train``).

- :mod:`.data`: training bags (one per crop file), checked, subsampled, batched;
- :mod:`.losses`: MIL BCE and the four cross-modal InfoNCE terms;
- :mod:`.loop`: the recipe (teacher, EMA self-distillation, schedules), checkpoints, resume;
- :mod:`.validation`: held-out scoring with the paper's metric after each epoch;
- :mod:`.synthetic`: synthetic XD-layout datasets with a planted signal (tests, benchmarks).
"""

from __future__ import annotations

from ..devices import resolve_device
from .data import MAX_SEQLEN as DEFAULT_MAX_SEQLEN
from .data import (
    Bag,
    Batch,
    TrainingSet,
    build_training_set,
    read_labels_csv,
    subsample_indices,
)
from .loop import EpochRecord, Progress, TrainConfig, TrainResult, read_state, train
from .validation import ValidationSet

__all__ = [
    "DEFAULT_MAX_SEQLEN",
    "Bag",
    "Batch",
    "EpochRecord",
    "Progress",
    "TrainConfig",
    "TrainResult",
    "TrainingSet",
    "ValidationSet",
    "build_training_set",
    "read_labels_csv",
    "read_state",
    "resolve_device",
    "subsample_indices",
    "train",
]

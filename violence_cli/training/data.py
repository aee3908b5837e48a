"""Training bags in the XD-Violence layout, checked before the first step.

Each crop file of a video is a separate training bag (as in the published list files, where
``NAME__0.npy`` .. ``NAME__4.npy`` are five rows sharing one ``NAME__vggish.npy``). A bag
longer than ``max_seqlen`` snippets is subsampled uniformly to exactly ``max_seqlen``
(the published ``process_feat`` with ``is_random=False``); shorter bags keep their length and
are zero-padded when batched. The true lengths travel with every batch: MIL top-k and the
contrastive selections use them.

All files are read once by :func:`build_training_set` (missing/unreadable files, NaN/inf,
audio/visual length mismatches, an empty set, a set without both labels are one-line
:class:`~violence_cli.errors.InputError`). The subsampled features are then kept in memory
up to ``cache_bytes``; the rest are read again per batch (only the rows kept).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..xdfeatures import VideoEntry, is_normal, load_entry

MAX_SEQLEN = 200  # snippets per training bag (published option --max_seqlen)
DEFAULT_CACHE_BYTES = 8 << 30  # subsampled features kept in RAM (8 GiB)

ProgressFn = Callable[[int, int], None]  # (videos checked, total)
WarnFn = Callable[[str], None]


def subsample_indices(n: int, max_seqlen: int = MAX_SEQLEN) -> np.ndarray:
    """Rows kept from a sequence of ``n`` snippets: all of them, or ``max_seqlen`` evenly spread.

    Same rows as the published ``np.linspace(0, n - 1, max_seqlen, dtype=np.uint16)``
    (integer linspace floors), without its 65,535-snippet limit.
    """
    if n <= max_seqlen:
        return np.arange(n, dtype=np.int64)
    return np.floor(np.linspace(0, n - 1, max_seqlen)).astype(np.int64)


@dataclass(frozen=True)
class Bag:
    """One training item: one crop of one video, with its video-level label."""

    video: str
    crop: int
    visual_path: Path
    audio_path: Path
    label: float  # 1.0 violent, 0.0 normal
    n_snippets: int  # aligned audio/visual length before subsampling
    length: int  # after subsampling: min(n_snippets, max_seqlen)


@dataclass
class Batch:
    visual: torch.Tensor  # (B, L, 1024) zero-padded, L = max length in the batch
    audio: torch.Tensor  # (B, L, 128)
    labels: torch.Tensor  # (B,) float 0/1
    lengths: torch.Tensor  # (B,) long, true lengths
    indices: torch.Tensor  # (B,) positions in the training set


class TrainingSet:
    """The training bags, loadable by index and iterable in shuffled batches."""

    def __init__(self, bags: Sequence[Bag], max_seqlen: int = MAX_SEQLEN) -> None:
        self.bags = list(bags)
        self.max_seqlen = max_seqlen
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.bags)

    @property
    def n_videos(self) -> int:
        return len({b.video for b in self.bags})

    def counts(self) -> tuple[int, int]:
        """(violent videos, normal videos)."""
        labels = {b.video: b.label for b in self.bags}
        violent = sum(1 for v in labels.values() if v > 0.5)
        return violent, len(labels) - violent

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Bag ``i`` subsampled: visual (L, 1024) float32, audio (L, 128) float32."""
        if i in self._cache:
            return self._cache[i]
        bag = self.bags[i]
        rows = subsample_indices(bag.n_snippets, self.max_seqlen)
        visual = _read_rows(bag.visual_path, rows)
        audio = _read_rows(bag.audio_path, rows)
        return visual, audio

    def cache(self, i: int, visual: np.ndarray, audio: np.ndarray) -> None:
        self._cache[i] = (visual, audio)

    def collate(self, indices: Sequence[int]) -> Batch:
        items = [self.load(int(i)) for i in indices]
        lengths = [v.shape[0] for v, _ in items]
        longest = max(lengths)
        visual = np.zeros((len(items), longest, items[0][0].shape[1]), np.float32)
        audio = np.zeros((len(items), longest, items[0][1].shape[1]), np.float32)
        for j, (v, a) in enumerate(items):
            visual[j, : v.shape[0]] = v
            audio[j, : a.shape[0]] = a
        labels = [self.bags[int(i)].label for i in indices]
        return Batch(
            visual=torch.from_numpy(visual),
            audio=torch.from_numpy(audio),
            labels=torch.tensor(labels, dtype=torch.float32),
            lengths=torch.tensor(lengths, dtype=torch.long),
            indices=torch.as_tensor(list(indices), dtype=torch.long),
        )

    def batches(self, batch_size: int, generator: torch.Generator | None = None) -> Iterator[Batch]:
        """Shuffled batches (the last may be smaller), order drawn from ``generator``."""
        order = torch.randperm(len(self), generator=generator).tolist()
        for start in range(0, len(order), batch_size):
            yield self.collate(order[start : start + batch_size])

    def n_batches(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)


def _read_rows(path: Path, rows: np.ndarray) -> np.ndarray:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
        return np.ascontiguousarray(arr[rows], dtype=np.float32)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read features ({exc})") from None


# --------------------------------------------------------------------------- labels


_LABEL_WORDS = {
    "1": 1.0, "violent": 1.0, "violence": 1.0, "true": 1.0, "yes": 1.0,
    "0": 0.0, "normal": 0.0, "non-violent": 0.0, "nonviolent": 0.0, "false": 0.0, "no": 0.0,
}  # fmt: skip


def read_labels_csv(path: Path) -> dict[str, float]:
    """``video,label`` rows (label 1/0 or violent/normal; an optional header row).

    Video names may be given with or without a file extension.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read labels ({exc})") from None
    labels: dict[str, float] = {}
    for lineno, row in enumerate(rows, start=1):
        if len(row) < 2:
            raise InputError(f"{path}:{lineno}: expected 'video,label', got {','.join(row)!r}")
        name, word = row[0].strip(), row[1].strip().lower()
        if word not in _LABEL_WORDS:
            if lineno == 1:
                continue  # a header such as "video,label"
            raise InputError(f"{path}:{lineno}: label {row[1]!r} is not 1/0 or violent/normal")
        labels[name] = _LABEL_WORDS[word]
    if not labels:
        raise InputError(f"{path}: no labels found (expected 'video,label' rows)")
    return labels


def _label_for(entry: VideoEntry, labels: dict[str, float] | None, labels_path: Path | None) -> float:
    if labels is None:
        return 0.0 if is_normal(entry.name) else 1.0
    for key in (entry.name, Path(entry.name).stem):
        if key in labels:
            return labels[key]
    stems = {Path(k).stem: v for k, v in labels.items()}
    if entry.name in stems:
        return stems[entry.name]
    raise InputError(f"{labels_path}: no label for video {entry.name!r}")


# --------------------------------------------------------------------------- building


def build_training_set(
    entries: Sequence[VideoEntry],
    labels: dict[str, float] | None = None,
    *,
    labels_path: Path | None = None,
    max_seqlen: int = MAX_SEQLEN,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    on_warning: WarnFn | None = None,
    progress: ProgressFn | None = None,
) -> TrainingSet:
    """Check every video once and return its crops as training bags.

    ``labels`` maps video names to 1.0 (violent) / 0.0 (normal); without it the XD naming
    decides (``_label_A`` = normal). Raises :class:`InputError` on the first unusable file,
    on an empty set, or when violent or normal videos are missing (MIL needs both).
    """
    if not entries:
        raise InputError("the training set is empty: no videos found")
    bags: list[Bag] = []
    pending: list[tuple[int, np.ndarray, np.ndarray]] = []
    used = 0
    for n, entry in enumerate(entries):
        label = _label_for(entry, labels, labels_path)
        visual, audio = load_entry(entry, on_warning=on_warning)  # (C, T, 1024), (T, 128)
        t = audio.shape[0]
        if t == 0 or visual.shape[1] == 0:
            raise InputError(f"{entry.audio_path}: video {entry.name!r} has no snippets")
        rows = subsample_indices(t, max_seqlen)
        audio_sub = np.ascontiguousarray(audio[rows], dtype=np.float32)
        for c, crop_path in enumerate(entry.crop_paths):
            index = len(bags)
            bags.append(Bag(entry.name, c, Path(crop_path), Path(entry.audio_path), label, t, len(rows)))
            visual_sub = np.ascontiguousarray(visual[c, rows], dtype=np.float32)
            size = visual_sub.nbytes + audio_sub.nbytes
            if used + size <= cache_bytes:
                pending.append((index, visual_sub, audio_sub))
                used += size
        if progress is not None:
            progress(n + 1, len(entries))
    result = TrainingSet(bags, max_seqlen)
    for index, v, a in pending:
        result.cache(index, v, a)
    violent, normal = result.counts()
    if violent == 0 or normal == 0:
        missing = "violent" if violent == 0 else "normal"
        how = "labels.csv" if labels is not None else "the XD naming ('_label_A' = normal)"
        raise InputError(
            f"the training set has no {missing} video ({violent} violent, {normal} normal by {how}); "
            "MIL training needs both",
            hint=None
            if labels is not None
            else "give labels (a labels.csv with 'video,label' rows: 1 violent, 0 normal)",
            params=("labels",),
        )
    return result


__all__ = [
    "MAX_SEQLEN",
    "Bag",
    "Batch",
    "TrainingSet",
    "build_training_set",
    "read_labels_csv",
    "subsample_indices",
]

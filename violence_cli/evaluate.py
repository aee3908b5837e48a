"""Evaluate MACIL-SD on features in the XD-Violence layout, exactly as the paper does.

Protocol (the published test script, made to work for any video length, T = 1 included):
each video's crops are scored with the same audio; a snippet's score is the mean over
crops of sigmoid(audio-visual logit), repeated 16 times (one per frame); the scores of all
videos are concatenated in list order and compared with the frame-level ground truth.
"AP" is ``sklearn.metrics.auc(recall, precision)`` over ``precision_recall_curve`` (the
trapezoidal area under the PR curve, not ``average_precision_score``); ROC-AUC is reported
beside it.

Ground truth comes from a ``gt.npy`` (frame level, 16 frames per snippet, videos in list
order) or from the XD-Violence ``annotations.txt`` (``NAME s1 e1 [s2 e2 ...]``, 0-based
frames, end exclusive), built for each video from its number of snippets T.
"""

from __future__ import annotations

import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .atomic import atomic_open
from .errors import InputError
from .model import MacilSD, SnippetScores
from .models import DEFAULT_MODEL, MacilScorer, Scorer
from .protocol import AUDIO_DIM, RGB_DIM, SNIPPET_FRAMES
from .xdfeatures import VideoEntry, is_normal, load_entry, read_text_input

ProgressCallback = Callable[[int, int], None]  # (videos done, total)
Annotations = dict[str, list[tuple[int, int]]]


@dataclass
class EvalResult:
    ap: float  # the paper's "AP": trapezoidal area under the precision-recall curve
    auc: float  # ROC-AUC
    n_videos: int
    n_snippets: int
    n_frames: int  # = 16 * n_snippets
    checkpoint: str | None  # the weights file, when the model was loaded from one
    checkpoint_sha256: str | None
    seconds: float  # wall time of the evaluation
    scores: dict[str, SnippetScores] = field(repr=False)  # per video, in evaluation order
    warnings: list[str] = field(default_factory=list)
    window: int | None = None  # causal window in snippets (None: whole video, the paper's protocol)
    model: str = DEFAULT_MODEL  # which model scored (violence_cli.models.MODEL_NAMES)

    def to_dict(self) -> dict[str, Any]:
        """The summary as plain JSON-able values (per-video scores left out)."""
        return {
            "ap": self.ap,
            "auc": self.auc,
            "n_videos": self.n_videos,
            "n_snippets": self.n_snippets,
            "n_frames": self.n_frames,
            "checkpoint": self.checkpoint,
            "checkpoint_sha256": self.checkpoint_sha256,
            "seconds": round(self.seconds, 3),
            "window": self.window,
            "model": self.model,
            "warnings": list(self.warnings),
        }


# --- ground truth --------------------------------------------------------------------


def read_annotations(path: str | Path) -> Annotations:
    """Parse an XD-Violence ``annotations.txt``: video name -> [(start, end), ...] frames.

    Blank lines are skipped; a line with an odd number of frame numbers, a non-integer, or
    an interval with end < start is an :class:`InputError` naming the line. A name given
    on several lines gets the intervals of all of them.
    """
    path = Path(path)
    text = read_text_input(path, "annotations")
    result: Annotations = {}
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        name, bounds = fields[0], fields[1:]
        if len(bounds) % 2:
            raise InputError(f"{path}:{number}: {name!r} has an odd number of frame numbers (expected start end pairs)")
        try:
            frames = [int(x) for x in bounds]
        except ValueError:
            raise InputError(f"{path}:{number}: frame numbers must be integers: {line.strip()!r}") from None
        intervals = list(zip(frames[::2], frames[1::2]))
        for start, end in intervals:
            if start < 0 or end < start:
                raise InputError(f"{path}:{number}: bad interval {start} {end} for {name!r} (need 0 <= start <= end)")
        result.setdefault(name, []).extend(intervals)
    if not result:
        raise InputError(f"{path}: no annotations found (expected lines `NAME start end [start end ...]`)")
    return result


def gt_from_annotations(
    videos: Sequence[tuple[str, int]], annotations: Annotations
) -> tuple[np.ndarray, list[str]]:
    """Frame-level ground truth for (name, T) videos in order: zeros(16*T) with each annotated
    [start, end) set to 1, concatenated. Returns (gt, names of violent-named videos that
    have no annotation, whose gt stays all zero)."""
    parts, unannotated = [], []
    for name, t in videos:
        frames = np.zeros(SNIPPET_FRAMES * t, dtype=np.float32)
        intervals = annotations.get(name)
        if intervals is None and not is_normal(name):
            unannotated.append(name)
        for start, end in intervals or ():
            frames[start:end] = 1.0
        parts.append(frames)
    return np.concatenate(parts) if parts else np.zeros(0, np.float32), unannotated


def load_gt(path: str | Path) -> np.ndarray:
    """A frame-level ``gt.npy`` (1-D, values 0/1) as float32."""
    path = Path(path)
    try:
        gt = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(f"{path}: no such ground-truth file") from None
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"{path}: not a readable .npy file ({exc})") from None
    if gt.ndim != 1 or gt.dtype.kind not in "biuf":
        raise InputError(f"{path}: ground truth of shape {gt.shape} ({gt.dtype}); expected a 1-D array of 0/1 per frame")
    if not np.isin(gt, (0, 1)).all():
        raise InputError(f"{path}: ground truth must hold only 0 and 1 (one value per frame)")
    return gt.astype(np.float32)


def check_gt_length(gt: np.ndarray, lengths: Sequence[int], source: str | Path) -> None:
    expected = SNIPPET_FRAMES * int(sum(lengths))
    if gt.shape[0] != expected:
        raise InputError(
            f"{source}: ground truth has {gt.shape[0]} frames; expected {expected} "
            f"(16 per snippet x {sum(lengths)} snippets of {len(lengths)} videos)",
            hint="the gt must list the videos in the same order as the features, 16 frames per snippet",
        )


# --- the metric ------------------------------------------------------------------------


def paper_metrics(gt_frames: np.ndarray, snippet_scores: np.ndarray) -> tuple[float, float]:
    """(AP, ROC-AUC) of snippet scores (each repeated 16 times) against frame-level gt."""
    from sklearn.metrics import auc, precision_recall_curve, roc_auc_score

    scores = np.repeat(np.asarray(snippet_scores, dtype=np.float32), SNIPPET_FRAMES)
    if scores.shape != gt_frames.shape:
        raise InputError(f"{scores.shape[0]} frame scores for {gt_frames.shape[0]} ground-truth frames")
    positives = int(gt_frames.sum())
    if positives == 0 or positives == gt_frames.shape[0]:
        kind = "no violent" if positives == 0 else "only violent"
        raise InputError(
            f"the ground truth has {kind} frames: AP and ROC-AUC are undefined",
            hint="check that the annotation names match the feature names",
        )
    precision, recall, _ = precision_recall_curve(gt_frames, scores)
    return float(auc(recall, precision)), float(roc_auc_score(gt_frames, scores))


# --- evaluation ------------------------------------------------------------------------


def snippet_counts(entries: Sequence[VideoEntry]) -> list[int]:
    """Each video's T from the .npy headers only (no data read), as :func:`load_entry` will
    see it (a 1-snippet audio/visual difference is trimmed). Unreadable files count 0 here;
    loading reports them properly."""
    counts = []
    for entry in entries:
        try:
            t_v = np.load(entry.crop_paths[0], mmap_mode="r", allow_pickle=False).shape[0]
            t_a = np.load(entry.audio_path, mmap_mode="r", allow_pickle=False).shape[0]
        except (OSError, ValueError, EOFError, IndexError):
            counts.append(0)
            continue
        counts.append(min(t_v, t_a))
    return counts


def _prefetched(
    entries: Sequence[VideoEntry], load: Callable[[VideoEntry], tuple[np.ndarray, np.ndarray]]
) -> Iterator[tuple[VideoEntry, tuple[np.ndarray, np.ndarray]]]:
    """Load the next video in a background thread while the current one is scored (file
    reads and numpy checks release the GIL). Order, warnings and errors are unchanged."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="xd-load") as pool:
        pending = pool.submit(load, entries[0])
        for index, entry in enumerate(entries):
            current = pending.result()
            if index + 1 < len(entries):
                pending = pool.submit(load, entries[index + 1])
            yield entry, current


@contextmanager
def _one_cpu_thread(device: str | torch.device) -> Iterator[None]:
    """Score on one intra-op thread on CPU (restored afterwards).

    A video's forward pass is a few milliseconds of small matrix products: splitting each
    op over threads gains little on an idle machine and, on a busy one, makes OpenMP's
    barriers wait on descheduled threads (measured here: 35x slower with 2 threads at a
    load of 8 on 2 cores). The other core loads the next video meanwhile.
    """
    if torch.device(device).type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def evaluate(
    entries: Sequence[VideoEntry],
    *,
    gt: str | Path | np.ndarray | None = None,
    annotations: str | Path | Annotations | None = None,
    checkpoint: str | Path | Sequence[str | Path] | None = None,
    model: MacilSD | Scorer | str | None = None,
    device: str = "cpu",
    weights_dir: str | Path | None = None,
    download: bool = True,
    progress: ProgressCallback | None = None,
    on_warning: Callable[[str], None] | None = None,
    window: int | None = None,
) -> EvalResult:
    """Score every video and compute the paper's AP (and ROC-AUC).

    Exactly one of ``gt`` (a frame-level array or ``gt.npy``) and ``annotations`` (an
    ``annotations.txt`` or its parsed dict) is needed. ``model``: a loaded network or
    :class:`~violence_cli.models.Scorer`, or a model name (``macil-sd``, the default,
    ``hypervd``, ``ensemble``) loaded from ``checkpoint`` (one file per model, the ensemble's
    MACIL-SD first; default: the registry's published weights). Warnings (trimmed
    lengths, violent-named videos without annotation) go to ``on_warning`` and into the
    result. Expected failures are :class:`~violence_cli.errors.ViolenceDetectError`.

    ``window``: score each snippet with only the ``window`` snippets up to it
    (:func:`~violence_cli.model.score_causal`, what the live mode sees); ``None`` scores
    every video whole, as the paper does.
    """
    from .models import checkpoint_map, load_scorer

    if (gt is None) == (annotations is None):
        raise ValueError("pass exactly one of gt and annotations")
    if not entries:
        raise InputError("no videos to evaluate")
    if window is not None and window < 1:
        raise ValueError(f"window must be >= 1 snippet, got {window}")
    started = time.perf_counter()
    warnings: list[str] = []

    def warn(message: str) -> None:
        warnings.append(message)
        if on_warning is not None:
            on_warning(message)

    # Ground truth first: a wrong file fails before minutes of scoring.
    gt_frames = None
    if gt is not None:
        gt_source = gt if isinstance(gt, (str, Path)) else "ground truth"
        gt_frames = load_gt(gt) if isinstance(gt, (str, Path)) else np.asarray(gt, dtype=np.float32)
        counts = snippet_counts(entries)
        if all(counts):
            check_gt_length(gt_frames, counts, gt_source)
    elif not isinstance(annotations, dict):
        annotations = read_annotations(annotations)

    ckpt_path, ckpt_sha = None, None
    if model is None or isinstance(model, str):
        from .weights import file_sha256, resolve_weights

        name = model or DEFAULT_MODEL
        paths = {
            key: resolve_weights(key, path, weights_dir=weights_dir, download=download)
            for key, path in checkpoint_map(name, checkpoint).items()
        }
        scorer = load_scorer(name, paths, device=device)
        ckpt_path = next(iter(paths.values()))
        ckpt_sha = file_sha256(ckpt_path)
    elif isinstance(model, Scorer):
        scorer = model
    else:
        scorer = MacilScorer(model, torch.device(device))
    dims = getattr(getattr(scorer, "model", None), "dims", None)
    visual_dim, audio_dim = (dims.visual_dim, dims.audio_dim) if dims is not None else (RGB_DIM, AUDIO_DIM)

    scores: dict[str, SnippetScores] = {}
    loaded = _prefetched(entries, lambda e: load_entry(e, warn, visual_dim=visual_dim, audio_dim=audio_dim))
    with _one_cpu_thread(device):
        for done, (entry, (rgb, audio)) in enumerate(loaded, start=1):
            rgb_tcd = rgb.transpose(1, 0, 2)  # (T, C, D)
            if window is None:
                scores[entry.name] = scorer.score(rgb_tcd, audio)
            else:
                scores[entry.name] = scorer.score_causal(rgb_tcd, audio, window)
            if progress is not None:
                progress(done, len(entries))

    lengths = [s.av.shape[0] for s in scores.values()]
    if gt_frames is not None:
        check_gt_length(gt_frames, lengths, gt_source)
    else:
        assert isinstance(annotations, dict)
        gt_frames, unannotated = gt_from_annotations([(n, s.av.shape[0]) for n, s in scores.items()], annotations)
        if unannotated:
            few = ", ".join(repr(n) for n in unannotated[:3]) + (" ..." if len(unannotated) > 3 else "")
            warn(
                f"{len(unannotated)} of {len(scores)} videos are not named normal (_label_A) but have no "
                f"annotation; their ground truth is all normal: {few}"
            )
    ap, roc = paper_metrics(gt_frames, np.concatenate([s.av for s in scores.values()]))
    return EvalResult(
        ap=ap,
        auc=roc,
        n_videos=len(scores),
        n_snippets=int(sum(lengths)),
        n_frames=int(gt_frames.shape[0]),
        checkpoint=str(ckpt_path) if ckpt_path is not None else None,
        checkpoint_sha256=ckpt_sha,
        seconds=time.perf_counter() - started,
        scores=scores,
        warnings=warnings,
        window=window,
        model=scorer.name,
    )


def save_scores(result: EvalResult, path: str | Path) -> Path:
    """Write the per-video snippet scores (the model's probability, mean over crops) to an
    ``.npz`` keyed by video name, atomically (temporary file in the same folder, then
    rename). An ensemble also writes each member's, keyed ``MODEL/NAME`` (``macil-sd/NAME``,
    ``hypervd/NAME``)."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"{path}: the folder {folder} does not exist")
    with atomic_open(path, "wb") as handle, zipfile.ZipFile(handle, "w") as archive:
        for name, scores in result.scores.items():  # the layout np.savez writes
            arrays = {name: scores.av, **{f"{m}/{name}": av for m, av in (scores.parts or {}).items()}}
            for key, array in arrays.items():
                with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, array, allow_pickle=False)
    return path


__all__ = [
    "EvalResult",
    "check_gt_length",
    "evaluate",
    "gt_from_annotations",
    "load_gt",
    "paper_metrics",
    "read_annotations",
    "save_scores",
    "snippet_counts",
]

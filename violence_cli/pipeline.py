"""Video -> features -> MACIL-SD -> scores -> segments: the library's main entry points.

``Detector`` loads the three networks once (I3D, VGGish, MACIL-SD) and scores any number
of videos; ``detect(path, **options)`` is the one-shot form. Both return a
:class:`~violence_cli.schema.DetectionResult` and print nothing.

Weights come from the registry by default (``weights.resolve_weights``: explicit path,
``weights_dir``, ``$VIOLENCE_DETECT_WEIGHTS``, the cache, then a verified download); a
missing file raises the registry's one-line :class:`~violence_cli.errors.WeightsError`.
Every file used is recorded with its sha256 and whether it matches the registry, and a
result computed with unverified weights says so in its warnings. There is no switch that
substitutes random weights.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .devices import resolve_device
from .errors import InputError, UsageError
from .messages import no_audio_warning, unpublished_warnings
from .models import DEFAULT_MODEL, MACIL_SD, MODEL_WEIGHTS, check_model, checkpoint_map, load_scorer
from .protocol import (
    DEFAULT_CROPS,
    I3D_WEIGHTS,
    SNIPPET_SECONDS,
    VGGISH_WEIGHTS,
    VIDEO_FPS,
    check_crops,
)
from .schema import DetectionParams, DetectionResult, VideoFacts, WeightsUsed
from .segments import DEFAULT_THRESHOLD, check_params, find_segments, make_snippets

if TYPE_CHECKING:
    import torch

    from .features.extract import VideoFeatures
    from .model import SnippetScores
    from .weights import ResolvedWeights

Progress = Callable[[int, "int | None"], None]  # (snippets done, total or None)


class Detector:
    """Load the networks once, then ``detect()`` as many videos as needed.

    ``model``: ``macil-sd`` (default), ``hypervd`` or ``ensemble`` (the mean of both models'
    snippet probabilities; :mod:`violence_cli.models`). ``checkpoint`` / ``i3d_weights`` /
    ``vggish_weights`` are explicit files (else the registry finds them, in ``weights_dir``
    first); ``checkpoint`` may be a list, one file per model of ``model`` (the ensemble:
    MACIL-SD first, then HyperVD); ``download=False`` never goes online.
    ``crops`` is 5 (the published protocol) or 1 (centre crop only, about 5x faster).
    ``device``: ``auto``, ``cpu``, ``cuda[:N]`` or a ``torch.device``. ``weights``: files
    already resolved at the edge (:func:`~violence_cli.weights.resolve_weight_files`),
    used as they are instead of the three path options; without I3D and VGGish there, the
    Detector only scores features already made (:meth:`score`). ``defer_features``: load I3D
    and VGGish at the first :meth:`features` call rather than now (a run that only rescores
    kept features never loads them).
    ``precision``: ``auto`` (on CUDA the fastest of tf32/bf16/fp16 within the fidelity
    bounds, measured once per GPU: :mod:`violence_cli.features.autoprecision`; on a CPU bf16
    where it has native bf16, fp32 elsewhere), ``fp32``, ``tf32``, ``bf16`` or ``fp16``
    (:mod:`violence_cli.precision`); :attr:`precision` and each result's params say which ran.
    ``decode_workers``: processes decoding videos ahead (:mod:`violence_cli.features.decode_pool`).
    """

    def __init__(
        self,
        *,
        device: str | torch.device = "auto",
        crops: int = DEFAULT_CROPS,
        batch_size: int | None = None,
        precision: str = "auto",
        model: str = DEFAULT_MODEL,
        checkpoint: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
        i3d_weights: str | os.PathLike[str] | None = None,
        vggish_weights: str | os.PathLike[str] | None = None,
        weights_dir: str | os.PathLike[str] | None = None,
        download: bool = True,
        download_progress: Callable[[int, int | None], None] | None = None,
        weights: Mapping[str, ResolvedWeights] | None = None,
        decode_workers: int = 0,
        defer_features: bool = False,
    ) -> None:
        from .weights import resolve_weight_files

        check_crops(crops)
        if batch_size is not None and batch_size < 1:
            raise UsageError(f"batch_size {batch_size}: expected a positive number")
        self.device = resolve_device(device)
        self.crops = crops
        self.model_name = check_model(model)
        if weights is None:
            explicit = {I3D_WEIGHTS: i3d_weights, VGGISH_WEIGHTS: vggish_weights, **checkpoint_map(model, checkpoint)}
            weights = resolve_weight_files(
                explicit, weights_dir=weights_dir, download=download, progress=download_progress
            )
        missing = [name for name in MODEL_WEIGHTS[self.model_name] if name not in weights]
        if missing:
            raise UsageError(
                f"weights: no {' or '.join(missing)} file (the {self.model_name} model scores every video)"
            )
        # I3D and VGGish may be absent: such a Detector only scores features already made
        names = (I3D_WEIGHTS, VGGISH_WEIGHTS, *MODEL_WEIGHTS[self.model_name])
        resolved = {name: weights[name] for name in names if name in weights}
        self.weights = [WeightsUsed(w.name, str(w.path), w.sha256, w.verified, w.trained) for w in resolved.values()]
        self.weights_problems = {w.name: w.problem for w in resolved.values()}  # why unverified

        from .features import autoprecision
        from .features.extract import DEFAULT_BATCH

        self._paths = {name: w.path for name, w in resolved.items()}
        self._extractor: Any = None
        self._precision_option = precision
        self._decode_workers = int(decode_workers)
        self.batch_size = int(batch_size or DEFAULT_BATCH[self.device.type])
        self.precision = str(autoprecision.choice_for(precision, self.device).precision)
        self.scorer = load_scorer(self.model_name, self._paths, device=self.device)
        if not defer_features and I3D_WEIGHTS in self._paths and VGGISH_WEIGHTS in self._paths:
            self.extractor  # noqa: B018 - load now: a bad weights file fails here, not at the first video

    @property
    def extractor(self) -> Any:
        """The feature networks (I3D, VGGish), loaded at first use: scoring features already
        made (:meth:`score`) never loads them."""
        if self._extractor is None:
            missing = [name for name in (I3D_WEIGHTS, VGGISH_WEIGHTS) if name not in self._paths]
            if missing:
                raise UsageError(f"weights: no {' or '.join(missing)} file, so this Detector only scores features")
            from .features.extract import FeatureExtractor

            options: dict[str, Any] = {}
            if self._decode_workers:
                options["decode_workers"] = self._decode_workers
            self._extractor = FeatureExtractor(
                i3d_weights=self._paths[I3D_WEIGHTS],
                vggish_weights=self._paths[VGGISH_WEIGHTS],
                device=self.device,
                crops=self.crops,
                batch_size=self.batch_size,
                precision=self._precision_option,
                download=False,
                **options,
            )
            self.precision = str(self._extractor.precision)
        return self._extractor

    @property
    def model(self) -> Any:
        """The MACIL-SD network when ``model`` includes it (macil-sd, ensemble), else None:
        for code that calls the network itself (score_causal, benchmarks)."""
        for scorer in getattr(self.scorer, "members", [self.scorer]):
            if scorer.name == MACIL_SD:
                return scorer.model  # type: ignore[attr-defined]
        return None

    def detect(
        self,
        path: str | os.PathLike[str],
        *,
        threshold: float = DEFAULT_THRESHOLD,
        min_duration: float = 0.0,
        merge_gap: float = 0.0,
        video_stream: int | None = None,
        audio_stream: int | None = None,
        progress: Progress | None = None,
        start: float = 0.0,
        end: float | None = None,
    ) -> DetectionResult:
        """Score one video, or its part from ``start`` to ``end`` seconds (times in the
        result stay those of the whole video). Raises :class:`InputError` for a file that
        cannot be used. This is :meth:`features` (decoding, I3D, VGGish) then :meth:`score`."""
        check_detect_params(threshold, min_duration, merge_gap)
        features = self.features(
            path, video_stream=video_stream, audio_stream=audio_stream, progress=progress, start=start, end=end
        )
        return self.score(
            features, threshold=threshold, min_duration=min_duration, merge_gap=merge_gap, start=start, end=end
        )

    def features(
        self,
        path: str | os.PathLike[str],
        *,
        video_stream: int | None = None,
        audio_stream: int | None = None,
        progress: Progress | None = None,
        start: float = 0.0,
        end: float | None = None,
    ) -> VideoFeatures:
        """Decode one video (or its part) and run I3D and VGGish: its ``VideoFeatures``."""
        path = Path(path)
        if path.is_dir():
            raise InputError(f"{path}: is a folder (pass the video files, or use violence_cli.runner.discover)")
        return self.extractor.extract(
            path, video_stream=video_stream, audio_stream=audio_stream, progress=progress, start=start, end=end
        )

    def score(
        self,
        features: VideoFeatures,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        min_duration: float = 0.0,
        merge_gap: float = 0.0,
        start: float | None = None,
        end: float | None = None,
        feature_weights: list[WeightsUsed] | None = None,
    ) -> DetectionResult:
        """Score features already made (:meth:`features`, or read back from disk) without
        decoding: the model's snippet scores, then segments at ``threshold``.
        ``start``/``end`` are the part of the video the features cover, in seconds
        (``start`` defaults to the features' own). ``feature_weights``: the I3D / VGGish
        files the features were made with, when not this Detector's (features read from
        disk); the result lists them with the model's."""
        check_detect_params(threshold, min_duration, merge_gap)
        if start is None:
            start = float(features.start)
        scores = self.model_scores(features)
        params = DetectionParams(
            threshold=threshold,
            min_duration=min_duration,
            merge_gap=merge_gap,
            crops=features.crops,
            device=str(self.device),
            batch_size=self.batch_size,
            precision=features.precision,
            start=start,
            end=end,
            model=self.model_name,
        )
        snippets = make_snippets(scores.av, scores.audio, scores.visual, SNIPPET_SECONDS, start)
        segments = find_segments(snippets, threshold, min_duration, merge_gap)
        video = video_facts(features.info.path, features)
        weights = list(self.weights)
        if feature_weights is not None:
            weights = list(feature_weights) + [w for w in weights if w.name not in (I3D_WEIGHTS, VGGISH_WEIGHTS)]
        warnings = list(features.warnings)
        warnings += result_warnings(video, weights, self.weights_problems, warnings, start=start, end=end)
        return DetectionResult(video, snippets, segments, weights, params, warnings, media=features.info)

    def model_scores(self, features: VideoFeatures) -> SnippetScores:
        """The model step, alone: per-snippet scores (``.av``, ``.audio``, ``.visual``; the
        last two None for a model without those heads) of ``features`` from the loaded model."""
        return self.scorer.score(features.rgb, features.audio)


def check_detect_params(threshold: float, min_duration: float, merge_gap: float) -> None:
    """UsageError naming the first bad one of ``threshold``, ``min_duration``, ``merge_gap``."""
    try:
        check_params(threshold, min_duration, merge_gap)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def detect(path: str | os.PathLike[str], **options: Any) -> DetectionResult:
    """One-shot detection: ``Detector(**model options).detect(path, **detect options)``.

    Model options: device, crops, batch_size, precision, checkpoint, i3d_weights, vggish_weights,
    weights_dir, download. Detect options: threshold, min_duration, merge_gap,
    video_stream, audio_stream, progress, start, end. Use a :class:`Detector` for several videos.
    """
    detect_keys = {"threshold", "min_duration", "merge_gap", "video_stream", "audio_stream", "progress", "start", "end"}
    per_video = {k: v for k, v in options.items() if k in detect_keys}
    model_options = {k: v for k, v in options.items() if k not in detect_keys}
    return Detector(**model_options).detect(path, **per_video)


def video_facts(path: Path, features: Any) -> VideoFacts:
    """The video's facts from the extractor's output (``VideoFeatures``)."""
    info = features.info
    n_snippets = int(features.rgb.shape[0])
    return VideoFacts(
        path=str(path),
        duration=float(info.duration),
        fps=float(info.fps),
        width=int(info.width),
        height=int(info.height),
        has_audio=bool(features.has_audio),
        video_stream=info.video_stream,
        audio_stream=info.audio_stream if features.has_audio else None,
        container=info.container,
        video_codec=info.video_codec,
        audio_codec=info.audio_codec if features.has_audio else None,
        n_frames=int(features.n_frames),
        n_snippets=n_snippets,
        scored_duration=n_snippets * SNIPPET_SECONDS,
    )


def result_warnings(
    video: VideoFacts,
    weights: list[WeightsUsed],
    problems: dict[str, str | None] | None = None,
    already: list[str] = (),  # type: ignore[assignment]
    *,
    start: float = 0.0,
    end: float | None = None,
) -> list[str]:
    """Warnings to add to ``already`` (the extractor's): missing audio, a short decode, unverified weights."""
    name = Path(video.path).name
    out = []
    if not video.has_audio and no_audio_warning(name) not in already:  # the extractor's, unless features came in
        out.append(no_audio_warning(name))
    decoded = video.n_frames / VIDEO_FPS
    wanted = min(video.duration, end if end is not None else video.duration) - start  # s: the part asked for
    if video.duration > 0 and decoded < wanted - 1.0:
        out.append(
            f"{name}: only {decoded:.1f} s of {wanted:.1f} s could be decoded; "
            f"{video.scored_duration:.1f} s were scored"
        )
    out += unpublished_warnings(weights, problems)  # the user's own trained model is named once, by the CLI
    return out

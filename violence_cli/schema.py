"""The result of a detection run, as plain dataclasses.

Times are float seconds of the original video everywhere. A result serialises to a dict
(``DetectionResult.to_dict``) whose layout is versioned by ``SCHEMA_VERSION``; the JSON
writer and ``--json`` print exactly that dict. Bump the version when a field changes
meaning or disappears (adding a field does not need a bump).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ._version import __version__
from .messages import count
from .models import DEFAULT_MODEL
from .protocol import DEFAULT_THRESHOLD

SCHEMA_VERSION = 1

VIOLENT = "violent"
NON_VIOLENT = "non-violent"


@dataclass
class Snippet:
    """One 16-frame snippet (16/24 s) and its three scores in [0, 1].

    ``audio_score``/``visual_score`` are None for a model without those heads (HyperVD, the
    ensemble): :attr:`DetectionResult.scores_note` says why."""

    index: int
    start: float  # s
    end: float  # s, exclusive
    score: float  # the model's score (MACIL-SD: sigmoid(audio logit + visual logit))
    audio_score: float | None  # sigmoid(audio logit) alone
    visual_score: float | None  # sigmoid(visual logit) alone


@dataclass
class Segment:
    """A stretch of the video judged violent: snippets at or above the threshold."""

    start: float  # s
    end: float  # s, exclusive
    peak: float  # highest audio-visual score inside
    mean: float  # mean audio-visual score over the snippets inside

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class VideoFacts:
    """What was read from the file, and how much of it was scored."""

    path: str
    duration: float  # s, as the container says
    fps: float  # the source frame rate (frames are resampled to 24 fps for the models)
    width: int
    height: int
    has_audio: bool  # False: silence was used as audio and the audio score means little
    video_stream: int | None  # index of the stream used, among the file's streams
    audio_stream: int | None
    container: str | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    n_frames: int = 0  # frames decoded at 24 fps
    n_snippets: int = 0
    scored_duration: float = 0.0  # s covered by the snippets: n_snippets * 16 / 24


@dataclass
class WeightsUsed:
    """One weights file: ``verified`` is True only when it matches the registry's hash.

    ``trained``: for a checkpoint written by our own ``train``, what its sidecar records
    (data, epochs, AP); such a file is the user's own model, not a suspicious one.
    """

    name: str
    path: str
    sha256: str
    verified: bool
    trained: dict[str, Any] | None = None

    @property
    def own_model(self) -> bool:
        return not self.verified and self.trained is not None


def document_header(weights: list[WeightsUsed] | None = None) -> dict[str, Any]:
    """What every ``--json`` document starts with: ``schema_version``, the project ``version``
    and the ``weights`` used (name, path, sha256, verified; an empty list when none)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "version": __version__,
        "weights": [asdict(w) for w in weights or []],
    }


@dataclass
class DetectionParams:
    threshold: float = DEFAULT_THRESHOLD
    min_duration: float = 0.0  # s
    merge_gap: float = 0.0  # s
    crops: int = 5
    device: str = "cpu"
    batch_size: int = 8
    precision: str = "fp32"  # what I3D and VGGish ran in: fp32 or bf16 (MACIL-SD: always fp32)
    start: float = 0.0  # s: the part of the video scored (--start/--end); end None: to its end
    end: float | None = None
    model: str = DEFAULT_MODEL  # which model scored (violence_cli.models.MODEL_NAMES)


@dataclass
class DetectionResult:
    video: VideoFacts
    snippets: list[Snippet]
    segments: list[Segment]
    weights: list[WeightsUsed]
    params: DetectionParams
    warnings: list[str] = field(default_factory=list)
    # what a many-video run checks before skipping this video: input fingerprint, weights
    # sha256, result-changing parameters (violence_cli.runner.records.make_record)
    record: dict[str, Any] | None = None
    # the decoder's facts of the video (violence_cli.media.MediaInfo), kept in this process
    # so a report need not open the video again to judge its playback; not in to_dict()
    media: Any = field(default=None, repr=False, compare=False)
    # where the features came from: {"reused": false, "kept": PATH} (made now, kept there),
    # {"reused": true, "from": PATH} (kept by an earlier run: nothing decoded), and with
    # "alone": true, features given alone (detect --features: no video); None: made now, not kept
    features: dict[str, Any] | None = None

    @property
    def from_features_alone(self) -> bool:
        """Scored from feature files without the video (there is no video to play)."""
        return bool(self.features and self.features.get("alone"))

    @property
    def verdict(self) -> str:
        """``"violent"`` when at least one segment was found, else ``"non-violent"``."""
        return VIOLENT if self.segments else NON_VIOLENT

    @property
    def scores_note(self) -> str | None:
        """Why the snippets have no audio-only / visual-only scores (None when they have them)."""
        from .models import NO_HEADS

        return NO_HEADS.get(self.params.model)

    @property
    def max_score(self) -> float:
        return max((s.score for s in self.snippets), default=0.0)

    @property
    def violent_seconds(self) -> float:
        return sum(s.duration for s in self.segments)

    @property
    def weights_verified(self) -> bool:
        """False when any weights file did not match the registry (e.g. random test weights)."""
        return all(w.verified for w in self.weights)

    @property
    def weights_unknown(self) -> bool:
        """True when a file is neither the published one nor a model our ``train`` made."""
        return any(not w.verified and not w.own_model for w in self.weights)

    def summary(self) -> str:
        """The one-line verdict a person reads first."""
        if self.segments:
            n = len(self.segments)
            text = (
                f"violent: {count(n, 'segment')}, {self.violent_seconds:.1f} s of "
                f"{self.video.scored_duration:.1f} s, peak score {max(s.peak for s in self.segments):.2f}"
            )
        else:
            text = (
                f"non-violent: no snippet reached the threshold {self.params.threshold:g} "
                f"(highest score {self.max_score:.2f})"
            )
        if self.weights_unknown:
            text += " [unverified weights]"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "version": __version__,
            "verdict": self.verdict,
            "summary": self.summary(),
            "video": asdict(self.video),
            "weights": [asdict(w) for w in self.weights],
            "weights_verified": self.weights_verified,
            "params": asdict(self.params),
            **({"scores_note": self.scores_note} if self.scores_note else {}),
            "warnings": list(self.warnings),
            "segments": [asdict(s) for s in self.segments],
            "snippets": [asdict(s) for s in self.snippets],
            **({"record": self.record} if self.record is not None else {}),
            **({"features": self.features} if self.features is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DetectionResult:
        """Rebuild a result from ``to_dict()`` output (e.g. a JSON export read back)."""
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(f"unsupported schema_version {version!r} (expected {SCHEMA_VERSION})")
        return cls(
            video=VideoFacts(**data["video"]),
            snippets=[Snippet(**s) for s in data["snippets"]],
            segments=[Segment(**s) for s in data["segments"]],
            weights=[WeightsUsed(**w) for w in data["weights"]],
            params=DetectionParams(**data["params"]),
            warnings=list(data.get("warnings", [])),
            record=data.get("record"),
            features=data.get("features"),
        )

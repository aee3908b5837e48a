"""Causal scoring of live snippets: 16 frames -> I3D + VGGish -> MACIL-SD over the last N snippets.

Snippet k covers ticks 16k .. 16k + 15 of the 24 fps grid (stream time [16k/24, 16(k+1)/24)).
It is scored as soon as its last tick arrives: no later frame is needed. Ticks lost to
dropped frames are filled with the frame before them; a snippet that lost more than half
its frames is skipped (counted), so what is scored is always mostly real footage.
On a CPU one snippet is scored at a time (batching would only add the batch's compute to
each snippet's latency); on a GPU up to :data:`MAX_BATCH` ready snippets go together. Its audio example is the 0.975 s ending where the snippet ends
(:func:`violence_cli.features.frontend.snippet_end_sample`), silence where none arrived.
The scores come from :func:`violence_cli.model.score_causal` over the features of the last
``window`` scored snippets: the same computation as ``eval --window``.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import torch

from ..features import frontend
from ..messages import count
from ..protocol import RESIZE_SHORT, SNIPPET_FRAMES, SNIPPET_SECONDS
from .source import AudioBuffer, Frame

DEFAULT_WINDOW = 64  # snippets of context (~43 s)
AUDIO_WAIT = 0.5  # s a finished snippet may wait for its audio to arrive
MAX_BATCH = 4  # snippets scored in one go when several are ready, on a GPU (catching up)
MAX_FILLED = SNIPPET_FRAMES // 2  # a snippet missing more frames than this (dropped) is skipped


@dataclass
class LiveSnippet:
    """A finished snippet: ``frames`` (16, h, w, 3) uint8, ``last_arrival``: monotonic time
    its last frame was handed over; ``filled``: ticks repeated because frames were dropped."""

    index: int
    frames: np.ndarray
    last_arrival: float
    filled: int

    @property
    def start(self) -> float:
        return round(self.index * SNIPPET_SECONDS, 6)

    @property
    def end(self) -> float:
        return round((self.index + 1) * SNIPPET_SECONDS, 6)


@dataclass
class SnippetScore:
    """One scored snippet. Times: ``start``/``end`` stream seconds; ``wall_time`` Unix time
    when it was scored; ``latency`` s from its last frame arriving to this result (the CLI
    prints it at once). ``dropped_frames``: frames dropped so far because scoring fell behind.
    ``events``: the alert events this snippet caused."""

    index: int
    start: float
    end: float
    score: float
    audio_score: float | None  # None: the model has no audio / visual head (HyperVD, ensemble)
    visual_score: float | None
    wall_time: float
    latency: float
    dropped_frames: int
    window: int  # snippets the model saw for this score
    events: list[Any] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "snippet",
            "index": self.index,
            "wall_time": datetime.fromtimestamp(self.wall_time, timezone.utc).isoformat(timespec="milliseconds"),
            "stream_time": self.end,
            "start": self.start,
            "end": self.end,
            "score": round(self.score, 6),
            "audio_score": None if self.audio_score is None else round(self.audio_score, 6),
            "visual_score": None if self.visual_score is None else round(self.visual_score, 6),
            "latency": round(self.latency, 4),
            "dropped_frames": self.dropped_frames,
            "window": self.window,
            "events": [e.to_dict() for e in self.events],
        }


class SnippetAssembler:
    """Frames on the 24 fps grid -> finished :class:`LiveSnippet` s."""

    def __init__(self) -> None:
        self.index: int | None = None
        self.slots: list[np.ndarray | None] = []
        self.last_arrival = 0.0
        self.skipped = 0  # snippets not scored: more than MAX_FILLED frames dropped

    def reset(self) -> None:
        """Forget a partial snippet (the source reconnected)."""
        self.index, self.slots = None, []

    def add(self, frame: Frame) -> list[LiveSnippet]:
        out: list[LiveSnippet] = []
        k, pos = divmod(frame.tick, SNIPPET_FRAMES)
        if self.index is not None and k != self.index:
            if k < self.index:
                return out  # a frame from the past (the grid restarted): ignore
            out += self._finish()
        if self.index is None:
            self.index, self.slots = k, [None] * SNIPPET_FRAMES
        self.slots[pos] = frame.image
        self.last_arrival = frame.arrived
        if pos == SNIPPET_FRAMES - 1:
            out += self._finish()
        return out

    def _finish(self) -> list[LiveSnippet]:
        slots, index = self.slots, self.index
        self.reset()
        if index is None:
            return []
        if sum(s is None for s in slots) > MAX_FILLED:
            self.skipped += 1
            return []
        first = next(s for s in slots if s is not None)
        filled, held = 0, first
        frames = []
        for s in slots:
            if s is None:
                filled += 1
            else:
                held = s
            frames.append(held if held.shape == first.shape else first)
        return [LiveSnippet(index, np.stack(frames), self.last_arrival, filled)]


class CausalScorer:
    """Features and scores for finished snippets, with the last ``window`` snippets as context.

    ``extractor``: a :class:`~violence_cli.features.extract.FeatureExtractor`; ``model``: a
    :class:`~violence_cli.models.Scorer` (or a MACIL-SD network) on the same device.
    """

    def __init__(self, extractor: Any, model: Any, audio: AudioBuffer, window: int = DEFAULT_WINDOW) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1 snippet, got {window}")
        if not hasattr(model, "score_causal"):  # a bare MACIL-SD network
            from ..models import MacilScorer

            model = MacilScorer(model, torch.device(extractor.device))
        self.extractor, self.model, self.audio, self.window = extractor, model, audio, window
        # the window of the oldest snippet of a batch reaches MAX_BATCH - 1 further back
        self.rgb: deque[np.ndarray] = deque(maxlen=window + MAX_BATCH)  # (C, 1024) each
        self.sound: deque[np.ndarray] = deque(maxlen=window + MAX_BATCH)  # (128,) each
        self.scored = 0  # snippets scored so far
        self._warm = False
        self.max_batch = MAX_BATCH if torch.device(extractor.device).type == "cuda" else 1
        self.has_audio = True

    def warm_up(self) -> None:
        """Run each network once on blank input, so the first real snippet does not pay for
        the libraries' one-time set-up (measured: seconds on a CPU) and frames are not
        dropped while it happens. Runs once; later calls do nothing."""
        if self._warm:
            return
        self._warm = True
        blank = torch.zeros((1, SNIPPET_FRAMES, RESIZE_SHORT, RESIZE_SHORT, 3), dtype=torch.uint8)
        rgb = self.extractor.rgb_features(blank)  # (1, C, 1024)
        audio = self.extractor.silence_features()[None]  # (1, 128)
        self.model.score_causal(rgb, audio, self.window)

    def _examples(self, snippets: list[LiveSnippet]) -> np.ndarray:
        ends = [int(frontend.snippet_end_sample(s.index)) for s in snippets]
        deadline = time.monotonic() + AUDIO_WAIT
        while self.has_audio and self.audio.end < ends[-1] and time.monotonic() < deadline:
            time.sleep(0.01)
        blocks = []
        for end in ends:
            start = end - frontend.EXAMPLE_SAMPLES
            blocks.append(frontend.examples_at(self.audio.window(start, end), np.array([start]), start))
        return np.concatenate(blocks)  # (S, 96, 64)

    def score(self, snippets: list[LiveSnippet]) -> list[tuple[LiveSnippet, float, float, float, int]]:
        """(snippet, av, audio, visual, context length) for each snippet, in order."""
        if not snippets:
            return []
        if len(snippets) > self.max_batch:
            raise ValueError(f"at most {count(self.max_batch, 'snippet')} at a time, got {len(snippets)}")
        clips = torch.from_numpy(np.stack([s.frames for s in snippets]))  # (S, 16, h, w, 3) uint8
        rgb = self.extractor.rgb_features(clips)  # (S, C, 1024)
        if self.has_audio:
            audio = self.extractor.audio_features(self._examples(snippets))  # (S, 128)
        else:
            audio = np.repeat(self.extractor.silence_features()[None], len(snippets), 0)
        for r, a in zip(rgb, audio):
            self.rgb.append(r)
            self.sound.append(a)
        n = len(self.rgb)
        scores = self.model.score_causal(np.stack(self.rgb), np.stack(self.sound), self.window, len(snippets))
        out = []
        for i, s in enumerate(snippets):
            row = n - len(snippets) + i
            context = min(self.window, self.scored + i + 1)
            audio_score = None if scores.audio is None else float(scores.audio[row])
            visual_score = None if scores.visual is None else float(scores.visual[row])
            out.append((s, float(scores.av[row]), audio_score, visual_score, context))
        self.scored += len(snippets)
        return out


__all__ = ["DEFAULT_WINDOW", "CausalScorer", "LiveSnippet", "SnippetAssembler", "SnippetScore"]

"""User messages that more than one module gives, each worded once.

Library code returns them (as warnings in results, features and outcomes); the CLI prints
them. A message said in one place only stays beside the code that says it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def count(n: int, noun: str) -> str:
    """``n`` and a regular English noun, in the plural unless ``n`` is 1: "1 video", "1,200 snippets"."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def no_audio_warning(name: str) -> str:
    """A video without an audio stream: its audio features are those of silence."""
    return f"{name}: no audio stream: silence was used as audio, so the scores rest on the picture alone"


def unpublished_warning(name: str, path: object, why: str, *, features: bool = False) -> str:
    """A weights file that is not the published one (``why``: the check that failed);
    ``features``: said of extracted features rather than of scores."""
    consequence = (
        "these features are not those of the published protocol"
        if features
        else "the scores are not those of the published model"
    )
    return f"{name} weights {path} are not the published file ({why}): {consequence}"


def unpublished_warnings(
    weights: Iterable[Any], problems: dict[str, str | None] | None = None, *, features: bool = False
) -> list[str]:
    """:func:`unpublished_warning` for each of ``weights`` (resolved or used weights files) that is
    not the published file. The check that failed is the file's own ``problem`` (resolved
    weights carry it) or ``problems[name]``, else its sha256. A checkpoint the user trained is
    left out: it is named once, as the user's own model. ``features``: as for extracted features."""
    from .weights import short_hash

    def why(w: Any) -> str:
        return (problems or {}).get(w.name) or getattr(w, "problem", None) or f"sha256 {short_hash(w.sha256)}"

    return [
        unpublished_warning(w.name, w.path, why(w), features=features)
        for w in weights
        if not w.verified and w.trained is None
    ]


def own_model_notes(weights: Iterable[Any]) -> list[str]:
    """One line for each of ``weights`` that is a checkpoint the user trained with ``train``:
    named once per run, as information, never warned about as unpublished."""
    from .weights import describe_trained

    return [
        f"using your own model {w.path} ({describe_trained(w.trained)})"
        for w in weights
        if not w.verified and w.trained is not None
    ]


__all__ = ["no_audio_warning", "own_model_notes", "unpublished_warning", "unpublished_warnings"]

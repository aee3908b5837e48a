"""User messages that more than one module gives, each worded once.

Library code returns them (as warnings in results, features and outcomes); the CLI prints
them. A message said in one place only stays beside the code that says it.
"""

from __future__ import annotations


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


__all__ = ["no_audio_warning", "unpublished_warning"]

"""The report's CSS and scripts: package data in ``assets/``, read once and inlined into each page."""

from __future__ import annotations

from functools import cache
from importlib.resources import files


@cache
def asset(name: str) -> str:
    """The text of ``assets/NAME``; it must not contain ``</`` (it is inlined in a ``<script>``/``<style>``)."""
    text = files(__package__).joinpath("assets", name).read_text(encoding="utf-8")
    if "</" in text:
        raise ValueError(f"report asset {name} contains '</', which would end its inline block")
    return text

"""Exports of a :class:`~violence_cli.schema.DetectionResult`: one writer class per format.

``get_writer("vtt").write(result, "clip.vtt")``. Formats:

- ``json``: the whole result (``schema_version``, video facts, weights with sha256, params,
  warnings, segments, snippets): exactly ``DetectionResult.to_dict()``;
- ``csv``: one row per snippet (times in s, the three scores, whether it lies in a segment);
- ``segments-csv``: one row per violent segment;
- ``vtt`` / ``srt``: one subtitle cue per segment, so a video player shows the timeline;
- ``html``: a self-contained page with the video beside its score timeline
  (:mod:`violence_cli.report`); the video is referenced relative to the page, never embedded.

Every file is written atomically (:mod:`violence_cli.atomic`).
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import IO, Any

from .atomic import ESCAPED, atomic_open
from .errors import UsageError
from .schema import DetectionResult, Segment, document_header
from .timefmt import timestamp


class ResultWriter:
    """Base class: subclasses set ``format``/``extension`` and implement ``write_to``."""

    format: str = ""
    extension: str = ""
    newline: str | None = None  # passed to open(); csv wants ""

    def write(self, result: DetectionResult, path: str | os.PathLike[str]) -> Path:
        # a non-UTF-8 file name in the text: \udcXX (a JSON escape that reads back as the name)
        with atomic_open(path, "w", encoding="utf-8", errors=ESCAPED, newline=self.newline) as handle:
            self.write_to(result, handle)
        return Path(path)

    def write_to(self, result: DetectionResult, handle: IO[str]) -> None:
        raise NotImplementedError

    def to_string(self, result: DetectionResult) -> str:
        buffer = io.StringIO(newline=self.newline)
        self.write_to(result, buffer)
        return buffer.getvalue()

    def file_name(self, stem: str) -> str:
        return f"{stem}{self.extension}"


class JsonWriter(ResultWriter):
    format = "json"
    extension = ".json"

    def write_to(self, result: DetectionResult, handle: IO[str]) -> None:
        json.dump(result.to_dict(), handle, indent=2, allow_nan=False)
        handle.write("\n")


class SnippetCsvWriter(ResultWriter):
    format = "csv"
    extension = ".csv"
    newline = ""
    columns = ("index", "start", "end", "score", "audio_score", "visual_score", "in_segment")

    def write_to(self, result: DetectionResult, handle: IO[str]) -> None:
        out = csv.writer(handle, lineterminator="\n")
        if result.scores_note:  # empty audio_score / visual_score cells: say why, once, before the header
            handle.write(f"# audio_score and visual_score are empty: {result.scores_note}\n")
        out.writerow(self.columns)
        for s in result.snippets:
            inside = any(seg.start <= s.start < seg.end for seg in result.segments)
            out.writerow(
                [
                    s.index,
                    _sec(s.start),
                    _sec(s.end),
                    _score(s.score),
                    _score(s.audio_score),
                    _score(s.visual_score),
                    int(inside),
                ]
            )


class SegmentCsvWriter(ResultWriter):
    format = "segments-csv"
    extension = ".segments.csv"
    newline = ""
    columns = ("segment", "start", "end", "duration", "peak", "mean")

    def write_to(self, result: DetectionResult, handle: IO[str]) -> None:
        out = csv.writer(handle, lineterminator="\n")
        out.writerow(self.columns)
        for n, seg in enumerate(result.segments, 1):
            out.writerow([n, _sec(seg.start), _sec(seg.end), _sec(seg.duration), _score(seg.peak), _score(seg.mean)])


class VttWriter(ResultWriter):
    format = "vtt"
    extension = ".vtt"

    def write_to(self, result: DetectionResult, handle: IO[str]) -> None:
        handle.write("WEBVTT\n\n")
        if not result.segments:
            handle.write(f"NOTE {_note(result)}\n")
        for n, seg in enumerate(result.segments, 1):
            handle.write(f"{n}\n{timestamp(seg.start, '.')} --> {timestamp(seg.end, '.')}\n{cue_text(seg)}\n\n")


class SrtWriter(ResultWriter):
    format = "srt"
    extension = ".srt"

    def write_to(self, result: DetectionResult, handle: IO[str]) -> None:
        for n, seg in enumerate(result.segments, 1):
            handle.write(f"{n}\n{timestamp(seg.start, ',')} --> {timestamp(seg.end, ',')}\n{cue_text(seg)}\n\n")


class HtmlWriter(ResultWriter):
    """The report page. ``media``: the file the page plays (default: the analysed video; a
    browser-safe proxy otherwise); ``playback``/``source_playback``: what
    :func:`violence_cli.report.check_playback` said of it and of the original. When not
    given, the video is checked here if it exists on this machine."""

    format = "html"
    extension = ".html"

    def __init__(self, media: str | os.PathLike[str] | None = None, playback: Any = None, source_playback: Any = None):
        self.media = media
        self.playback = playback
        self.source_playback = source_playback

    def write(self, result: DetectionResult, path: str | os.PathLike[str]) -> Path:
        with atomic_open(path, "w", encoding="utf-8", errors=ESCAPED) as handle:
            handle.write(self.render(result, Path(path).parent))
        return Path(path)

    def write_to(self, result: DetectionResult, handle: IO[str]) -> None:
        handle.write(self.render(result, Path.cwd()))  # a stream has no folder: links relative to here

    def render(self, result: DetectionResult, report_dir: Path) -> str:
        from .errors import ViolenceDetectError
        from .report import check_playback, render_report

        media = Path(self.media) if self.media is not None else Path(result.video.path)
        playback = self.playback
        if playback is None and media.is_file() and not result.from_features_alone:
            try:
                playback = check_playback(media)
            except ViolenceDetectError:
                playback = None
        return render_report(result, report_dir, media, playback, self.source_playback)


WRITERS: dict[str, type[ResultWriter]] = {
    w.format: w for w in (JsonWriter, SnippetCsvWriter, SegmentCsvWriter, VttWriter, SrtWriter, HtmlWriter)
}
FORMATS = tuple(WRITERS)


def get_writer(fmt: str) -> ResultWriter:
    """The writer for a format name (see ``FORMATS``)."""
    try:
        return WRITERS[fmt]()
    except KeyError:
        raise UsageError(f"unknown output format {fmt!r} (choose from {', '.join(FORMATS)})") from None


def format_for_path(path: str | os.PathLike[str]) -> str:
    """The format an output file name asks for: ``x.segments.csv`` -> segments-csv, ``x.srt`` -> srt..."""
    name = Path(path).name.lower()
    # longest extension first, so .segments.csv wins over .csv
    for fmt, cls in sorted(WRITERS.items(), key=lambda kv: -len(kv[1].extension)):
        if name.endswith(cls.extension) and len(name) > len(cls.extension):
            return fmt
    extensions = ", ".join(cls.extension for cls in WRITERS.values())
    raise UsageError(f"{path}: cannot tell the output format from the extension (use one of {extensions})")


def batch_document(results: list[DetectionResult], failures: list[tuple[str, str]]) -> dict[str, Any]:
    """One JSON document for several videos: their results, and the inputs that failed."""
    return {
        **document_header(results[0].weights if results else None),
        "results": [r.to_dict() for r in results],
        "errors": [{"path": path, "error": message} for path, message in failures],
    }


def cue_text(seg: Segment) -> str:
    return f"violence (peak {seg.peak:.2f}, mean {seg.mean:.2f})"


def _note(result: DetectionResult) -> str:
    return f"no violent segment: highest score {result.max_score:.2f} < threshold {result.params.threshold:g}"


def _sec(x: float) -> str:
    return f"{x:.3f}"


def _score(x: float | None) -> str:
    return "" if x is None else f"{x:.4f}"

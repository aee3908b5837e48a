"""The HTML report: one page per video (player + score timeline), an index over many.

- :func:`render_report` builds the page of one result (``get_writer("html")`` writes it);
- :func:`check_playback` says whether browsers play a file, :func:`make_proxy` writes a
  browser-safe copy (H.264 + AAC, at most 720p) for the page to play instead;
- :func:`write_index` writes ``index.html`` over the rows of a many-video run.
"""

from __future__ import annotations

from .index import IndexRow, folder_rows, index_row, write_index
from .page import inline_json, media_url, render_report, segment_driver
from .playback import Playback, check_playback, make_proxy, proxy_path

__all__ = [
    "IndexRow",
    "Playback",
    "check_playback",
    "folder_rows",
    "index_row",
    "inline_json",
    "make_proxy",
    "media_url",
    "proxy_path",
    "render_report",
    "segment_driver",
    "write_index",
]

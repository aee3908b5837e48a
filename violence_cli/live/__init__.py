"""Live sources: ``violence-detect watch`` scores a stream, a camera or a file played in real time.

The chain, causal end to end (nothing waits for the end of the stream):

- :mod:`.source`: open the source with PyAV (timeouts, RTSP over TCP), decode in a thread,
  resample to 24 fps by timestamp, resize, and hand frames over through a bounded queue that
  drops the oldest frames when scoring falls behind; audio goes to a short ring buffer.
  Disconnects, stalls and ends of stream are reconnected with backoff.
- :mod:`.scorer`: group frames into 16-frame snippets; each finished snippet goes through
  I3D and VGGish (the 0.975 s of audio ending with it), then MACIL-SD over the last
  ``window`` snippets (:func:`violence_cli.model.score_causal`, the function
  ``eval --window`` uses).
- :mod:`.alerts`: segment start/end events, hooks run without a shell, MP4 clips around alerts.
- :mod:`.session`: the loop tying them together; yields typed updates and prints nothing.
"""

from __future__ import annotations

from .alerts import AlertEvent, AlertHook, ClipRecorder, SegmentTracker
from .scorer import SnippetScore
from .session import LiveMonitor, LiveOptions, LiveSummary, StatusUpdate
from .source import SourceSpec, parse_source

__all__ = [
    "AlertEvent",
    "AlertHook",
    "ClipRecorder",
    "LiveMonitor",
    "LiveOptions",
    "LiveSummary",
    "SegmentTracker",
    "SnippetScore",
    "SourceSpec",
    "StatusUpdate",
    "parse_source",
]

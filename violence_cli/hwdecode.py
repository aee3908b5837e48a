"""NVDEC: video decoded on the GPU's video engine (PyAV's ``hwaccel``) where that works.

PyAV's wheels bundle an FFmpeg built with the CUDA hardware device (``hwdevices_available()``
lists ``cuda``); whether it decodes depends on the machine: the NVIDIA driver's
``libnvcuvid`` must be present, and the GPU's NVDEC must support the codec and profile
(Hopper's NVDEC, for one, decodes H.264/HEVC/VP9 but not every AV1 stream). So for each file
:class:`Nvdec` first opens it with the hardware decoder and decodes its first frame; any
error means software decoding for that file, with one warning saying why (once per
extractor when the machine has no NVDEC at all, once per file otherwise). Decoded frames are
downloaded (NV12) and converted to RGB exactly like software frames, so everything after
decoding is unchanged; the hardware path's pixels may differ from FFmpeg's software
decoder by rounding (one grey level is the bound ``benchmarks/gpu_check.py`` checks on a GPU).

An error after the first frame is not retried in software: the decoder reports it like a
damaged stream (a warning, the frames decoded so far).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import av

from . import media

DEVICE_TYPE = "cuda"  # FFmpeg's hardware device type of NVDEC/CUVID
HW_DECODE_MODES = ("auto", "cpu")  # auto: NVDEC on CUDA where it works; cpu: always software


def nvdec_accel(device: Any) -> Any | None:
    """A PyAV ``HWAccel`` for NVDEC on CUDA ``device`` (index kept), or None: not a CUDA
    device, or this FFmpeg build has no CUDA hardware device."""
    if getattr(device, "type", str(device).split(":")[0]) != "cuda":
        return None
    from av.codec.hwaccel import HWAccel, hwdevices_available

    if DEVICE_TYPE not in hwdevices_available():
        return None
    index = getattr(device, "index", None)
    return HWAccel(
        device_type=DEVICE_TYPE, device=str(index) if index is not None else None, allow_software_fallback=False
    )


OPEN, DECODE = "open", "decode"  # where a hardware decode failed: the device (the machine), or this file


def first_frame_problem(path: Path, video_stream: int | None, accel: Any) -> tuple[str, str] | None:
    """(stage, why) ``accel`` cannot decode ``path``'s video (its first frame, converted to
    RGB), or None. Stage :data:`OPEN`: opening with the hardware device failed (no driver,
    no ``libnvcuvid``, no such GPU); :data:`DECODE`: this file's stream did not decode."""
    try:
        container = av.open(str(path), mode="r", metadata_errors="replace", hwaccel=accel)
    except Exception as exc:  # noqa: BLE001 - any failure means software decoding, with its reason
        return OPEN, f"{type(exc).__name__}: {exc}"
    try:
        with container:
            streams = container.streams.video
            stream = next((s for s in streams if s.index == video_stream), None) if video_stream is not None else None
            stream = stream or (streams[0] if streams else None)
            if stream is None:
                return DECODE, "no video stream"
            for frame in container.decode(stream):
                frame.to_ndarray(format="rgb24")
                return None
            return DECODE, "no frame decoded"
    except Exception as exc:  # noqa: BLE001 - any failure means software decoding, with its reason
        return DECODE, f"{type(exc).__name__}: {exc}"


class Nvdec:
    """Per extractor: which files decode on NVDEC, and the warnings when they cannot.

    ``probe`` (injectable for tests): ``(path, video_stream, accel) -> (stage, why) or None``.
    A failure to open with the device before any file worked means the machine has no
    NVDEC: one warning, and software decoding from then on without trying again.
    """

    def __init__(
        self, device: Any, mode: str = "auto", probe: Callable[..., tuple[str, str] | None] = first_frame_problem
    ) -> None:
        if mode not in HW_DECODE_MODES:
            raise ValueError(f"hw_decode {mode!r}: expected one of {', '.join(HW_DECODE_MODES)}")
        self.accel = nvdec_accel(device) if mode == "auto" else None
        self.probe = probe
        self.machine_problem: str | None = None  # the first failure when no file has decoded on NVDEC yet
        self.worked = False
        self.used: dict[str, bool] = {}  # path -> decoded on NVDEC

    @property
    def enabled(self) -> bool:
        return self.accel is not None and self.machine_problem is None

    def accel_for(self, path: Path, video_stream: int | None, warn: Callable[[str], None]) -> Any | None:
        """The ``hwaccel`` for this file, or None (software) after warning why."""
        if not self.enabled:
            return None
        found = self.probe(path, video_stream, self.accel)
        self.used[str(path)] = found is None
        if found is None:
            self.worked = True
            return self.accel
        stage, problem = found
        if stage == OPEN and not self.worked:  # the machine has no NVDEC: say it once, stop trying
            self.machine_problem = problem
            warn(f"NVDEC not available here ({problem}): videos are decoded on the CPU")
        else:
            warn(f"{path.name}: NVDEC cannot decode this video ({problem}): decoded on the CPU")
        return None

    def frames(self, source: media.MediaFile, fps: float, warn: Callable[[str], None], **kw: Any):
        """``source``'s frames (:meth:`violence_cli.media.MediaFile.frames`), decoded on NVDEC
        where that works (a second opening, with the hardware device), else in software."""
        accel = self.accel_for(source.path, source.video_stream, warn)
        if accel is None:
            return source.frames(fps, on_warning=warn, **kw)
        return media.iter_frames(source.path, fps, source.video_stream, on_warning=warn, hwaccel=accel, **kw)


__all__ = ["DECODE", "DEVICE_TYPE", "HW_DECODE_MODES", "OPEN", "Nvdec", "first_frame_problem", "nvdec_accel"]

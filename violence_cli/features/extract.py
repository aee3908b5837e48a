"""Video file -> XD-Violence features: I3D RGB (T, C, 1024) and VGGish audio (T, 128).

The protocol (REFERENCE.md, "XD-Violence feature protocol"):

- frames at 24 fps (:func:`violence_cli.media.iter_frames`);
- shorter side resized to 256 pixels, bilinear, *without* anti-aliasing, on uint8 frames.
  The published extraction is believed to have used OpenCV (``cv2.resize``, INTER_LINEAR);
  ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False,
  antialias=False)`` samples the same points (half-pixel centres) and differs from it by
  at most one grey level (OpenCV's fixed-point weights; mean difference ~0.2 level on
  natural images), whereas an anti-aliased resize (torchvision's default for tensors
  since 0.17) blurs down-scaled video noticeably (up to 21 levels off at 720p). The longer
  side becomes ``int(256 * long / short)`` (torchvision's ``Resize(256)`` rule);
- five 224x224 crops: ``__0`` centre, ``__1`` top-left, ``__2`` top-right, ``__3``
  bottom-left, ``__4`` bottom-right (``crops=1``: the centre only);
- pixels scaled to [-1, 1];
- non-overlapping 16-frame snippets: a video of N frames gives T = floor((N - 1) / 16),
  snippet k being frames 16k .. 16k + 15; one I3D feature per crop and snippet;
- one VGGish example per snippet, the 0.975 s of audio ending where the snippet ends
  (:func:`violence_cli.features.frontend.aligned_examples`); silence outside the audio.

Speed: frames are decoded, grouped and resized in one thread and the audio decoded and
turned into log-mel examples in another, each feeding a small bounded queue, while the
calling thread runs the networks; so decoding overlaps compute and memory stays bounded
(the outputs aside, 20 kB per snippet at 5 crops). Both networks run with channels-last
tensors, in fp32 or bf16 (``precision``, :mod:`violence_cli.precision`; bf16 is 2-3x faster
on CUDA and on CPUs with native bf16). On CUDA raw frames travel through pinned memory and
are resized on the GPU.
"""

from __future__ import annotations

import math
import os
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .. import media
from ..devices import resolve_device
from ..errors import InputError, UsageError
from ..media import MediaInfo
from ..precision import FP32, resolve_precision
from ..protocol import (
    AUDIO_DIM,
    CROP_NAMES,
    CROP_SIZE,
    DEFAULT_CROPS,
    I3D_WEIGHTS,
    MIN_FRAMES,
    RESIZE_SHORT,
    RGB_DIM,
    SNIPPET_FRAMES,
    VGGISH_WEIGHTS,
    check_crops,
)
from . import frontend

VGGISH_BATCH = 32  # log-mel examples per VGGish forward
DEFAULT_BATCH = {"cpu": 5, "cuda": 40}  # I3D clips per forward
RAW_PIXELS_MAX = 2560 * 1440  # pixels: larger frames are resized on the CPU as decoded, even for CUDA
RAW_STEP_BYTES = 512 * 2**20  # bytes: raw (unresized) frames one CUDA step may hold; 4x that as float on the GPU
CAPACITY_MAX = 4096  # snippets of results allocated up front (more grow the arrays as they come)

Progress = Callable[[int, "int | None"], None]  # (snippets done, total estimate or None)


@dataclass
class VideoFeatures:
    """The features of one video, in the XD-Violence layout.

    ``rgb`` (T, C, 1024) float32: I3D features per snippet and crop (crop order as
    :data:`CROP_NAMES`); ``audio`` (T, 128) float32: VGGish embeddings (>= 0) aligned with
    the snippets; ``n_frames``: frames decoded at 24 fps; ``has_audio`` False means the
    audio features are those of silence (a warning says so); ``precision``: what the
    networks ran in (``fp32`` or ``bf16``).
    """

    rgb: np.ndarray
    audio: np.ndarray
    info: MediaInfo
    n_frames: int
    has_audio: bool
    crops: int
    warnings: list[str] = field(default_factory=list)
    precision: str = FP32
    start: float = 0.0  # s: where snippet 0 starts (a part of the video, ``extract(start=...)``)

    @property
    def n_snippets(self) -> int:
        return int(self.rgb.shape[0])


# --------------------------------------------------------------------------- geometry


def check_span(start: float, end: float | None) -> None:
    """UsageError unless ``start`` >= 0 and ``end`` (when given) > ``start``, both finite."""
    if not (math.isfinite(start) and start >= 0):
        raise UsageError(f"start {start}: expected a finite number of seconds >= 0")
    if end is not None and not math.isfinite(end):
        raise UsageError(f"end {end}: expected a finite number of seconds")
    if end is not None and end <= start:
        raise UsageError(f"end {end:g}: expected a time after start ({start:g} s)")


def count_snippets(n_frames: int) -> int:
    """T = floor((N - 1) / 16): the XD-Violence count of 16-frame snippets."""
    return max(0, (n_frames - 1) // SNIPPET_FRAMES)


def resized_size(height: int, width: int, short: int = RESIZE_SHORT) -> tuple[int, int]:
    """(height, width) after scaling the shorter side to ``short`` (longer: truncated)."""
    if height <= width:
        return short, int(short * width / height)
    return int(short * height / width), short


def crop_boxes(height: int, width: int, crops: int = 5, size: int = CROP_SIZE) -> list[tuple[int, int]]:
    """(top, left) of each crop, in XD order: centre, top-left, top-right, bottom-left, bottom-right."""
    check_crops(crops)
    if height < size or width < size:
        raise ValueError(f"frames of {height}x{width} are smaller than the {size}x{size} crop")
    bottom, right = height - size, width - size
    centre = (round(bottom / 2), round(right / 2))  # Python rounds halves to even, like np.round
    return [centre, (0, 0), (0, right), (bottom, 0), (bottom, right)][:crops]


def resize_frames(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, h, w, 3) uint8, bilinear without anti-aliasing.

    uint8 in and out, like ``cv2.resize`` on decoded frames (the uint8 kernel of
    ``interpolate``; on CUDA, which has none, float then rounding).
    """
    if tuple(frames.shape[1:3]) == tuple(size):
        return frames
    x = frames.permute(0, 3, 1, 2)  # (N, 3, H, W), channels-last in memory
    if x.device.type == "cpu":
        y = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=False)
    else:
        y = F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False, antialias=False)
        y = y.round_().clamp_(0, 255).to(torch.uint8)
    return y.permute(0, 2, 3, 1).contiguous()  # (N, h, w, 3)


def make_clips(snippets: torch.Tensor, crops: int = 5, out: torch.Tensor | None = None) -> torch.Tensor:
    """(S, 16, h, w, 3) uint8 resized snippets -> (S * C, 3, 16, 224, 224) float32 in [-1, 1].

    Clips are snippet-major (snippet s, crop c at index s * C + c) and channels-last-3d
    in memory, the layout the networks run fastest on. ``out``: a float32 buffer of at
    least S * C * 16 * 224 * 224 * 3 elements to fill instead of allocating one.
    """
    s, t, h, w, _ = snippets.shape
    boxes = crop_boxes(h, w, crops)
    shape = (s, len(boxes), t, CROP_SIZE, CROP_SIZE, 3)
    if out is None:
        out = torch.empty(shape, dtype=torch.float32, device=snippets.device)
    else:
        out = out.reshape(-1)[: math.prod(shape)].view(shape)
    for c, (top, left) in enumerate(boxes):
        out[:, c] = snippets[:, :, top : top + CROP_SIZE, left : left + CROP_SIZE, :]
    out.mul_(2.0 / 255.0).sub_(1.0)
    return out.view(s * len(boxes), t, CROP_SIZE, CROP_SIZE, 3).permute(0, 4, 1, 2, 3)  # (S*C, 3, 16, 224, 224)


# --------------------------------------------------------------------------- producers


class _End:
    """End of a producer's stream."""


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> bool:
    """Put unless asked to stop; False when stopped."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _produce(q: queue.Queue, stop: threading.Event, items: Iterator[Any]) -> None:
    """Thread body: move ``items`` into ``q``, then an _End or _Failed marker.

    Torch ops here (resizing, log-mel) run single-threaded: the setting is per thread with
    the OpenMP backend, so the networks in the calling thread keep every core, and no
    second OpenMP team competes with theirs (which slowed extraction by ~25% on 2 cores).
    """
    torch.set_num_threads(1)
    try:
        for item in items:
            if not _put(q, item, stop):
                return
        _put(q, _End(), stop)
    except BaseException as exc:  # noqa: BLE001 - handed over to the consuming thread
        _put(q, _Failed(exc), stop)
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()


def _snippets(
    frames: Iterator[np.ndarray], resize_here: bool, count: dict[str, int], path: Path | None = None
) -> Iterator[torch.Tensor]:
    """Group 24-fps frames into 16-frame snippets, keeping only those T counts.

    A snippet is released when the frame after it arrives (T = floor((N - 1) / 16)).
    Yields (16, H, W, 3) uint8 tensors. Each frame is resized (shorter side 256) as it
    arrives when ``resize_here``, or when frames are larger than :data:`RAW_PIXELS_MAX`
    (so a snippet holds at most 16 frames of that size, whatever the input); otherwise
    frames keep the first frame's size. At the end ``count["frames"]`` holds N.
    """
    pending: list[torch.Tensor] = []
    full: list[torch.Tensor] | None = None
    first: tuple[int, int] | None = None  # (H, W) of the first frame
    target: tuple[int, int] | None = None  # what every frame of a snippet is made
    n = 0
    try:
        for frame in frames:
            n += 1
            if first is None:
                first = (frame.shape[0], frame.shape[1])
                resized = check_geometry(path, *first)
                target = resized if resize_here or first[0] * first[1] > RAW_PIXELS_MAX else first
            if full is not None:
                yield torch.stack(full)  # (16, h, w, 3) uint8
                full = None
            pending.append(_resize_one(frame, target))
            del frame  # a full-size frame is not kept while the next one is decoded
            if len(pending) == SNIPPET_FRAMES:
                full, pending = pending, []
        count["frames"] = n
    finally:
        close = getattr(frames, "close", None)
        if close is not None:
            close()


def check_geometry(path: Path | None, height: int, width: int) -> tuple[int, int]:
    """The resized (height, width) of frames of this size; InputError when it is absurd
    (frames smaller than a pixel, or so narrow that the resized longer side would pass
    :data:`media.MAX_FRAME_SIDE`)."""
    where = f"{path}: " if path is not None else ""
    if height < 1 or width < 1:
        raise InputError(f"{where}frames of {width}x{height} pixels cannot be used")
    size = resized_size(height, width)
    if max(size) > media.MAX_FRAME_SIDE:
        raise InputError(
            f"{where}frames of {width}x{height} pixels are too elongated: resized to {RESIZE_SHORT} pixels on "
            f"the shorter side, the longer would be {max(size)} (at most {media.MAX_FRAME_SIDE})"
        )
    return size


def _resize_one(frame: np.ndarray, target: tuple[int, int]) -> torch.Tensor:
    """(H, W, 3) uint8 -> (h, w, 3) uint8 tensor of ``target`` size."""
    return resize_frames(torch.from_numpy(frame)[None], target)[0]


def _audio_blocks(
    source: media.MediaFile,
    warn: Callable[[str], None],
    start: float = 0.0,
    end: float | None = None,
) -> Iterator[np.ndarray]:
    """Log-mel examples aligned to the snippets of ``source``'s video stream (t = 0 is that
    stream's start; with ``start``, the first snippet starts there)."""
    chunks = source.audio(media.AUDIO_RATE, chunk_seconds=10.0, on_warning=warn, start=start, end=end)
    return frontend.aligned_examples(chunks, max_batch=VGGISH_BATCH)


# --------------------------------------------------------------------------- extractor


class FeatureExtractor:
    """Load I3D and VGGish once, then :meth:`extract` the features of any number of videos.

    ``i3d_weights`` / ``vggish_weights``: explicit files; when absent the weights registry
    finds them (``weights_dir``, ``$VIOLENCE_DETECT_WEIGHTS``, the cache, then a verified
    download unless ``download=False``). ``device``: ``auto``, ``cpu``, ``cuda`` or
    ``cuda:N``. ``crops``: 5 (the published protocol) or 1 (centre only, 5x cheaper).
    ``batch_size``: I3D clips per forward (default 5 on CPU, 40 on CUDA); the crops of a
    snippet always travel together. ``precision``: ``fp32`` (the default: features are a
    dataset, fidelity first), ``bf16`` or ``auto`` (bf16 on CUDA and on CPUs with native
    bf16, :func:`~violence_cli.precision.resolve_precision`); I3D and VGGish both run in it
    and :attr:`precision` says which it resolved to.
    """

    def __init__(
        self,
        i3d_weights: str | os.PathLike[str] | None = None,
        vggish_weights: str | os.PathLike[str] | None = None,
        device: str | torch.device = "cpu",
        crops: int = DEFAULT_CROPS,
        batch_size: int | None = None,
        weights_dir: str | os.PathLike[str] | None = None,
        download: bool = True,
        precision: str = FP32,
    ) -> None:
        from ..weights import resolve_weights
        from . import load_i3d, load_vggish

        check_crops(crops)
        if batch_size is not None and batch_size < 1:
            raise UsageError(f"batch_size {batch_size}: expected a positive number")
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.crops = crops
        self.batch_size = int(batch_size or DEFAULT_BATCH[self.device.type])
        self.snippets_per_step = max(1, self.batch_size // crops)
        self.cuda = self.device.type == "cuda"
        self.i3d_path = resolve_weights(I3D_WEIGHTS, i3d_weights, weights_dir=weights_dir, download=download)
        self.vggish_path = resolve_weights(VGGISH_WEIGHTS, vggish_weights, weights_dir=weights_dir, download=download)
        # eval mode, batch norm folded, channels-last (the loaders' defaults)
        self.i3d = load_i3d(self.i3d_path, device=self.device, precision=self.precision)
        self.vggish = load_vggish(self.vggish_path, device=self.device, precision=self.precision)
        self._silence: np.ndarray | None = None
        # One clip buffer reused for every batch (48 MB per 5-crop snippet): allocating it
        # afresh each time fragments the heap when freed memory is kept (keep_freed_memory).
        self._clip_buffer: torch.Tensor | None = None

    # ----------------------------------------------------------------- networks

    @torch.inference_mode()
    def rgb_features(self, snippets: torch.Tensor) -> np.ndarray:
        """(S, 16, H, W, 3) uint8 snippets -> (S, C, 1024) float32 (resized here unless done)."""
        s, t, h, w, _ = snippets.shape
        x = snippets.to(self.device, non_blocking=True)  # asynchronous from pinned memory
        target = resized_size(h, w)
        if (h, w) != target:
            x = resize_frames(x.view(s * t, h, w, 3), target).view(s, t, *target, 3)
        n = s * self.crops * t * CROP_SIZE * CROP_SIZE * 3
        if self._clip_buffer is None or self._clip_buffer.numel() < n or self._clip_buffer.device != x.device:
            self._clip_buffer = torch.empty(n, dtype=torch.float32, device=x.device)
        clips = make_clips(x, self.crops, out=self._clip_buffer)  # (S*C, 3, 16, 224, 224)
        out = np.empty((s * self.crops, RGB_DIM), np.float32)
        for i in range(0, clips.shape[0], self.batch_size):  # the model casts to its precision
            out[i : i + self.batch_size] = self.i3d(clips[i : i + self.batch_size]).float().cpu().numpy()
        return out.reshape(s, self.crops, RGB_DIM)

    @torch.inference_mode()
    def audio_features(self, examples: np.ndarray) -> np.ndarray:
        """(K, 96, 64) log-mel examples -> (K, 128) float32 VGGish embeddings."""
        out = np.empty((len(examples), AUDIO_DIM), np.float32)
        for i in range(0, len(examples), VGGISH_BATCH):
            x = torch.from_numpy(np.ascontiguousarray(examples[i : i + VGGISH_BATCH]))
            y = self.vggish(x.to(self.device))  # (B, 128), in the model's precision
            out[i : i + len(x)] = y.float().cpu().numpy()
        return out

    def silence_features(self) -> np.ndarray:
        """(128,) VGGish embedding of a silent example."""
        if self._silence is None:
            self._silence = self.audio_features(frontend.silence_example()[None])[0]
        return self._silence

    # ----------------------------------------------------------------- one video

    def extract(
        self,
        path: str | os.PathLike[str],
        video_stream: int | None = None,
        audio_stream: int | None = None,
        progress: Progress | None = None,
        *,
        start: float = 0.0,
        end: float | None = None,
    ) -> VideoFeatures:
        """Features of one video, or of its part from ``start`` to ``end`` seconds (the
        same protocol from ``start`` on: snippet k covers ``start + k * 2/3`` s onwards).
        Raises :class:`InputError` for a file without video, one (or a part) too short for
        a snippet (< 17 frames at 24 fps), one that cannot be read, or a start at or after
        the end of the video."""
        path = Path(path)
        check_span(start, end)
        with media.open_video(path, video_stream, audio_stream) as source:  # one open: facts and frames
            return self._extract(source, progress, start, end)

    def _extract(
        self, source: media.MediaFile, progress: Progress | None, start: float, end: float | None
    ) -> VideoFeatures:
        path = source.path
        info = source.info
        if not info.has_video:
            raise InputError(f"{path}: no video stream (features need pictures; audio-only files are not supported)")
        if start > 0 and info.duration > 0 and start >= info.duration:
            raise InputError(f"{path}: start {start:g} s is at or after the end of the video ({info.duration:.2f} s)")
        warnings: list[str] = []
        span = min(info.duration, end if end is not None else math.inf) - start
        estimate = count_snippets(round(span * media.VIDEO_FPS)) if span > 0 else None
        stop = threading.Event()
        step = self.step_for(info.width, info.height)
        video_q: queue.Queue = queue.Queue(maxsize=2 * step + 1)
        audio_q: queue.Queue = queue.Queue(maxsize=8)
        count: dict[str, int] = {}
        threads: list[threading.Thread] = []
        if not info.has_audio:
            warnings.append(
                f"{path.name}: no audio stream: silence used as audio (the scores rest on the picture alone)"
            )
        try:
            frames = source.frames(media.VIDEO_FPS, on_warning=warnings.append, start=start, end=end)
            snippets = _snippets(frames, not self.cuda, count, path)
            threads.append(threading.Thread(target=_produce, args=(video_q, stop, snippets), daemon=True))
            if info.has_audio:
                blocks = _audio_blocks(source, warnings.append, start, end)
                threads.append(threading.Thread(target=_produce, args=(audio_q, stop, blocks), daemon=True))
            for t in threads:
                t.start()
            capacity = min(estimate or 0, CAPACITY_MAX) + 2  # a header may claim any duration
            sink = _AudioSink(self, audio_q if info.has_audio else None, capacity)
            rgb = self._run_video(video_q, sink, progress, estimate, capacity, step)
            n_frames = count.get("frames", 0)
            if not len(rgb):
                raise InputError(
                    f"{path}: too short: {n_frames} frame(s) at 24 fps ({n_frames / media.VIDEO_FPS:.2f} s); "
                    f"at least {MIN_FRAMES} frames ({MIN_FRAMES / media.VIDEO_FPS:.2f} s) are needed for one snippet"
                )
            rgb_all = rgb.array()  # (T, C, 1024)
            audio = sink.result(len(rgb_all))
        finally:
            stop.set()
            for t in threads:
                if t.ident is not None:
                    t.join(timeout=10.0)
        if progress is not None:
            progress(len(rgb_all), len(rgb_all))
        return VideoFeatures(
            rgb=rgb_all,
            audio=audio,
            info=info,
            n_frames=n_frames,
            has_audio=info.has_audio,
            crops=self.crops,
            warnings=warnings,
            precision=self.precision,
            start=start,
        )

    def step_for(self, width: int, height: int) -> int:
        """Snippets per I3D step for frames of ``width`` x ``height``: :attr:`snippets_per_step`,
        fewer on CUDA when the raw frames of a step would pass :data:`RAW_STEP_BYTES`.

        On CUDA frames up to :data:`RAW_PIXELS_MAX` travel unresized and are resized on the
        GPU in float: at 1 crop, 40 snippets of 1080p were 4 GB in the queue, 4 GB pinned and
        16 GB of float on the GPU at once. Fewer snippets per step only shrink I3D's batch
        for large frames, where decoding bounds the speed anyway.
        """
        if not self.cuda or width < 1 or height < 1 or width * height > RAW_PIXELS_MAX:
            return self.snippets_per_step  # resized on the CPU as decoded: small snippets
        raw_snippet = SNIPPET_FRAMES * width * height * 3  # bytes, uint8 RGB
        return max(1, min(self.snippets_per_step, RAW_STEP_BYTES // raw_snippet))

    def _run_video(
        self,
        q: queue.Queue,
        sink: _AudioSink,
        progress: Progress | None,
        estimate: int | None,
        capacity: int,
        step: int | None = None,
    ) -> _Rows:
        """I3D over the snippets as they arrive, ``step`` at a time; VGGish keeps pace on what audio is ready."""
        step = step or self.snippets_per_step
        rgb = _Rows((self.crops, RGB_DIM), capacity)
        batch: list[torch.Tensor] = []
        done = 0
        while True:
            item = q.get()
            if isinstance(item, _Failed):
                raise item.exc
            end = isinstance(item, _End)
            if not end:
                batch.append(item)
            if batch and (end or len(batch) == step):
                rgb.extend(self.rgb_features(self._stack(batch)))
                done += len(batch)
                batch = []
                sink.pump(done)
                if progress is not None:
                    progress(done, max(estimate, done) if estimate is not None else None)
            if end:
                return rgb

    def _stack(self, snippets: list[torch.Tensor]) -> torch.Tensor:
        """(S, 16, H, W, 3) uint8, in pinned memory on CUDA (asynchronous copies)."""
        if not self.cuda:
            return torch.stack(snippets)
        out = torch.empty((len(snippets), *snippets[0].shape), dtype=torch.uint8, pin_memory=True)
        return torch.stack(snippets, out=out)


class _Rows:
    """Rows appended into one array whose capacity doubles when full.

    Results stay in a few large blocks instead of one small array per step: on a heap
    that keeps freed memory (keep_freed_memory), small long-lived arrays scattered among
    the networks' large temporaries fragment it, and memory grows with the video's length.
    """

    def __init__(self, row_shape: tuple[int, ...], capacity: int) -> None:
        self.data = np.empty((max(capacity, 1), *row_shape), np.float32)
        self.n = 0

    def __len__(self) -> int:
        return self.n

    def extend(self, rows: np.ndarray) -> None:
        need = self.n + len(rows)
        if need > len(self.data):
            bigger = np.empty((max(need, 2 * len(self.data)), *self.data.shape[1:]), np.float32)
            bigger[: self.n] = self.data[: self.n]
            self.data = bigger
        self.data[self.n : need] = rows
        self.n = need

    def array(self) -> np.ndarray:
        return self.data if self.n == len(self.data) else self.data[: self.n].copy()


class _AudioSink:
    """Consumes the audio thread's log-mel blocks and runs VGGish on them.

    ``pump(n)`` takes what is ready without waiting, until n examples are embedded (so
    VGGish keeps in step with I3D and the bounded queue keeps flowing); ``result(T)``
    waits for the rest and returns (T, 128), silence where the audio ends early.
    """

    def __init__(self, extractor: FeatureExtractor, q: queue.Queue | None, capacity: int) -> None:
        self.extractor, self.q = extractor, q
        self.rows = _Rows((AUDIO_DIM,), capacity)
        self.ended = q is None

    def pump(self, wanted: int, wait: bool = False) -> None:
        while not self.ended and len(self.rows) < wanted:
            try:
                item = self.q.get(block=wait)  # type: ignore[union-attr]
            except queue.Empty:
                return
            if isinstance(item, _Failed):
                raise item.exc
            if isinstance(item, _End):
                self.ended = True
                return
            self.rows.extend(self.extractor.audio_features(item))

    def result(self, n: int) -> np.ndarray:
        """(n, 128): the first n embeddings, silence after the end of the audio."""
        self.pump(n, wait=True)
        out = np.empty((n, AUDIO_DIM), np.float32)
        have = min(n, len(self.rows))
        out[:have] = self.rows.data[:have]
        out[have:] = self.extractor.silence_features()
        return out


__all__ = [
    "CROP_NAMES",
    "FeatureExtractor",
    "VideoFeatures",
    "count_snippets",
    "crop_boxes",
    "check_geometry",
    "make_clips",
    "resize_frames",
    "resized_size",
    "resolve_device",
]

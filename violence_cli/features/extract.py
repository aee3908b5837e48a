"""Video file -> XD-Violence features: I3D RGB (T, C, 1024) and VGGish audio (T, 128).

The protocol (the XD-Violence dataset paper, Wu et al., ECCV 2020, section 5.2, and its authors' notes in Roc-Ng/XDVioDet):

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
from ..hwdecode import Nvdec
from ..media import MediaInfo
from ..messages import count, no_audio_warning
from ..precision import FP32, matmul_flags
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


def _produce(
    q: queue.Queue, stop: threading.Event, items: Iterator[Any], on_end: Callable[[], None] | None = None
) -> None:
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
        if on_end is not None and not stop.is_set():
            on_end()  # this stream is decoded: the next video may start (FeatureExtractor.prefetch)


STAGING_STEPS = 3  # step buffers per video: one being filled, one copied or computed, one queued


class _Staging:
    """The step buffers a video's decode thread writes frames into, recycled.

    Each decoded frame is written once, straight into its place in a (step, 16, h, w, 3)
    uint8 buffer (pinned on CUDA, so the copy to the device is asynchronous); the consumer
    hands a buffer back with :meth:`release` once it has read it (on CUDA with the event
    of its copy, which the decode thread waits for before writing the buffer again).
    """

    def __init__(self, pin: bool, count: int = STAGING_STEPS) -> None:
        self.pin, self.count = pin, count
        self.made = 0
        self.free: queue.Queue = queue.Queue()

    def get(self, shape: tuple[int, ...], stop: threading.Event) -> torch.Tensor | None:
        """A free buffer of ``shape`` (a new one while fewer than ``count`` exist); None once stopped."""
        while not stop.is_set():
            if self.made < self.count and self.free.empty():
                self.made += 1
                return torch.empty(shape, dtype=torch.uint8, pin_memory=self.pin)
            try:
                buffer, event = self.free.get(timeout=0.1)
            except queue.Empty:
                continue
            if event is not None:
                event.synchronize()  # its copy to the device is done: it may be overwritten
            if tuple(buffer.shape) == tuple(shape):
                return buffer
            self.made -= 1  # another size (not within one video): dropped, made afresh
        return None

    def release(self, buffer: torch.Tensor, event: Any = None) -> None:
        self.free.put((buffer, event))


@dataclass
class _Step:
    """Snippets 0..n-1 of ``buffer`` (the rest of it is stale) and their pool."""

    buffer: torch.Tensor  # (step, 16, h, w, 3) uint8
    n: int
    staging: _Staging

    @property
    def snippets(self) -> torch.Tensor:
        return self.buffer[: self.n]


def _steps(
    frames: Iterator[np.ndarray],
    resize_here: bool,
    count: dict[str, int],
    step: int,
    staging: _Staging,
    stop: threading.Event,
    path: Path | None = None,
) -> Iterator[_Step]:
    """Write 24-fps frames into step buffers of ``step`` snippets, keeping only those T counts.

    A snippet counts when the frame after it arrives (T = floor((N - 1) / 16)); a buffer is
    yielded when it holds ``step`` such snippets, the last one with what remains. Each
    frame is resized (shorter side 256) as it arrives when ``resize_here``, or when frames
    are larger than :data:`RAW_PIXELS_MAX` (so a buffer holds at most ``step`` x 16 frames
    of that size, whatever the input); otherwise frames keep the first frame's size. At
    the end ``count["frames"]`` holds N.
    """
    target: tuple[int, int] | None = None  # what every frame of a snippet is made
    buffer: torch.Tensor | None = None
    ready = 0  # snippets of ``buffer`` that count
    n = 0
    try:
        for frame in frames:
            if target is None:
                first = (frame.shape[0], frame.shape[1])
                resized = check_geometry(path, *first)
                target = resized if resize_here or first[0] * first[1] > RAW_PIXELS_MAX else first
            k = n % SNIPPET_FRAMES
            if k == 0 and n > 0:  # the snippet being written is complete and followed: it counts
                ready += 1
                if ready == step:
                    yield _Step(buffer, ready, staging)  # type: ignore[arg-type]
                    buffer, ready = None, 0
            if buffer is None:
                buffer = staging.get((step, SNIPPET_FRAMES, *target, 3), stop)
                if buffer is None:
                    return  # asked to stop
            slot = buffer[ready, k]
            if (frame.shape[0], frame.shape[1]) == target:
                slot.copy_(torch.from_numpy(frame))
            else:
                slot.copy_(_resize_one(frame, target))
            del frame  # a full-size frame is not kept while the next one is decoded
            n += 1
        count["frames"] = n
        if buffer is not None and ready:
            yield _Step(buffer, ready, staging)
        elif buffer is not None:
            staging.release(buffer)
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
    dataset, fidelity first), ``tf32``, ``bf16``, ``fp16`` or ``auto``
    (:func:`~violence_cli.features.autoprecision.resolve`: on CUDA the fastest that keeps
    the features within the fidelity bounds, measured once per GPU model); I3D and VGGish
    both run in it and :attr:`precision` says which it resolved to (:attr:`precision_choice`
    why, for ``auto`` on CUDA). ``fixed_batches`` (default: on CUDA): every forward has the
    same batch shape (the tail padded, the padding's outputs dropped), so cuDNN keeps one
    plan; the features are the same either way. ``hw_decode``: ``auto`` (NVDEC on CUDA where
    the driver and the codec allow, else software decoding with one warning,
    :mod:`violence_cli.hwdecode`) or ``cpu``.

    On CUDA the networks' outputs stay on the device until a video is done (one copy back
    per video, no synchronisation per batch) and ``cudnn.benchmark`` is turned on (it is
    process-wide: with fixed batch shapes its autotuning runs once per shape).
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
        fixed_batches: bool | None = None,
        hw_decode: str = "auto",
        decode_workers: int = 0,
    ) -> None:
        from ..weights import resolve_weights
        from . import autoprecision, load_i3d, load_vggish

        check_crops(crops)
        if batch_size is not None and batch_size < 1:
            raise UsageError(f"batch_size {batch_size}: expected a positive number")
        if decode_workers < 0:
            raise UsageError(f"decode_workers {decode_workers}: expected 0 (decode here) or more")
        self.device = resolve_device(device)
        self.crops = crops
        self.batch_size = int(batch_size or DEFAULT_BATCH[self.device.type])
        self.snippets_per_step = max(1, self.batch_size // crops)
        self.cuda = self.device.type == "cuda"
        self.fixed_batches = self.cuda if fixed_batches is None else bool(fixed_batches)
        self.nvdec = Nvdec(self.device, hw_decode)  # NVDEC on CUDA where it works (hwdecode)
        self.i3d_path = resolve_weights(I3D_WEIGHTS, i3d_weights, weights_dir=weights_dir, download=download)
        self.vggish_path = resolve_weights(VGGISH_WEIGHTS, vggish_weights, weights_dir=weights_dir, download=download)
        self.precision_choice = autoprecision.choice_for(precision, self.device)
        self.precision = self.precision_choice.precision
        if self.cuda:
            torch.backends.cudnn.benchmark = True  # fixed shapes: one autotuning per shape, then the fastest plan
        # eval mode, batch norm folded, channels-last (the loaders' defaults)
        self.i3d = load_i3d(self.i3d_path, device=self.device, precision=self.precision)
        self.vggish = load_vggish(self.vggish_path, device=self.device, precision=self.precision)
        self._silence: torch.Tensor | None = None
        # One clip buffer reused for every batch (48 MB per 5-crop snippet): allocating it
        # afresh each time fragments the heap when freed memory is kept (keep_freed_memory).
        self._clip_buffer: torch.Tensor | None = None
        self._ahead: list[_Prefetch] = []  # announced videos, in order (prefetch)
        self.decode_workers = int(decode_workers)
        self.pool: Any = None  # DecodePool, started at the first video when decode_workers > 0
        self._active: _Opened | None = None  # the video extract is running the networks on
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- networks

    def _forward(self, net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        """``net(x)`` under this precision's math flags (TF32 on or off), as float32."""
        with matmul_flags(self.precision, self.device):
            return net(x).float()

    @torch.inference_mode()
    def rgb_device(self, snippets: torch.Tensor) -> torch.Tensor:
        """(S, 16, H, W, 3) uint8 snippets -> (S, C, 1024) float32 on the device, without waiting for it.

        Resized here unless done. Each forward has ``batch_size`` clips when
        :attr:`fixed_batches` (the tail padded with zero clips, their outputs dropped).
        """
        s, t, h, w, _ = snippets.shape
        x = snippets.to(self.device, non_blocking=True)  # asynchronous from pinned memory
        target = resized_size(h, w)
        if (h, w) != target:
            x = resize_frames(x.view(s * t, h, w, 3), target).view(s, t, *target, 3)
        m = s * self.crops  # clips
        b = self.batch_size
        padded = -(-m // b) * b if self.fixed_batches else m
        per_clip = t * CROP_SIZE * CROP_SIZE * 3
        buffer = self._clip_buffer
        if buffer is None or buffer.numel() < padded * per_clip or buffer.device != x.device:
            self._clip_buffer = torch.zeros(padded * per_clip, dtype=torch.float32, device=x.device)  # padding: finite
        make_clips(x, self.crops, out=self._clip_buffer)  # (S*C, 3, 16, 224, 224) in the buffer's first clips
        clips = self._clip_buffer[: padded * per_clip].view(padded, t, CROP_SIZE, CROP_SIZE, 3).permute(0, 4, 1, 2, 3)
        out = torch.empty((padded, RGB_DIM), dtype=torch.float32, device=x.device)
        for i in range(0, padded, b):  # the model casts to its precision
            out[i : i + b] = self._forward(self.i3d, clips[i : i + b])
        return out[:m].view(s, self.crops, RGB_DIM)

    def rgb_features(self, snippets: torch.Tensor) -> np.ndarray:
        """(S, 16, H, W, 3) uint8 snippets -> (S, C, 1024) float32 (resized here unless done)."""
        return self.rgb_device(snippets).cpu().numpy()

    @torch.inference_mode()
    def audio_device(self, examples: np.ndarray) -> torch.Tensor:
        """(K, 96, 64) log-mel examples -> (K, 128) float32 VGGish embeddings on the device, without waiting."""
        k = len(examples)
        out = torch.empty((k, AUDIO_DIM), dtype=torch.float32, device=self.device)
        for i in range(0, k, VGGISH_BATCH):
            x = torch.from_numpy(np.ascontiguousarray(examples[i : i + VGGISH_BATCH], dtype=np.float32))
            n = len(x)
            if self.fixed_batches and n < VGGISH_BATCH:
                x = torch.cat([x, x.new_zeros((VGGISH_BATCH - n, *x.shape[1:]))])
            if self.cuda:
                x = x.pin_memory()  # so the copy below does not wait for the device's queue
            y = self._forward(self.vggish, x.to(self.device, non_blocking=True))  # (B, 128)
            out[i : i + n] = y[:n]
        return out

    def audio_features(self, examples: np.ndarray) -> np.ndarray:
        """(K, 96, 64) log-mel examples -> (K, 128) float32 VGGish embeddings."""
        return self.audio_device(examples).cpu().numpy()

    def _silence_device(self) -> torch.Tensor:
        if self._silence is None:
            self._silence = self.audio_device(frontend.silence_example()[None])[0]
        return self._silence

    def silence_features(self) -> np.ndarray:
        """(128,) VGGish embedding of a silent example."""
        return self._silence_device().cpu().numpy()

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
        the end of the video. A video announced with :meth:`prefetch` is already decoding."""
        key = _Key(Path(path), video_stream, audio_stream, float(start), end)
        opened = self._take_prefetched(key)
        if opened is None:
            opened = self._open(key)
            opened.start()
        with self._lock:
            self._active = opened
            pending = self._first_waiting() if opened.decoded else None
        if pending is not None:  # this one was decoded ahead: the next may start now
            pending.begin(self)
        try:
            return self._consume(opened, progress)
        finally:
            with self._lock:
                self._active = None
            opened.close()

    def prefetch(
        self,
        path: str | os.PathLike[str] | None,
        video_stream: int | None = None,
        audio_stream: int | None = None,
        *,
        start: float = 0.0,
        end: float | None = None,
    ) -> None:
        """Announce a video to read after the current (or the coming) one, in order: it
        starts decoding as soon as the frames of the video being extracted are all decoded,
        so its decoding overlaps that video's last batches (the runner announces each video
        before the one ahead of it is extracted). With decode workers (``decode_workers``)
        it is handed to the pool at once, and the workers decode that many videos at a time.
        Its :meth:`extract` takes it over; extracting a later one first, :meth:`close` or
        ``prefetch(None)`` cancels it. Its errors surface in its own :meth:`extract`."""
        if path is None:
            self.close()
            return
        new = _Prefetch(_Key(Path(path), video_stream, audio_stream, float(start), end))
        with self._lock:
            if any(p.key == new.key for p in self._ahead):
                return
            self._ahead.append(new)
            now = self.pool is not None or (
                self._active is not None and self._active.decoded and self._first_waiting() is new
            )
        if now:
            new.begin(self)

    def close(self) -> None:
        """Stop the prefetched videos' decoding and the decode workers (the extractor stays
        usable: workers start again when needed)."""
        with self._lock:
            ahead, self._ahead = self._ahead, []
            pool, self.pool = self.pool, None
        for pending in ahead:
            pending.cancel()
        if pool is not None:
            pool.close()

    def _first_waiting(self) -> _Prefetch | None:
        """The first announced video not yet decoding (under the lock)."""
        return next((p for p in self._ahead if not p.begun), None)

    def _take_prefetched(self, key: _Key) -> _Opened | None:
        """The prefetched video ``key``, or None; those announced before it are cancelled
        (skipped), those after it stay announced."""
        with self._lock:
            index = next((i for i, p in enumerate(self._ahead) if p.key == key), None)
            if index is None:
                return None
            skipped, pending = self._ahead[:index], self._ahead[index]
            self._ahead = self._ahead[index + 1 :]
        for p in skipped:
            p.cancel()
        return pending.take(self)

    def _on_decoded(self, opened: _Opened) -> None:
        """Called when a video's frames are all decoded: the next announced video may start."""
        with self._lock:
            opened.decoded = True
            pending = self._first_waiting() if opened is self._active and self.pool is None else None
        if pending is not None:
            pending.begin(self)

    def _open(self, key: _Key) -> _Opened:
        """Open the video once (facts, frames; the audio opens its own) and set up its
        decode and audio threads (not started)."""
        path, start, end = key.path, key.start, key.end
        check_span(start, end)
        source = media.open_video(path, key.video_stream, key.audio_stream)
        try:
            return self._prepare(key, source)
        except BaseException:
            source.close()
            raise

    def _prepare(self, key: _Key, source: media.MediaFile) -> _Opened:
        path, start, end = key.path, key.start, key.end
        info = source.info
        if not info.has_video:
            raise InputError(f"{path}: no video stream (features need pictures; audio-only files are not supported)")
        if start > 0 and info.duration > 0 and start >= info.duration:
            raise InputError(f"{path}: start {start:g} s is at or after the end of the video ({info.duration:.2f} s)")
        if self.decode_workers > 0:
            source.close()  # a worker opens it
            opened: _Opened = self._pooled(key, info)
        else:
            opened = _Opened(key, info, self.step_for(info.width, info.height), source)
        if not info.has_audio:
            opened.warnings.append(no_audio_warning(path.name))
        if isinstance(opened, _PooledVideo):
            return opened
        try:
            warn = opened.warnings.append
            frames = self.nvdec.frames(source, media.VIDEO_FPS, warn, start=start, end=end)
            staging = _Staging(pin=self.cuda)
            steps = _steps(frames, not self.cuda, opened.count, opened.step, staging, opened.stop, path)
            opened.add_thread(opened.video_q, steps, on_end=lambda: self._on_decoded(opened))
            if info.has_audio:
                opened.add_thread(opened.audio_q, _audio_blocks(source, warn, start, end))
        except BaseException:
            opened.close()
            raise
        return opened

    def _pooled(self, key: _Key, info: MediaInfo) -> _PooledVideo:
        """A video for the decode workers (started when the first one is needed). They
        resize on the CPU as they decode (shared memory holds 256-pixel frames, whatever
        the input): on CUDA that rounds like the CPU path, within one grey level of the GPU
        resize."""
        return _PooledVideo(key, info, self.snippets_per_step, self._ensure_pool(), self._on_decoded)

    def _ensure_pool(self) -> Any:
        """The decode workers, started on first use (``decode_workers`` processes)."""
        from .decode_pool import DecodePool

        with self._lock:
            if self.pool is None:
                self.pool = DecodePool(self.decode_workers)
            return self.pool

    def _consume(self, opened: _Opened, progress: Progress | None) -> VideoFeatures:
        """Run the networks over an opened video's steps and audio as they come."""
        info, path = opened.info, opened.key.path
        capacity = min(opened.estimate or 0, CAPACITY_MAX) + 2  # a header may claim any duration
        sink = _AudioSink(self, opened.audio_q if info.has_audio else None, capacity)
        rgb = self._run_video(opened.video_q, sink, progress, opened.estimate, capacity)
        n_frames = opened.count.get("frames", 0)
        if not len(rgb):
            raise InputError(
                f"{path}: too short: {count(n_frames, 'frame')} at 24 fps ({n_frames / media.VIDEO_FPS:.2f} s); "
                f"at least {MIN_FRAMES} frames ({MIN_FRAMES / media.VIDEO_FPS:.2f} s) are needed for one snippet"
            )
        rgb_all = rgb.array()  # (T, C, 1024): the one copy back of the video's visual features
        audio = sink.result(len(rgb_all))
        if progress is not None:
            progress(len(rgb_all), len(rgb_all))
        return VideoFeatures(
            rgb=rgb_all,
            audio=audio,
            info=info,
            n_frames=n_frames,
            has_audio=info.has_audio,
            crops=self.crops,
            warnings=opened.warnings,
            precision=self.precision,
            start=opened.key.start,
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
    ) -> _Rows:
        """I3D over the steps as they arrive; VGGish keeps pace on what audio is ready.

        Nothing here waits for the device: the outputs stay on it (:class:`_Rows`), and a
        step's staging buffer goes back to the decode thread with the event of its copy.
        """
        rgb = _Rows((self.crops, RGB_DIM), capacity, self.device)
        done = 0
        while True:
            item = q.get()
            if isinstance(item, _Failed):
                raise item.exc
            if isinstance(item, _End):
                return rgb
            rgb.extend(self.rgb_device(item.snippets))
            event = None
            if self.cuda:
                event = torch.cuda.Event()
                event.record()  # after the step's copy to the device was queued
            item.staging.release(item.buffer, event)
            done += item.n
            sink.pump(done)
            if progress is not None:
                progress(done, max(estimate, done) if estimate is not None else None)


@dataclass(frozen=True)
class _Key:
    """Which video, and which part of it."""

    path: Path
    video_stream: int | None
    audio_stream: int | None
    start: float
    end: float | None


class _Opened:
    """One video being read: its probe, warnings, queues and decode/audio threads."""

    def __init__(self, key: _Key, info: MediaInfo, step: int, source: media.MediaFile | None = None) -> None:
        self.key, self.info, self.step, self.source = key, info, step, source
        self.warnings: list[str] = []
        self.count: dict[str, int] = {}
        self.stop = threading.Event()
        self.video_q: queue.Queue = queue.Queue(maxsize=STAGING_STEPS)
        self.audio_q: queue.Queue = queue.Queue(maxsize=8)
        self.threads: list[threading.Thread] = []
        self.decoded = False  # every frame decoded (set by the decode thread)
        span = min(info.duration, key.end if key.end is not None else math.inf) - key.start
        self.estimate = count_snippets(round(span * media.VIDEO_FPS)) if span > 0 else None

    def add_thread(self, q: queue.Queue, items: Iterator[Any], on_end: Callable[[], None] | None = None) -> None:
        self.threads.append(threading.Thread(target=_produce, args=(q, self.stop, items, on_end), daemon=True))

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            if t.ident is not None and t is not threading.current_thread():
                t.join(timeout=10.0)
        if self.source is not None:
            self.source.close()  # a container no reader took


class _PooledVideo(_Opened):
    """A video decoded by a worker process of a :class:`~violence_cli.features.decode_pool.DecodePool`:
    the same queues as a locally decoded one, filled by the pool's receiver thread."""

    def __init__(self, key: _Key, info: MediaInfo, step: int, pool: Any, on_decoded: Callable[[_Opened], None]) -> None:
        super().__init__(key, info, step)
        self.pool, self.on_decoded = pool, on_decoded
        self.video_q = queue.Queue()  # bounded by the worker's shared buffers (three)
        self.audio_q = queue.Queue()
        self.task_id: int | None = None

    def start(self) -> None:
        self.pool.submit(self, self.step, self.info.video_stream, self.info.audio_stream)

    def on_step(self, buffer: torch.Tensor, n: int, staging: Any) -> None:
        if self.stop.is_set():
            staging.release(buffer)
            return
        self.video_q.put(_Step(buffer, n, staging))

    def on_message(self, kind: str, payload: list[Any]) -> None:
        if kind == "warning":
            self.warnings.append(payload[0])
        elif kind == "frames":
            self.count["frames"] = int(payload[0])
            self.video_q.put(_End())
            self.on_decoded(self)
        elif kind == "audio":
            self.audio_q.put(payload[0])
        elif kind == "audio_end":
            self.audio_q.put(_End())
        elif kind in ("failed", "audio_failed"):
            failed = _Failed(payload[0])
            self.audio_q.put(failed)
            if kind == "failed":
                self.video_q.put(failed)

    def close(self) -> None:
        self.stop.set()
        if self.task_id is not None:
            self.pool.forget(self.task_id)
        while True:  # buffers not read go back to their worker
            try:
                item = self.video_q.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Step):
                item.staging.release(item.buffer)


class _Prefetch:
    """The next video: opened and decoding once :meth:`begin` is called (from the current
    video's decode thread, when its frames are done), or when :meth:`take` needs it."""

    def __init__(self, key: _Key) -> None:
        self.key = key
        self._lock = threading.Lock()
        self._opened: _Opened | None = None
        self._error: BaseException | None = None
        self._begun = self._cancelled = False

    def begin(self, fx: FeatureExtractor) -> None:
        with self._lock:
            if self._begun or self._cancelled:
                return
            self._begun = True
            try:
                self._opened = fx._open(self.key)
                self._opened.start()
            except Exception as exc:  # noqa: BLE001 - this video's failure, raised by its own extract
                self._error = exc

    @property
    def begun(self) -> bool:
        return self._begun

    def take(self, fx: FeatureExtractor) -> _Opened:
        self.begin(fx)
        with self._lock:
            if self._error is not None:
                raise self._error
            assert self._opened is not None
            return self._opened

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            opened = self._opened
        if opened is not None:
            opened.close()


class _Rows:
    """Rows appended into one tensor on ``device`` whose capacity doubles when full.

    On CUDA the rows stay on the device (appending does not wait for it) and :meth:`array`
    is the one copy back. Results stay in a few large blocks instead of one small array
    per step: on a heap that keeps freed memory (keep_freed_memory), small long-lived arrays
    scattered among the networks' large temporaries fragment it, and memory grows with the
    video's length.
    """

    def __init__(self, row_shape: tuple[int, ...], capacity: int, device: torch.device | None = None) -> None:
        self.device = device or torch.device("cpu")
        self.data = torch.empty((max(capacity, 1), *row_shape), dtype=torch.float32, device=self.device)
        self.n = 0

    def __len__(self) -> int:
        return self.n

    def extend(self, rows: torch.Tensor) -> None:
        need = self.n + len(rows)
        if need > len(self.data):
            shape = (max(need, 2 * len(self.data)), *self.data.shape[1:])
            bigger = torch.empty(shape, dtype=torch.float32, device=self.device)
            bigger[: self.n] = self.data[: self.n]
            self.data = bigger
        self.data[self.n : need] = rows
        self.n = need

    def array(self) -> np.ndarray:
        """The rows as a float32 array (from the device: one copy)."""
        rows = self.data if self.n == len(self.data) else self.data[: self.n]
        out = rows.cpu().numpy()
        return out if self.device.type != "cpu" or rows is self.data else out.copy()


class _AudioSink:
    """Consumes the audio thread's log-mel blocks and runs VGGish on them.

    ``pump(n)`` takes what is ready without waiting, until n examples are embedded (so
    VGGish keeps in step with I3D and the bounded queue keeps flowing); ``result(T)``
    waits for the rest and returns (T, 128), silence where the audio ends early.
    """

    def __init__(self, extractor: FeatureExtractor, q: queue.Queue | None, capacity: int) -> None:
        self.extractor, self.q = extractor, q
        self.rows = _Rows((AUDIO_DIM,), capacity, extractor.device)
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
            self.rows.extend(self.extractor.audio_device(item))

    def result(self, n: int) -> np.ndarray:
        """(n, 128): the first n embeddings, silence after the end of the audio (one copy back)."""
        self.pump(n, wait=True)
        have = min(n, len(self.rows))
        out = torch.empty((n, AUDIO_DIM), dtype=torch.float32, device=self.rows.device)
        out[:have] = self.rows.data[:have]
        if have < n:
            out[have:] = self.extractor._silence_device()
        return out.cpu().numpy()


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

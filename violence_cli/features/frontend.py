"""The VGGish log-mel front end, and audio examples aligned with the visual snippets.

The numbers follow the AudioSet VGGish recipe (tensorflow/models research/audioset/vggish,
and its PyTorch port torchvggish) so that the published VGGish weights see the inputs they
were trained on:

- mono 16 kHz waveform in [-1, 1];
- frames of 400 samples (25 ms) every 160 samples (10 ms), a *periodic* Hann window,
  a 512-point FFT, magnitudes;
- 64 mel bands between 125 and 7500 Hz on the HTK mel scale ``1127 ln(1 + f/700)``, each
  band a triangle that is linear *in mel* (not in Hz, unlike torchaudio), the DC bin unused;
- ``log(mel + 0.01)``;
- examples of 96 consecutive frames (0.96 s of hops, 0.975 s = 15,600 samples of audio).

:func:`log_mel_examples` cuts non-overlapping examples like the reference
``waveform_to_examples``. :func:`aligned_examples` makes the XD-Violence audio examples
instead: one per visual snippet, the example ending where the snippet ends, computed from
a stream of audio chunks with a bounded buffer.

The spectra are computed in float64 (the reference uses numpy float64; float32 FFTs would
move quiet bands of loud frames by up to ~1e-3 after the log) and returned as float32.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Iterator
from fractions import Fraction

import numpy as np
import torch

from ..protocol import AUDIO_RATE, SNIPPET_FRAMES, VIDEO_FPS

WINDOW_SAMPLES = 400  # samples per STFT frame (25 ms)
HOP_SAMPLES = 160  # samples between frames (10 ms)
FFT_SIZE = 512  # FFT length (next power of two above the window)
MEL_BANDS = 64  # mel bands per frame
MEL_MIN_HZ = 125.0  # lower edge of the lowest band, Hz
MEL_MAX_HZ = 7500.0  # upper edge of the highest band, Hz
LOG_OFFSET = 0.01  # added before the log
EXAMPLE_FRAMES = 96  # frames per example (0.96 s of hops)
EXAMPLE_SAMPLES = WINDOW_SAMPLES + (EXAMPLE_FRAMES - 1) * HOP_SAMPLES  # 15,600 samples (0.975 s)

SAMPLE_RATE = AUDIO_RATE  # Hz, the rate VGGish expects

_MEL_BREAK_HZ = 700.0
_MEL_Q = 1127.0


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale."""
    return _MEL_Q * np.log1p(np.asarray(hz, dtype=np.float64) / _MEL_BREAK_HZ)


@functools.lru_cache(maxsize=4)
def mel_weights(sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The (FFT_SIZE // 2 + 1, MEL_BANDS) float64 matrix mapping magnitudes to mel bands.

    Band ``i`` rises linearly in mel from edge ``i`` to edge ``i + 1`` and falls to edge
    ``i + 2``, where the ``MEL_BANDS + 2`` edges are evenly spaced in mel between
    ``MEL_MIN_HZ`` and ``MEL_MAX_HZ``. The DC bin gets no weight.
    """
    n_bins = FFT_SIZE // 2 + 1
    bin_mel = hz_to_mel(np.linspace(0.0, sample_rate / 2.0, n_bins))[:, None]  # (257, 1)
    edges = np.linspace(hz_to_mel(MEL_MIN_HZ), hz_to_mel(MEL_MAX_HZ), MEL_BANDS + 2)
    left, centre, right = edges[:-2], edges[1:-1], edges[2:]  # (64,) each
    rising = (bin_mel - left) / (centre - left)
    falling = (right - bin_mel) / (right - centre)
    weights = np.clip(np.minimum(rising, falling), 0.0, None)  # (257, 64)
    weights[0, :] = 0.0
    weights.setflags(write=False)
    return weights


@functools.lru_cache(maxsize=1)
def _tensors() -> tuple[torch.Tensor, torch.Tensor]:
    n = torch.arange(WINDOW_SAMPLES, dtype=torch.float64)
    window = 0.5 - 0.5 * torch.cos(2.0 * math.pi * n / WINDOW_SAMPLES)  # periodic Hann
    return window, torch.from_numpy(np.array(mel_weights(SAMPLE_RATE)))


def _log_mel_frames(frames: torch.Tensor) -> torch.Tensor:
    """(..., WINDOW_SAMPLES) float64 frames -> (..., MEL_BANDS) float64 log-mel."""
    window, weights = _tensors()
    magnitude = torch.fft.rfft(frames * window, n=FFT_SIZE).abs()  # (..., 257)
    return torch.log(magnitude @ weights + LOG_OFFSET)


def log_mel_spectrogram(waveform: np.ndarray) -> np.ndarray:
    """(n,) 16 kHz waveform -> (F, MEL_BANDS) float32 log-mel, F = 1 + (n - 400) // 160."""
    x = torch.as_tensor(np.asarray(waveform, dtype=np.float64).reshape(-1))
    if x.numel() < WINDOW_SAMPLES:
        return np.zeros((0, MEL_BANDS), np.float32)
    frames = x.unfold(0, WINDOW_SAMPLES, HOP_SAMPLES)  # (F, 400)
    return _log_mel_frames(frames).to(torch.float32).numpy()


def log_mel_examples(waveform: np.ndarray, sample_rate: int) -> np.ndarray:
    """Waveform -> (N, 96, 64) float32 non-overlapping log-mel examples, like the reference.

    ``waveform`` is (n,) mono or (n, channels) (averaged to mono), nominally in [-1, 1].
    Another rate than 16 kHz is resampled first (:func:`resample`; the reference used
    resampy, which agrees to a few hundredths of a log unit). A trailing part shorter than
    an example is dropped, so fewer than 15,600 samples give N = 0.
    """
    data = np.asarray(waveform, dtype=np.float64)
    if data.ndim == 2:
        data = data.mean(axis=1)
    if sample_rate != SAMPLE_RATE:
        data = resample(data, sample_rate, SAMPLE_RATE).astype(np.float64)
    frames = log_mel_spectrogram(data)  # (F, 64)
    n = len(frames) // EXAMPLE_FRAMES
    return np.ascontiguousarray(frames[: n * EXAMPLE_FRAMES].reshape(n, EXAMPLE_FRAMES, MEL_BANDS))


def examples_at(waveform: np.ndarray, starts: np.ndarray, offset: int = 0) -> np.ndarray:
    """Log-mel examples of the 15,600-sample windows beginning at sample ``starts``.

    ``waveform[i]`` is the sample at absolute index ``offset + i``; ``starts`` are absolute
    indices. Samples outside ``waveform`` count as silence (zeros). Returns (K, 96, 64)
    float32.
    """
    starts = np.asarray(starts, dtype=np.int64).reshape(-1) - offset
    if len(starts) == 0:
        return np.zeros((0, EXAMPLE_FRAMES, MEL_BANDS), np.float32)
    lo = min(int(starts.min()), 0)
    hi = max(int(starts.max()) + EXAMPLE_SAMPLES, len(waveform))
    padded = np.zeros(hi - lo, np.float64)
    padded[-lo : -lo + len(waveform)] = waveform
    x = torch.from_numpy(padded)
    frame_starts = torch.from_numpy(starts - lo)[:, None] + HOP_SAMPLES * torch.arange(EXAMPLE_FRAMES)  # (K, 96)
    index = frame_starts[..., None] + torch.arange(WINDOW_SAMPLES)  # (K, 96, 400)
    return _log_mel_frames(x[index]).to(torch.float32).numpy()


def silence_example() -> np.ndarray:
    """The (96, 64) log-mel example of silence: log(0.01) everywhere."""
    return np.full((EXAMPLE_FRAMES, MEL_BANDS), math.log(LOG_OFFSET), np.float32)


def snippet_end_sample(k: int | np.ndarray) -> int | np.ndarray:
    """Audio sample index (16 kHz) where snippet ``k`` ends: round(16 (k + 1) / 24 s * 16000).

    16 frames at 24 fps last 2/3 s = 10,666.67 samples; integer arithmetic rounds exactly.
    """
    num = (np.asarray(k, dtype=np.int64) + 1) * SNIPPET_FRAMES * SAMPLE_RATE  # end * 24
    out = (2 * num + VIDEO_FPS) // (2 * VIDEO_FPS)  # round half up
    return int(out) if np.ndim(out) == 0 else out


def snippet_window_start(k: int | np.ndarray) -> int | np.ndarray:
    """First sample of snippet ``k``'s audio example (negative near t = 0: zero padded)."""
    return snippet_end_sample(k) - EXAMPLE_SAMPLES


def aligned_examples(
    chunks: Iterable[np.ndarray], n_snippets: int | None = None, max_batch: int = 64
) -> Iterator[np.ndarray]:
    """Yield log-mel examples aligned with the visual snippets, in (K, 96, 64) blocks.

    ``chunks`` are consecutive pieces of the 16 kHz mono waveform starting at t = 0 (as
    :func:`violence_cli.media.iter_audio` yields them). Example ``k`` covers the 0.975 s
    window ending where snippet ``k`` ends (:func:`snippet_end_sample`); audio before t = 0
    and after the end of the stream counts as silence.

    With ``n_snippets`` the examples stop after exactly that many (silence examples fill
    in when the audio ends early). Without it they go on until the last window that
    overlaps the audio. Only the samples still needed are kept: the buffer holds at most
    one chunk plus one window, whatever the duration.
    """
    buffer = np.zeros(0, np.float64)
    offset = 0  # absolute index of buffer[0]
    k = 0  # next snippet to emit
    limit = math.inf if n_snippets is None else n_snippets

    def ready(received: int) -> int:
        # snippets k.. whose windows end inside the received audio
        hi = k
        while hi < limit and hi - k < max_batch and snippet_end_sample(hi) <= received:
            hi += 1
        return hi

    for chunk in chunks:
        chunk = np.asarray(chunk, dtype=np.float64).reshape(-1)
        buffer = np.concatenate([buffer, chunk])
        while (hi := ready(offset + len(buffer))) > k:
            yield examples_at(buffer, snippet_window_start(np.arange(k, hi)), offset)
            k = hi
            keep_from = max(snippet_window_start(k), offset)
            buffer, offset = buffer[keep_from - offset :], keep_from
        if k >= limit:
            return
    end = offset + len(buffer)
    # windows that run past the end of the audio: zero padded
    while k < limit and snippet_window_start(k) < end:
        hi = k
        while hi < limit and hi - k < max_batch and snippet_window_start(hi) < end:
            hi += 1
        yield examples_at(buffer, snippet_window_start(np.arange(k, hi)), offset)
        k = hi
    # windows entirely after the audio: silence, up to the count asked for
    while n_snippets is not None and k < n_snippets:
        n = min(n_snippets - k, max_batch)
        yield np.broadcast_to(silence_example(), (n, EXAMPLE_FRAMES, MEL_BANDS)).copy()
        k += n


def resample(waveform: np.ndarray, orig_rate: int, new_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Resample a mono waveform with FFmpeg's resampler (through PyAV), as decoding does."""
    import av

    x = np.ascontiguousarray(np.asarray(waveform, dtype=np.float32).reshape(1, -1))
    resampler = av.AudioResampler(format="flt", layout="mono", rate=new_rate)
    frame = av.AudioFrame.from_ndarray(x, format="flt", layout="mono")
    frame.sample_rate = orig_rate
    frame.pts = 0
    frame.time_base = Fraction(1, orig_rate)
    out = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    out += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(out) if out else np.zeros(0, np.float32)

"""The MACIL-SD audio-visual network (Yu et al., ACM MM 2022) and its visual-only teacher.

Architecture (the paper's, rewritten here): the I3D visual features and the VGGish audio
features are projected to ``hidden`` dims; ONE pre-norm transformer layer is applied twice
with shared weights, video attending to audio and audio attending to video; a single
``Linear(hidden, 1)`` gives an audio logit and a visual logit per snippet, and the
audio-visual logit (the score the paper evaluates, after a sigmoid) is their sum.

Only the query is layer-normalised before attention; keys and values enter as they are,
exactly as in the published model. Attention goes through
:func:`torch.nn.functional.scaled_dot_product_attention`, so memory grows linearly with the
number of snippets (a 3-hour video is T = 16,200).

The state-dict layout is identical to the published ``AVCE_Model`` / ``Single_Model``
(38 keys for the audio-visual model), including two modules the published code builds but
never calls (``multiheadattn``, ``feedforward``) and an unused ``layer_norm`` inside each
attention block: they are kept so checkpoints move both ways between the two code bases.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .devices import resolve_device
from .protocol import AUDIO_DIM, MACIL_WEIGHTS, RGB_DIM, SNIPPET_FRAMES


@dataclass(frozen=True)
class MacilDims:
    """Sizes of the network; the defaults are the paper's (and the published checkpoint's)."""

    visual_dim: int = RGB_DIM  # I3D RGB feature size
    audio_dim: int = AUDIO_DIM  # VGGish embedding size
    hidden: int = 128
    heads: int = 4
    ffn: int = 128
    dropout: float = 0.1


class MacilOutput(NamedTuple):
    av_logits: Tensor  # (B, T) audio logit + visual logit; sigmoid of it is the paper's score
    audio_logits: Tensor  # (B, T)
    visual_logits: Tensor  # (B, T)
    visual_repr: Tensor  # (B, T, H) video attended to audio
    audio_repr: Tensor  # (B, T, H) audio attended to video


class MultiHeadAttention(nn.Module):
    """Multi-head attention; ``linears`` = query, key, value and output projections.

    ``layer_norm`` is never applied: it exists only so the published state dict loads.
    """

    def __init__(self, heads: int, hidden: int, dropout: float) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden size {hidden} is not divisible by {heads} heads")
        self.heads = heads
        self.linears = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(4))
        self.layer_norm = nn.LayerNorm(hidden)  # unused (kept for the state-dict layout)
        self.dropout = dropout  # on the attention weights, training only

    def forward(self, query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None = None) -> Tensor:
        """``mask``: optional (Tq, Tk) bool, True where a query may attend to a key."""
        b, tq, h = query.shape
        tk = key.shape[1]
        d = h // self.heads
        q_proj, k_proj, v_proj, out_proj = self.linears
        q = q_proj(query).view(b, tq, self.heads, d).transpose(1, 2)  # (B, heads, Tq, d)
        k = k_proj(key).view(b, tk, self.heads, d).transpose(1, 2)  # (B, heads, Tk, d)
        v = v_proj(value).view(b, tk, self.heads, d).transpose(1, 2)  # (B, heads, Tk, d)
        p = self.dropout if self.training else 0.0
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)  # (B, heads, Tq, d)
        x = x.transpose(1, 2).reshape(b, tq, h)  # (B, Tq, H)
        return out_proj(x)


class FeedForward(nn.Module):
    def __init__(self, hidden: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.w_1 = nn.Linear(hidden, ffn)
        self.w_2 = nn.Linear(ffn, hidden)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.w_2(self.dropout(F.relu(self.w_1(x))))


class PreNormResidual(nn.Module):
    """``x + dropout(f(norm(x)))``."""

    def __init__(self, hidden: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, sublayer: Callable[[Tensor], Tensor]) -> Tensor:
        return x + self.dropout(sublayer(self.norm(x)))


class TransformerLayer(nn.Module):
    """Pre-norm attention + feed-forward; only the query side is normalised."""

    def __init__(self, dims: MacilDims) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(dims.heads, dims.hidden, dims.dropout)
        self.feed_forward = FeedForward(dims.hidden, dims.ffn, dims.dropout)
        self.sublayer = nn.ModuleList(PreNormResidual(dims.hidden, dims.dropout) for _ in range(2))

    def forward(self, query: Tensor, context: Tensor, mask: Tensor | None = None) -> Tensor:
        x = self.sublayer[0](query, lambda q: self.self_attn(q, context, context, mask))  # (B, Tq, H)
        return self.sublayer[1](x, self.feed_forward)


class CrossAttention(nn.Module):
    """One layer, used twice: video attends to audio, then audio attends to video."""

    def __init__(self, dims: MacilDims) -> None:
        super().__init__()
        self.layer = TransformerLayer(dims)

    def forward(self, video: Tensor, audio: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.layer(video, audio, mask), self.layer(audio, video, mask)


class SelfAttention(nn.Module):
    def __init__(self, dims: MacilDims) -> None:
        super().__init__()
        self.layer = TransformerLayer(dims)

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x, x)


class SnippetHead(nn.Module):
    """The classifier shared by both modalities (``att_mmil.fc`` in the checkpoint)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.fc = nn.Linear(hidden, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x).squeeze(-1)  # (B, T)


class MacilSD(nn.Module):
    """The audio-visual network: (visual (B,T,Dv), audio (B,T,Da)) -> :class:`MacilOutput`."""

    def __init__(self, dims: MacilDims = MacilDims()) -> None:
        super().__init__()
        self.dims = dims
        self.multiheadattn = MultiHeadAttention(dims.heads, dims.hidden, dims.dropout)  # unused
        self.feedforward = FeedForward(dims.hidden, dims.ffn, dims.dropout)  # unused
        self.fc_v = nn.Linear(dims.visual_dim, dims.hidden)
        self.fc_a = nn.Linear(dims.audio_dim, dims.hidden)
        self.cma = CrossAttention(dims)
        self.att_mmil = SnippetHead(dims.hidden)

    def forward_features(self, visual: Tensor, audio: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(B,T,Dv), (B,T,Da) -> (visual_repr, audio_repr), each (B, T, H).

        ``mask`` (T, T) bool, optional: snippet i attends only to the snippets j where
        ``mask[i, j]`` (both directions of the cross attention); see :func:`window_mask`.
        """
        if visual.shape[:2] != audio.shape[:2]:
            raise ValueError(f"visual {tuple(visual.shape)} and audio {tuple(audio.shape)} differ in (B, T)")
        return self.cma(self.fc_v(visual), self.fc_a(audio), mask)

    def forward(self, visual: Tensor, audio: Tensor, mask: Tensor | None = None) -> MacilOutput:
        v_out, a_out = self.forward_features(visual, audio, mask)  # (B, T, H) each
        audio_logits = self.att_mmil(a_out)  # (B, T)
        visual_logits = self.att_mmil(v_out)  # (B, T)
        return MacilOutput(audio_logits + visual_logits, audio_logits, visual_logits, v_out, a_out)


class VisualOnlyNet(nn.Module):
    """The visual-only teacher of the self-distillation (published ``Single_Model``)."""

    def __init__(self, dims: MacilDims = MacilDims()) -> None:
        super().__init__()
        self.dims = dims
        self.multiheadattn = MultiHeadAttention(dims.heads, dims.hidden, dims.dropout)  # unused
        self.feedforward = FeedForward(dims.hidden, dims.ffn, dims.dropout)  # unused
        self.fc_v = nn.Linear(dims.visual_dim, dims.hidden)
        self.cma = SelfAttention(dims)
        self.fc = nn.Linear(dims.hidden, 1)

    def forward(self, visual: Tensor) -> Tensor:
        return self.fc(self.cma(self.fc_v(visual))).squeeze(-1)  # (B, T) logits


def mil_bag_logits(logits: Tensor, lengths: Tensor) -> Tensor:
    """Multiple-instance pooling: (B,T) logits, (B,) lengths -> (B,) bag logits.

    For each row, the mean of its k = length // 16 + 1 largest logits among the first
    ``length`` entries (padding beyond ``length`` is ignored). No sigmoid is applied.
    Lengths are clamped to [1, T].
    """
    _, t = logits.shape
    lengths = lengths.to(device=logits.device, dtype=torch.long).clamp(1, t)  # (B,)
    positions = torch.arange(t, device=logits.device)  # (T,)
    valid = positions[None, :] < lengths[:, None]  # (B, T)
    masked = logits.masked_fill(~valid, float("-inf"))
    ranked, _ = masked.sort(dim=1, descending=True)  # (B, T)
    k = lengths // SNIPPET_FRAMES + 1  # (B,)  (k <= length always)
    top = positions[None, :] < k[:, None]  # (B, T)
    total = torch.where(top, ranked, torch.zeros_like(ranked)).sum(dim=1)
    return total / k.to(logits.dtype)


@dataclass
class SnippetScores:
    """Per-snippet probabilities, each (T,) float32, averaged over the crops.

    ``audio``/``visual`` are None for a model without those heads (HyperVD, the ensemble)."""

    av: np.ndarray  # sigmoid(audio logit + visual logit): the paper's score
    audio: np.ndarray | None  # sigmoid(audio logit): was violence heard?
    visual: np.ndarray | None  # sigmoid(visual logit): was violence seen?
    parts: dict[str, np.ndarray] | None = None  # an ensemble's members: model name -> their ``av``


def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _batched(
    model: nn.Module, rgb: np.ndarray | Tensor, audio: np.ndarray | Tensor, device: str | torch.device | None
) -> tuple[Tensor, Tensor]:
    """(T, C, Dv) or (T, Dv) rgb and (T, Da) audio -> (C, T, Dv) visual, (C, T, Da) audio on the device."""
    rgb_t = torch.as_tensor(rgb, dtype=torch.float32)
    audio_t = torch.as_tensor(audio, dtype=torch.float32)
    if rgb_t.ndim == 2:
        rgb_t = rgb_t[:, None, :]  # (T, 1, Dv)
    if rgb_t.ndim != 3 or audio_t.ndim != 2 or rgb_t.shape[0] != audio_t.shape[0]:
        raise ValueError(
            f"expected rgb (T, C, D) or (T, D) and audio (T, D) with the same T, "
            f"got {tuple(rgb_t.shape)} and {tuple(audio_t.shape)}"
        )
    dev = _model_device(model) if device is None else resolve_device(device)
    crops = rgb_t.shape[1]
    visual = rgb_t.permute(1, 0, 2).to(dev)  # (C, T, Dv)
    audio_b = audio_t.to(dev)[None].expand(crops, -1, -1)  # (C, T, Da)
    return visual, audio_b


def _probabilities(model: MacilSD, visual: Tensor, audio: Tensor, mask: Tensor | None = None) -> list[Tensor]:
    """[av, audio, visual] (T,) probabilities: sigmoid of each logit, mean over the crops."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            out = model(visual, audio, mask)
            return [torch.sigmoid(x).mean(dim=0) for x in (out.av_logits, out.audio_logits, out.visual_logits)]
    finally:
        model.train(was_training)


def score_snippets(
    model: MacilSD,
    rgb: np.ndarray | Tensor,
    audio: np.ndarray | Tensor,
    device: str | torch.device | None = None,
) -> SnippetScores:
    """Score one video: rgb (T, C, Dv) or (T, Dv), audio (T, Da) -> :class:`SnippetScores`.

    Every crop is paired with the same audio; each score is the mean over crops of the
    sigmoid of the logit (the paper's test protocol). ``device=None`` (default) is the
    model's device.
    Inputs are moved to ``device``; the model must already be there.
    """
    visual, audio_b = _batched(model, rgb, audio, device)
    av, aud, vis = (p.float().cpu().numpy() for p in _probabilities(model, visual, audio_b))
    return SnippetScores(av=av, audio=aud, visual=vis)


def window_mask(n_queries: int, n_keys: int, window: int, device: torch.device | None = None) -> Tensor:
    """(Tq, Tk) bool: query i (snippet ``Tk - Tq + i``) may see snippets j with ``i' - window < j <= i'``.

    The queries are the last ``Tq`` of the ``Tk`` snippets; each sees itself and the
    ``window - 1`` snippets before it, never a later one.
    """
    q = torch.arange(n_keys - n_queries, n_keys, device=device)[:, None]  # (Tq, 1) absolute positions
    k = torch.arange(n_keys, device=device)[None, :]  # (1, Tk)
    return (k <= q) & (k > q - window)


CAUSAL_BLOCK = 256  # snippets scored per forward in score_causal (bounds the mask's memory)


def score_causal(
    model: MacilSD,
    rgb: np.ndarray | Tensor,
    audio: np.ndarray | Tensor,
    window: int | None = None,
    device: str | torch.device | None = None,
    block: int = CAUSAL_BLOCK,
) -> SnippetScores:
    """Score each snippet t with only the snippets ``t - window + 1 .. t`` (the live mode).

    What ``violence-detect watch`` can know when snippet t has just ended: the model sees
    that snippet and the ``window - 1`` before it, nothing later. ``window=None``: every
    snippet up to t (causal, unbounded). Inputs as :func:`score_snippets`; the result is
    exactly ``score_snippets(model, rgb[max(0, t - window + 1): t + 1], audio[...]).av[-1]``
    for every t (to float rounding), computed ``block`` snippets per forward with an
    attention mask instead of T forwards. Memory: O(block x (block + window)).
    """
    if window is not None and window < 1:
        raise ValueError(f"window must be >= 1 snippet, got {window}")
    visual, audio_b = _batched(model, rgb, audio, device)
    t = visual.shape[1]
    span = t if window is None else window
    parts: list[list[Tensor]] = []
    for start in range(0, t, block):
        stop = min(t, start + block)
        first = 0 if window is None else max(0, start - window + 1)  # earliest snippet these queries see
        mask = window_mask(stop - first, stop - first, span, device=visual.device)
        probs = _probabilities(model, visual[:, first:stop], audio_b[:, first:stop], mask)
        parts.append([p[start - first :] for p in probs])
    av, aud, vis = (torch.cat([p[i] for p in parts]).float().cpu().numpy() for i in range(3))
    return SnippetScores(av=av, audio=aud, visual=vis)


def expected_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a model's state dict (what a checkpoint must match)."""
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def load_model(
    checkpoint: str | Path | None = None,
    device: str | torch.device = "cpu",
    *,
    weights_dir: str | Path | None = None,
    download: bool = True,
    dims: MacilDims | None = None,
) -> MacilSD:
    """Build :class:`MacilSD` and load a checkpoint strictly (every key, every shape).

    ``checkpoint`` is a path to a state dict (a DataParallel ``module.`` prefix is fine);
    without it the registry's published MACIL-SD weights are found (``weights_dir``,
    ``$VIOLENCE_DETECT_WEIGHTS``, the cache) or downloaded. Loading never runs code from
    the file (``weights_only=True``). Returns the model in eval mode on ``device``
    (``auto``, ``cpu``, ``cuda``, ``cuda:N`` or a ``torch.device``).
    Raises :class:`~violence_cli.errors.WeightsError` naming the file when it does not fit.
    """
    from .weights import check_state_dict, load_state_dict, resolve_weights

    path = resolve_weights(MACIL_WEIGHTS, checkpoint, weights_dir=weights_dir, download=download)
    model = MacilSD(dims or MacilDims())
    expected_bytes = sum(4 * t.numel() for t in model.state_dict().values())  # float32
    state = load_state_dict(path, map_location="cpu", expected_bytes=expected_bytes)
    check_state_dict(state, expected_shapes(model), path)
    model.load_state_dict(state, strict=True)
    return model.to(resolve_device(device)).eval()


__all__ = [
    "MacilDims",
    "MacilOutput",
    "MacilSD",
    "SnippetScores",
    "VisualOnlyNet",
    "expected_shapes",
    "load_model",
    "mil_bag_logits",
    "score_causal",
    "score_snippets",
    "window_mask",
]

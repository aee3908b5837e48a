"""MACIL-SD training losses: MIL BCE on the bag score and the cross-modal InfoNCE terms.

The contrastive part follows the published ``CMA_MIL.py`` / ``InfoNCE.py``:

- a bag counts as *violent* when its predicted bag score sigmoid(bag logit) is above 0.5
  (the prediction decides, not the label);
- in every bag, k = length // 16 + 1 snippets are picked per modality by that modality's own
  snippet scores, among the first ``length`` snippets;
- violent bags give one "semi-bag" vector per modality: the mean representation of the top-k
  snippets, counted k times (the published code repeats it k times as query rows);
- negatives (all unit-normalised, "unpaired": every query sees all of them):
  *background* = the bottom-k snippet representations of every bag (violent or not),
  *normal* = the top-k snippet representations of the bags predicted normal;
- four terms, temperature 0.1::

      a2v_bgd = InfoNCE(audio_abn,  visual_abn, visual_bgd)
      a2v_nor = InfoNCE(audio_abn,  visual_abn, visual_nor)
      v2a_bgd = InfoNCE(visual_abn, audio_abn,  audio_bgd)
      v2a_nor = InfoNCE(visual_abn, audio_abn,  audio_nor)

- when no bag of the batch is predicted violent, or none normal, all four are 0.

:func:`cross_modal_losses` computes this for the whole batch at once;
:func:`cross_modal_losses_per_item` is the straightforward per-bag version (the executable
specification the tests compare against).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

TEMPERATURE = 0.1  # InfoNCE temperature (published default)


class ContrastiveTerms(NamedTuple):
    a2v_bgd: torch.Tensor  # scalar
    a2v_nor: torch.Tensor
    v2a_bgd: torch.Tensor
    v2a_nor: torch.Tensor
    active: bool  # False when the batch lacked a predicted-violent or predicted-normal bag

    def bgd(self) -> torch.Tensor:
        return self.a2v_bgd + self.v2a_bgd

    def nor(self) -> torch.Tensor:
        return self.a2v_nor + self.v2a_nor


def top_k_count(lengths: torch.Tensor) -> torch.Tensor:
    """k = length // 16 + 1 per bag (the MIL top-k)."""
    return torch.div(lengths, 16, rounding_mode="floor") + 1


def bag_bce(bag_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of sigmoid(bag logit) against the video labels."""
    return F.binary_cross_entropy_with_logits(bag_logits, labels.to(bag_logits.dtype))


def predicted_violent(bag_logits: torch.Tensor) -> torch.Tensor:
    """(B,) bool: sigmoid(bag logit) > 0.5, compared on the probability like the published code."""
    return torch.sigmoid(bag_logits.detach()) > 0.5


# --------------------------------------------------------------------------- vectorised


def _select(
    scores: torch.Tensor, lengths: torch.Tensor, k: torch.Tensor, largest: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (B, K) of each bag's top-k (or bottom-k) valid snippets, K = max k, and the
    (B, K) mask of the first k[b] of them."""
    steps = torch.arange(scores.shape[1], device=scores.device)
    fill = float("-inf") if largest else float("inf")
    masked = scores.detach().masked_fill(steps[None, :] >= lengths[:, None], fill)  # (B, T)
    kmax = int(k.max())
    idx = masked.topk(kmax, dim=1, largest=largest).indices  # (B, K)
    valid = torch.arange(kmax, device=scores.device)[None, :] < k[:, None]  # (B, K)
    return idx, valid


def _gather(reps: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """reps (B, T, H), idx (B, K) -> (B, K, H)."""
    return reps.gather(1, idx[:, :, None].expand(-1, -1, reps.shape[2]))


def _info_nce_rows(
    query: torch.Tensor,  # (B, H) unit vectors
    positive: torch.Tensor,  # (B, H) unit vectors
    negatives: torch.Tensor,  # (N, H) unit vectors
    neg_mask: torch.Tensor,  # (N,) bool
    weights: torch.Tensor,  # (B,) rows each query stands for (0 = unused)
    temperature: float,
) -> torch.Tensor:
    pos = (query * positive).sum(dim=1, keepdim=True) / temperature  # (B, 1)
    neg = (query @ negatives.T) / temperature  # (B, N)
    neg = neg.masked_fill(~neg_mask[None, :], float("-inf"))
    loss = torch.logsumexp(torch.cat([pos, neg], dim=1), dim=1) - pos[:, 0]  # (B,)
    return (loss * weights).sum() / weights.sum()


def cross_modal_losses(
    bag_logits: torch.Tensor,  # (B,)
    audio_logits: torch.Tensor,  # (B, T) per-snippet audio logits
    visual_logits: torch.Tensor,  # (B, T)
    lengths: torch.Tensor,  # (B,) long
    audio_reps: torch.Tensor,  # (B, T, H) picked by the audio scores
    visual_reps: torch.Tensor,  # (B, T, H) picked by the visual scores
    temperature: float = TEMPERATURE,
) -> ContrastiveTerms:
    """The four cross-modal InfoNCE terms for a batch, without a loop over bags."""
    violent = predicted_violent(bag_logits)  # (B,)
    if not bool(violent.any()) or bool(violent.all()):
        zero = bag_logits.new_zeros(())
        return ContrastiveTerms(zero, zero, zero, zero, False)
    k = top_k_count(lengths)  # (B,)
    weights = torch.where(violent, k, torch.zeros_like(k)).to(audio_reps.dtype)  # query rows per bag

    idx, valid = _select(audio_logits, lengths, k, largest=True)
    a_top = _gather(audio_reps, idx)  # (B, K, H)
    audio_abn = F.normalize((a_top * valid[..., None]).sum(1) / k[:, None], dim=-1)  # (B, H)
    audio_nor = F.normalize(a_top, dim=-1).flatten(0, 1)  # (B*K, H)
    audio_nor_mask = (valid & ~violent[:, None]).flatten()

    idx, valid = _select(visual_logits, lengths, k, largest=True)
    v_top = _gather(visual_reps, idx)
    visual_abn = F.normalize((v_top * valid[..., None]).sum(1) / k[:, None], dim=-1)
    visual_nor = F.normalize(v_top, dim=-1).flatten(0, 1)
    visual_nor_mask = (valid & ~violent[:, None]).flatten()

    idx, valid = _select(audio_logits, lengths, k, largest=False)
    audio_bgd = F.normalize(_gather(audio_reps, idx), dim=-1).flatten(0, 1)
    audio_bgd_mask = valid.flatten()
    idx, valid = _select(visual_logits, lengths, k, largest=False)
    visual_bgd = F.normalize(_gather(visual_reps, idx), dim=-1).flatten(0, 1)
    visual_bgd_mask = valid.flatten()

    t = temperature
    return ContrastiveTerms(
        a2v_bgd=_info_nce_rows(audio_abn, visual_abn, visual_bgd, visual_bgd_mask, weights, t),
        a2v_nor=_info_nce_rows(audio_abn, visual_abn, visual_nor, visual_nor_mask, weights, t),
        v2a_bgd=_info_nce_rows(visual_abn, audio_abn, audio_bgd, audio_bgd_mask, weights, t),
        v2a_nor=_info_nce_rows(visual_abn, audio_abn, audio_nor, audio_nor_mask, weights, t),
        active=True,
    )


# --------------------------------------------------------------------------- per item


def info_nce(
    query: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor, temperature: float = TEMPERATURE
) -> torch.Tensor:
    """Mean InfoNCE of rows ``query[i]`` vs ``positive[i]`` against every row of ``negatives``."""
    query, positive, negatives = (F.normalize(x, dim=-1) for x in (query, positive, negatives))
    pos = (query * positive).sum(dim=1, keepdim=True)  # (N, 1)
    logits = torch.cat([pos, query @ negatives.T], dim=1) / temperature  # (N, 1 + M)
    target = torch.zeros(len(query), dtype=torch.long, device=query.device)
    return F.cross_entropy(logits, target)


def cross_modal_losses_per_item(
    bag_logits: torch.Tensor,
    audio_logits: torch.Tensor,
    visual_logits: torch.Tensor,
    lengths: torch.Tensor,
    audio_reps: torch.Tensor,
    visual_reps: torch.Tensor,
    temperature: float = TEMPERATURE,
) -> ContrastiveTerms:
    """Same as :func:`cross_modal_losses`, one bag at a time with explicit row lists."""
    parts: dict[str, list[torch.Tensor]] = {
        n: [] for n in ("audio_abn", "visual_abn", "audio_bgd", "visual_bgd", "audio_nor", "visual_nor")
    }
    violent = predicted_violent(bag_logits)
    for b in range(bag_logits.shape[0]):
        n = int(lengths[b])
        k = n // 16 + 1
        a_scores, v_scores = audio_logits[b, :n].detach(), visual_logits[b, :n].detach()
        a_reps, v_reps = audio_reps[b, :n], visual_reps[b, :n]
        parts["audio_bgd"].append(a_reps[a_scores.topk(k, largest=False).indices])
        parts["visual_bgd"].append(v_reps[v_scores.topk(k, largest=False).indices])
        a_top = a_reps[a_scores.topk(k).indices]  # (k, H)
        v_top = v_reps[v_scores.topk(k).indices]
        if violent[b]:
            parts["audio_abn"].append(a_top.mean(0, keepdim=True).expand(k, -1))
            parts["visual_abn"].append(v_top.mean(0, keepdim=True).expand(k, -1))
        else:
            parts["audio_nor"].append(a_top)
            parts["visual_nor"].append(v_top)
    if not parts["audio_abn"] or not parts["audio_nor"]:
        zero = bag_logits.new_zeros(())
        return ContrastiveTerms(zero, zero, zero, zero, False)
    r = {name: torch.cat(rows) for name, rows in parts.items()}
    t = temperature
    return ContrastiveTerms(
        a2v_bgd=info_nce(r["audio_abn"], r["visual_abn"], r["visual_bgd"], t),
        a2v_nor=info_nce(r["audio_abn"], r["visual_abn"], r["visual_nor"], t),
        v2a_bgd=info_nce(r["visual_abn"], r["audio_abn"], r["audio_bgd"], t),
        v2a_nor=info_nce(r["visual_abn"], r["audio_abn"], r["audio_nor"], t),
        active=True,
    )


__all__ = [
    "TEMPERATURE",
    "ContrastiveTerms",
    "bag_bce",
    "cross_modal_losses",
    "cross_modal_losses_per_item",
    "info_nce",
    "predicted_violent",
    "top_k_count",
]

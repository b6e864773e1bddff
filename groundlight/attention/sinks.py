"""Visual sink tokens and the Visual Non-Sink Ratio (Kang et al. 2025, "See What You Are Told").

A visual token is a sink when its RMS-normalised hidden state (no learned weight)
exceeds ``tau`` in magnitude on any of the LLM's sink dimensions (supplement Eq. 9).
Sink dimensions are a property of the language model: LLaMA-2-7B's are 2533 and
1415; other models are calibrated with ``groundlight analyze sink-dims``, which
looks for dimensions with massive activations (:func:`massive_dimensions`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

DEFAULT_TAU = 20.0


def rms_normalise(hidden: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``h / sqrt(mean(h²) + eps)`` over the last dimension, without a learned weight."""
    hidden = hidden.float()
    return hidden * torch.rsqrt(hidden.pow(2).mean(dim=-1, keepdim=True) + eps)


def sink_tokens(hidden: torch.Tensor, visual_mask: torch.Tensor, sink_dims: Sequence[int],
                tau: float = DEFAULT_TAU) -> torch.Tensor:
    """``(B, L)`` bool: visual tokens whose normalised state exceeds ``tau`` on a sink dimension.

    Args:
        hidden: ``(B, L, D)`` input hidden state of the probed layer.
        visual_mask: ``(B, L)`` visual positions.
        sink_dims: the model's sink dimensions; empty means no token is a sink.
        tau: threshold on ``|RMSNorm(h)|``.
    """
    if not sink_dims:
        return torch.zeros_like(visual_mask, dtype=torch.bool)
    if max(sink_dims) >= hidden.shape[-1]:
        raise ValueError(f"sink dimension {max(sink_dims)} is outside the hidden size {hidden.shape[-1]}")
    values = rms_normalise(hidden)[..., list(sink_dims)].abs()
    return (values > tau).any(dim=-1) & visual_mask


def visual_mass(rows: torch.Tensor, visual_mask: torch.Tensor) -> torch.Tensor:
    """``(B, H)`` attention each head's row puts on visual tokens."""
    return (rows * visual_mask[:, None, :].to(rows.dtype)).sum(dim=-1)


def non_sink_ratio(rows: torch.Tensor, visual_mask: torch.Tensor, sinks: torch.Tensor) -> torch.Tensor:
    """Visual Non-Sink Ratio per head (supplement Eq. 10): non-sink visual mass / visual mass.

    ``0`` for a head with no visual mass, so such heads rank last.
    """
    total = visual_mass(rows, visual_mask)
    non_sink = visual_mass(rows, visual_mask & ~sinks)
    return torch.where(total > 0, non_sink / total.clamp_min(torch.finfo(total.dtype).tiny), torch.zeros_like(total))


def top_heads(score: torch.Tensor, k: int, tie_break: torch.Tensor | None = None) -> torch.Tensor:
    """``(B, k)`` indices of the highest-scoring heads per row, best first.

    Equal scores (e.g. every ratio 1 when a model has no sinks) are ordered by ``tie_break``.
    """
    if not 0 < k <= score.shape[-1]:
        raise ValueError(f"top-k must be in 1..{score.shape[-1]} heads, got {k}")
    order = torch.arange(score.shape[-1], device=score.device).expand_as(score)
    if tie_break is not None:
        order = torch.argsort(tie_break, dim=-1, descending=True, stable=True)
    ranked = torch.argsort(score.gather(-1, order), dim=-1, descending=True, stable=True)
    return order.gather(-1, ranked)[..., :k]


def massive_dimensions(hidden: torch.Tensor, mask: torch.Tensor, tau: float = DEFAULT_TAU,
                       top: int = 8) -> list[dict[str, float]]:
    """Dimensions with massive activations, the candidates for sink dimensions.

    Args:
        hidden: ``(N, D)`` hidden states of many tokens (one layer).
        mask: ``(N,)`` tokens to consider (e.g. visual tokens).
        tau: the sink threshold; ``tokens_over_tau`` counts tokens above it.
        top: how many dimensions to report.

    Returns:
        Up to ``top`` dimensions by peak ``|RMSNorm(h)|``, each with its peak, its
        median over tokens and the fraction of tokens above ``tau``.
    """
    values = rms_normalise(hidden[mask]).abs()
    if values.numel() == 0:
        return []
    peak = values.max(dim=0).values
    order = torch.argsort(peak, descending=True)[:top]
    over = (values > tau).float().mean(dim=0)
    median = values.median(dim=0).values
    return [{"dim": int(d), "peak": round(float(peak[d]), 3), "median": round(float(median[d]), 4),
             "fraction_over_tau": round(float(over[d]), 4)} for d in order]

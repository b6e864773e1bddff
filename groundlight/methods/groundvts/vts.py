"""The Visual Token Sampling module of GroundVTS (paper Sec. 3.3, Eq. 2-7).

Given the LLM input embeddings of a batch (visual features already projected into the
visual slots), the visual mask and the query mask, it scores each visual token against
the pooled query, keeps ``K = ceil(rho * N_v)`` of them and re-weights the kept ones.
The backbone then runs the LLM on the kept tokens only (``forward_kept``).

Selection strategies (the paper's Table 5 at a matched budget):

* ``token``: Eq. 2-7, one score per visual token.
* ``frame``: mean-pool each temporal token group, score the groups, keep the top groups'
  tokens (``K`` counts groups).
* ``random``: a uniformly random ``K`` tokens, equal weights.

``selection: paper`` is Eq. 4-6: Gumbel noise on ``log w``, a hard top-K in the forward
pass and the relaxed softmax ``z`` in the backward pass (straight-through). At eval the
noise is off. ``selection: released`` is what the public code does: a hard top-K on ``w``
with no noise and no straight-through term (``w`` still gets gradients through Eq. 7).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from groundlight.methods.groundvts.rows import RowEdit
from groundlight.ops import mask_columns

log = logging.getLogger(__name__)


@dataclass
class VTSConfig:
    """Options of the VTS module.

    Attributes:
        keep_ratio: rho in (0, 1]; ``K = ceil(rho * N_v)`` (paper: 0.5).
        hidden_size: D_r of W_v, W_q (paper: 512 for Qwen, 128 for InternVL).
        temperature: tau of Eq. 3.
        gumbel_temperature: tau_g of Eq. 4.
        weight_temperature: tau' of Eq. 7.
        selection: ``paper`` (Gumbel + STE) or ``released`` (hard top-K, no noise, no STE).
        strategy: ``token`` | ``frame`` | ``random`` (Table 5 baselines at the same budget).
        query_pooling: ``query`` pools the user query's tokens only; ``released`` pools every
            non-visual token as the public code does, which includes the answer tokens during
            teacher-forced training and so leaks the answer into the scores.
        rescale: ``none`` is Eq. 7 as written (kept weights sum to 1, tokens shrink by ~1/K);
            ``K`` multiplies the weights by K so kept tokens keep their scale on average.
        mlp: ``residual`` (x + MLP(x), output layer zero-initialised: identity at start, so a
            pretrained LLM is undisturbed before warm-up), ``plain`` (MLP(x), as released), ``none``.
        min_keep: a video with at most this many visual tokens keeps all of them (logged).
    """

    keep_ratio: float = 0.5
    hidden_size: int = 512
    temperature: float = 1.0
    gumbel_temperature: float = 1.0
    weight_temperature: float = 1.0
    selection: Literal["paper", "released"] = "paper"
    strategy: Literal["token", "frame", "random"] = "token"
    query_pooling: Literal["query", "released"] = "query"
    rescale: Literal["none", "K"] = "K"
    mlp: Literal["residual", "plain", "none"] = "residual"
    min_keep: int = 1

    def __post_init__(self) -> None:
        if not 0 < self.keep_ratio <= 1:
            raise ValueError(f"vts.keep_ratio (rho) must be in (0, 1], got {self.keep_ratio}")
        for name, value, allowed in (
            ("selection", self.selection, ("paper", "released")), ("strategy", self.strategy, ("token", "frame", "random")),
            ("query_pooling", self.query_pooling, ("query", "released")), ("rescale", self.rescale, ("none", "K")),
            ("mlp", self.mlp, ("residual", "plain", "none")),
        ):
            if value not in allowed:
                raise ValueError(f"vts.{name} must be one of {allowed}, got {value!r}")
        if min(self.temperature, self.gumbel_temperature, self.weight_temperature) <= 0:
            raise ValueError("vts temperatures must be positive")


@dataclass
class VTSOutput:
    """What the VTS hands the backbone, plus what analysis needs.

    Attributes:
        embeds: ``(B, L, D)`` input embeddings, kept visual tokens re-weighted (dropped ones untouched: never read).
        keep: ``(B, L)`` bool, true on every non-visual position and on kept visual tokens.
        relevance: ``(B, L)`` w of Eq. 3 on visual positions (0 elsewhere).
        kept_fraction: kept visual tokens / visual tokens over the batch.
    """

    embeds: torch.Tensor
    keep: torch.Tensor
    relevance: torch.Tensor
    kept_fraction: torch.Tensor


def to_tokens(values: torch.Tensor, unit: torch.Tensor | None) -> torch.Tensor:
    """Per-unit values ``(B, U)`` → per-token ``(B, N)``; ``unit=None`` means units are tokens."""
    return values if unit is None else values.gather(1, unit)


def group_units(frame_index: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``(B, N)`` unit id per visual token: consecutive tokens showing the same frame share a unit."""
    change = torch.zeros_like(frame_index, dtype=torch.long)
    change[:, 1:] = (frame_index[:, 1:] != frame_index[:, :-1]).long()
    return (change.cumsum(1)).masked_fill(~valid, 0)


def top_k_mask(scores: torch.Tensor, valid: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``(B, N)`` bool: the ``k[b]`` highest valid scores of each row."""
    width = int(k.max())
    # one row (the usual batch of one long video) needs the top set, not its order
    top = scores.masked_fill(~valid, float("-inf")).topk(width, dim=1, sorted=k.numel() > 1).indices
    within = torch.arange(width, device=k.device).unsqueeze(0) < k.unsqueeze(1)
    return torch.zeros_like(valid).scatter_(1, top, within) & valid


def sample_gumbel(like: torch.Tensor) -> torch.Tensor:
    """Standard Gumbel noise shaped like ``like``: ``-log E`` with ``E ~ Exp(1)``; E clamped off 0 (no infinite noise)."""
    return torch.empty_like(like).exponential_().clamp_(min=torch.finfo(like.dtype).tiny).log_().neg_()


def straight_through_top_k(log_w: torch.Tensor, valid: torch.Tensor, k: torch.Tensor, tau_g: float,
                           noise: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 4-6: ``z~ = z_hard + z - stopgrad(z)`` with ``z = softmax((log w + g) / tau_g)``.

    The hard top-K is taken on the same perturbed scores as ``z`` (Gumbel top-K
    sampling); ``noise=None`` (eval) makes it the deterministic top-K of ``w``.
    Returns ``(z_tilde, z_hard)``.
    """
    perturbed = log_w if noise is None else log_w + noise
    perturbed = perturbed.masked_fill(~valid, float("-inf"))
    z = torch.softmax(perturbed / tau_g, dim=1)
    hard = top_k_mask(perturbed, valid, k)
    return hard.to(z.dtype) + z - z.detach(), hard


def kept_weights(w: torch.Tensor, z_tilde: torch.Tensor, tau_prime: float) -> torch.Tensor:
    """Eq. 7: ``w^_i = exp(w_i / tau') z~_i / sum_j exp(w_j / tau') z~_j``."""
    numerator = torch.exp(w / tau_prime) * z_tilde
    return numerator / numerator.sum(1, keepdim=True).clamp(min=1e-12)


class VisualTokenSampler(nn.Module):
    """W_v, W_q (Eq. 2), the relevance softmax (Eq. 3), differentiable top-K (Eq. 4-6), Eq. 7 and the MLP."""

    def __init__(self, embedding_dim: int, config: VTSConfig) -> None:
        super().__init__()
        self.config = config
        self.visual_proj = nn.Linear(embedding_dim, config.hidden_size, bias=False)
        self.query_proj = nn.Linear(embedding_dim, config.hidden_size, bias=False)
        self.mlp = None
        if config.mlp != "none":
            self.mlp = nn.Sequential(nn.Linear(embedding_dim, embedding_dim), nn.ReLU(), nn.Linear(embedding_dim, embedding_dim))
            if config.mlp == "residual":
                nn.init.zeros_(self.mlp[2].weight), nn.init.zeros_(self.mlp[2].bias)

    def pooled_mask(self, query_mask: torch.Tensor, visual: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The tokens Pool(Q) of Eq. 2 averages: the query's (default) or every text token (``released``)."""
        mask = query_mask if self.config.query_pooling == "query" else ~visual & attention_mask.bool()
        counts = mask.sum(1)
        if bool((counts == 0).any()):
            rows = (counts == 0).nonzero().flatten().tolist()
            raise ValueError(f"batch rows {rows} have no query text tokens: the prompt must contain the query "
                             f"(collate marks it as `query_mask`); got an empty or missing query")
        return mask

    def budget(self, units: torch.Tensor) -> torch.Tensor:
        """K per row: ``ceil(rho * units)``, all of a too-short video (logged)."""
        counts = units.tolist()
        short = sum(count <= self.config.min_keep for count in counts)
        if self.config.keep_ratio < 1 and short:
            log.info("VTS: %d video(s) have <= %d visual units; keeping all of them", short, self.config.min_keep)
        k = [count if count <= self.config.min_keep else min(max(math.ceil(count * self.config.keep_ratio), 1), count)
             for count in counts]
        return torch.tensor(k, device=units.device)

    def forward(self, embeds: torch.Tensor, visual: torch.Tensor, query_mask: torch.Tensor,
                attention_mask: torch.Tensor, frame_index: torch.Tensor) -> VTSOutput:
        index, valid = mask_columns(visual, min_width=1)
        pooled, pooled_valid = mask_columns(self.pooled_mask(query_mask, visual, attention_mask), min_width=1)
        rows = RowEdit(embeds)
        tokens, query_rows = rows.take(index, pooled)
        query_rows = query_rows * pooled_valid.unsqueeze(-1).to(query_rows.dtype)
        query = query_rows.sum(1) / pooled_valid.sum(1, keepdim=True).to(query_rows.dtype)  # Pool(Q): the mean
        unit, unit_valid, unit_features = self._units(tokens, valid, frame_index, index)
        # (V W_v^T)(W_q q) computed as V (W_v^T W_q q): the same scores without the (N, D_r) projection
        direction = self.query_proj(query) @ self.visual_proj.weight  # (B, D)
        scores = torch.bmm(unit_features, direction.unsqueeze(-1).to(unit_features.dtype)).squeeze(-1)
        log_w = torch.log_softmax((scores / self.config.temperature).masked_fill(~unit_valid, float("-inf")), dim=1)
        w = log_w.exp()
        z_tilde = self._select(log_w, unit_valid)
        weights = to_tokens(kept_weights(w, z_tilde, self.config.weight_temperature), unit)
        kept = (to_tokens(z_tilde.detach(), unit) > 0.5) & valid
        weights = self._token_weights(weights, kept)
        out = self._reweight(rows, tokens, weights, kept)
        keep = (~visual).scatter(1, index, kept | ~valid)
        relevance = torch.zeros_like(visual, dtype=w.dtype).scatter(1, index, torch.where(valid, to_tokens(w, unit), 0))
        kept_fraction = kept.sum() / visual.sum().clamp(min=1)
        return VTSOutput(out, keep, relevance.detach(), kept_fraction.detach())

    def _reweight(self, rows: RowEdit, tokens: torch.Tensor, weights: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
        """Eq. 7's ``w^_i MLP(v_i)`` written over the kept tokens (the MLP runs on those only).

        ``tokens`` are the visual rows ``rows`` read. Dropped tokens keep their embeddings: the
        backbone removes them (``gather``) or masks them out of attention (``mask``), so nothing reads them.
        """
        slots = kept.reshape(-1).nonzero().squeeze(1)
        chosen = rows.subset(tokens, slots)
        updated = weights.reshape(-1, 1).index_select(0, slots) * self._mlp(chosen)
        return rows.splice(updated)

    def _units(self, tokens: torch.Tensor, valid: torch.Tensor, frame_index: torch.Tensor, index: torch.Tensor):
        """Scoring units: tokens (``unit=None``), or temporal groups mean-pooled for ``strategy: frame``."""
        if self.config.strategy != "frame":
            return None, valid, tokens
        unit = group_units(frame_index.gather(1, index), valid)
        count = int(unit.max()) + 1
        sums = tokens.new_zeros(tokens.shape[0], count, tokens.shape[-1])
        sums = sums.scatter_add(1, unit.unsqueeze(-1).expand_as(tokens), tokens * valid.unsqueeze(-1).to(tokens.dtype))
        sizes = torch.zeros(tokens.shape[0], count, device=tokens.device).scatter_add(1, unit, valid.float())
        unit_valid = sizes > 0
        return unit, unit_valid, sums / sizes.clamp(min=1).unsqueeze(-1).to(tokens.dtype)

    def _select(self, log_w: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """z~ over units (forward: the hard top-K mask).

        Ranks on ``log w`` (``log_softmax`` of the scores), not on ``w``: with a sharp relevance
        softmax most ``w`` underflow to 0 and would tie, leaving all but the top few kept
        tokens to index order instead of relevance.
        """
        k = self.budget(valid.sum(1))
        if self.config.strategy == "random":
            return top_k_mask(torch.rand_like(log_w), valid, k).to(log_w.dtype)
        if self.config.selection == "released":
            return top_k_mask(log_w, valid, k).to(log_w.dtype)
        noise = sample_gumbel(log_w) if self.training else None
        z_tilde, _ = straight_through_top_k(log_w.masked_fill(~valid, 0.0), valid, k, self.config.gumbel_temperature, noise)
        return z_tilde

    def _token_weights(self, weights: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
        """Per-token weights: equal for ``random``; frame units share their weight among their tokens; rescale."""
        count = kept.sum(1, keepdim=True).clamp(min=1).to(weights.dtype)
        if self.config.strategy == "random":
            weights = kept.to(weights.dtype) / count
        elif self.config.strategy == "frame":
            weights = weights * kept.to(weights.dtype)
            weights = weights / weights.sum(1, keepdim=True).clamp(min=1e-12)
        return weights * count if self.config.rescale == "K" else weights

    def _mlp(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.mlp is None:
            return tokens
        return tokens + self.mlp(tokens) if self.config.mlp == "residual" else self.mlp(tokens)


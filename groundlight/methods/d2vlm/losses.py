"""D²VLM's losses and its grounding probability, as pure functions of tensors (paper Sec. 3; supplement).

Shapes: ``K`` evidence tokens (one per event), ``T`` frames, ``D`` feature width. Frame masks mark
real frames (videos in a batch have different lengths); every mean runs over real frames only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def evidence_logits(evidence: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """``sim_t = evi · frm_t / √d`` before the sigmoid: ``(K, D), (K or 1, T, D) → (K, T)``."""
    return torch.einsum("kd,ktd->kt", evidence, frames.expand(evidence.shape[0], -1, -1)) / math.sqrt(evidence.shape[-1])


def span_targets(spans: Sequence[tuple[int, int]], frames: int, soft: bool = False) -> torch.Tensor:
    """Per event, its target over frames: 1 inside ``[s, e]`` (frame indices, inclusive), else 0, or with
    ``soft`` the released code's ``2^-distance`` to the span (1 inside, 0.5 one frame away, ...)."""
    index = torch.arange(frames, dtype=torch.float32)
    rows = []
    for start, end in spans:
        distance = (start - index).clamp(min=0) + (index - end).clamp(min=0)
        rows.append(torch.pow(2.0, -distance) if soft else (distance == 0).float())
    return torch.stack(rows) if rows else torch.zeros(0, frames)


def grounding_loss(logits: torch.Tensor, targets: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
    """``L_gnd = 1/T Σ_t BCE(y_t, sim_t)`` per event, averaged over events (real frames only)."""
    bce = F.binary_cross_entropy_with_logits(logits.float(), targets.float(), reduction="none") * frame_mask
    return (bce.sum(-1) / frame_mask.sum(-1).clamp(min=1)).mean()


def evidence_consistency(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """``L_cons = 1/K Σ_k |F_k^S1 − F_k^S2|``: the mean absolute difference between the two stages'
    features of each event's ``<evi>`` (elementwise mean, as an L1 loss)."""
    return F.l1_loss(first.float(), second.float())


def grounding_log_prob(logits: torch.Tensor, inside: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
    """``log p_g([s_k, e_k]) = Σ_t log(sim_t)`` inside the span, ``log(1 − sim_t)`` outside: ``(K,)``."""
    per_frame = torch.where(inside.bool(), F.logsigmoid(logits.float()), F.logsigmoid(-logits.float()))
    return (per_frame * frame_mask).sum(-1)


def fpo_loss(chosen: torch.Tensor, rejected: torch.Tensor, reference_chosen: torch.Tensor | None = None,
             reference_rejected: torch.Tensor | None = None, beta: float = 0.1) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Sigmoid DPO on factorized log-probabilities: ``−log σ(β[(π_c − ref_c) − (π_r − ref_r)])``, mean over pairs.

    ``log π(R)`` = Σ text-token log-probs + Σ_k ``log p_g``, whichever factors the caller summed. Without a
    reference (the released code: "we ignore the reference model") both reference terms are 0.
    """
    chosen_margin = chosen - (reference_chosen if reference_chosen is not None else 0.0)
    rejected_margin = rejected - (reference_rejected if reference_rejected is not None else 0.0)
    logits = beta * (chosen_margin - rejected_margin)
    loss = -F.logsigmoid(logits).mean()
    return loss, {"reward_margin": logits.detach().mean() / beta, "reward_accuracy": (logits > 0).float().mean().detach()}


def salient_span(probabilities: torch.Tensor | np.ndarray, ratio: float = 0.6) -> tuple[int, int]:
    """Inference: frames with ``p ≥ ratio · max p`` are salient; of their contiguous runs the one with the
    largest total probability wins (ties: the earlier). Returns inclusive frame indices.

    Takes a tensor or a host array. One host transfer, then a plain loop: at the tens of frames a video has, this
    is several times faster than tensor ops (their per-call overhead dominates; ``make bench`` measures the hook it
    runs in).
    """
    if isinstance(probabilities, torch.Tensor):
        probabilities = probabilities.detach()
    values = probabilities.tolist()  # Python floats: doubles, whatever the array's dtype
    threshold = ratio * max(values)
    best, best_mass, start, mass = (0, 0), -1.0, None, 0.0
    for index, value in enumerate([*values, None]):
        if value is not None and value >= threshold:
            start, mass = (index, 0.0) if start is None else (start, mass)
            mass += value
        elif start is not None:
            if mass > best_mass:
                best, best_mass = (start, index - 1), mass
            start = None
    return best

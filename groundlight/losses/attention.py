"""Attention losses of self-consistency training (Rai & Kovashka 2026, Eqs. 3-5).

Inputs are attention rows of matched head pairs, ``(N, L)`` over all keys, with the
``(N, L)`` visual mask of their sequence. Each row is renormalised over its visual
tokens. Rows that cannot give a distribution (no visual mass, all visual mass on sink
tokens, non-finite values) are excluded by the caller's ``valid`` mask, counted in the
diagnostics, and replaced by a harmless uniform row so that nothing non-finite reaches
the loss or its gradient.
"""

from __future__ import annotations

from typing import Literal

import torch

StopGradient = Literal["verification", "generation", "none"]
EPS = 1e-12


def visual_distribution(rows: torch.Tensor, visual_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows renormalised over visual tokens (zero elsewhere) and their visual mass ``(N,)``."""
    masked = rows.float() * visual_mask.float()
    mass = masked.sum(dim=-1)
    return masked / mass.clamp_min(EPS)[:, None], mass


def head_validity(rows: torch.Tensor, visual_mask: torch.Tensor, sinks: torch.Tensor | None = None,
                  min_mass: float = 1e-8) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``(N,)`` rows usable as attention distributions, and counts of each reason to drop one.

    Args:
        rows: ``(N, L)`` attention rows.
        visual_mask: ``(N, L)`` visual positions.
        sinks: ``(N, L)`` visual sink positions, or ``None``.
        min_mass: visual (or non-sink visual) mass below which a head is dropped.
    """
    finite = torch.isfinite(rows).all(dim=-1)
    clean = torch.where(finite[:, None], rows.float(), torch.zeros_like(rows, dtype=torch.float))
    mass = (clean * visual_mask.float()).sum(-1)
    has_visual = mass > min_mass
    not_all_sink = torch.ones_like(finite)
    if sinks is not None:
        not_all_sink = (clean * (visual_mask & ~sinks).float()).sum(-1) > min_mass
    valid = finite & has_visual & not_all_sink
    counts = {
        "heads_nonfinite": (~finite).sum(),
        "heads_no_visual": (finite & ~has_visual).sum(),
        "heads_all_sink": (finite & has_visual & ~not_all_sink).sum(),
    }
    return valid, counts


def _safe(rows: torch.Tensor, visual_mask: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Invalid rows → uniform over their visual tokens, so they stay finite; a row without
    visual tokens counts every token as visual (it is invalid, so it never weighs in)."""
    mask = visual_mask | ~visual_mask.any(-1, keepdim=True)
    return torch.where(valid[:, None], rows.float().nan_to_num(0.0), mask.float()), mask


def attention_kl(target: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
    """``(N,)`` ``KL(target ‖ predicted)``; zero-probability target tokens contribute nothing."""
    return (torch.xlogy(target, target) - target * predicted.clamp_min(EPS).log()).sum(dim=-1)


def consistency_loss(
    generation: torch.Tensor,
    verification: torch.Tensor,
    visual_mask: torch.Tensor,
    valid: torch.Tensor,
    stop_gradient: StopGradient = "verification",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L_cons (Eq. 4): mean over valid matched pairs of ``KL(sg(A_ver) ‖ A_gen)`` over visual tokens.

    Args:
        generation / verification: ``(N, L)`` rows of the matched pairs.
        visual_mask: ``(N, L)`` visual positions (the same video in both pathways).
        valid: ``(N,)`` pairs whose two rows are both usable.
        stop_gradient: ``verification`` (paper): ``KL(sg(A_ver) ‖ A_gen)``; ``generation``
            (supplement Eq. 12): ``KL(sg(A_gen) ‖ A_ver)``; ``none``: ``KL(A_ver ‖ A_gen)``
            with gradients into both.

    Returns:
        The loss (0 when no pair is valid) and ``{"cons_pairs": valid count}``.
    """
    generation, mask = _safe(generation, visual_mask, valid)
    verification, _ = _safe(verification, visual_mask, valid)
    gen, _ = visual_distribution(generation, mask)
    ver, _ = visual_distribution(verification, mask)
    if stop_gradient == "verification":
        kl = attention_kl(ver.detach(), gen)
    elif stop_gradient == "generation":
        kl = attention_kl(gen.detach(), ver)
    elif stop_gradient == "none":
        kl = attention_kl(ver, gen)
    else:
        raise ValueError(f"stop_gradient must be verification, generation or none, got {stop_gradient!r}")
    count = valid.sum()
    loss = (kl * valid.float()).sum() / count.clamp_min(1)
    return loss, {"cons_pairs": count}


def entropy_loss(
    generation: torch.Tensor, visual_mask: torch.Tensor, valid: torch.Tensor, temperature: float = 0.03
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L_ent (Eq. 3): mean Shannon entropy of the visual attention sharpened as ``p^(1/T)`` renormalised.

    Args:
        generation: ``(N, L)`` rows of the generation pathway's selected heads.
        visual_mask: ``(N, L)`` visual positions.
        valid: ``(N,)`` usable rows.
        temperature: ``T`` < 1 sharpens (paper: 0.03, against very high initial entropy).

    Returns:
        The loss (0 when no row is valid), ``{"ent_heads": count, "visual_entropy": unsharpened mean}``.
    """
    if temperature <= 0:
        raise ValueError(f"entropy temperature must be positive, got {temperature}")
    generation, mask = _safe(generation, visual_mask, valid)
    probs, _ = visual_distribution(generation, mask)
    log_probs = probs.clamp_min(EPS).log().masked_fill(~mask, float("-inf"))
    sharpened = torch.log_softmax(log_probs / temperature, dim=-1)
    entropy = -(sharpened.exp() * sharpened.masked_fill(~mask, 0.0)).sum(-1)
    plain = -torch.xlogy(probs, probs).sum(-1)
    count = valid.sum()
    weights = valid.float() / count.clamp_min(1)
    return (entropy * weights).sum(), {"ent_heads": count, "visual_entropy": (plain.detach() * weights).sum()}

"""Head bipartite matching between the generation and verification pathways (paper Sec. 3.4).

Stage 1 pairs heads selected in both pathways with the same index. Stage 2 pairs the
rest with the Hungarian algorithm (scipy's ``linear_sum_assignment``) on the cost
``KL(A_ver ‖ A_gen)`` over visual tokens. The ablations of Table 3 replace stage 2
with a random pairing, drop the unmatched heads, or skip stage 1.
"""

from __future__ import annotations

from typing import Literal

import torch
from scipy.optimize import linear_sum_assignment

MatchingStrategy = Literal["exact_hungarian", "exact_random", "exact_discard", "hungarian"]
MATCHING_STRATEGIES = ("exact_hungarian", "exact_random", "exact_discard", "hungarian")


def pairwise_kl(target: torch.Tensor, predicted: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``(M, N)`` matrix of ``KL(target_m ‖ predicted_n)`` between rows of two ``(·, V)`` distributions."""
    target, predicted = target.float(), predicted.float()
    entropy_term = (target * target.clamp_min(eps).log()).sum(-1)
    cross_term = target @ predicted.clamp_min(eps).log().T
    return entropy_term[:, None] - cross_term


def match_heads(
    generation_heads: list[int],
    verification_heads: list[int],
    cost: torch.Tensor,
    strategy: MatchingStrategy = "exact_hungarian",
    generator: torch.Generator | None = None,
) -> list[tuple[int, int]]:
    """Pairs ``(generation head, verification head)``.

    Args:
        generation_heads: selected head ids of the generation pathway.
        verification_heads: selected head ids of the verification pathway (for a
            flexible verification layer, ids in any consistent numbering; use ``hungarian``).
        cost: ``(len(generation_heads), len(verification_heads))`` matching cost,
            ``KL(A_ver ‖ A_gen)`` in the paper.
        strategy: ``exact_hungarian`` (paper), ``exact_random``, ``exact_discard`` or ``hungarian``.
        generator: randomness of ``exact_random``.
    """
    if strategy not in MATCHING_STRATEGIES:
        raise ValueError(f"unknown matching strategy {strategy!r}; choose one of {MATCHING_STRATEGIES}")
    if cost.shape != (len(generation_heads), len(verification_heads)):
        raise ValueError(f"cost shape {tuple(cost.shape)} does not match {len(generation_heads)}x{len(verification_heads)} heads")
    exact = [] if strategy == "hungarian" else [h for h in generation_heads if h in verification_heads]
    pairs = [(h, h) for h in exact]
    rest_gen = [i for i, h in enumerate(generation_heads) if h not in exact]
    rest_ver = [j for j, h in enumerate(verification_heads) if h not in exact]
    if not rest_gen or not rest_ver or strategy == "exact_discard":
        return pairs
    if strategy == "exact_random":
        order = torch.randperm(len(rest_ver), generator=generator).tolist()
        chosen = list(zip(rest_gen, [rest_ver[j] for j in order]))
    else:
        sub = cost[rest_gen][:, rest_ver].detach().double().nan_to_num(nan=1e6, posinf=1e6).cpu().numpy()
        rows, cols = linear_sum_assignment(sub)
        chosen = [(rest_gen[r], rest_ver[c]) for r, c in zip(rows, cols)]
    return pairs + [(generation_heads[i], verification_heads[j]) for i, j in chosen]

"""Teacher-forced cross-entropy on answer tokens only."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from groundlight.ops import IGNORE_INDEX


def answer_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Mean next-token cross-entropy over positions whose label is not ``-100``.

    Args:
        logits: ``(B, L, V)``.
        labels: ``(B, L)`` token ids, ``-100`` outside the answer.

    Returns:
        The loss (0-dim; NaN when the batch has no answer token, for the caller to guard)
        and ``{"answer_tokens": count}``.
    """
    shifted_logits = logits[:, :-1].float()
    shifted_labels = labels[:, 1:]
    count = (shifted_labels != IGNORE_INDEX).sum()
    total = F.cross_entropy(
        shifted_logits.reshape(-1, shifted_logits.shape[-1]),
        shifted_labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )
    return total / count, {"answer_tokens": count}

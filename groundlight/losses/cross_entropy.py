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


def answer_window(labels: torch.Tensor) -> int:
    """How many trailing positions of ``(B, L)`` labels predict an answer token: from the position before the earliest
    answer token to the end (all ``L`` without one). Logits are needed there only, so a forward can keep just those
    (HF's ``logits_to_keep``) and ``answer_cross_entropy(logits, labels[:, -k:])`` is the full sequence's loss.

    Example: labels ``[[-100, -100, 7, 8], [-100, -100, -100, 9]]``: the earliest answer token is at 2, predicted from
    position 1, so the window is the last 3 positions.
    """
    columns = (labels != IGNORE_INDEX).any(0).nonzero()
    return labels.shape[1] - int(columns[0]) + 1 if len(columns) and int(columns[0]) > 0 else labels.shape[1]

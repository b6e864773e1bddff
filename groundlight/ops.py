"""Tensor conventions and helpers every layer shares (backbones, attention, methods, losses)."""

from __future__ import annotations

from typing import Literal

import torch

IGNORE_INDEX = -100
"""Label of every position that is not an answer token (cross-entropy ignores it)."""


def mask_columns(mask: torch.Tensor, align: Literal["left", "right"] = "left",
                 min_width: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions of each row's ``mask`` entries, in order, packed to one side: ``(B, N)`` and their validity.

    ``N`` is the largest count over the batch (at least ``min_width``). A shorter row is padded with
    its other positions in order (after the masked ones for ``left``, before them for ``right``), so a
    row's entries stay distinct: the result of a stable sort on ``~mask`` (``mask`` for ``right``), in O(L).
    """
    batch, length = mask.shape
    counts = mask.sum(1, keepdim=True)
    most = int(counts.max()) if mask.numel() else 0
    width = max(most, min_width)
    if most == width and bool((counts == most).all()):  # equal counts: no padding, the entries in row order
        index = mask.nonzero()[:, 1].view(batch, most)
        return index, torch.ones_like(index, dtype=torch.bool)
    inside = mask.long()
    if align == "left":
        slot = torch.where(mask, inside.cumsum(1), counts + (1 - inside).cumsum(1)) - 1
    else:
        slot = torch.where(mask, length - counts + inside.cumsum(1), (1 - inside).cumsum(1)) - 1
    positions = torch.arange(length, device=mask.device).expand(batch, length)
    order = torch.empty_like(slot).scatter_(1, slot, positions)
    columns = torch.arange(width, device=mask.device).unsqueeze(0)
    if align == "left":
        return order[:, :width], columns < counts
    return order[:, length - width :], columns >= width - counts

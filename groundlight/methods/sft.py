"""Supervised fine-tuning: the baseline every method is compared with.

Teacher-forced cross-entropy on the answer tokens only. Configs: ``experiments/sft/*.yaml``.
"""

from __future__ import annotations

from typing import Any

import torch

from groundlight.losses import answer_cross_entropy
from groundlight.methods.base import GroundingModule


class SFTModule(GroundingModule):
    """SFT baseline on the shared base (loss only; see :class:`GroundingModule`)."""

    def loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        output, labels = self.answer_forward(batch)
        return answer_cross_entropy(output.logits, labels)

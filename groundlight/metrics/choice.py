"""Multiple-choice accuracy over parsed letters."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric


class ChoiceAccuracy(Metric):
    """Accuracy of parsed option indices; ``None`` (unparseable) counts as wrong and in ``parse_failed``."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("correct", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("failed", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    @staticmethod
    def question_scores(pred: int | None, target: int) -> dict[str, float]:
        """One question's contribution to each key of :meth:`compute`."""
        return {"accuracy": float(pred is not None and int(pred) == int(target)), "parse_failed": float(pred is None)}

    def update(self, preds: Sequence[int | None], targets: Sequence[int]) -> None:
        if len(preds) != len(targets):
            raise ValueError(f"{len(preds)} predictions for {len(targets)} targets")
        for pred, target in zip(preds, targets):
            self.total += 1
            self.failed += int(pred is None)
            self.correct += int(pred is not None and int(pred) == int(target))

    def compute(self) -> dict[str, torch.Tensor]:
        return {
            "accuracy": self.correct.double() / self.total.clamp(min=1).double(),
            "parse_failed": self.failed.double(),
        }

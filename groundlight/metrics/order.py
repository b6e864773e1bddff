"""Exact-order accuracy for rearrangement answers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric


class OrderAccuracy(Metric):
    """Share of predicted orders equal to the reference, and the share of positions placed right.

    ``None`` (unparseable) counts as wrong at every position and in ``parse_failed``.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("exact", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("positions", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("failed", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    @staticmethod
    def question_scores(pred: Sequence[int] | None, target: Sequence[int]) -> dict[str, float]:
        """One question's contribution to each key of :meth:`compute`."""
        if pred is None:
            return {"exact": 0.0, "position_accuracy": 0.0, "parse_failed": 1.0}
        if len(pred) != len(target):
            raise ValueError(f"predicted order {list(pred)} and reference {list(target)} differ in length")
        right = sum(int(p) == int(t) for p, t in zip(pred, target))
        return {"exact": float(right == len(target)), "position_accuracy": right / len(target), "parse_failed": 0.0}

    def update(self, preds: Sequence[Sequence[int] | None], targets: Sequence[Sequence[int]]) -> None:
        if len(preds) != len(targets):
            raise ValueError(f"{len(preds)} predictions for {len(targets)} targets")
        for pred, target in zip(preds, targets):
            scores = self.question_scores(pred, target)
            self.total += 1
            self.exact += scores["exact"]
            self.positions += scores["position_accuracy"]
            self.failed += int(scores["parse_failed"])

    def compute(self) -> dict[str, torch.Tensor]:
        total = self.total.clamp(min=1).double()
        return {"exact": self.exact / total, "position_accuracy": self.positions / total,
                "parse_failed": self.failed.double()}

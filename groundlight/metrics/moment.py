"""Moment-retrieval metrics: R1@IoU and mIoU over single parsed windows."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric

from groundlight.metrics.temporal import temporal_iou

Window = tuple[float, float]


class MomentRetrieval(Metric):
    """R1@{thresholds} and mIoU, E.T. Chat convention by default.

    A prediction of ``None`` (unparseable generation) scores IoU 0 and stays in the
    denominator; it is also counted in ``parse_failed``. With several ground-truth
    windows the best-overlapping one counts. A hit is ``IoU >= threshold``.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, thresholds: Sequence[float] = (0.3, 0.5, 0.7), **kwargs) -> None:
        super().__init__(**kwargs)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.add_state("iou_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("hits", torch.zeros(len(self.thresholds), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("failed", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Sequence[Window | None], targets: Sequence[Sequence[Window] | Window]) -> None:
        if len(preds) != len(targets):
            raise ValueError(f"{len(preds)} predictions for {len(targets)} targets")
        for pred, target in zip(preds, targets):
            self.total += 1
            if pred is None:
                self.failed += 1
                continue
            iou = temporal_iou([pred], target).max()
            self.iou_sum += iou
            self.hits += (iou >= torch.tensor(self.thresholds, dtype=torch.float64)).double()

    def compute(self) -> dict[str, torch.Tensor]:
        total = self.total.clamp(min=1).double()
        out = {f"R1@{t}": self.hits[i] / total for i, t in enumerate(self.thresholds)}
        out["mIoU"] = self.iou_sum / total
        out["parse_failed"] = self.failed.double()
        return out

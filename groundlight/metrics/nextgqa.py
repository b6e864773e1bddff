"""NExT-GQA grounded QA metrics, as ``code/TempGQA/eval_ground.py`` defines them."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric

from groundlight.metrics.temporal import temporal_iop, temporal_iou

Window = Sequence[float]


def best_overlaps(pred: Window, truths: Sequence[Window]) -> tuple[float, float]:
    """``(IoU, IoP)`` of one prediction, each maximised over the truths separately (0 if none).

    IoU divides by the hull of the two windows; IoP by the prediction's length, with a point
    prediction scoring IoP 1 inside a truth (see ``temporal_iop``).
    """
    if not truths:
        return 0.0, 0.0
    iou = temporal_iou([pred], truths, hull=True).max()
    iop = temporal_iop([pred], truths).max()
    return float(iou), float(iop)


class GroundedQA(Metric):
    """mIoU, IoU@t, mIoP, IoP@t and Acc@GQA over questions (fractions).

    Acc@GQA counts a question when its answer is right *and* its IoP reaches
    ``gqa_threshold``. Hits are ``>=`` the threshold.

    Args:
        thresholds: thresholds of the ``IoU@t`` and ``IoP@t`` keys.
        gqa_threshold: IoP a correct answer needs to count in ``Acc@GQA``.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, thresholds: Sequence[float] = (0.3, 0.5), gqa_threshold: float = 0.5, **kwargs) -> None:
        super().__init__(**kwargs)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.gqa_threshold = float(gqa_threshold)
        self.add_state("total", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("iou_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("iop_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("iou_hits", torch.zeros(len(self.thresholds), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("iop_hits", torch.zeros(len(self.thresholds), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("gqa_hits", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(
        self, preds: Sequence[Window], targets: Sequence[Sequence[Window]], answer_correct: Sequence[bool]
    ) -> None:
        """Add questions: a predicted window, the truth windows and whether the answer was right."""
        if not len(preds) == len(targets) == len(answer_correct):
            raise ValueError(f"{len(preds)} predictions, {len(targets)} targets, {len(answer_correct)} answers")
        thresholds = torch.tensor(self.thresholds, dtype=torch.float64, device=self.device)
        for pred, truths, correct in zip(preds, targets, answer_correct):
            iou, iop = best_overlaps(pred, truths)
            self.total += 1
            self.iou_sum += iou
            self.iop_sum += iop
            self.iou_hits += (iou >= thresholds).long()
            self.iop_hits += (iop >= thresholds).long()
            self.gqa_hits += int(bool(correct) and iop >= self.gqa_threshold)

    def compute(self) -> dict[str, torch.Tensor]:
        total = self.total.clamp(min=1).double()
        out = {"Acc@GQA": self.gqa_hits / total, "mIoP": self.iop_sum / total}
        out |= {f"IoP@{t}": self.iop_hits[i] / total for i, t in enumerate(self.thresholds)}
        out["mIoU"] = self.iou_sum / total
        out |= {f"IoU@{t}": self.iou_hits[i] / total for i, t in enumerate(self.thresholds)}
        return out

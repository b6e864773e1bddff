"""Multi-event grounding of evidence responses (D²VLM): E.T. Bench-style F1 and per-event mIoU.

A prediction is the list of spans of the response's first stage (``parse.parse_evidence``); the
target is every event's ground-truth window. Per question:

- ``F1``: E.T. Bench's TAL rule (``etbench.score_localization``), averaged over its thresholds
  0.1/0.3/0.5/0.7: at threshold ``t``, precision is the share of predicted spans with a ground-truth
  partner of IoU ≥ t, recall the share of ground-truth events with a predicted partner, F1 their
  harmonic mean (0 where no pair reaches ``t``); IoUs in float32 as E.T. Bench computes them;
- ``mIoU``: per ground-truth event the best IoU of any predicted span, averaged over the events.

An unparseable response scores 0 on both and counts in ``parse_failed``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric

from groundlight.metrics.etbench import THRESHOLDS, etbench_iou

Window = tuple[float, float]


def evidence_scores(pred: Sequence[Window] | None, target: Sequence[Window]) -> dict[str, float]:
    """One question's ``F1``, ``mIoU`` and ``parse_failed``."""
    if not target:
        raise ValueError("an evidence question needs at least one ground-truth window")
    if pred is None or not pred:
        return {"F1": 0.0, "mIoU": 0.0, "parse_failed": 1.0}
    iou = etbench_iou([list(w) for w in pred], [list(w) for w in target])  # (G, P)
    f1 = []
    for t in THRESHOLDS:
        recall = float((iou.amax(dim=1) >= t).float().mean())
        precision = float((iou.amax(dim=0) >= t).float().mean())
        f1.append(0.0 if recall + precision == 0 else 2 * precision * recall / (precision + recall))
    return {"F1": sum(f1) / len(f1), "mIoU": float(iou.amax(dim=1).mean()), "parse_failed": 0.0}


class EvidenceGrounding(Metric):
    """Means of :func:`evidence_scores` over questions; ``parse_failed`` is a count."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("f1_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("iou_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("failed", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def question_scores(self, pred: Sequence[Window] | None, target: Sequence[Window]) -> dict[str, float]:
        return evidence_scores(pred, target)

    def update(self, preds: Sequence[Sequence[Window] | None], targets: Sequence[Sequence[Window]]) -> None:
        if len(preds) != len(targets):
            raise ValueError(f"{len(preds)} predictions for {len(targets)} targets")
        for pred, target in zip(preds, targets):
            scores = evidence_scores(pred, target)
            self.f1_sum += scores["F1"]
            self.iou_sum += scores["mIoU"]
            self.failed += int(scores["parse_failed"])
            self.total += 1

    def compute(self) -> dict[str, torch.Tensor]:
        total = self.total.clamp(min=1).double()
        return {"F1": self.f1_sum / total, "mIoU": self.iou_sum / total, "parse_failed": self.failed.double()}

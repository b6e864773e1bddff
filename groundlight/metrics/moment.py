"""Moment-retrieval metrics: R1@IoU and mIoU over single parsed windows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torchmetrics import Metric

from groundlight.metrics.temporal import temporal_iou

Window = tuple[float, float]
Convention = Literal["etchat", "timechat", "lmms"]


@dataclass(frozen=True)
class IoURule:
    """How one benchmark script turns a predicted window into an IoU.

    Attributes:
        sort_reversed: swap a reversed ``[end, start]`` prediction (TimeChat and lmms-eval
            sort while parsing; E.T. Chat keeps it, so it overlaps nothing).
        hull: divide by the hull ``max(ends) - min(starts)`` rather than the union.
        dtype: precision of the arithmetic (E.T. Chat computes on float32 ``torch.Tensor``).
    """

    sort_reversed: bool
    hull: bool
    dtype: torch.dtype


CONVENTIONS: dict[str, IoURule] = {
    "etchat": IoURule(sort_reversed=False, hull=False, dtype=torch.float32),
    "timechat": IoURule(sort_reversed=True, hull=True, dtype=torch.float64),
    "lmms": IoURule(sort_reversed=True, hull=True, dtype=torch.float64),
}


class MomentRetrieval(Metric):
    """R1@{thresholds} and mIoU, E.T. Chat convention by default.

    A prediction of ``None`` (unparseable generation) scores IoU 0 and stays in the
    denominator; it is also counted in ``parse_failed``. With several ground-truth
    windows the best-overlapping one counts. A hit is ``IoU >= threshold``.

    Args:
        thresholds: IoU thresholds of the ``R1@t`` keys.
        convention: ``"etchat"`` (E.T. Chat's ``eval_grounding.py``: float32, reversed
            predictions kept), ``"timechat"`` or ``"lmms"`` (both: reversed predictions
            sorted, hull union, float64; they differ only in their text parsers, which
            this project replaces by its one parser). See ``docs/EVALUATION.md``.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(
        self, thresholds: Sequence[float] = (0.3, 0.5, 0.7), convention: Convention = "etchat", **kwargs
    ) -> None:
        super().__init__(**kwargs)
        if convention not in CONVENTIONS:
            raise ValueError(f"convention must be one of {sorted(CONVENTIONS)}, got {convention!r}")
        self.thresholds = tuple(float(t) for t in thresholds)
        self.rule = CONVENTIONS[convention]
        self.add_state("iou_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("hits", torch.zeros(len(self.thresholds), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("failed", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def window_iou(self, pred: Window, target: Sequence[Window] | Window) -> torch.Tensor:
        """IoU of one prediction with its best ground-truth window, under the convention."""
        if self.rule.sort_reversed and pred[0] > pred[1]:
            pred = (pred[1], pred[0])
        ious = temporal_iou([pred], target, hull=self.rule.hull, dtype=self.rule.dtype)
        return ious.max() if ious.numel() else torch.zeros((), dtype=self.rule.dtype)

    def question_scores(self, pred: Window | None, target: Sequence[Window] | Window) -> dict[str, float]:
        """One question's contribution to each key of :meth:`compute` (its mean over questions is the metric)."""
        iou = 0.0 if pred is None else float(self.window_iou(pred, target))
        scores = {f"R1@{t}": float(pred is not None and iou >= t) for t in self.thresholds}
        return scores | {"mIoU": iou, "parse_failed": float(pred is None)}

    def update(self, preds: Sequence[Window | None], targets: Sequence[Sequence[Window] | Window]) -> None:
        if len(preds) != len(targets):
            raise ValueError(f"{len(preds)} predictions for {len(targets)} targets")
        thresholds = torch.tensor(self.thresholds, dtype=torch.float64, device=self.device)
        for pred, target in zip(preds, targets):
            self.total += 1
            if pred is None:
                self.failed += 1
                continue
            iou = self.window_iou(pred, target).to(self.device, torch.float64)
            self.iou_sum += iou
            self.hits += (iou >= thresholds).double()

    def compute(self) -> dict[str, torch.Tensor]:
        total = self.total.clamp(min=1).double()
        out = {f"R1@{t}": self.hits[i] / total for i, t in enumerate(self.thresholds)}
        out["mIoU"] = self.iou_sum / total
        out["parse_failed"] = self.failed.double()
        return out

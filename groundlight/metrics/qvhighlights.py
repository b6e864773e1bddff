"""QVHighlights metrics, as Moment-DETR's ``standalone_eval/eval.py`` defines them.

Moment retrieval (MR): per query, VOC all-point AP of the first ``max_windows`` scored
windows at IoU 0.5:0.05:0.95 with greedy matching, and R1 of the first listed window;
both per ground-truth length bucket. Highlight detection (HD): per query and annotator,
the AP of the clip ranking, and HIT@1 of the top-scored clip, at saliency levels 2/3/4.

MR accumulates sums; HD keeps one row per query in ``cat`` list states (so, as with any
``cat`` state, every DDP rank must see at least one query) because its mean is numpy's
pairwise sum. Both reproduce the official arithmetic, so rounded percentages agree to the digit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from groundlight.metrics.temporal import temporal_iou

Window = Sequence[float]
MR_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
LENGTH_BUCKETS: dict[str, tuple[float, float] | None] = {
    "short": (0.0, 10.0),
    "middle": (10.0, 30.0),
    "long": (30.0, 150.0),
    "full": None,
}
SALIENCY_LEVELS: dict[str, int] = {"Fair": 2, "Good": 3, "VeryGood": 4}


def bucket_windows(windows: Sequence[Window], bounds: tuple[float, float] | None) -> list[Window]:
    """Ground-truth windows whose length lies in ``(low, high]``; all of them for ``None``."""
    if bounds is None:
        return list(windows)
    low, high = bounds
    return [w for w in windows if low < w[1] - w[0] <= high]


def greedy_hits(iou: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """True positives ``(T, N)`` of score-ranked predictions against ``M`` ground truths.

    Each prediction, best first, takes the untaken ground truth it overlaps most among
    those at or above the threshold. Equal overlaps are visited in reversed
    ``np.argsort`` order, as the official ``argsort()[::-1]``.
    """
    hits = np.zeros((len(thresholds), iou.shape[0]), dtype=bool)
    taken = np.zeros((len(thresholds), iou.shape[1]), dtype=bool)
    for i, row in enumerate(iou):
        order = np.argsort(row)[::-1]
        for t, threshold in enumerate(thresholds):
            stop = next((j for j in order if row[j] < threshold or not taken[t, j]), None)
            if stop is not None and row[stop] >= threshold:
                taken[t, stop] = hits[t, i] = True
    return hits


def voc_average_precision(hits: np.ndarray, num_truths: int) -> float:
    """All-point interpolated AP (VOC 2011+) of a ranked hit list.

    Example: hits ``[1, 0, 1]`` with 2 truths → precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1;
    the envelope is 1, 2/3, 2/3, so AP = 1/2·1 + 1/2·2/3 = 5/6.
    """
    found = np.cumsum(hits).astype(float)
    precision = np.concatenate([[0.0], found / np.arange(1, len(hits) + 1), [0.0]])
    recall = np.concatenate([[0.0], found / num_truths, [1.0]])
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1]) + 1
    return float(np.sum((recall[steps] - recall[steps - 1]) * envelope[steps]))


def query_average_precision(
    scored: Sequence[Window], truths: Sequence[Window], thresholds: Sequence[float] = MR_THRESHOLDS
) -> np.ndarray:
    """AP ``(T,)`` of one query's ``[start, end, score]`` windows; zeros when there are none.

    Windows are ranked by a stable sort on descending score, so ties keep list order.
    """
    if not scored:
        return np.zeros(len(thresholds))
    ranked = sorted(scored, key=lambda w: -w[2])
    iou = temporal_iou([w[:2] for w in ranked], [w[:2] for w in truths]).numpy()
    hits = greedy_hits(iou, thresholds)
    return np.array([voc_average_precision(row, len(truths)) for row in hits])


def first_window_iou(scored: Sequence[Window], truths: Sequence[Window]) -> float:
    """R1's IoU: the first *listed* window against the truth it overlaps most (first on ties).

    The truth is chosen by IoU, the score by hull IoU, as the official R1 does; 0 for an
    empty prediction list.
    """
    if not scored:
        return 0.0
    first = [scored[0][:2]]
    best = int(temporal_iou(first, [w[:2] for w in truths]).argmax())
    return float(temporal_iou(first, [truths[best][:2]], hull=True))


class MomentRetrievalMAP(Metric):
    """QVHighlights MR: mAP@IoU and R1@IoU per ground-truth length bucket (fractions).

    Keys are ``MR-{bucket}-mAP`` (mean over thresholds), ``MR-{bucket}-mAP@{t}`` and
    ``MR-{bucket}-R1@{t}``. A bucket only scores queries with a ground-truth window of its
    length, against those windows only; a bucket without queries gives NaN. A query with
    no predicted window scores AP 0 and an R1 miss. The states are sums: summing per-query
    APs in order and dividing equals numpy's ``mean(0)`` of the official script bit for bit.

    Args:
        iou_thresholds: IoU thresholds (official: 0.5, 0.55, ..., 0.95).
        max_windows: windows scored per query, taken in list order before sorting by score.
        buckets: name → ``(low, high]`` length range in seconds, ``None`` for all windows.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(
        self,
        iou_thresholds: Sequence[float] = MR_THRESHOLDS,
        max_windows: int = 10,
        buckets: Mapping[str, tuple[float, float] | None] = LENGTH_BUCKETS,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if max_windows < 1:
            raise ValueError(f"max_windows must be >= 1, got {max_windows}")
        self.iou_thresholds = tuple(float(t) for t in iou_thresholds)
        self.max_windows = max_windows
        self.buckets = dict(buckets)
        shape = (len(self.buckets), len(self.iou_thresholds))
        self.add_state("ap_sum", torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("r1_hits", torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("queries", torch.zeros(len(self.buckets), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Sequence[Sequence[Window]], targets: Sequence[Sequence[Window]]) -> None:
        """Add queries: ``preds[i]`` lists ``[start, end, score]``, ``targets[i]`` ``[start, end]``."""
        if len(preds) != len(targets):
            raise ValueError(f"{len(preds)} predictions for {len(targets)} targets")
        thresholds = torch.tensor(self.iou_thresholds, dtype=torch.float64, device=self.device)
        for scored, truths in zip(preds, targets):
            scored = list(scored)[: self.max_windows]
            for b, bounds in enumerate(self.buckets.values()):
                kept = bucket_windows(truths, bounds)
                if kept:
                    ap = query_average_precision(scored, kept, self.iou_thresholds)
                    self.ap_sum[b] += torch.from_numpy(ap).to(self.device)
                    self.r1_hits[b] += (first_window_iou(scored, kept) >= thresholds).double()
                    self.queries[b] += 1

    def _bucket(self, b: int) -> dict[str, float]:
        count = int(self.queries[b])
        per_threshold = (self.ap_sum[b] / count).cpu().numpy() if count else np.full(len(self.iou_thresholds), np.nan)
        recall = (self.r1_hits[b] / count).cpu().numpy() if count else per_threshold
        out = {"mAP": float(np.mean(per_threshold))}
        out |= {f"mAP@{t}": float(v) for t, v in zip(self.iou_thresholds, per_threshold)}
        out |= {f"R1@{t}": float(v) for t, v in zip(self.iou_thresholds, recall)}
        return out

    def compute(self) -> dict[str, torch.Tensor]:
        return {
            f"MR-{name}-{key}": torch.tensor(value, dtype=torch.float64)
            for b, name in enumerate(self.buckets)
            for key, value in self._bucket(b).items()
        }


def clip_saliency(
    duration: float,
    clip_ids: Sequence[int],
    scores: Sequence[Sequence[float]],
    clip_length: float = 2.0,
    annotators: int = 3,
) -> np.ndarray:
    """Per-clip annotator scores ``(int(duration / clip_length), annotators)``, 0 elsewhere.

    A repeated clip id keeps its last row, as numpy's fancy assignment does.

    Raises:
        ValueError: ids and score rows differ in number, a row is not ``annotators`` long,
            or an id is outside ``[0, num_clips)``.
    """
    num_clips = int(duration / clip_length)
    if len(clip_ids) != len(scores):
        raise ValueError(f"{len(clip_ids)} relevant_clip_ids but {len(scores)} saliency_scores rows")
    table = np.zeros((num_clips, annotators))
    for clip, row in zip(clip_ids, scores):
        if not 0 <= clip < num_clips:
            raise ValueError(f"clip id {clip} outside the {num_clips} clips of a {duration} s video")
        if len(row) != annotators:
            raise ValueError(f"saliency row {list(row)} for clip {clip} must have {annotators} scores")
        table[clip] = row
    return table


def ranked_average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Moment-DETR's ``get_ap``: mean interpolated precision where the recall grows.

    One point per distinct score, from the highest; its precision is interpolated as the
    best precision at equal or higher recall. All-positive labels give 1, all-negative
    (or none) 0. Example: labels ``[1, 0, 1]``, scores ``[.9, .8, .7]`` → precisions 1,
    1/2, 2/3 with recall growing at the 1st and 3rd → interpolated 1 and 2/3 → AP 5/6.
    """
    if labels.size == 0 or labels.min() == labels.max():
        return float(labels.size > 0 and labels[0] == 1)
    levels = np.unique(scores)
    above = scores[None, :] >= levels[:, None]
    found = (above * labels[None, :]).sum(1)
    precision = found / above.sum(1)
    recall = np.concatenate([(found / found[0]).astype(np.float32), [0.0]])
    envelope = np.maximum.accumulate(precision)
    grows = np.flatnonzero(recall[1:] != recall[:-1])
    return float(np.mean(envelope[grows]))


def fit_length(scores: Sequence[float], length: int) -> np.ndarray:
    """Scores cut or zero-padded to ``length`` clips."""
    fitted = np.zeros(length)
    kept = np.asarray(scores, dtype=float)[:length]
    fitted[: len(kept)] = kept
    return fitted


class HighlightDetection(Metric):
    """QVHighlights HD: ``HL-min-{level}-mAP`` and ``HL-min-{level}-Hit1`` (fractions).

    A clip is positive for an annotator when its score reaches the level (Fair ≥ 2,
    Good ≥ 3, VeryGood ≥ 4). AP is per query and annotator, averaged over both; HIT@1 is
    1 when the top-scored clip (first on ties) is positive for any annotator.

    Args:
        levels: name → minimum saliency score of a positive clip.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, levels: Mapping[str, int] = SALIENCY_LEVELS, **kwargs) -> None:
        super().__init__(**kwargs)
        self.levels = dict(levels)
        self.add_state("ap", default=[], dist_reduce_fx="cat")
        self.add_state("hit", default=[], dist_reduce_fx="cat")

    def query_scores(self, pred: Sequence[float], truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """AP ``(levels, annotators)`` and HIT@1 ``(levels,)`` of one query."""
        fitted = fit_length(pred, len(truth))
        top = int(np.argmax(pred)) if len(pred) else len(truth)
        ap, hit = [], []
        for minimum in self.levels.values():
            positive = (truth >= minimum).astype(float)
            ap.append([ranked_average_precision(positive[:, a], fitted) for a in range(truth.shape[1])])
            hit.append(positive[top].max() if top < len(truth) else 0.0)
        return np.array(ap), np.array(hit)

    def update(self, preds: Sequence[Sequence[float]], targets: Sequence[np.ndarray]) -> None:
        """Add queries: ``preds[i]`` scores every 2 s clip, ``targets[i]`` is ``clip_saliency(...)``."""
        if len(preds) != len(targets):
            raise ValueError(f"{len(preds)} predictions for {len(targets)} targets")
        for pred, truth in zip(preds, targets):
            ap, hit = self.query_scores(list(pred), np.asarray(truth, dtype=float))
            self.ap.append(torch.from_numpy(ap)[None].to(self.device))
            self.hit.append(torch.from_numpy(hit)[None].to(self.device))

    def compute(self) -> dict[str, torch.Tensor]:
        empty = isinstance(self.ap, list) and not self.ap
        ap = None if empty else dim_zero_cat(self.ap).cpu().numpy()
        hit = None if empty else dim_zero_cat(self.hit).cpu().numpy()
        out = {}
        for index, name in enumerate(self.levels):
            # contiguous copies: numpy then sums in the official script's order
            out[f"HL-min-{name}-mAP"] = np.nan if empty else np.mean(np.ascontiguousarray(ap[:, index, :]))
            out[f"HL-min-{name}-Hit1"] = np.nan if empty else np.mean(np.ascontiguousarray(hit[:, index]))
        return {key: torch.tensor(float(value), dtype=torch.float64) for key, value in out.items()}

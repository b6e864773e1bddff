"""QVHighlights metrics, as Moment-DETR's ``standalone_eval/eval.py`` defines them.

Moment retrieval (MR): per query, VOC all-point AP of the first ``max_windows`` scored
windows at IoU 0.5:0.05:0.95 with greedy matching, and R1 of the first listed window;
both per ground-truth length bucket. Highlight detection (HD): per query and annotator,
the AP of the clip ranking, and HIT@1 of the top-scored clip, at saliency levels 2/3/4.

Scoring is batched over queries in numpy, ``CHUNK`` at a time, with ranks (MR) or clips
(HD) on the first axis and queries on the last, so running sums and maxima are loops of
whole-slice operations (``scan``). Queries are grouped by their number of ground-truth
windows (MR) or of clips (HD), so no array is padded along an axis that numpy sorts
(``np.argsort`` is not stable, and its tie order decides matches), and each query's AP
terms are summed as a row of their own length (numpy sums pairwise, so the length decides
the rounding): every per-query score equals the official loop's bit for bit.

MR accumulates sums; HD keeps one row per query in ``cat`` list states (so, as with any
``cat`` state, every DDP rank must see at least one query) because its mean is numpy's
pairwise sum. Both reproduce the official arithmetic, so rounded percentages agree to the digit.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from itertools import chain
from operator import itemgetter

import numpy as np
import torch
from numpy.typing import DTypeLike
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from groundlight.metrics.temporal import paired_temporal_iou

Window = Sequence[float]
MR_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
LENGTH_BUCKETS: dict[str, tuple[float, float] | None] = {
    "short": (0.0, 10.0),
    "middle": (10.0, 30.0),
    "long": (30.0, 150.0),
    "full": None,
}
SALIENCY_LEVELS: dict[str, int] = {"Fair": 2, "Good": 3, "VeryGood": 4}
CHUNK = 2048
"""Queries that ``update`` scores at once: bounds the memory of the batched arrays."""


def flatten(
    rows: Sequence[Sequence], width: int | None = None, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Ragged rows as one float64 array of their items, and the row lengths ``(Q,)``.

    Items are numbers, or with ``width`` sequences whose first ``width`` numbers are kept
    (windows: ``(total, width)``); ``limit`` keeps the first items of each row.
    """
    kept = rows if limit is None else [row[:limit] for row in rows]
    lengths = np.fromiter(map(len, kept), np.intp, len(kept))
    items = chain.from_iterable(kept)
    if width is not None:
        items = chain.from_iterable(map(itemgetter(slice(width)), items))
    flat = np.fromiter(items, float, int(lengths.sum()) * (width or 1))
    return (flat if width is None else flat.reshape(-1, width)), lengths


def pad(flat: np.ndarray, lengths: np.ndarray, fill: float) -> np.ndarray:
    """Flattened rows back as ``(Q, max(1, max(lengths)), ...)``, ``fill`` past each row's end."""
    columns = max(int(lengths.max(initial=0)), 1)
    padded = np.full((len(lengths), columns) + flat.shape[1:], fill)
    padded[np.arange(columns) < lengths[:, None]] = flat
    return padded


def scan(ufunc: np.ufunc, values: np.ndarray, dtype: DTypeLike = None) -> np.ndarray:
    """``ufunc.accumulate(values, 0)`` (C-contiguous) as one whole-slice operation per step.

    numpy's own accumulate runs a short loop per column; this vectorises over the columns
    and combines the same values in the same order.
    """
    out = np.array(values, dtype=dtype, order="C")
    for i in range(1, len(out)):
        ufunc(out[i - 1 : i], out[i : i + 1], out=out[i : i + 1])
    return out


def column_sums(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``np.sum(values[:, i][mask[:, i]])`` for every column ``i`` of ``(K, ...)`` arrays, bit for bit.

    numpy sums pairwise, so how the additions are grouped depends on how many values are
    summed: each column's selected values are summed as a row of that length.
    """
    shape = values.shape[1:]
    values, mask = values.reshape(len(values), -1), mask.reshape(len(mask), -1)
    rank = scan(np.add, mask, np.intp)  # each selected value's place in its column, from 1
    counts = rank[-1]
    starts = np.cumsum(counts) - counts
    picked = np.flatnonzero(mask)
    selected = np.empty(len(picked))  # column after column, in order
    selected[starts[picked % mask.shape[1]] + rank.reshape(-1)[picked] - 1] = values.reshape(-1)[picked]
    sums = np.zeros(len(counts))
    for count in np.unique(counts[counts > 0]):
        columns = np.flatnonzero(counts == count)
        sums[columns] = selected[starts[columns, None] + np.arange(count)].sum(-1)
    return sums.reshape(shape)


def chunks(preds: Sequence, targets: Sequence) -> Iterator[tuple[Sequence, Sequence]]:
    """``CHUNK`` queries at a time; there must be as many predictions as targets."""
    if len(preds) != len(targets):
        raise ValueError(f"{len(preds)} predictions for {len(targets)} targets")
    for begin in range(0, len(preds), CHUNK):
        yield preds[begin : begin + CHUNK], targets[begin : begin + CHUNK]


def add_in_order(total: torch.Tensor, rows: np.ndarray) -> torch.Tensor:
    """``total`` plus ``rows[0]``, then ``rows[1]``, ...: rounded as a per-query ``+=`` loop."""
    start = total.detach().cpu().numpy()[None]
    return torch.from_numpy(np.cumsum(np.concatenate([start, rows]), 0)[-1]).to(total)


def in_bucket(lengths: np.ndarray, bounds: tuple[float, float] | None) -> np.ndarray:
    """Which ground-truth window lengths lie in ``(low, high]``; all of them for ``None``."""
    if bounds is None:
        return np.ones(lengths.shape, bool)
    low, high = bounds
    return (low < lengths) & (lengths <= high)


def rank_by_score(windows: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Each query's ``[start, end, score]`` windows ``(Q, N, 3)`` by descending score, padding last.

    The sort is stable, so equal scores keep list order.
    """
    padding = np.arange(windows.shape[1]) >= counts[:, None]
    order = np.lexsort((-windows[..., 2], padding), axis=-1)
    return np.take_along_axis(windows, order[..., None], 1)


def greedy_hits(iou: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """True positives ``(N, T, Q)`` of score-ranked predictions, from ``iou (N, M, Q)`` with ``M`` truths.

    Each prediction, best first, walks the truths from the one it overlaps most and stops
    at the first that is below the threshold or not yet taken; it takes that truth if it
    reaches the threshold. Equal overlaps are walked in reversed ``np.argsort`` order, as
    the official ``argsort()[::-1]``, so ``M`` must not be padded: numpy's sort is not
    stable. A padding prediction (IoU ``-inf``) takes nothing.
    """
    predictions, truths, queries = iou.shape
    walks = np.argsort(iou, 1)[:, ::-1]
    limits = np.asarray(thresholds, dtype=float)[:, None]
    columns = np.arange(queries)
    taken = np.zeros((len(limits), truths, queries), bool)
    hits = np.zeros((predictions, len(limits), queries), bool)
    for i in range(predictions):
        walking = np.ones((len(limits), queries), bool)
        for step in range(truths):
            truth = walks[i, step]
            overlap = iou[i, truth, columns]
            stops = walking & ((overlap < limits) | ~taken[:, truth, columns])
            takes = stops & (overlap >= limits)
            taken[:, truth, columns] |= takes
            hits[i] |= takes
            walking &= ~stops
    return hits


def voc_average_precision(hits: np.ndarray, num_truths: int) -> np.ndarray:
    """All-point interpolated AP (VOC 2011+) of ranked hit lists ``(N, ...)``, rank first; shape ``(...)``.

    Example: hits ``[1, 0, 1]`` with 2 truths → precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1;
    the envelope is 1, 2/3, 2/3, so AP = 1/2·1 + 1/2·2/3 = 5/6. Trailing misses (padding)
    change nothing.
    """
    found = scan(np.add, hits, np.int32)
    precision = found / np.arange(1, len(hits) + 1).reshape((-1,) + (1,) * (hits.ndim - 1))
    recall = found / num_truths
    envelope = scan(np.maximum, precision[::-1])[::-1]  # the best precision from each rank on
    zero = np.zeros_like(recall[:1])
    before = np.concatenate([zero, recall[:-1]])
    # the official end point, recall 1 at precision 0, adds a step worth 0 unless recall is 1
    steps = np.concatenate([recall != before, recall[-1:] != 1])
    return column_sums(np.concatenate([(recall - before) * envelope, zero]), steps)


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
        for scored, truths in chunks(preds, targets):
            ap, r1 = self.query_scores(scored, truths)
            counted = ~np.isnan(ap[..., :1])
            self.ap_sum = add_in_order(self.ap_sum, np.where(counted, ap, 0.0))
            self.r1_hits = add_in_order(self.r1_hits, np.where(counted, r1, 0.0))
            self.queries += torch.from_numpy(counted[..., 0].sum(0)).to(self.queries)

    def query_scores(
        self, preds: Sequence[Sequence[Window]], targets: Sequence[Sequence[Window]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """AP and R1 hits ``(Q, buckets, thresholds)`` of each query; NaN where a bucket has no truth."""
        windows, counts = flatten(preds, width=3, limit=self.max_windows)
        windows = pad(windows, counts, 0.0)
        ranked = rank_by_score(windows, counts)[..., :2]
        truths, truth_counts = flatten(targets, width=2)
        owner = np.repeat(np.arange(len(counts)), truth_counts)
        # every truth against its query's windows, once for all buckets
        iou = paired_temporal_iou(torch.from_numpy(ranked[owner]), torch.from_numpy(truths[:, None])).numpy()
        iou[np.arange(ranked.shape[1]) >= counts[owner, None]] = -np.inf
        first, truth_windows = torch.from_numpy(windows[owner, 0, :2]), torch.from_numpy(truths)
        first_iou = paired_temporal_iou(first, truth_windows).numpy()
        first_hull = np.where(counts[owner] > 0, paired_temporal_iou(first, truth_windows, hull=True).numpy(), 0.0)

        kept = np.stack([in_bucket(truths[:, 1] - truths[:, 0], bounds) for bounds in self.buckets.values()])
        bucket, index = np.nonzero(kept)
        case = bucket * len(counts) + owner[index]  # one case per bucket and query, in that order
        sizes = np.bincount(case, minlength=kept.shape[0] * len(counts))
        thresholds = np.array(self.iou_thresholds)
        ap = np.full((len(sizes), len(thresholds)), np.nan)
        r1 = np.full_like(ap, np.nan)
        for size in np.unique(sizes[sizes > 0]):
            cases = np.flatnonzero(sizes == size)
            pairs = index[sizes[case] == size].reshape(-1, size)  # the truths of each case
            hits = greedy_hits(np.ascontiguousarray(iou[pairs].transpose(2, 1, 0)), thresholds)
            ap[cases] = voc_average_precision(hits, size).T
            best = pairs[np.arange(len(pairs)), first_iou[pairs].argmax(-1)]  # R1: the first on ties
            r1[cases] = first_hull[best, None] >= thresholds
        shape = (kept.shape[0], len(counts), len(thresholds))
        return ap.reshape(shape).swapaxes(0, 1), r1.reshape(shape).swapaxes(0, 1)

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


def saliency_average_precision(tables: np.ndarray, scores: np.ndarray, minimums: Sequence[float]) -> np.ndarray:
    """Moment-DETR's ``get_ap`` per query, level and annotator ``(Q, L, A)``.

    ``tables (Q, C, A)`` holds each clip's annotator scores; a clip is positive at a level
    when its score reaches the level's minimum. Clips are ranked by ``scores (Q, C)``: one
    point per distinct score, its precision interpolated as the best precision at that
    score or below (equal or higher recall); the AP is the mean of these points where the
    recall grows, i.e. at the scores that some positive clip has. (The official float32
    recall could merge two such points only beyond 2^24 positive clips.) All-positive
    gives 1, all-negative 0. Example: labels ``[1, 0, 1]``, scores ``[.9, .8, .7]`` →
    precisions 1, 1/2, 2/3, recall growing at the 1st and 3rd → AP (1 + 2/3) / 2 = 5/6.
    """
    queries, clips, _ = tables.shape
    order = np.argsort(scores, -1)  # ascending: the official levels, lowest first
    levels = np.take_along_axis(scores, order, -1).T  # (C, Q)
    ranked = np.ascontiguousarray(np.take_along_axis(tables, order[..., None], 1).transpose(1, 2, 0))  # (C, A, Q)
    positive = ranked[:, None] >= np.asarray(minimums, dtype=float)[:, None, None]  # (C, L, A, Q)
    edge = np.ones((1, queries), bool)
    new_level = np.concatenate([edge, levels[1:] != levels[:-1]])
    last_of_level = np.concatenate([new_level[1:], edge])[:, None, None]
    upto = scan(np.add, positive, np.int32)  # positives up to each clip
    below = np.concatenate([np.zeros_like(upto[:1]), upto[:-1]])
    below = scan(np.maximum, np.where(new_level[:, None, None], below, 0))  # ... below the clip's level
    start = scan(np.maximum, np.where(new_level, np.arange(clips)[:, None], 0))  # the level's first clip
    # each level's precision (positives over clips at or above it), then the best at or below it
    envelope = scan(np.maximum, (upto[-1] - below) / (clips - start)[:, None, None])
    grows = last_of_level & (upto > below)
    return (column_sums(envelope, grows) / np.maximum(grows.sum(0), 1)).transpose(2, 0, 1)


class HighlightDetection(Metric):
    """QVHighlights HD: ``HL-min-{level}-mAP`` and ``HL-min-{level}-Hit1`` (fractions).

    A clip is positive for an annotator when its score reaches the level (Fair ≥ 2,
    Good ≥ 3, VeryGood ≥ 4). AP is per query and annotator, averaged over both; HIT@1 is
    1 when the top-scored clip (first on ties) is positive for any annotator. Predicted
    scores are cut or zero-padded to the video's clips for AP; a top clip beyond the
    video, or no scores at all, misses.

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

    def query_scores(
        self, preds: Sequence[Sequence[float]], targets: Sequence[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """AP ``(Q, levels, annotators)`` and HIT@1 ``(Q, levels)`` of each query."""
        flat, lengths = flatten(preds)
        scores = pad(flat, lengths, 0.0)
        top = np.where(np.arange(scores.shape[1]) < lengths[:, None], scores, -np.inf).argmax(-1)
        tables = [np.asarray(truth, dtype=float) for truth in targets]
        clips = np.fromiter(map(len, tables), np.intp, len(tables))
        minimums = np.array(list(self.levels.values()), dtype=float)
        ap = np.zeros((len(tables), len(minimums), tables[0].shape[1]))
        hit = np.zeros(ap.shape[:2])
        for count in np.unique(clips[clips > 0]):
            chosen = np.flatnonzero(clips == count)
            table = np.stack([tables[i] for i in chosen])
            fitted = np.zeros((len(chosen), count))  # scores cut or zero-padded to the clips
            fitted[:, : scores.shape[1]] = scores[chosen, :count]
            ap[chosen] = saliency_average_precision(table, fitted, minimums)
            on_video = (lengths[chosen] > 0) & (top[chosen] < count)
            peak = table[np.arange(len(chosen)), np.minimum(top[chosen], count - 1)].max(-1)
            hit[chosen] = on_video[:, None] & (peak[:, None] >= minimums)
        return ap, hit

    def update(self, preds: Sequence[Sequence[float]], targets: Sequence[np.ndarray]) -> None:
        """Add queries: ``preds[i]`` scores every 2 s clip, ``targets[i]`` is ``clip_saliency(...)``."""
        for scores, truths in chunks(preds, targets):
            ap, hit = self.query_scores(scores, truths)
            self.ap.append(torch.from_numpy(ap).to(self.device))
            self.hit.append(torch.from_numpy(hit).to(self.device))

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

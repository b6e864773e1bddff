"""QVHighlights metrics (Moment-DETR's definitions) on hand-computed queries, and the batched
scoring against a per-query reference (the official loops, one query at a time) on random ones."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from groundlight.metrics import qvhighlights
from groundlight.metrics.qvhighlights import (
    LENGTH_BUCKETS,
    MR_THRESHOLDS,
    SALIENCY_LEVELS,
    HighlightDetection,
    MomentRetrievalMAP,
    clip_saliency,
    column_sums,
    greedy_hits,
    in_bucket,
    saliency_average_precision,
    voc_average_precision,
)
from groundlight.metrics.temporal import temporal_iou


def test_thresholds_are_the_official_keys():
    keys = ["0.5", "0.55", "0.6", "0.65", "0.7", "0.75", "0.8", "0.85", "0.9", "0.95"]
    assert [str(t) for t in MR_THRESHOLDS] == keys


def test_voc_average_precision():
    """Hits [1, 0, 1], 2 truths: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1; envelope 1, 2/3, 2/3
    → 1/2·1 + 1/2·2/3 = 5/6. Hits [0, 1], 1 truth: precision 0, 1/2, recall 0, 1 → 1·1/2."""
    assert voc_average_precision(np.array([1, 0, 1], bool), 2) == pytest.approx(5 / 6)
    assert voc_average_precision(np.array([0, 1], bool), 1) == pytest.approx(0.5)


def test_greedy_matching_visits_tied_truths_last_index_first():
    """Row 0 ties 0.8/0.8: reversed argsort visits truth 1 first and takes it; row 1 then finds
    truth 1 (0.9) taken and truth 0 (0.6) below 0.7 → miss, while at 0.5 it takes truth 0."""
    hits = greedy_hits(np.array([[0.8, 0.8], [0.6, 0.9]])[..., None], [0.5, 0.7])  # one query
    assert hits[..., 0].T.tolist() == [[True, True], [True, False]]


def moment_scores(scored: list, truths: list) -> tuple[np.ndarray, np.ndarray]:
    """AP and R1 hits per threshold of one query against all its truths."""
    ap, r1 = MomentRetrievalMAP(buckets={"full": None}).query_scores([scored], [truths])
    return ap[0, 0], r1[0, 0]


def tie_query():
    """Truths [0, 10], [2, 12]; [1, 11] (0.9) overlaps both by 9/11, [2, 12] (0.8) is the 2nd truth."""
    return [[1.0, 11.0, 0.9], [2.0, 12.0, 0.8]], [[0.0, 10.0], [2.0, 12.0]]


def test_query_average_precision_of_a_tie():
    """[1, 11] takes truth 2 (ties go to the last index). [2, 12] then overlaps truth 1 by 8/12:
    t ≤ 0.65: both hit → AP 1; t 0.7–0.8: hits [1, 0] → 1/2; t ≥ 0.85: 9/11 misses, [2, 12] takes
    truth 2 → hits [0, 1] → precision 1/2 at recall 1/2 → 1/4. Mean (4 + 1.5 + 0.75) / 10 = 0.625."""
    ap, _ = moment_scores(*tie_query())
    assert ap.tolist() == pytest.approx([1, 1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25])
    assert ap.mean() == pytest.approx(0.625)


def test_ranking_is_a_stable_sort_on_score():
    """Equal scores keep list order: [0, 10] then [20, 30] against the one truth [0, 10] → AP 1;
    listed the other way round → hits [0, 1] → 1/2."""
    truth = [[0.0, 10.0]]
    assert moment_scores([[0.0, 10.0, 0.5], [20.0, 30.0, 0.5]], truth)[0][0] == 1.0
    assert moment_scores([[20.0, 30.0, 0.5], [0.0, 10.0, 0.5]], truth)[0][0] == 0.5


def test_buckets_keep_windows_in_half_open_ranges():
    """Lengths 10, 10.5, 0: (0, 10] keeps the 10; (10, 30] keeps 10.5; full keeps all three."""
    lengths = np.array([10, 10.5, 0])
    assert in_bucket(lengths, (0, 10)).tolist() == [True, False, False]
    assert in_bucket(lengths, (10, 30)).tolist() == [False, True, False]
    assert in_bucket(lengths, None).tolist() == [True, True, True]


def test_moment_retrieval_map_per_bucket():
    """The tie query: both truths are 10 s (short). R1 takes the first *listed* window [1, 11], whose
    best truth is the first on ties, [0, 10], at 9/11 ≈ 0.82 → hits up to 0.8 (7 of 10). Middle and
    long have no query → NaN."""
    metric = MomentRetrievalMAP()
    metric.update(*map(lambda x: [x], tie_query()))
    out = metric.compute()
    assert float(out["MR-short-mAP"]) == pytest.approx(0.625) and float(out["MR-full-mAP"]) == pytest.approx(0.625)
    assert float(out["MR-full-R1@0.8"]) == 1.0 and float(out["MR-full-R1@0.85"]) == 0.0
    assert math.isnan(float(out["MR-middle-mAP"])) and math.isnan(float(out["MR-long-R1@0.5"]))


def test_empty_prediction_list_scores_zero():
    """The official script crashes here (IndexError); we score AP 0 and an R1 miss.
    Two queries: the tie query (mAP 0.625) and an empty one → mAP 0.3125, R1@0.5 = 1/2."""
    preds, truths = tie_query()
    metric = MomentRetrievalMAP()
    metric.update([preds, []], [truths, [[0.0, 4.0]]])
    out = metric.compute()
    assert float(out["MR-full-mAP"]) == pytest.approx(0.3125)
    assert float(out["MR-full-R1@0.5"]) == 0.5


def test_only_the_first_ten_windows_count():
    """An exact hit listed 11th is never seen: AP 0 instead of 1."""
    misses = [[50.0, 60.0, 0.1]] * 10
    metric = MomentRetrievalMAP()
    metric.update([misses + [[0.0, 10.0, 0.9]]], [[[0.0, 10.0]]])
    assert float(metric.compute()["MR-full-mAP"]) == 0.0


def test_merged_list_states_equal_one_pass():
    """cat list states: two replicas merged as DDP would gather them equal one update."""
    preds, truths = tie_query()
    whole, first, second = MomentRetrievalMAP(), MomentRetrievalMAP(), MomentRetrievalMAP()
    whole.update([preds, []], [truths, [[0.0, 4.0]]])
    first.update([preds], [truths])
    second.update([[]], [[[0.0, 4.0]]])
    first.merge_state(second)
    assert float(first.compute()["MR-full-mAP"]) == float(whole.compute()["MR-full-mAP"])


def clip_average_precision(labels: Sequence[float], scores: Sequence[float]) -> float:
    """``saliency_average_precision`` of one query with one annotator and one level."""
    table = np.array(labels, float)[None, :, None]
    return float(saliency_average_precision(table, np.array([scores], float), [1])[0, 0, 0])


def test_saliency_average_precision_means_precisions_where_recall_grows():
    """Labels [1, 0, 1], scores .9 .8 .7: precisions 1, 1/2, 2/3; recall grows at the 1st and 3rd
    → interpolated 1 and 2/3 → 5/6. With ties, labels [1, 0, 1, 0], scores .5 .5 .2 .1: points
    (.5: 1/2), (.2: 2/3), (.1: 2/4); recall grows at .5 and .2 → interpolated 2/3, 2/3 → 2/3
    (sklearn's average_precision_score would give 0.58). All 1 → 1, all 0 → 0."""
    assert clip_average_precision([1, 0, 1], [0.9, 0.8, 0.7]) == pytest.approx(5 / 6)
    assert clip_average_precision([1, 0, 1, 0], [0.5, 0.5, 0.2, 0.1]) == pytest.approx(2 / 3)
    assert clip_average_precision([1, 1, 1], [0, 0, 0]) == 1.0
    assert clip_average_precision([0, 0, 0], [0, 1, 2]) == 0.0


def test_clip_saliency_table():
    """8 s → 4 clips; ids 0 and 2 get their rows; a repeated id keeps its last row."""
    table = clip_saliency(8, [0, 2, 2], [[4, 2, 0], [0, 0, 0], [1, 3, 4]])
    assert table.tolist() == [[4, 2, 0], [0, 0, 0], [1, 3, 4], [0, 0, 0]]
    with pytest.raises(ValueError, match="outside"):
        clip_saliency(8, [4], [[1, 1, 1]])
    with pytest.raises(ValueError, match="rows"):
        clip_saliency(8, [0, 1], [[1, 1, 1]])


def test_highlight_detection():
    """Clips [4,2,0], 0, [1,3,4], 0; scores .9 .1 .5 .3 (clip 0 ranked first).
    Fair (≥2): annotator labels [1,0,0,0] → 1; [1,0,1,0] → 1; [0,0,1,0] → precision 1/2 at .5 → 1/2;
    mAP 5/6. Good (≥3): 1, 1/2, 1/2 → 2/3. VeryGood (≥4): 1, all-negative 0, 1/2 → 1/2.
    HIT@1: clip 0 is positive for annotator 0 at every level → 1."""
    metric = HighlightDetection()
    metric.update([[0.9, 0.1, 0.5, 0.3]], [clip_saliency(8, [0, 2], [[4, 2, 0], [1, 3, 4]])])
    out = {k: float(v) for k, v in metric.compute().items()}
    assert out["HL-min-Fair-mAP"] == pytest.approx(5 / 6)
    assert out["HL-min-Good-mAP"] == pytest.approx(2 / 3)
    assert out["HL-min-VeryGood-mAP"] == pytest.approx(1 / 2)
    assert out["HL-min-Fair-Hit1"] == out["HL-min-VeryGood-Hit1"] == 1.0


def test_highlight_top_clip_beyond_the_video_and_empty_scores_miss():
    """Scores longer than the 4 clips peak at index 5 → HIT@1 0 (AP uses the first 4 scores).
    An empty score list (an official crash) also misses, with AP over all-zero scores:
    labels [1, 0, 0, 0] all tied → precision 1/4 → AP 1/4."""
    table = clip_saliency(8, [0], [[4, 4, 4]])
    metric = HighlightDetection()
    metric.update([[0.9, 0.0, 0.0, 0.0, 0.0, 1.0], []], [table, table])
    out = {k: float(v) for k, v in metric.compute().items()}
    assert out["HL-min-Fair-Hit1"] == 0.0
    assert out["HL-min-Fair-mAP"] == pytest.approx((1 + 0.25) / 2)


def test_column_sums_add_as_numpy_sums_each_column():
    """numpy sums 8 or more values pairwise, so a sum in rank order would differ in the last bit."""
    rng = np.random.default_rng(0)
    values = rng.random((40, 300)) * 10.0 ** rng.integers(-8, 9, (40, 300))
    mask = rng.random((40, 300)) < np.linspace(0, 1, 300)  # 0 to 40 values per column
    expected = [np.sum(values[:, i][mask[:, i]]) for i in range(300)]
    assert column_sums(values, mask).tolist() == expected


# The per-query reference: the previous implementation, the official loops one query at a time.


def reference_greedy_hits(iou: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    hits = np.zeros((len(thresholds), iou.shape[0]), dtype=bool)
    taken = np.zeros((len(thresholds), iou.shape[1]), dtype=bool)
    for i, row in enumerate(iou):
        order = np.argsort(row)[::-1]
        for t, threshold in enumerate(thresholds):
            stop = next((j for j in order if row[j] < threshold or not taken[t, j]), None)
            if stop is not None and row[stop] >= threshold:
                taken[t, stop] = hits[t, i] = True
    return hits


def reference_voc_ap(hits: np.ndarray, num_truths: int) -> float:
    found = np.cumsum(hits).astype(float)
    precision = np.concatenate([[0.0], found / np.arange(1, len(hits) + 1), [0.0]])
    recall = np.concatenate([[0.0], found / num_truths, [1.0]])
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1]) + 1
    return float(np.sum((recall[steps] - recall[steps - 1]) * envelope[steps]))


def reference_moment_scores(
    scored: list, truths: list, buckets: Mapping = LENGTH_BUCKETS, max_windows: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """AP and R1 hits ``(buckets, thresholds)`` of one query; NaN for a bucket without truths."""
    scored = list(scored)[:max_windows]
    ap = np.full((len(buckets), len(MR_THRESHOLDS)), np.nan)
    r1 = ap.copy()
    for b, bounds in enumerate(buckets.values()):
        kept = list(truths) if bounds is None else [w for w in truths if bounds[0] < w[1] - w[0] <= bounds[1]]
        if not kept:
            continue
        if not scored:
            ap[b] = r1[b] = 0.0
            continue
        ranked = sorted(scored, key=lambda w: -w[2])  # stable: ties keep list order
        iou = temporal_iou([w[:2] for w in ranked], [w[:2] for w in kept]).numpy()
        ap[b] = [reference_voc_ap(row, len(kept)) for row in reference_greedy_hits(iou, MR_THRESHOLDS)]
        first = [scored[0][:2]]
        best = int(temporal_iou(first, [w[:2] for w in kept]).argmax())
        r1[b] = float(temporal_iou(first, [kept[best][:2]], hull=True)) >= np.array(MR_THRESHOLDS)
    return ap, r1


def reference_get_ap(labels: np.ndarray, scores: np.ndarray) -> float:
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


def reference_highlight_scores(pred: list, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AP ``(levels, annotators)`` and HIT@1 ``(levels,)`` of one query."""
    fitted = np.zeros(len(truth))
    kept = np.asarray(pred, dtype=float)[: len(truth)]
    fitted[: len(kept)] = kept
    top = int(np.argmax(pred)) if len(pred) else len(truth)
    ap, hit = [], []
    for minimum in SALIENCY_LEVELS.values():
        positive = (truth >= minimum).astype(float)
        ap.append([reference_get_ap(positive[:, a], fitted) for a in range(truth.shape[1])])
        hit.append(positive[top].max() if top < len(truth) else 0.0)
    return np.array(ap), np.array(hit)


def random_moment_queries(count: int, seed: int = 0) -> tuple[list, list]:
    """Windows on coarse grids (equal IoUs, exact threshold hits), tied scores, duplicated,
    zero-length and reversed windows, 0 to 12 predictions and 0 to 12 truths, plus fixed edge cases."""
    rng = np.random.default_rng(seed)
    preds, truths = [], []
    for _ in range(count):
        grid = rng.choice([0.5, 1.0, 2.0])
        truth = []
        for _ in range(rng.choice([1, 1, 2, 3, 5, 8, 12])):
            start = rng.integers(0, 40) * grid
            truth.append([start, start + rng.choice([0, 1, 3, 5, 10, 15, 40]) * grid])
        scored = []
        for _ in range(rng.choice([0, 1, 1, 2, 5, 10, 10, 12])):
            if scored and rng.random() < 0.2:
                scored.append(list(scored[rng.integers(len(scored))]))  # a duplicate
                continue
            if rng.random() < 0.6:
                start, end = truth[rng.integers(len(truth))]
                start, end = start + rng.integers(-2, 3) * grid, end + rng.integers(-2, 3) * grid
            else:
                start = rng.integers(0, 40) * grid
                end = start + rng.integers(-1, 20) * grid
            scored.append([float(start), float(end), float(rng.choice([0.1, 0.5, 0.9, rng.random()]))])
        preds.append(scored)
        truths.append([[float(s), float(e)] for s, e in truth])
    # 3 misses, then 7 of 8 truths: 8 AP terms, whose pairwise sum differs from a sum in rank order
    late = [[200.0 + 10 * i, 205.0 + 10 * i, 0.9 - i / 100] for i in range(3)]
    late += [[10.0 * i, 10.0 * i + 5, 0.5 - i / 100] for i in range(7)]
    edge_cases = [
        ([], [[0.0, 4.0]]),  # no prediction
        ([[1.0, 5.0, 0.3]], [[0.0, 4.0], [1.0, 5.0]]),  # one prediction, tied truths
        ([[0.0, 4.0, 0.5]] * 3, [[0.0, 4.0], [0.0, 4.0]]),  # identical predictions and truths
        ([[2.0, 2.0, 0.9], [0.0, 4.0, 0.9]], [[2.0, 2.0], [0.0, 4.0]]),  # zero-length windows
        ([[0.0, 40.0, 0.2], [5.0, 45.0, 0.2]], [[0.0, 40.0], [0.0, 60.0]]),  # only long truths
        ([[0.0, 4.0, 0.5]], []),  # no truth: no bucket scores it
        (late, [[10.0 * i, 10.0 * i + 5] for i in range(8)]),
    ]
    for scored, truth in edge_cases:
        preds.append(scored)
        truths.append(truth)
    return preds, truths


def random_highlight_queries(count: int, seed: int = 0) -> tuple[list, list]:
    """0 to 75 clips, all-positive and all-negative tables, tied scores, score lists empty, cut and padded."""
    rng = np.random.default_rng(seed)
    preds, tables = [], []
    for _ in range(count):
        clips = int(rng.choice([0, 1, 2, 5, 20, 75]))
        ids = sorted(set(rng.integers(0, clips, rng.integers(0, clips + 1)).tolist())) if clips else []
        table = clip_saliency(2 * clips, ids, rng.integers(0, 5, (len(ids), 3)).tolist())
        if clips and rng.random() < 0.1:
            table[:] = 4
        length = int(rng.choice([0, clips, clips, max(clips - 3, 0), clips + 4]))
        scores = rng.integers(0, 5, length) / 4 if rng.random() < 0.5 else rng.random(length).round(3)
        preds.append(scores.tolist())
        tables.append(table)
    return preds, tables


def batched_against_reference(metric_class, preds, targets, reference, monkeypatch) -> dict[str, float]:
    """Each query's two score arrays equal the reference's exactly; then the metric over two updates in chunks of 37
    (``CHUNK`` patched), whose results the caller checks."""
    first, second = metric_class().query_scores(preds, targets)
    np.testing.assert_array_equal(first, np.stack([a for a, _ in reference]))
    np.testing.assert_array_equal(second, np.stack([b for _, b in reference]))
    monkeypatch.setattr(qvhighlights, "CHUNK", 37)
    metric = metric_class()
    metric.update(preds[:150], targets[:150])
    metric.update(preds[150:], targets[150:])
    return {key: float(value) for key, value in metric.compute().items()}


def test_batched_moment_retrieval_equals_the_per_query_reference(monkeypatch):
    """Every query's AP and R1 per bucket and threshold, and the metric over several updates and chunks,
    equal the reference exactly."""
    preds, truths = random_moment_queries(400)
    reference = [reference_moment_scores(p, t) for p, t in zip(preds, truths)]
    out = batched_against_reference(MomentRetrievalMAP, preds, truths, reference, monkeypatch)
    for b, name in enumerate(LENGTH_BUCKETS):
        rows = [(a[b], r[b]) for a, r in reference if not np.isnan(a[b, 0])]
        ap_sum, r1_sum = np.zeros(len(MR_THRESHOLDS)), np.zeros(len(MR_THRESHOLDS))
        for a, r in rows:  # the official mean(0): query after query
            ap_sum, r1_sum = ap_sum + a, r1_sum + r
        assert out[f"MR-{name}-mAP"] == float(np.mean(ap_sum / len(rows)))
        for t, threshold in enumerate(MR_THRESHOLDS):
            assert out[f"MR-{name}-mAP@{threshold}"] == ap_sum[t] / len(rows)
            assert out[f"MR-{name}-R1@{threshold}"] == r1_sum[t] / len(rows)


def test_batched_highlight_detection_equals_the_per_query_reference(monkeypatch):
    preds, tables = random_highlight_queries(400)
    reference = [reference_highlight_scores(p, t) for p, t in zip(preds, tables)]
    out = batched_against_reference(HighlightDetection, preds, tables, reference, monkeypatch)
    for index, name in enumerate(SALIENCY_LEVELS):
        assert out[f"HL-min-{name}-mAP"] == np.mean(np.stack([a[index] for a, _ in reference]))
        assert out[f"HL-min-{name}-Hit1"] == np.mean(np.array([h[index] for _, h in reference]))

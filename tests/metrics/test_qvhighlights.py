"""QVHighlights metrics (Moment-DETR's definitions) on hand-computed queries."""

from __future__ import annotations

import math

import numpy as np
import pytest

from groundlight.metrics.qvhighlights import (
    MR_THRESHOLDS,
    HighlightDetection,
    MomentRetrievalMAP,
    bucket_windows,
    clip_saliency,
    greedy_hits,
    query_average_precision,
    ranked_average_precision,
    voc_average_precision,
)


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
    hits = greedy_hits(np.array([[0.8, 0.8], [0.6, 0.9]]), [0.5, 0.7])
    assert hits.tolist() == [[True, True], [True, False]]


def tie_query():
    """Truths [0, 10], [2, 12]; [1, 11] (0.9) overlaps both by 9/11, [2, 12] (0.8) is the 2nd truth."""
    return [[1.0, 11.0, 0.9], [2.0, 12.0, 0.8]], [[0.0, 10.0], [2.0, 12.0]]


def test_query_average_precision_of_a_tie():
    """[1, 11] takes truth 2 (ties go to the last index). [2, 12] then overlaps truth 1 by 8/12:
    t ≤ 0.65: both hit → AP 1; t 0.7–0.8: hits [1, 0] → 1/2; t ≥ 0.85: 9/11 misses, [2, 12] takes
    truth 2 → hits [0, 1] → precision 1/2 at recall 1/2 → 1/4. Mean (4 + 1.5 + 0.75) / 10 = 0.625."""
    ap = query_average_precision(*tie_query())
    assert ap.tolist() == pytest.approx([1, 1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25])
    assert ap.mean() == pytest.approx(0.625)


def test_ranking_is_a_stable_sort_on_score():
    """Equal scores keep list order: [0, 10] then [20, 30] against the one truth [0, 10] → AP 1;
    listed the other way round → hits [0, 1] → 1/2."""
    truth = [[0.0, 10.0]]
    assert query_average_precision([[0.0, 10.0, 0.5], [20.0, 30.0, 0.5]], truth)[0] == 1.0
    assert query_average_precision([[20.0, 30.0, 0.5], [0.0, 10.0, 0.5]], truth)[0] == 0.5


def test_buckets_keep_windows_in_half_open_ranges():
    """Lengths 10, 10.5, 0: (0, 10] keeps the 10; (10, 30] keeps 10.5; full keeps all three."""
    windows = [[0, 10], [0, 10.5], [3, 3]]
    assert bucket_windows(windows, (0, 10)) == [[0, 10]]
    assert bucket_windows(windows, (10, 30)) == [[0, 10.5]]
    assert bucket_windows(windows, None) == windows


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


def test_ranked_average_precision_means_precisions_where_recall_grows():
    """Labels [1, 0, 1], scores .9 .8 .7: precisions 1, 1/2, 2/3; recall grows at the 1st and 3rd
    → interpolated 1 and 2/3 → 5/6. With ties, labels [1, 0, 1, 0], scores .5 .5 .2 .1: points
    (.5: 1/2), (.2: 2/3), (.1: 2/4); recall grows at .5 and .2 → interpolated 2/3, 2/3 → 2/3
    (sklearn's average_precision_score would give 0.58). All 1 → 1, all 0 → 0."""
    assert ranked_average_precision(np.array([1.0, 0, 1]), np.array([0.9, 0.8, 0.7])) == pytest.approx(5 / 6)
    assert ranked_average_precision(np.array([1.0, 0, 1, 0]), np.array([0.5, 0.5, 0.2, 0.1])) == pytest.approx(2 / 3)
    assert ranked_average_precision(np.ones(3), np.zeros(3)) == 1.0
    assert ranked_average_precision(np.zeros(3), np.arange(3.0)) == 0.0


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

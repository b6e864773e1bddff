"""MomentRetrieval and the temporal IoU options it relies on, with hand-computed values."""

from __future__ import annotations

import pytest
import torch

from groundlight.metrics.moment import MomentRetrieval
from groundlight.metrics.temporal import paired_temporal_iou, temporal_iop, temporal_iou


def test_iou_of_overlapping_windows():
    """[2, 6] vs [4, 10]: overlap 2, union 4 + 6 - 2 = 8 → 0.25 (the hull 10 - 2 = 8 agrees)."""
    assert float(temporal_iou([[2, 6]], [[4, 10]])) == 0.25
    assert float(temporal_iou([[2, 6]], [[4, 10]], hull=True)) == 0.25


def test_reversed_and_point_windows_never_overlap_nor_give_nan():
    """[6, 2] against [0, 10] overlaps nothing; two equal points have union 0 → 0, not NaN."""
    iou = temporal_iou([[6, 2], [5, 5]], [[0, 10], [5, 5]])
    assert iou.tolist() == [[0.0, 0.0], [0.0, 0.0]]
    assert temporal_iou([[6, 2], [5, 5]], [[0, 10], [5, 5]], hull=True).tolist() == [[0.0, 0.0], [0.0, 0.0]]


def test_hull_and_union_round_to_opposite_sides_of_a_threshold():
    """[3.7, 17.5] vs [3.7, 31.3]: 13.8 / 27.6 is 0.5 by the hull, one ulp below by 13.8 + 27.6 - 13.8."""
    assert float(temporal_iou([[3.7, 17.5]], [[3.7, 31.3]], hull=True)) == 0.5
    assert float(temporal_iou([[3.7, 17.5]], [[3.7, 31.3]])) < 0.5


def test_float32_puts_seven_tenths_below_threshold():
    """[0, 7] vs [0, 10]: 7/10 in float32 is 0.69999999, below the double 0.7; in float64 it is 0.7."""
    assert float(temporal_iou([[0, 7]], [[0, 10]])) >= 0.7
    assert float(temporal_iou([[0, 7]], [[0, 10]], dtype=torch.float32)) < 0.7


def test_paired_iou_broadcasts():
    """Rows [0, 2] and [1, 3] against [1, 3]: overlaps 1 and 2, unions 3 and 2 → 1/3 and 1."""
    iou = paired_temporal_iou(torch.tensor([[0.0, 2.0], [1.0, 3.0]]), torch.tensor([[1.0, 3.0]]))
    assert iou.tolist() == pytest.approx([1 / 3, 1.0])


def test_iop_counts_points_inside_with_ends_included():
    """Point 3 lies in [0, 3] (end included) → 1, outside [3.5, 10] → 0; [2, 4] keeps 1 of its 2 s in [0, 3];
    reversed [5, 1] → 0."""
    iop = temporal_iop([[3, 3], [2, 4], [5, 1]], [[0, 3], [3.5, 10]])
    assert iop.tolist() == [[1.0, 0.0], [0.5, 0.25], [0.0, 0.0]]


def cases():
    """(0, 7)/[0, 10] → 0.7; None → failed; (6, 2)/[2, 6] reversed; (2, 6)/[4, 10] → 2/8 = 0.25."""
    preds = [(0.0, 7.0), None, (6.0, 2.0), (2.0, 6.0)]
    targets = [[(0.0, 10.0)], [(2.0, 6.0)], [(2.0, 6.0)], [(4.0, 10.0)]]
    return preds, targets


def test_etchat_convention():
    """float32: 0.7 misses R1@0.7; the reversed window scores 0; None scores 0 and is counted.
    R1@0.3 = R1@0.5 = 1/4 (only the 0.7), R1@0.7 = 0, mIoU = (0.69999999 + 0.25) / 4 ≈ 0.2375."""
    metric = MomentRetrieval()
    metric.update(*cases())
    out = metric.compute()
    assert float(out["R1@0.3"]) == 0.25 and float(out["R1@0.5"]) == 0.25 and float(out["R1@0.7"]) == 0.0
    assert float(out["mIoU"]) == pytest.approx(0.2375, abs=1e-7)
    assert float(out["parse_failed"]) == 1.0


@pytest.mark.parametrize("convention", ["timechat", "lmms"])
def test_sorting_conventions(convention):
    """(6, 2) is sorted to (2, 6) → IoU 1; 0.7 hits in float64. IoUs 0.7, 0, 1, 0.25:
    R1@0.3 = R1@0.5 = R1@0.7 = 2/4, mIoU = 1.95 / 4 = 0.4875."""
    metric = MomentRetrieval(convention=convention)
    metric.update(*cases())
    out = metric.compute()
    assert [float(out[f"R1@{t}"]) for t in (0.3, 0.5, 0.7)] == [0.5, 0.5, 0.5]
    assert float(out["mIoU"]) == pytest.approx(0.4875)


def test_best_of_several_truths_and_no_truth():
    """(0, 4) vs [0, 8] → 0.5 and vs [1, 4] → 3/4: the best, 0.75, counts. No truth → IoU 0."""
    metric = MomentRetrieval(convention="timechat")
    metric.update([(0.0, 4.0), (0.0, 4.0)], [[(0.0, 8.0), (1.0, 4.0)], []])
    assert float(metric.compute()["mIoU"]) == pytest.approx(0.75 / 2)


def test_batches_and_merged_states_equal_one_pass():
    """Two batches, or two replicas merged as DDP would reduce them, equal one update."""
    preds, targets = cases()
    whole = MomentRetrieval()
    whole.update(preds, targets)
    first, second = MomentRetrieval(), MomentRetrieval()
    first.update(preds[:2], targets[:2])
    second.update(preds[2:], targets[2:])
    first.merge_state(second)
    assert {k: float(v) for k, v in first.compute().items()} == {k: float(v) for k, v in whole.compute().items()}


def test_rejects_unknown_convention():
    with pytest.raises(ValueError, match="convention"):
        MomentRetrieval(convention="mine")

"""NExT-GQA's grounded QA metrics on hand-computed questions."""

from __future__ import annotations

import pytest

from groundlight.metrics.nextgqa import GroundedQA, best_overlaps


def test_best_overlaps_takes_each_maximum_separately():
    """[2, 4] vs [3, 10]: overlap 1, hull 8 → IoU 1/8, IoP 1/2; vs [0, 3]: hull 4 → IoU 1/4, IoP 1/2."""
    assert best_overlaps([2.0, 4.0], [[3.0, 10.0], [0.0, 3.0]]) == (0.25, 0.5)


def test_points_reversed_and_missing_truths():
    """A point at 3 inside [3, 10] (ends included): IoU 0, IoP 1. Reversed [5, 1]: 0, 0. No truth: 0, 0."""
    assert best_overlaps([3.0, 3.0], [[3.0, 10.0]]) == (0.0, 1.0)
    assert best_overlaps([5.0, 1.0], [[0.0, 10.0]]) == (0.0, 0.0)
    assert best_overlaps([1.0, 2.0], []) == (0.0, 0.0)


def test_hull_iou_decides_a_tie_at_half():
    """[0.4, 5.3] vs [0.4, 10.2]: 4.9 / 9.8 is 0.5 by the hull (the official IoU), just below by union."""
    assert best_overlaps([0.4, 5.3], [[0.4, 10.2]])[0] == 0.5


def test_grounded_qa():
    """q1 [2, 4] (right answer): IoU 1/4, IoP 1/2 → counts for Acc@GQA (IoP ≥ 0.5).
    q2 point 3 in [3, 10] (wrong answer): IoU 0, IoP 1. q3 [0, 10] vs [0, 5] (right): IoU 1/2, IoP 1/2.
    Acc@GQA 2/3, mIoP (1/2 + 1 + 1/2)/3 = 2/3, IoP@0.3 = IoP@0.5 = 1, mIoU 0.75/3 = 1/4,
    IoU@0.3 = IoU@0.5 = 1/3."""
    metric = GroundedQA()
    metric.update(
        [[2.0, 4.0], [3.0, 3.0], [0.0, 10.0]],
        [[[3.0, 10.0], [0.0, 3.0]], [[3.0, 10.0]], [[0.0, 5.0]]],
        [True, False, True],
    )
    out = {k: float(v) for k, v in metric.compute().items()}
    assert out == pytest.approx({"Acc@GQA": 2 / 3, "mIoP": 2 / 3, "IoP@0.3": 1.0, "IoP@0.5": 1.0,
                                 "mIoU": 0.25, "IoU@0.3": 1 / 3, "IoU@0.5": 1 / 3})
    assert list(out) == ["Acc@GQA", "mIoP", "IoP@0.3", "IoP@0.5", "mIoU", "IoU@0.3", "IoU@0.5"]


def test_merged_states_equal_one_pass():
    """Sum states: two replicas merged as DDP reduces them equal one update."""
    preds, truths, correct = [[2.0, 4.0], [0.0, 10.0]], [[[0.0, 3.0]], [[0.0, 5.0]]], [True, False]
    whole, first, second = GroundedQA(), GroundedQA(), GroundedQA()
    whole.update(preds, truths, correct)
    first.update(preds[:1], truths[:1], correct[:1])
    second.update(preds[1:], truths[1:], correct[1:])
    first.merge_state(second)
    assert {k: float(v) for k, v in first.compute().items()} == {k: float(v) for k, v in whole.compute().items()}


def test_lengths_must_agree():
    with pytest.raises(ValueError, match="2 predictions"):
        GroundedQA().update([[0.0, 1.0], [0.0, 1.0]], [[[0.0, 1.0]]], [True])

"""Evidence responses written as text, their parser and the multi-event grounding metric (hand-computed)."""

from __future__ import annotations

import pytest
import torch

from data_modules.tasks.evidence import EvidenceResponse, timestamp_text
from groundlight.metrics.evidence import EvidenceGrounding, evidence_scores
from groundlight.metrics.parse import parse_evidence


def test_timestamp_text_is_what_the_parser_reads_back():
    response = EvidenceResponse(((75.0, 83.0), (120.0, 128.5)), (", cut the mango.", ", enjoy it."), lead="First,")
    text = response.timestamp_text()
    assert text == ("Evidence: 75.0 - 83.0 seconds, 120.0 - 128.5 seconds. Answer: First, 75.0 - 83.0 seconds, cut the "
                    "mango. 120.0 - 128.5 seconds, enjoy it.")
    assert parse_evidence(text) == [(75.0, 83.0), (120.0, 128.5)]
    assert timestamp_text([(1.0, 2.0)], "", [(None, " x")]) == "Evidence: 1.0 - 2.0 seconds. Answer:  x"


@pytest.mark.parametrize("text, expected", [
    ("Evidence: 1.0 - 3.0 seconds, 5 - 7 seconds. Answer: 1.0 - 3.0 seconds, a.", [(1.0, 3.0), (5.0, 7.0)]),
    ("Evidence: 1.0 - 3.0 seconds, 5.0 - 7.0 seconds", None),          # never closed its grounding stage
    ("1.0 - 3.0 seconds. Answer: 1.0 - 3.0 seconds, a.", None),          # no grounding stage
    ("Evidence: nothing. Answer: 1.0 - 3.0 seconds, a.", None),          # a stage without a span
    ("Answer: x. Evidence: 1.0 - 3.0 seconds.", None),                   # stages out of order
    ("Evidence: 9.0 - 2.0 seconds. Answer:", [(9.0, 2.0)]),              # reversed: kept, it overlaps nothing
    ("Evidence: 1.2.3 - 4.0 seconds. Answer:", None),                    # a malformed number is no span
])
def test_parse_evidence(text, expected):
    assert parse_evidence(text) == expected


def test_scores_by_hand():
    # one event found exactly, one missed: at every threshold P = R = 1/2
    assert evidence_scores([(0, 4), (10, 12)], [(0, 4), (5, 9)]) == {"F1": 0.5, "mIoU": 0.5, "parse_failed": 0.0}
    # one span over both events: IoU 0.4 with each → F1 1 at 0.1 and 0.3, 0 at 0.5 and 0.7
    scores = evidence_scores([(0, 10)], [(0, 4), (5, 9)])
    assert scores["F1"] == pytest.approx(0.5) and scores["mIoU"] == pytest.approx(0.4)
    # three predictions, two right: P = 2/3, R = 1 → F1 0.8 at every threshold
    assert evidence_scores([(0, 4), (5, 9), (20, 30)], [(0, 4), (5, 9)])["F1"] == pytest.approx(0.8)
    assert evidence_scores(None, [(0, 4)]) == {"F1": 0.0, "mIoU": 0.0, "parse_failed": 1.0}
    with pytest.raises(ValueError, match="ground-truth"):
        evidence_scores([(0, 1)], [])


def test_metric_is_the_mean_of_question_scores():
    metric = EvidenceGrounding()
    preds = [[(0, 4), (10, 12)], [(0, 10)], None]
    targets = [[(0, 4), (5, 9)], [(0, 4), (5, 9)], [(1, 2)]]
    metric.update(preds, targets)
    out = metric.compute()
    per_question = [metric.question_scores(p, t) for p, t in zip(preds, targets)]
    assert out["F1"].item() == pytest.approx(sum(q["F1"] for q in per_question) / 3)
    assert out["mIoU"].item() == pytest.approx((0.5 + 0.4 + 0) / 3)
    assert out["parse_failed"] == torch.tensor(1.0, dtype=torch.float64)

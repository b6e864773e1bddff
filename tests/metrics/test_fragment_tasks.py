"""Fragment tasks in the registry: the order parser on tricky outputs, exact-order accuracy by hand, logging."""

from __future__ import annotations

import pytest
import torch

from data_modules.samples import FrameSet, VideoSample
from groundlight.metrics.order import OrderAccuracy
from groundlight.metrics.parse import parse_order
from groundlight.metrics.tasks import TaskMetrics, parse_prediction, prediction_record


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3, 1, 2", (3, 1, 2)),
        ("[3 1 2]", (3, 1, 2)),
        ("fragment 3, fragment 1, fragment 2", (3, 1, 2)),
        ("The order is 3 -> 1 -> 2.", (3, 1, 2)),
        ("312", (3, 1, 2)),
        ("3 fragments: 2, 3, 1", (2, 3, 1)),
        ("1, 1, 2", None),
        ("3, 1", None),
        ("4, 1, 2", None),
        ("", None),
        ("I cannot tell", None),
    ],
)
def test_parse_order(text: str, expected: tuple[int, ...] | None) -> None:
    assert parse_order(text, 3) == expected


def test_order_accuracy_by_hand() -> None:
    """Reference (3, 1, 2) three times: exact, two of three positions (3, 2, 1 keeps the 3), unparsed.
    exact = 1/3; position accuracy = (3/3 + 1/3 + 0) / 3 = 4/9; one parse failure."""
    metric = OrderAccuracy()
    metric.update([(3, 1, 2), (3, 2, 1), None], [[3, 1, 2]] * 3)
    result = metric.compute()
    assert result["exact"].item() == pytest.approx(1 / 3)
    assert result["position_accuracy"].item() == pytest.approx(4 / 9)
    assert result["parse_failed"].item() == 1


def _sets(count: int) -> list[FrameSet]:
    return [FrameSet("v.mp4", 3 * count, (3 * k, 3 * k + 1, 3 * k + 2)) for k in range(count)]


def test_fragment_tasks_are_parsed_scored_and_logged_by_name() -> None:
    samples = [
        VideoSample("c", "v.mp4", "fragment_counting", "q", options=["3", "4", "5"], answer_index=1, frame_sets=_sets(1)),
        VideoSample("d", "v.mp4", "fragment_disorder", "q", label=False, frame_sets=_sets(3)),
        VideoSample("r", "v.mp4", "fragment_rearrangement", "q", order=[2, 3, 1], frame_sets=_sets(3)),
    ]
    texts = ["(B)", "No, they are shuffled.", "2, 1, 3"]
    parsed = [parse_prediction(s, t) for s, t in zip(samples, texts)]
    assert parsed == [1, 1, (2, 1, 3)]
    metrics = TaskMetrics()
    metrics.update(samples, parsed)
    result = metrics.compute()
    assert result["counting_accuracy"].item() == 1.0
    assert result["disorder_accuracy"].item() == 1.0
    assert result["rearrangement_exact"].item() == 0.0
    assert result["rearrangement_position_accuracy"].item() == pytest.approx(1 / 3)
    assert prediction_record(samples[2], texts[2], parsed[2])["order"] == [2, 3, 1]
    assert metrics.question_scores(samples[2], parsed[2]) == {
        "rearrangement_exact": 0.0, "rearrangement_position_accuracy": pytest.approx(1 / 3),
        "rearrangement_parse_failed": 0.0}
    assert isinstance(result["rearrangement_parse_failed"], torch.Tensor)

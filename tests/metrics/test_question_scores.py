"""Per-question scores average to exactly what the metrics compute (the science reports rely on it)."""

import pytest
import torch

from data_modules.samples import VideoSample
from groundlight.metrics.tasks import TaskMetrics


def test_question_scores_average_to_the_task_metrics():
    samples = [
        VideoSample("m0", "v.mp4", "moment_retrieval", "q", windows=[(2.0, 6.0)]),
        VideoSample("m1", "v.mp4", "moment_retrieval", "q", windows=[(0.0, 4.0), (10.0, 12.0)]),
        VideoSample("m2", "v.mp4", "moment_retrieval", "q", windows=[(1.0, 3.0)]),
        VideoSample("c0", "v.mp4", "mcq", "q", options=["a", "b"], answer_index=1),
        VideoSample("c1", "v.mp4", "mcq", "q", options=["a", "b"], answer_index=0),
    ]
    parsed = [(3.0, 6.0), (10.0, 11.0), None, 1, None]
    metrics = TaskMetrics()
    metrics.update(samples, parsed)
    totals = {k: float(v) for k, v in metrics.compute().items()}
    per_question = [metrics.question_scores(s, p) for s, p in zip(samples, parsed)]
    # m0: IoU 3/4; m1: best window (10, 12) gives 1/2; m2: unparseable, 0.
    assert [q["mIoU"] for q in per_question[:3]] == pytest.approx([0.75, 0.5, 0.0])
    for key in ("mIoU", "R1@0.3", "R1@0.5", "R1@0.7"):
        assert sum(q[key] for q in per_question[:3]) / 3 == pytest.approx(totals[key])
    assert sum(q["mcq_accuracy"] for q in per_question[3:]) / 2 == pytest.approx(totals["mcq_accuracy"])
    assert sum(q["mr_parse_failed"] for q in per_question[:3]) == totals["mr_parse_failed"] == 1.0
    assert torch.is_tensor(metrics.compute()["mIoU"])

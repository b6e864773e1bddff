"""The QVHighlights scoring benchmark: its JSON, and that the scores it times are the metric classes' own."""

import json

import pytest

from groundlight.bench.qvhighlights import run, synthetic_queries
from groundlight.metrics.qvhighlights import HighlightDetection, MomentRetrievalMAP


def test_the_benchmark_writes_its_json_with_the_scores_of_the_metric_classes(tmp_path):
    result = run(tmp_path, queries=300, seed=1)
    written = json.loads((tmp_path / "qvhighlights.json").read_text())
    assert written["queries"] == 300 and written["goal_seconds"] == 30.0 and written["seconds"] > 0
    data = synthetic_queries(300, seed=1)
    mr, hd = MomentRetrievalMAP(), HighlightDetection()
    mr.update(data.windows, data.truths)
    hd.update(data.saliency, data.tables)
    expected = {k: float(v) for k, v in (mr.compute() | hd.compute()).items()}
    assert result["scores"] == pytest.approx({k: expected[k] for k in result["scores"]}, abs=1e-6)
    assert len(result["scores"]) == 6

"""``groundlight eval qvhighlights``: Moment-DETR's JSON to the digit, defined results where it crashes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from groundlight.evaluate.cli import main

FIX = Path(__file__).parents[1] / "fixtures" / "eval" / "qvh"


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("case", ["random", "mr_only", "hl_only"])
def test_matches_standalone_eval_byte_for_byte(tmp_path, case):
    """Random windows and scores with ties, reversed/point/out-of-video windows, duplicates, 20 truths,
    tie-decided matches, hull-vs-union R1 ties, bucket edges, padded/cut saliency lists."""
    out = tmp_path / "metrics.json"
    folder = FIX / case
    assert main(["qvhighlights", "--gt", str(folder / "gt.jsonl"), "--pred", str(folder / "submission.jsonl"),
                 "--json", str(out)]) == 0
    assert out.read_text() == (folder / "official.json").read_text()


def crash_case(tmp_path: Path) -> tuple[Path, Path]:
    truths = [
        {"qid": 1, "duration": 20, "relevant_windows": [[0, 10]], "relevant_clip_ids": [0],
         "saliency_scores": [[4, 4, 4]]},
        {"qid": 2, "duration": 20, "relevant_windows": [], "relevant_clip_ids": [], "saliency_scores": []},
        {"qid": 3, "duration": 1, "relevant_windows": [[2, 14]], "relevant_clip_ids": [], "saliency_scores": []},
        {"qid": 4, "duration": 20, "relevant_windows": [[0, 4]], "relevant_clip_ids": [0],
         "saliency_scores": [[2, 2, 2]]},
    ]
    preds = [
        {"qid": 1, "pred_relevant_windows": [[0, 10, 0.9]], "pred_saliency_scores": [1.0] + [0.0] * 9},
        {"qid": 2, "pred_relevant_windows": [[0, 10, 0.9]], "pred_saliency_scores": [0.0] * 10},
        {"qid": 3, "pred_relevant_windows": [[2, 14, 0.5]], "pred_saliency_scores": [0.3]},
        {"qid": 4, "pred_relevant_windows": [], "pred_saliency_scores": []},
    ]
    return write_jsonl(tmp_path / "gt.jsonl", truths), write_jsonl(tmp_path / "pred.jsonl", preds)


def test_defined_results_where_the_official_script_crashes(tmp_path):
    """q2 has no truth window → left out of MR. q3 (0 clips) → HL AP 0. q4 has no window → AP 0, R1 miss;
    no saliency → all-zero scores. Long bucket empty → null.
    MR full: q1 1, q3 1, q4 0 → 66.67; short: q1 1, q4 0 → 50; middle: q3 → 100.
    HL Fair: q1 AP 1 ×3, q2 0, q3 0, q4 all tied 10 clips with 1 positive → 1/10 ×3 → 3.3/12 = 27.5;
    Good and VeryGood: only q1 → 3/12 = 25; HIT@1: only q1 → 25."""
    gt, pred = crash_case(tmp_path)
    out = tmp_path / "metrics.json"
    assert main(["qvhighlights", "--gt", str(gt), "--pred", str(pred), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["brief"] == {
        "MR-full-R1@0.5": 66.67, "MR-full-R1@0.7": 66.67, "MR-full-mAP": 66.67, "MR-full-mAP@0.5": 66.67,
        "MR-full-mAP@0.75": 66.67, "MR-long-mAP": None, "MR-middle-mAP": 100.0, "MR-short-mAP": 50.0,
        "HL-min-Fair-mAP": 27.5, "HL-min-Fair-Hit1": 25.0, "HL-min-Good-mAP": 25.0, "HL-min-Good-Hit1": 25.0,
        "HL-min-VeryGood-mAP": 25.0, "HL-min-VeryGood-Hit1": 25.0,
    }
    assert result["long"]["MR-R1"]["0.95"] is None
    assert list(result) == ["brief", "HL-min-Fair", "HL-min-Good", "HL-min-VeryGood", "full", "long", "middle", "short"]


def test_table_marks_empty_buckets(tmp_path, capsys):
    gt, pred = crash_case(tmp_path)
    assert main(["qvhighlights", "--gt", str(gt), "--pred", str(pred)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("MR-long-mAP") and line.endswith("n/a") for line in lines)
    assert any(line.startswith("MR-short-mAP") and line.endswith("50.00") for line in lines)


GOOD_TRUTH = {"qid": 1, "duration": 10, "relevant_windows": [[0, 4]], "relevant_clip_ids": [0],
              "saliency_scores": [[1, 2, 3]]}
GOOD_PRED = {"qid": 1, "pred_relevant_windows": [[0, 4, 1.0]], "pred_saliency_scores": [0.1] * 5}


@pytest.mark.parametrize("truths, preds, message", [
    ([GOOD_TRUTH], [{**GOOD_PRED, "qid": 2}], "qids differ"),
    ([GOOD_TRUTH], [GOOD_PRED, GOOD_PRED], "qid 1 appears more than once"),
    ([GOOD_TRUTH], [{**GOOD_PRED, "pred_relevant_windows": [[0, 4]]}], "qid 1 pred_relevant_windows[0]"),
    ([GOOD_TRUTH], [{**GOOD_PRED, "pred_saliency_scores": [0.1, None]}], "qid 1: 'pred_saliency_scores'"),
    ([{**GOOD_TRUTH, "relevant_clip_ids": [7]}], [GOOD_PRED], "qid 1: bad saliency"),
    ([GOOD_TRUTH, {**GOOD_TRUTH, "qid": 2}], [GOOD_PRED, {"qid": 2, "pred_relevant_windows": []}],
     "qid 2: 'pred_saliency_scores'"),
])
def test_malformed_input_names_file_and_query(tmp_path, capsys, truths, preds, message):
    gt, pred = write_jsonl(tmp_path / "gt.jsonl", truths), write_jsonl(tmp_path / "pred.jsonl", preds)
    assert main(["qvhighlights", "--gt", str(gt), "--pred", str(pred)]) == 1
    err = capsys.readouterr().err
    assert message in err and ".jsonl" in err

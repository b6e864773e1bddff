"""``groundlight eval nextgqa``: eval_ground.py's numbers, and its quirks made explicit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from groundlight.evaluate.cli import main

FIX = Path(__file__).parents[1] / "fixtures" / "eval" / "nextgqa"
KEYS = ("Acc@GQA", "mIoP", "IoP@0.3", "IoP@0.5", "mIoU", "IoU@0.3", "IoU@0.5")


def run_cli(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "result.json"
    assert main(["nextgqa", *args, "--json", str(out)]) == 0
    return json.loads(out.read_text())


@pytest.mark.parametrize("pred, official, extra", [("ground.json", "official.json", []),
                                                   ("ground_gs.json", "official_gs.json", ["--gs"])])
def test_matches_eval_ground(tmp_path, capsys, pred, official, extra):
    """Points on and off truth boundaries, reversed and out-of-video spans, a question without
    windows, unpredicted questions and an unknown key; hull ties at 0.3/0.5; --gs half-even rounding."""
    expected = json.loads((FIX / official).read_text())
    result = run_cli(tmp_path, "--gt", str(FIX / "gsub.json"), "--pred", str(FIX / pred),
                     "--qa", str(FIX / "qa.json"), *extra)
    cnt = expected["cnt"]
    assert result["scored"] == cnt
    assert result["mIoU"] == pytest.approx(expected["mIoU"], abs=1e-9)
    assert result["mIoP"] == pytest.approx(expected["mIoP"], abs=1e-9)
    counts = {"Acc@GQA": "cqt", "IoP@0.3": "crtp3", "IoP@0.5": "crtp5", "IoU@0.3": "crt3", "IoU@0.5": "crt5"}
    for key, name in counts.items():
        assert result[key] == pytest.approx(expected[name] * 1.0 / cnt * 100, abs=1e-9)
    printed = expected["printed"].splitlines()[1].split()
    assert [f"{result[k]:.1f}" for k in KEYS] == printed
    assert " ".join(printed) in " ".join(capsys.readouterr().out.split())


def test_without_qa_acc_is_null(tmp_path):
    result = run_cli(tmp_path, "--gt", str(FIX / "gsub.json"), "--pred", str(FIX / "ground.json"))
    assert result["Acc@GQA"] is None and result["qa_missing"] is None and result["mIoU"] > 0


def test_by_hand(tmp_path):
    """v_1 [2, 4] vs [[0, 3]]: IoU 1/4, IoP 1/2, right → GQA. v_2 point 3 in [3, 10], right → IoP 1 → GQA,
    but v_2 is missing from the QA file → wrong. v_3 unpredicted → left out.
    Acc 1/2 → 50; mIoP 3/4 → 75; mIoU 1/8 → 12.5; IoU@0.3 0."""
    gt = {"v": {"duration": 10, "location": {"1": [[0, 3]], "2": [[3, 10]], "3": [[0, 1]]}}}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "pred.json").write_text(json.dumps({"v_1": [2, 4], "v_2": [3, 3]}))
    (tmp_path / "qa.json").write_text(json.dumps({"v_1": {"answer": 2, "prediction": 2}}))
    result = run_cli(tmp_path, "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "pred.json"),
                     "--qa", str(tmp_path / "qa.json"))
    assert result == pytest.approx({"Acc@GQA": 50.0, "mIoP": 75.0, "IoP@0.3": 100.0, "IoP@0.5": 100.0,
                                    "mIoU": 12.5, "IoU@0.3": 0.0, "IoU@0.5": 0.0,
                                    "scored": 2, "unpredicted": 1, "qa_missing": 1})


@pytest.mark.parametrize("pred, message", [
    ({"v_1": [2]}, "'v_1'"), ({"v_1": "2-4"}, "'v_1'"), ({"w_1": [0, 1]}, "no prediction key"),
])
def test_malformed_input_names_file_and_key(tmp_path, capsys, pred, message):
    (tmp_path / "gt.json").write_text(json.dumps({"v": {"duration": 10, "location": {"1": [[0, 3]]}}}))
    (tmp_path / "pred.json").write_text(json.dumps(pred))
    assert main(["nextgqa", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "pred.json")]) == 1
    err = capsys.readouterr().err
    assert "pred.json" in err and message in err

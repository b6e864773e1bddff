"""``groundlight eval charades_sta``: official numbers on held-out files, and input errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from groundlight.evaluate.cli import main

FIX = Path(__file__).parents[1] / "fixtures" / "eval" / "charades"


def run_cli(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "result.json"
    assert main([*args, "--json", str(out)]) == 0
    return json.loads(out.read_text())


@pytest.mark.parametrize("pred, official", [("etchat_folder", "official_etchat_folder.json"),
                                            ("etchat_small.json", "official_etchat_small.json")])
def test_matches_etchat_eval_grounding(tmp_path, capsys, pred, official):
    """E.T. Chat's script on the same files: the same counts, sums, and printed (3-digit) line."""
    expected = json.loads((FIX / official).read_text())
    result = run_cli(tmp_path, "charades_sta", "--pred", str(FIX / pred))
    total = expected["total"]
    assert (result["total"], result["failed"]) == (total, expected["failed"])
    for key, hits in (("R1@0.3", "hit_3"), ("R1@0.5", "hit_5"), ("R1@0.7", "hit_7")):
        assert result[key] == expected[hits] / total
    assert result["mIoU"] == pytest.approx(expected["iou_sum"] / total, abs=1e-12)
    r = {k: round(result[k], 3) for k in ("R1@0.3", "R1@0.5", "R1@0.7", "mIoU")}
    assert f"R@0.3: {r['R1@0.3']} R@0.5: {r['R1@0.5']} R@0.7: {r['R1@0.7']}\nmIoU: {r['mIoU']}" in expected["log"]
    assert f"{r['mIoU']}" in capsys.readouterr().out


def read_rows() -> list[dict]:
    return [json.loads(line) for line in (FIX / "predict.jsonl").read_text().splitlines()]


def test_timechat_convention_matches_eval_tvg(tmp_path):
    """TimeChat's format_tvg + eval_tvg on the same answers: hits / number of queries."""
    expected = json.loads((FIX / "official_timechat.json").read_text())
    result = run_cli(tmp_path, "activitynet", "--pred", str(FIX / "predict.jsonl"), "--convention", "timechat")
    assert result["total"] == expected["num"] == len(read_rows())
    for t in ("0.3", "0.5", "0.7"):
        assert result[f"R1@{t}"] == expected["Result"][t] / expected["num"]


def test_lmms_convention_matches_lmms_eval(tmp_path):
    """lmms-eval's charades_sta aggregation (percent) on the same answers."""
    expected = json.loads((FIX / "official_lmms.json").read_text())
    result = run_cli(tmp_path, "charades_sta", "--pred", str(FIX / "predict.jsonl"), "--convention", "lmms")
    for t in ("3", "5", "7"):
        assert 100 * result[f"R1@0.{t}"] == pytest.approx(expected[f"IOU@{t}"], abs=1e-9)
    assert 100 * result["mIoU"] == pytest.approx(expected["mIOU"], abs=1e-9)


def test_conventions_disagree_on_these_files(tmp_path):
    """The fixtures hold reversed windows and float32 ties, so the conventions must differ."""
    etchat = run_cli(tmp_path, "charades_sta", "--pred", str(FIX / "predict.jsonl"))
    lmms = run_cli(tmp_path, "charades_sta", "--pred", str(FIX / "predict.jsonl"), "--convention", "lmms")
    assert etchat["R1@0.7"] < lmms["R1@0.7"] and etchat["mIoU"] < lmms["mIoU"]


def test_project_jsonl_by_hand(tmp_path):
    """Lines: (0, 5) vs [0, 10] → 0.5; parsed null → failed, IoU 0; (4, 6) vs [[0, 2], [4, 8]] → 0.5;
    an mcq line is skipped. R1@0.3 = R1@0.5 = 2/3, R1@0.7 = 0, mIoU = 1/3, failed 1.
    The lines are split over two per-rank files in one folder, as a DDP predict run writes them."""
    rows = [{"sample_id": "a", "prediction": "from 0s to 5s", "parsed": [0, 5], "windows": [[0, 10]]},
            {"sample_id": "b", "task": "moment_retrieval", "prediction": "no idea", "parsed": None,
             "windows": [[1, 2]]},
            {"sample_id": "m", "task": "mcq", "prediction": "B", "parsed": 1, "answer": 1},
            {"sample_id": "c", "prediction": "4 - 6", "parsed": [4, 6], "windows": [[0, 2], [4, 8]]}]
    folder = tmp_path / "predictions"
    folder.mkdir()
    (folder / "predictions.rank0.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:2]))
    (folder / "predictions.rank1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[2:]))
    result = run_cli(tmp_path, "charades_sta", "--pred", str(folder))
    assert result == pytest.approx({"R1@0.3": 2 / 3, "R1@0.5": 2 / 3, "R1@0.7": 0.0, "mIoU": 1 / 3,
                                    "failed": 1, "total": 3, "duplicates_dropped": 0, "convention": "etchat"})


@pytest.mark.parametrize("content, message", [
    ('[{"vid": "a", "span": [1], "pred": [0, 1]}]', "entry 0 'span'"),
    ('[{"vid": "a", "span": [0, 1], "pred": "0-1"}]', "entry 0 'pred'"),
    ('[{"vid": "a", "span": [0, 1], "pred": [0, "x"]}]', "entry 0 'pred'"),
    ('[]', "no samples"),
    ('{"sample_id": "a", "parsed": [0, 1]}\n', "line 1"),
    ('{"sample_id": "a", "parsed": [0, 1], "windows": [[0, 1]]}\n{oops\n', "line 2"),
])
def test_malformed_input_names_file_and_entry(tmp_path, capsys, content, message):
    path = tmp_path / "pred.json"
    path.write_text(content)
    assert main(["charades_sta", "--pred", str(path)]) == 1
    err = capsys.readouterr().err
    assert str(path) in err and message in err


def test_ill_formed_predictions_fail_as_officially(tmp_path):
    """pred null, [] or 3 numbers: failed with IoU 0 in the denominator; NaN: IoU 0 but not failed."""
    path = tmp_path / "pred.json"
    path.write_text('[{"span": [0, 1], "pred": null}, {"span": [0, 1], "pred": []}, '
                    '{"span": [0, 1], "pred": [0, 1, 2]}, {"span": [0, 1], "pred": [NaN, 1]}, '
                    '{"span": [0, 1], "pred": [0, 1]}]')
    result = run_cli(tmp_path, "charades_sta", "--pred", str(path))
    assert (result["failed"], result["total"], result["mIoU"], result["R1@0.7"]) == (3, 5, 0.2, 0.2)


def test_a_duplicate_sample_id_is_an_error_or_kept_once(tmp_path, capsys):
    rows = [{"sample_id": "a", "task": "moment_retrieval", "prediction": "x", "parsed": [0, 4], "windows": [[0, 4]]},
            {"sample_id": "b", "task": "moment_retrieval", "prediction": "x", "parsed": None, "windows": [[0, 4]]}]
    path = tmp_path / "predictions.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [rows[0], rows[1], rows[0]]))
    assert main(["charades_sta", "--pred", str(path)]) != 0
    assert "predictions.jsonl: line 3: sample_id 'a' appears again" in capsys.readouterr().err
    result = run_cli(tmp_path, "charades_sta", "--pred", str(path), "--duplicates", "keep-first")
    assert result["mIoU"] == pytest.approx(0.5) and result["total"] == 2 and result["duplicates_dropped"] == 1

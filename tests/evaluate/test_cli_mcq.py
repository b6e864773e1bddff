"""``groundlight eval mcq``: accuracy by hand, unparseable answers reported, input errors."""

from __future__ import annotations

import argparse
import json

import pytest

from groundlight.evaluate import mcq

OPTIONS = ["a red circle", "a green square", "a blue star"]
RECORDS = [
    {"id": "q1", "prediction": "(B)", "options": OPTIONS, "answer": "B"},
    {"id": "q2", "prediction": "Answer: c", "options": OPTIONS, "answer": 2},
    {"id": "q3", "prediction": "a blue star", "options": OPTIONS, "answer": "a"},
    {"id": "q4", "prediction": "I am not sure", "options": OPTIONS, "answer": 0},
]


def run(path, *extra: str) -> dict:
    parser = argparse.ArgumentParser()
    mcq.add_arguments(parser)
    return mcq.evaluate(parser.parse_args(["--pred", str(path), *extra]))


def test_accuracy_by_hand(tmp_path):
    """q1, q2 right; q3 parses to C but the answer is A; q4 is unparseable → 2/4, 1 failed."""
    path = tmp_path / "preds.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n")
    result = run(path)
    assert result == {"accuracy": 0.5, "correct": 2, "total": 4, "parse_failed": 1, "duplicates_dropped": 0,
                      "failed_ids": ["q4"]}
    assert "parse_failed" in mcq.table(result)


def test_json_list_is_accepted(tmp_path):
    path = tmp_path / "preds.json"
    path.write_text(json.dumps(RECORDS[:2]))
    assert run(path)["accuracy"] == 1.0


@pytest.mark.parametrize("record, message", [
    ({"id": "x", "prediction": "A", "options": OPTIONS, "answer": "D"}, "outside the 3 options"),
    ({"id": "x", "prediction": "A", "options": OPTIONS, "answer": [0]}, "a letter or a 0-based index"),
    ({"id": "x", "prediction": None, "options": OPTIONS, "answer": 0}, "'prediction' must be a string"),
])
def test_malformed_record_names_it(tmp_path, record, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(RECORDS[0]) + "\n" + json.dumps(record) + "\n")
    with pytest.raises(ValueError, match=rf"bad.jsonl: record 2 \(id 'x'\): .*{message}"):
        run(path)


def test_through_cli_main(tmp_path):
    cli = pytest.importorskip("groundlight.evaluate.cli")
    path, out = tmp_path / "preds.jsonl", tmp_path / "out.json"
    path.write_text("\n".join(json.dumps(r) for r in RECORDS))
    assert cli.main(["mcq", "--pred", str(path), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["failed_ids"] == ["q4"]


def test_a_duplicate_id_is_an_error_or_kept_once(tmp_path):
    """The issue's case: a right answer repeated was counted twice (accuracy 0.833 where 0.5 is right)."""
    path = tmp_path / "preds.jsonl"
    rows = RECORDS + [RECORDS[0], RECORDS[1]]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(ValueError, match=r"preds.jsonl: record 5: id 'q1' appears again \(first at .*record 1\)"):
        run(path)
    result = run(path, "--duplicates", "keep-first")
    assert result["accuracy"] == 0.5 and result["total"] == 4 and result["duplicates_dropped"] == 2

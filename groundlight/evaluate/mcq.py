"""``groundlight eval mcq``: multiple-choice accuracy of free-text answers.

``--pred`` is a jsonl file (or a JSON list) of ``{"id", "prediction", "options", "answer"}``:
``prediction`` is the generated text, ``options`` the option texts in letter order and
``answer`` the correct option as a letter (``"B"``) or a 0-based index. The chosen option
is read with the project's ``parse_choice``; an unparseable answer counts as wrong and is
reported. Scoring is ``ChoiceAccuracy``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from groundlight.evaluate.io import (
    InputError,
    add_duplicates_argument,
    read_json,
    read_jsonl,
    render_table,
    unique_by_id,
)
from groundlight.metrics.choice import ChoiceAccuracy
from groundlight.metrics.parse import parse_choice

NAME = "mcq"
HELP = "multiple choice: accuracy of letters/option texts read by parse_choice; unparseable counts as wrong"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pred", required=True,
                        help='jsonl (or JSON list) of {"id", "prediction", "options", "answer"}')
    add_duplicates_argument(parser)


def read_records(path: Path) -> list[dict]:
    """Records of a jsonl file, or of a file holding one JSON list."""
    text = path.read_text().lstrip()
    records = read_json(path) if text.startswith("[") else read_jsonl(path)
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise InputError(f"{path}: expected a JSON list of objects or one object per line")
    return records


def target_index(answer: Any, options: list[str], where: str) -> int:
    """The correct option's 0-based index from a letter or an index."""
    if isinstance(answer, str) and len(answer.strip()) == 1 and answer.strip().isalpha():
        index = ord(answer.strip().upper()) - ord("A")
    elif isinstance(answer, int) and not isinstance(answer, bool):
        index = answer
    else:
        raise InputError(f"{where}: 'answer' must be a letter or a 0-based index, got {answer!r}")
    if not 0 <= index < len(options):
        raise InputError(f"{where}: answer {answer!r} is outside the {len(options)} options")
    return index


def check_record(record: dict, where: str) -> tuple[str, list[str]]:
    prediction, options = record.get("prediction"), record.get("options")
    if not isinstance(prediction, str):
        raise InputError(f"{where}: 'prediction' must be a string, got {prediction!r}")
    if not isinstance(options, list) or not options or not all(isinstance(o, str) for o in options):
        raise InputError(f"{where}: 'options' must be a non-empty list of strings")
    return prediction, options


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    path = Path(args.pred)
    metric, failed_ids = ChoiceAccuracy(), []
    records, dropped = unique_by_id(read_records(path), "id", lambda i, r: f"{path}: record {i + 1}",
                                    getattr(args, "duplicates", "error"))
    for line, record in enumerate(records, start=1):
        where = f"{path}: record {line} (id {record.get('id')!r})"
        prediction, options = check_record(record, where)
        target = target_index(record.get("answer"), options, where)
        choice = parse_choice(prediction, options)
        if choice is None:
            failed_ids.append(record.get("id", line))
        metric.update([choice], [target])
    if int(metric.total) == 0:
        raise InputError(f"{path}: no records")
    scores = metric.compute()
    return {"accuracy": float(scores["accuracy"]), "correct": int(metric.correct), "total": int(metric.total),
            "parse_failed": int(scores["parse_failed"]), "duplicates_dropped": dropped, "failed_ids": failed_ids}


def table(result: dict[str, Any]) -> str:
    rows = [(key, round(value, 4) if isinstance(value, float) else value)
            for key, value in result.items() if key != "failed_ids"]
    return render_table(("metric", "value"), rows)

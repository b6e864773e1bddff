"""Reading official input files with errors that name the file and the entry."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any


class InputError(ValueError):
    """A malformed input file; the message names the file and the entry."""


def read_json(path: str | os.PathLike) -> Any:
    """The parsed JSON document at ``path``."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not valid JSON ({err})") from None


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """One JSON object per non-blank line of ``path``."""
    path = Path(path)
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f"{path}: line {number} is not valid JSON ({err})") from None
        if not isinstance(record, dict):
            raise InputError(f"{path}: line {number} must be a JSON object, got {type(record).__name__}")
        records.append(record)
    return records


DUPLICATES = ("error", "keep-first")


def add_duplicates_argument(parser: Any) -> None:
    parser.add_argument("--duplicates", choices=DUPLICATES, default="error",
                        help="a prediction id seen twice: an error naming both places (default), or keep-first: "
                             "score the first, count the others in the result's 'duplicates_dropped'")


def unique_by_id(records: Sequence[dict], key: str, where: Any, mode: str = "error") -> tuple[list[dict], int]:
    """``records`` with each ``record[key]`` once. ``where(i, record)`` names an entry for errors; ``mode`` is
    ``error`` (a repeated id raises) or ``keep-first`` (later ones are dropped and counted). Records without the
    key are kept: nothing identifies them."""
    if mode not in DUPLICATES:
        raise ValueError(f"duplicates must be one of {DUPLICATES}, got {mode!r}")
    first: dict[Any, str] = {}
    kept, dropped = [], 0
    for i, record in enumerate(records):
        value = record.get(key)
        if value is None or not isinstance(value, (str, int, float)):
            kept.append(record)
            continue
        if value in first:
            if mode == "error":
                raise InputError(f"{where(i, record)}: {key} {value!r} appears again (first at {first[value]}); "
                                 "pass --duplicates keep-first to score the first and count the rest")
            dropped += 1
            continue
        first[value] = where(i, record)
        kept.append(record)
    return kept, dropped


def is_number(value: Any) -> bool:
    """True for an int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def as_window(value: Any, where: str, size: int = 2, exact: bool = True, finite: bool = True) -> tuple[float, ...]:
    """The first ``size`` numbers of ``value``, else an ``InputError`` naming ``where``.

    Args:
        value: the JSON value, expected to be a list of numbers.
        where: file and entry, for the error message.
        size: how many numbers are used.
        exact: require exactly ``size`` numbers; otherwise extra items are ignored.
        finite: reject NaN and infinities.
    """
    ok = isinstance(value, (list, tuple)) and (len(value) == size if exact else len(value) >= size)
    ok = ok and all(is_number(v) and (math.isfinite(v) or not finite) for v in value[:size])
    if not ok:
        shape = "[start, end]" if size == 2 else "[start, end, score]"
        raise InputError(f"{where}: expected {shape} of {'finite ' if finite else ''}numbers, got {value!r}")
    return tuple(float(v) for v in value[:size])


def render_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned text table; the first column left-aligned, the others right-aligned."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: list[str]) -> str:
        parts = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule] + [line(row) for row in cells[1:]])



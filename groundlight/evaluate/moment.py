"""``groundlight eval charades_sta|activitynet``: single-window moment retrieval (R1@IoU, mIoU).

Reads E.T. Chat's prediction files (what ``etchat/eval/eval_grounding.py`` reads) or the
project's own predict jsonl, and scores them with ``MomentRetrieval``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from groundlight.evaluate.io import (
    InputError,
    add_duplicates_argument,
    as_window,
    read_json,
    read_jsonl,
    render_table,
    unique_by_id,
)
from groundlight.metrics.moment import CONVENTIONS, MomentRetrieval

NAME = "moment_retrieval"
HELP = "Charades-STA / ActivityNet Captions grounding: R1@{0.3,0.5,0.7} and mIoU (fractions)"
THRESHOLDS = (0.3, 0.5, 0.7)


@dataclass(frozen=True)
class Grounding:
    """One query: the predicted window (``None`` when missing or ill-formed) and the truths."""

    pred: tuple[float, float] | None
    truths: list[tuple[float, ...]]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pred", required=True,
        help="E.T. Chat predictions (a JSON list of {vid, query, span, pred}) or the project's predict jsonl "
        "(one {sample_id, prediction, parsed, windows} per line), or a folder of such files",
    )
    parser.add_argument(
        "--convention", choices=sorted(CONVENTIONS), default="etchat",
        help="etchat (default): float32 IoU, reversed predictions overlap nothing; "
        "timechat / lmms: reversed predictions sorted, hull union, float64",
    )
    add_duplicates_argument(parser)


def etchat_entry(entry: Any, where: str) -> Grounding:
    """An E.T. Chat sample: a ``pred`` that is null or not 2 long fails (IoU 0), as officially."""
    if not isinstance(entry, dict) or "span" not in entry:
        raise InputError(f"{where}: expected an object with 'span' and 'pred'")
    truths = [as_window(entry["span"], f"{where} 'span'")]
    pred = entry.get("pred")
    if pred is None or (isinstance(pred, list) and len(pred) != 2):
        return Grounding(None, truths)
    return Grounding(as_window(pred, f"{where} 'pred'", finite=False), truths)


def project_entry(entry: dict, where: str) -> Grounding:
    """A line of the project's predict jsonl: ``parsed`` ([s, e] or null) and ``windows``."""
    if "parsed" not in entry or "windows" not in entry:
        raise InputError(f"{where}: expected keys 'sample_id', 'prediction', 'parsed' and 'windows'")
    windows = entry["windows"]
    if isinstance(windows, list) and len(windows) == 2 and not isinstance(windows[0], list):
        windows = [windows]
    if not isinstance(windows, list) or not windows:
        raise InputError(f"{where}: 'windows' must be a non-empty list of [start, end]")
    truths = [as_window(w, f"{where} 'windows'[{i}]") for i, w in enumerate(windows)]
    pred = None if entry["parsed"] is None else as_window(entry["parsed"], f"{where} 'parsed'")
    return Grounding(pred, truths)


def read_etchat(path: Path) -> list[Grounding]:
    """One E.T. Chat prediction file (a JSON list)."""
    data = read_json(path)
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON list of samples")
    return [etchat_entry(entry, f"{path}: entry {i}") for i, entry in enumerate(data)]


def read_project(path: Path, duplicates: str = "error") -> tuple[list[Grounding], int]:
    """A predict jsonl; lines of other tasks (``task`` other than moment_retrieval) are skipped. A ``sample_id``
    seen twice is an error, or with ``duplicates="keep-first"`` the later lines are dropped and counted."""
    entries = [(i, e) for i, e in enumerate(read_jsonl(path)) if e.get("task", "moment_retrieval") == "moment_retrieval"]
    line = {id(e): i + 1 for i, e in entries}
    kept, dropped = unique_by_id([e for _, e in entries], "sample_id", lambda i, e: f"{path}: line {line[id(e)]}", duplicates)
    return [project_entry(e, f"{path}: line {line[id(e)]} (sample_id {e.get('sample_id')!r})") for e in kept], dropped


def read_file(path: Path, duplicates: str = "error") -> tuple[list[Grounding], int]:
    """An E.T. Chat file when it holds a JSON list, else a predict jsonl; and the duplicates dropped."""
    return (read_etchat(path), 0) if path.read_text().lstrip().startswith("[") else read_project(path, duplicates)


def read_groundings(path: Path, duplicates: str = "error") -> tuple[list[Grounding], int]:
    """Every query in ``path``, a file or a folder of ``*.json`` / ``*.jsonl`` files (sorted by name)."""
    if not path.is_dir():
        return read_file(path, duplicates)
    files = sorted(p for p in path.iterdir() if p.suffix in (".json", ".jsonl") and not p.name.startswith("."))
    if not files:
        raise InputError(f"{path}: folder holds no *.json or *.jsonl prediction files")
    read = [read_file(file, duplicates) for file in files]
    return [g for groundings, _ in read for g in groundings], sum(dropped for _, dropped in read)


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    groundings, dropped = read_groundings(Path(args.pred), getattr(args, "duplicates", "error"))
    if not groundings:
        raise InputError(f"{args.pred}: no samples to score")
    metric = MomentRetrieval(THRESHOLDS, convention=args.convention)
    metric.update([g.pred for g in groundings], [g.truths for g in groundings])
    scores = metric.compute()
    result: dict[str, Any] = {f"R1@{t}": float(scores[f"R1@{t}"]) for t in THRESHOLDS}
    result["mIoU"] = float(scores["mIoU"])
    result["failed"] = int(scores["parse_failed"])
    result["total"] = len(groundings)
    result["duplicates_dropped"] = dropped
    result["convention"] = args.convention
    return result


def table(result: dict[str, Any]) -> str:
    """The scores rounded to 3 digits, as E.T. Chat's script prints them."""
    rows = [(key, round(result[key], 3)) for key in (*(f"R1@{t}" for t in THRESHOLDS), "mIoU")]
    share = 100 * result["failed"] / result["total"]
    rows.append(("failed", f"{result['failed']} / {result['total']} ({share:.1f}%)"))
    return render_table((f"{result['convention']} convention", "score"), rows)

"""``groundlight eval nextgqa``: NExT-GQA grounding and grounded QA, as ``eval_ground.py``.

``--gt`` is ``gsub_{val,test}.json`` (``{video: {duration, location: {qid: [[s, e], ..]}}}``),
``--pred`` the grounding predictions (``{"<video>_<qid>": [s, e]}``, seconds, or fractions
of the duration with ``--gs``) and ``--qa`` the QA predictions
(``{"<video>_<qid>": {"answer": .., "prediction": ..}}``). Scoring is ``GroundedQA``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from groundlight.evaluate.io import InputError, as_window, is_number, read_json, render_table
from groundlight.metrics.nextgqa import GroundedQA

NAME = "nextgqa"
HELP = "NExT-GQA: Acc@GQA, mIoP, IoP@0.3/0.5, mIoU, IoU@0.3/0.5 (percent)"
KEYS = ("Acc@GQA", "mIoP", "IoP@0.3", "IoP@0.5", "mIoU", "IoU@0.3", "IoU@0.5")
OFFICIAL_HEADER = ("Acc&GQA", "mIoP", "TIoP@0.3", "TIoP@0.5", "mIoU", "TIoU@0.3", "TIoU@0.5")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt", required=True, help="gsub_{val,test}.json")
    parser.add_argument("--pred", required=True, help='grounding predictions JSON {"<video>_<qid>": [start, end]}')
    parser.add_argument("--qa", help='QA predictions JSON {"<video>_<qid>": {"answer": .., "prediction": ..}}; '
                        "without it Acc@GQA is null")
    parser.add_argument("--gs", action="store_true",
                        help="predicted spans are fractions of the duration (Gaussian-mask models): "
                        "multiplied by it and rounded to 0.1 s, as the official --gs")


def read_object(path: Path) -> dict:
    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object")
    return data


def predicted_span(span: Any, video: dict, where: str, normalised: bool) -> tuple[float, float]:
    """The prediction in seconds; ``--gs`` spans are scaled by the duration, rounded half-even."""
    start, end = as_window(span, where)
    if not normalised:
        return start, end
    duration = video.get("duration")
    if not is_number(duration):
        raise InputError(f"{where}: --gs needs a numeric 'duration' for the video, got {duration!r}")
    start, end = np.round(np.asarray([start, end]) * duration, 1)
    return float(start), float(end)


def answer_correct(qa: dict | None, key: str) -> bool:
    """``answer == prediction`` as Python compares them; a question missing from ``qa`` is wrong."""
    entry = (qa or {}).get(key)
    return isinstance(entry, dict) and "answer" in entry and entry["answer"] == entry.get("prediction")


def questions(truth: dict, gt_path: Path) -> list[tuple[str, dict, list]]:
    """``(key, video, windows)`` for every question of the ground truth, in file order."""
    out = []
    for vid, video in truth.items():
        location = video.get("location") if isinstance(video, dict) else None
        if not isinstance(location, dict):
            raise InputError(f"{gt_path}: video {vid!r} needs a 'location' object")
        for qid, windows in location.items():
            where = f"{gt_path}: video {vid!r} qid {qid!r}"
            if not isinstance(windows, list):
                raise InputError(f"{where}: location must be a list of [start, end]")
            out.append((f"{vid}_{qid}", video, [as_window(w, f"{where} [{j}]") for j, w in enumerate(windows)]))
    return out


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    gt_path, pred_path = Path(args.gt), Path(args.pred)
    truth, ground = read_object(gt_path), read_object(pred_path)
    qa = read_object(Path(args.qa)) if args.qa else None
    # like the official script, questions without a grounding prediction are left out
    scored = [(key, video, windows) for key, video, windows in questions(truth, gt_path) if key in ground]
    if not scored:
        raise InputError(f"{pred_path}: no prediction key matches a '<video>_<qid>' of {gt_path}")
    metric = GroundedQA((0.3, 0.5), gqa_threshold=0.5)
    preds = [predicted_span(ground[key], video, f"{pred_path}: {key!r}", args.gs) for key, video, _ in scored]
    metric.update(preds, [windows for _, _, windows in scored], [answer_correct(qa, key) for key, _, _ in scored])
    scores = metric.compute()
    result: dict[str, Any] = {key: 100 * float(scores[key]) for key in KEYS}
    if qa is None:
        result["Acc@GQA"] = None
    result["scored"] = len(scored)
    result["unpredicted"] = sum(len(v.get("location", {})) for v in truth.values()) - len(scored)
    result["qa_missing"] = None if qa is None else sum(key not in qa for key, _, _ in scored)
    return result


def table(result: dict[str, Any]) -> str:
    """The official header and one row at 1 decimal, as ``eval_ground.py`` prints them."""
    row = ["n/a" if result[k] is None else f"{result[k]:.1f}" for k in KEYS]
    note = f"{result['scored']} questions scored, {result['unpredicted']} without a prediction left out"
    return render_table(OFFICIAL_HEADER, [row]) + "\n" + note

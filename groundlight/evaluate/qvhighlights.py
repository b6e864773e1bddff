"""``groundlight eval qvhighlights``: Moment-DETR's ``standalone_eval/eval.py`` JSON, in percent.

``--gt`` is the released ``highlight_{val,test}*.jsonl`` and ``--pred`` a submission jsonl
with ``qid``, ``pred_relevant_windows`` ([start, end, score] each) and
``pred_saliency_scores`` (one score per 2 s clip). Scoring is ``MomentRetrievalMAP`` and
``HighlightDetection``; this module only reads, checks and formats.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import torch

from groundlight.evaluate.io import InputError, as_window, is_number, read_jsonl, render_table
from groundlight.metrics.qvhighlights import (
    LENGTH_BUCKETS,
    MR_THRESHOLDS,
    SALIENCY_LEVELS,
    HighlightDetection,
    MomentRetrievalMAP,
    clip_saliency,
)

NAME = "qvhighlights"
HELP = "QVHighlights moment retrieval (mAP, R1 per length bucket) and highlight detection (mAP, HIT@1), percent"
MAX_WINDOWS = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt", required=True, help="ground-truth jsonl (qid, duration, relevant_windows, "
                        "relevant_clip_ids, saliency_scores)")
    parser.add_argument("--pred", required=True, help="submission jsonl (qid, pred_relevant_windows, "
                        "pred_saliency_scores)")


def by_qid(records: list[dict], path: Path) -> dict[Hashable, dict]:
    """Records keyed by ``qid``; a missing or repeated qid is an error."""
    index: dict[Hashable, dict] = {}
    for i, record in enumerate(records):
        qid = record.get("qid")
        if not isinstance(qid, Hashable) or qid is None:
            raise InputError(f"{path}: entry {i} has no usable 'qid'")
        if qid in index:
            raise InputError(f"{path}: qid {qid!r} appears more than once")
        index[qid] = record
    return index


def check_same_queries(truth: dict, pred: dict, gt_path: Path, pred_path: Path) -> None:
    """The official script asserts that both files hold the same qids; say which differ."""
    missing = [q for q in truth if q not in pred]
    extra = [q for q in pred if q not in truth]
    if missing or extra:
        raise InputError(f"qids differ: {len(missing)} in {gt_path} but not in {pred_path} {missing[:5]}, "
                         f"{len(extra)} in {pred_path} but not in {gt_path} {extra[:5]}")
    if not pred:
        raise InputError(f"{pred_path}: no queries to score")


def scored_windows(entry: dict, where: str) -> list[tuple[float, ...]]:
    """The first ``MAX_WINDOWS`` ``[start, end, score]`` windows of a submission entry."""
    windows = entry.get("pred_relevant_windows")
    if not isinstance(windows, list):
        raise InputError(f"{where}: 'pred_relevant_windows' must be a list of [start, end, score]")
    return [as_window(w, f"{where} pred_relevant_windows[{j}]", size=3, exact=False)
            for j, w in enumerate(windows[:MAX_WINDOWS])]


def truth_windows(entry: dict, where: str) -> list[tuple[float, ...]]:
    """The ``relevant_windows`` of a ground-truth entry."""
    windows = entry.get("relevant_windows")
    if not isinstance(windows, list):
        raise InputError(f"{where}: 'relevant_windows' must be a list of [start, end]")
    return [as_window(w, f"{where} relevant_windows[{j}]", exact=False) for j, w in enumerate(windows)]


def saliency_scores(entry: dict, where: str) -> list[float]:
    """The ``pred_saliency_scores`` of a submission entry, finite numbers only."""
    scores = entry.get("pred_saliency_scores")
    if not isinstance(scores, list) or not all(is_number(s) and math.isfinite(s) for s in scores):
        raise InputError(f"{where}: 'pred_saliency_scores' must be a list of finite numbers")
    return scores


def truth_saliency(entry: dict, where: str):
    """The ``(clips, 3)`` annotator scores of a ground-truth entry."""
    try:
        return clip_saliency(entry["duration"], entry["relevant_clip_ids"], entry["saliency_scores"])
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"{where}: bad saliency annotation ({err!r})") from None


def percent(value: torch.Tensor) -> float | None:
    """Official formatting: ``float(f"{100 * v:.2f}")``; ``None`` for an undefined (NaN) score."""
    value = float(value)
    return None if math.isnan(value) else float(f"{100 * value:.2f}")


def moment_blocks(scores: dict[str, torch.Tensor]) -> dict[str, dict]:
    """Per-bucket ``{"MR-mAP": {t: .., "average": ..}, "MR-R1": {t: ..}}``."""
    blocks = {}
    for bucket in LENGTH_BUCKETS:
        ap = {str(t): percent(scores[f"MR-{bucket}-mAP@{t}"]) for t in MR_THRESHOLDS}
        ap["average"] = percent(scores[f"MR-{bucket}-mAP"])
        r1 = {str(t): percent(scores[f"MR-{bucket}-R1@{t}"]) for t in MR_THRESHOLDS}
        blocks[bucket] = {"MR-mAP": ap, "MR-R1": r1}
    return blocks


def moment_brief(blocks: dict[str, dict]) -> dict[str, float | None]:
    brief = {
        "MR-full-mAP": blocks["full"]["MR-mAP"]["average"],
        "MR-full-mAP@0.5": blocks["full"]["MR-mAP"]["0.5"],
        "MR-full-mAP@0.75": blocks["full"]["MR-mAP"]["0.75"],
        "MR-short-mAP": blocks["short"]["MR-mAP"]["average"],
        "MR-middle-mAP": blocks["middle"]["MR-mAP"]["average"],
        "MR-long-mAP": blocks["long"]["MR-mAP"]["average"],
        "MR-full-R1@0.5": blocks["full"]["MR-R1"]["0.5"],
        "MR-full-R1@0.7": blocks["full"]["MR-R1"]["0.7"],
    }
    return dict(sorted(brief.items()))


def score_moments(truth: dict, submission: dict, gt_path: Path, pred_path: Path) -> dict[str, dict]:
    metric = MomentRetrievalMAP(MR_THRESHOLDS, max_windows=MAX_WINDOWS)
    preds = [scored_windows(entry, f"{pred_path}: qid {qid!r}") for qid, entry in submission.items()]
    targets = [truth_windows(truth[qid], f"{gt_path}: qid {qid!r}") for qid in submission]
    metric.update(preds, targets)
    return moment_blocks(metric.compute())


def score_highlights(truth: dict, submission: dict, gt_path: Path, pred_path: Path) -> dict[str, dict]:
    metric = HighlightDetection(SALIENCY_LEVELS)
    preds = [saliency_scores(entry, f"{pred_path}: qid {qid!r}") for qid, entry in submission.items()]
    targets = [truth_saliency(truth[qid], f"{gt_path}: qid {qid!r}") for qid in submission]
    metric.update(preds, targets)
    scores = metric.compute()
    return {f"HL-min-{level}": {"HL-mAP": percent(scores[f"HL-min-{level}-mAP"]),
                                "HL-Hit1": percent(scores[f"HL-min-{level}-Hit1"])} for level in SALIENCY_LEVELS}


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    gt_path, pred_path = Path(args.gt), Path(args.pred)
    truth, submission = by_qid(read_jsonl(gt_path), gt_path), by_qid(read_jsonl(pred_path), pred_path)
    check_same_queries(truth, submission, gt_path, pred_path)
    first = next(iter(submission.values()))
    brief: dict[str, float | None] = {}
    blocks: dict[str, dict] = {}
    # like the official script, the first entry decides which tasks are scored
    if "pred_relevant_windows" in first:
        blocks |= score_moments(truth, submission, gt_path, pred_path)
        brief |= moment_brief(blocks)
    if "pred_saliency_scores" in first:
        highlights = score_highlights(truth, submission, gt_path, pred_path)
        blocks |= highlights
        brief |= {f"{k}-{sub.split('-')[1]}": v[sub] for k, v in highlights.items() for sub in v}
    return {"brief": brief, **dict(sorted(blocks.items()))}


def table(result: dict[str, Any]) -> str:
    """The ``brief`` block; ``n/a`` marks a bucket without queries."""
    rows = [(key, "n/a" if value is None else f"{value:.2f}") for key, value in result["brief"].items()]
    return render_table(("metric", "%"), rows)

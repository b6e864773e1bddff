"""Per-question grounding scores shared by the base's card and the demo: IoU with one window, the query-grounding
pair (named vs other object's window), and a mean with its bootstrap interval over questions."""

from __future__ import annotations

from typing import Any

import numpy as np


def bootstrap(values: np.ndarray) -> dict[str, float]:
    """Mean and 95 % bootstrap interval over questions (``groundlight.analysis.stats``), with the question count."""
    from groundlight.analysis.stats import interval

    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return {"mean": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n": 0}
    result = interval(values[None, :])
    return {key: result[key] for key in ("mean", "ci_low", "ci_high")} | {"n": len(values)}


def window_iou(pred: Any, window: tuple[float, float]) -> float:
    """IoU of a parsed prediction (``None`` when unparseable: 0) with one window, as the metric scores it."""
    from groundlight.metrics.moment import MomentRetrieval

    return MomentRetrieval().question_scores(pred, [window])["mIoU"]


def query_grounding(meta: dict, target_pred: dict[str, Any], swap_pred: dict[str, Any]) -> tuple[list[float], list[float]]:
    """Per distractor clip of the benchmark's ``meta``, twice: the target's query (``target_pred[vid]``) against the
    target's window (named) and the first distractor's (other), then the distractor's query
    (``query_swap_samples``, ``swap_pred[vid]``) against its own window (named) and the target's (other)."""
    named, other = [], []
    for vid, pred in target_pred.items():
        objects = meta["videos"][vid]["objects"]
        distractors = [o for o in objects if o["role"] == "distractor"]
        if not distractors or vid not in swap_pred:
            continue
        target = tuple(next(o for o in objects if o["role"] == "target")["interval"])
        distractor = tuple(distractors[0]["interval"])
        named += [window_iou(pred, target), window_iou(swap_pred[vid], distractor)]
        other += [window_iou(pred, distractor), window_iou(swap_pred[vid], target)]
    return named, other

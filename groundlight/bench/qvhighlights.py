"""QVHighlights scoring speed: moment retrieval and highlight detection of 200k queries → ``qvhighlights.json``.

Synthetic queries shaped like a Moment-DETR submission on ``highlight_val``: 150 s videos
(75 clips of 2 s), 1–3 ground-truth windows on the 2 s grid whose clips carry three
annotators' saliency scores, 10 scored predicted windows listed best first, and one
predicted score per clip. ``seconds`` times ``MomentRetrievalMAP`` and
``HighlightDetection`` (update and compute) on inputs shaped as ``groundlight eval
qvhighlights`` passes them; building the inputs is not timed. Goal: ``GOAL_SECONDS``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from groundlight.io import write_json_atomic
from groundlight.metrics.qvhighlights import HighlightDetection, MomentRetrievalMAP

DURATION = 150.0
CLIP_SECONDS = 2.0
WINDOWS = 10
GOAL_SECONDS = 30.0


@dataclass(frozen=True)
class Queries:
    """Per query: scored windows ``[start, end, score]``, truth windows, clip scores, saliency table."""

    windows: list[list[list[float]]]
    truths: list[list[list[float]]]
    saliency: list[list[float]]
    tables: list[np.ndarray]


def synthetic_queries(count: int, seed: int = 0) -> Queries:
    """``count`` queries: half of the predicted windows jitter a truth, the rest fall anywhere."""
    rng = np.random.default_rng(seed)
    clips = int(DURATION / CLIP_SECONDS)
    truth_counts = rng.integers(1, 4, count)
    offsets = np.cumsum(truth_counts) - truth_counts  # each query's first truth
    length = rng.integers(1, 41, truth_counts.sum())  # in clips: 2 s to 80 s, so every length bucket is used
    first = (rng.random(len(length)) * (clips - length + 1)).astype(int)
    truth = np.stack([first, first + length], 1) * CLIP_SECONDS

    pick = (rng.random(count * WINDOWS) * np.repeat(truth_counts, WINDOWS)).astype(int)
    anchor = truth[np.repeat(offsets, WINDOWS) + pick]  # a truth of the window's query
    anywhere = np.sort(rng.random((count * WINDOWS, 2)) * DURATION, 1)
    near = np.clip(anchor + rng.normal(0, 3, anchor.shape), 0, DURATION)
    spans = np.where(rng.random((count * WINDOWS, 1)) < 0.5, near, anywhere)
    spans = np.sort(spans, 1).round(2).reshape(count, WINDOWS, 2)
    scores = -np.sort(-rng.random((count, WINDOWS)).round(4), 1)  # listed best first, as submissions are
    windows = np.concatenate([spans, scores[..., None]], 2).tolist()

    covered = (first[:, None] <= np.arange(clips)) & (np.arange(clips) < (first + length)[:, None])
    relevant = np.logical_or.reduceat(covered, offsets)  # clips inside a truth window of the query
    tables = np.where(relevant[..., None], rng.integers(0, 5, (count, clips, 3)), 0).astype(float)
    return Queries(
        windows=windows,
        truths=[part.tolist() for part in np.split(truth, offsets[1:])],
        saliency=rng.random((count, clips)).round(4).tolist(),
        tables=list(tables),
    )


def score(queries: Queries) -> tuple[dict[str, float], dict[str, float]]:
    """Seconds of MR and HD scoring (update and compute), and their headline scores."""
    began = time.perf_counter()
    moments = MomentRetrievalMAP()
    moments.update(queries.windows, queries.truths)
    mr = moments.compute()
    middle = time.perf_counter()
    highlights = HighlightDetection()
    highlights.update(queries.saliency, queries.tables)
    hd = highlights.compute()
    ended = time.perf_counter()
    keys = ("MR-full-mAP", "MR-full-R1@0.5", "MR-full-R1@0.7", "MR-long-mAP", "HL-min-VeryGood-mAP",
            "HL-min-VeryGood-Hit1")
    results = {key: round(float((mr | hd)[key]), 6) for key in keys}
    return {"mr_seconds": middle - began, "hd_seconds": ended - middle}, results


def run(out_dir: Path, queries: int = 200_000, seed: int = 0) -> dict[str, Any]:
    data = synthetic_queries(queries, seed)
    seconds, results = score(data)
    total = seconds["mr_seconds"] + seconds["hd_seconds"]
    result: dict[str, Any] = {
        "queries": queries,
        "seconds": round(total, 3),
        "mr_seconds": round(seconds["mr_seconds"], 3),
        "hd_seconds": round(seconds["hd_seconds"], 3),
        "queries_per_second": round(queries / total, 1),
        "goal_seconds": GOAL_SECONDS,
        "scores": results,
    }
    write_json_atomic(Path(out_dir) / "qvhighlights.json", result)
    return result

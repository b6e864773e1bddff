"""Confidence intervals for the science reports: a bootstrap over questions × seeds, and paired differences.

Every comparison in a report is read from per-question scores (the ``scores`` of each run's
``test_records.jsonl``), never from one aggregate, so that a reader sees how far the number could
move with other questions and other seeds. A difference whose interval holds 0 is reported as
"no effect detected".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

LEVEL = 0.95
DRAWS = 2000
NO_EFFECT = "no effect detected"


def score_matrix(runs: Sequence[Sequence[dict[str, Any]]], metric: str,
                 questions: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Per-seed test records → ``(seeds, questions)`` scores of ``metric`` on the questions every seed scored.

    ``questions`` restricts (and orders) the columns, so that two methods line up question by question.
    """
    by_id = [{r["sample_id"]: r["scores"][metric] for r in records if metric in r.get("scores", {})} for records in runs]
    shared = set.intersection(*(set(scores) for scores in by_id)) if by_id else set()
    order = [q for q in questions if q in shared] if questions is not None else sorted(shared)
    if not order:
        raise ValueError(f"no question has a {metric!r} score in every run")
    return np.array([[scores[q] for q in order] for scores in by_id], dtype=np.float64), order


def _bootstrap_means(matrices: Sequence[np.ndarray], draws: int, seed: int) -> list[np.ndarray]:
    """Means of each ``(S, Q)`` matrix under the same resampled seeds and questions (so pairs stay paired)."""
    seeds, questions = matrices[0].shape
    rng = np.random.default_rng(seed)
    question_draws = rng.integers(0, questions, size=(draws, questions))
    seed_draws = rng.integers(0, seeds, size=(draws, seeds))
    means = []
    for matrix in matrices:
        per_seed = matrix[:, question_draws].mean(-1).T  # (draws, S): each seed's mean over the drawn questions
        means.append(np.take_along_axis(per_seed, seed_draws, axis=1).mean(1))
    return means


def _summary(point: float, draws: np.ndarray, level: float) -> dict[str, float]:
    low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return {"mean": round(float(point), 4), "ci_low": round(float(low), 4), "ci_high": round(float(high), 4)}


def interval(matrix: np.ndarray, draws: int = DRAWS, level: float = LEVEL, seed: int = 0) -> dict[str, Any]:
    """Mean of a ``(seeds, questions)`` score matrix with its percentile bootstrap interval."""
    (means,) = _bootstrap_means([matrix], draws, seed)
    return _summary(matrix.mean(), means, level) | {"seeds": matrix.shape[0], "questions": matrix.shape[1]}


def paired_difference(treatment: np.ndarray, control: np.ndarray, draws: int = DRAWS, level: float = LEVEL,
                      seed: int = 0) -> dict[str, Any]:
    """``treatment − control`` on the same questions (and seeds), resampled together, with a verdict."""
    if treatment.shape != control.shape:
        raise ValueError(f"paired matrices must have one shape, got {treatment.shape} and {control.shape}")
    a, b = _bootstrap_means([treatment, control], draws, seed)
    result = _summary(treatment.mean() - control.mean(), a - b, level)
    result["verdict"] = NO_EFFECT if result["ci_low"] <= 0 <= result["ci_high"] else (
        "higher" if result["ci_low"] > 0 else "lower")
    return result | {"seeds": treatment.shape[0], "questions": treatment.shape[1]}


def compare_runs(runs: dict[str, Sequence[Sequence[dict[str, Any]]]], metrics: Sequence[str], baseline: str,
                 controls: dict[str, Sequence[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """Intervals of every run and control on every metric, and each run's paired difference from ``baseline``.

    Args:
        runs: run name → per-seed test records (the same questions in every seed).
        metrics: score names (``mIoU``, ``R1@0.5``, ``mcq_accuracy``, ...); a metric no run scored is left out.
        baseline: the run the others are compared with (e.g. ``sft``).
        controls: no-model controls' records (one "seed"), scored on the same questions.
    """
    out: dict[str, Any] = {"intervals": {}, "differences": {}, "level": LEVEL, "draws": DRAWS}
    for metric in metrics:
        try:
            _, questions = score_matrix([r for seeds in runs.values() for r in seeds], metric)
        except ValueError:
            continue
        matrices = {name: score_matrix(seeds, metric, questions)[0] for name, seeds in runs.items()}
        for name, records in (controls or {}).items():
            matrices[name] = score_matrix([records], metric, questions)[0]
        for name, matrix in matrices.items():
            out["intervals"].setdefault(name, {})[metric] = interval(matrix)
        for name in runs:
            if name != baseline:
                out["differences"].setdefault(f"{name} - {baseline}", {})[metric] = paired_difference(
                    matrices[name], matrices[baseline])
    return out

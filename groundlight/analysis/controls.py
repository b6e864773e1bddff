"""Controls that need no model: the best constant window and the majority answer."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from data_modules.samples import VideoSample
from groundlight.metrics.temporal import paired_temporal_iou


@dataclass
class ConstantWindow:
    """One window for every query, either in seconds or as a fraction of the duration."""

    start: float
    end: float
    relative: bool

    def predict(self, duration: float) -> tuple[float, float]:
        scale = duration if self.relative else 1.0
        return (self.start * scale, min(self.end * scale, duration))


def fit_constant_window(samples: Sequence[VideoSample], durations: Sequence[float], step: float = 0.02) -> ConstantWindow:
    """The window with the highest mean IoU on the training windows.

    Searches a grid of relative windows (fractions of each video's duration) and of
    absolute windows (seconds), and keeps whichever fits the training set better.
    """
    windows = torch.tensor([s.windows[0] for s in samples], dtype=torch.float64)
    length = torch.tensor(list(durations), dtype=torch.float64)
    best: tuple[float, ConstantWindow] | None = None
    for relative, top in ((True, 1.0), (False, float(length.max()))):
        grid = torch.arange(0, top + 1e-9, step * top, dtype=torch.float64)
        pairs = torch.cartesian_prod(grid, grid)
        pairs = pairs[pairs[:, 0] < pairs[:, 1]]
        scale = length[None, :, None] if relative else torch.ones(1, len(length), 1, dtype=torch.float64)
        candidates = (pairs[:, None, :] * scale).minimum(length[None, :, None])
        scores = paired_temporal_iou(candidates, windows[None]).mean(dim=1)
        index = int(scores.argmax())
        if best is None or scores[index] > best[0]:
            best = (float(scores[index]), ConstantWindow(float(pairs[index, 0]), float(pairs[index, 1]), relative))
    return best[1]


def majority_answer(labels: Sequence[int]) -> int:
    """The most frequent label (ties → the smallest)."""
    counts = Counter(labels)
    return min(counts, key=lambda label: (-counts[label], label))


def scores(samples: Sequence[VideoSample], predictions: Sequence[Any]) -> dict[str, float]:
    """The methods' task metrics (moment retrieval, multiple choice, ...) of ``predictions`` on ``samples``."""
    from groundlight.metrics.tasks import TaskMetrics

    metrics = TaskMetrics()
    metrics.update(samples, predictions)
    return {k: float(v) for k, v in metrics.compute().items()}


def durations_of(samples: Sequence[VideoSample]) -> dict[str, float]:
    """Durations of videos whose annotation does not state one, probing each file once."""
    from data_modules.video import probe

    paths = {s.video_path for s in samples if s.duration is None}
    return {path: probe(path).duration for path in paths}


def constant_predictions(train: Sequence[VideoSample], test: Sequence[VideoSample],
                         durations: dict[str, float]) -> tuple[list[VideoSample], list[Any]]:
    """Best constant window for moment retrieval, majority answer for multiple choice (both fitted on ``train``),
    for the ``test`` samples of those tasks."""
    train_mr = [s for s in train if s.task == "moment_retrieval"]
    window = fit_constant_window(train_mr, [durations[s.video_path] for s in train_mr])
    majority = majority_answer([s.answer_index for s in train if s.task == "mcq"] or [0])
    control = {"moment_retrieval": lambda s: window.predict(durations[s.video_path]), "mcq": lambda s: majority}
    scored = [s for s in test if s.task in control]
    return scored, [control[s.task](s) for s in scored]


def constant_scores(train: Sequence[VideoSample], test: Sequence[VideoSample], durations: dict[str, float]) -> dict[str, float]:
    """The constant controls' task metrics on ``test``."""
    return scores(*constant_predictions(train, test, durations))


def constant_records(train: Sequence[VideoSample], test: Sequence[VideoSample],
                     durations: dict[str, float]) -> list[dict[str, Any]]:
    """The constant controls per question (``sample_id`` and ``scores``), for paired intervals."""
    from groundlight.metrics.tasks import TaskMetrics

    metrics = TaskMetrics()
    samples, predictions = constant_predictions(train, test, durations)
    return [{"sample_id": s.sample_id, "scores": metrics.question_scores(s, p)} for s, p in zip(samples, predictions)]


def _split(data_dir: str | Path, tasks: Sequence[str], max_eval_samples: int | None):  # noqa: ANN202
    """Train samples, test samples (first N per task, as the datamodule reads them) and their durations."""
    from data_modules.readers import read_task_split

    train = [s for task in tasks for s in read_task_split(data_dir, task, "train")]
    test = [s for task in tasks for s in read_task_split(data_dir, task, "test")[:max_eval_samples]]
    durations = {s.video_path: s.duration for s in [*train, *test] if s.duration is not None}
    return train, test, durations | durations_of([*train, *test])


def split_controls(data_dir: str | Path, tasks: Sequence[str], max_eval_samples: int | None) -> dict[str, float]:
    """:func:`constant_scores` on the test split of ``tasks`` as the datamodule reads it (first N per task)."""
    return constant_scores(*_split(data_dir, tasks, max_eval_samples))


def split_control_records(data_dir: str | Path, tasks: Sequence[str], max_eval_samples: int | None) -> list[dict[str, Any]]:
    """:func:`constant_records` on the same questions as :func:`split_controls`."""
    return constant_records(*_split(data_dir, tasks, max_eval_samples))

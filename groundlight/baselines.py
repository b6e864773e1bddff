"""Controls that need no model: the best constant window and the majority answer."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

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

"""Visual attention quality (paper Sec. 4.1, Eqs. 6-8): sharpness, vision-centricity, keyframe AUROC.

All functions take attention rows ``(..., L)`` of the last prompt token over all keys and
a ``(..., L)`` visual mask (broadcast over the leading dimensions):

- **sharpness** = ``1 − H(p) / log n``, the Shannon entropy of the row restricted to the
  ``n`` visual tokens and renormalised (Eq. 8); 1 is one-hot, 0 is uniform;
- **vision-centricity** = the attention mass on visual tokens (text and system tokens get the rest);
- **keyframe AUROC** of the visual attention against the keyframe indicator (Eq. 7): does
  the row rank keyframe tokens above the others? 0.5 is chance; undefined (NaN) when a
  sample has only keyframe or only non-keyframe tokens.

The extracted paper text lacks Eq. 6's formula, so the combined **quality score** here is
the product ``sharpness · vision-centricity · AUROC``: each axis lies in [0, 1], and a
layer scores high only when it is peaky, looks at the video *and* looks at the right frames.
"""

from __future__ import annotations

import math

import torch
from torchmetrics.functional.classification import binary_auroc

QUALITY_KEYS = ("sharpness", "vision_centricity", "keyframe_auroc", "quality")


def visual_distribution(rows: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
    """Rows restricted to visual keys and renormalised to sum to 1 (all-zero where no visual mass)."""
    masked = rows.float() * visual.to(torch.float32)
    return masked / masked.sum(-1, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)


def sharpness(rows: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
    """``1 − H/log n`` of the visual attention; 1 where there is at most one visual token."""
    probs = visual_distribution(rows, visual)
    entropy = -(probs * probs.clamp_min(1e-30).log()).sum(-1)
    count = visual.sum(-1).to(torch.float32).expand_as(entropy)
    normaliser = count.clamp_min(2).log()
    return torch.where(count > 1, 1 - entropy / normaliser, torch.ones_like(entropy))


def vision_centricity(rows: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
    """Attention mass on visual tokens."""
    return (rows.float() * visual.to(torch.float32)).sum(-1)


def keyframe_auroc(rows: torch.Tensor, visual: torch.Tensor, keyframes: torch.Tensor) -> torch.Tensor:
    """AUROC of each row's visual attention against ``keyframes`` (``(L,)`` bool); NaN when undefined.

    Args:
        rows: ``(N, L)`` attention rows of one sample (e.g. its heads).
        visual: ``(L,)`` visual positions.
        keyframes: ``(L,)`` visual positions whose frame is a keyframe.
    """
    target = keyframes[visual].long()
    if target.numel() == 0 or bool(target.all()) or not bool(target.any()):
        return torch.full(rows.shape[:-1], math.nan)
    scores = rows[..., visual].float()
    return torch.stack([binary_auroc(row, target, thresholds=None) for row in scores.reshape(-1, scores.shape[-1])]
                       ).reshape(rows.shape[:-1])


def quality_score(sharp: torch.Tensor, centric: torch.Tensor, auroc: torch.Tensor) -> torch.Tensor:
    """The combined score (module docstring): ``sharpness · vision-centricity · AUROC``."""
    return sharp * centric * auroc


def row_quality(rows: torch.Tensor, visual: torch.Tensor, keyframes: torch.Tensor) -> dict[str, torch.Tensor]:
    """All four quantities for ``(N, L)`` rows of one sample."""
    sharp, centric = sharpness(rows, visual), vision_centricity(rows, visual)
    auroc = keyframe_auroc(rows, visual, keyframes)
    return {"sharpness": sharp, "vision_centricity": centric, "keyframe_auroc": auroc,
            "quality": quality_score(sharp, centric, auroc)}


class QualityAccumulator:
    """Means of the quality quantities over samples, skipping undefined (NaN) values and counting them."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, torch.Tensor] = {}

    def update(self, values: dict[str, torch.Tensor]) -> None:
        for key, value in values.items():
            value = value.detach().double().cpu()
            defined = ~value.isnan()
            self.sums[key] = self.sums.get(key, 0) + value.nan_to_num(0.0)
            self.counts[key] = self.counts.get(key, 0) + defined.long()

    def compute(self) -> dict[str, list[float] | float]:
        """Means (NaN where never defined) as plain floats or lists."""
        means = {}
        for key, total in self.sums.items():
            count = self.counts[key]
            mean = torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, math.nan))
            means[key] = mean.tolist()
        return means

    def undefined(self, key: str, updates: int) -> int:
        """How many of ``updates`` samples left ``key`` undefined (first entry of a vector)."""
        count = self.counts.get(key)
        return updates - int(count.reshape(-1)[0]) if count is not None else updates

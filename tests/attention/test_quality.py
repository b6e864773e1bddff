"""Attention quality metrics (paper Eqs. 6-8) against hand-computed values."""

import math

import pytest
import torch

from groundlight.attention.quality import (
    QualityAccumulator,
    keyframe_auroc,
    quality_score,
    row_quality,
    sharpness,
    vision_centricity,
)

ROW = torch.tensor([[0.2, 0.4, 0.4, 0.0]])  # token 0 is text, tokens 1-3 visual
VISUAL = torch.tensor([False, True, True, True])
KEYFRAMES = torch.tensor([False, True, False, False])


def test_row_quality_by_hand():
    """Visual distribution [.5, .5, 0] over n = 3 tokens: H = ln 2, sharpness = 1 - ln2/ln3 = 0.36907.

    Vision-centricity = 0.4 + 0.4 + 0 = 0.8. AUROC: the keyframe token (0.4) ties the other 0.4
    (counts 1/2) and beats 0.0 (counts 1): (0.5 + 1) / 2 = 0.75. Quality = 0.36907 · 0.8 · 0.75 = 0.22144.
    """
    values = row_quality(ROW, VISUAL, KEYFRAMES)
    assert values["sharpness"].item() == pytest.approx(1 - math.log(2) / math.log(3), abs=1e-6)
    assert values["vision_centricity"].item() == pytest.approx(0.8, abs=1e-6)
    assert values["keyframe_auroc"].item() == pytest.approx(0.75)
    assert values["quality"].item() == pytest.approx((1 - math.log(2) / math.log(3)) * 0.8 * 0.75, abs=1e-6)


def test_sharpness_extremes_and_centricity():
    """Uniform over the visual tokens → 0, one-hot → 1, a single visual token → 1 by definition."""
    rows = torch.tensor([[0.1, 0.3, 0.3, 0.3], [0.7, 0.0, 0.3, 0.0]])
    assert sharpness(rows, VISUAL).tolist() == pytest.approx([0.0, 1.0], abs=1e-6)
    assert sharpness(rows, torch.tensor([False, False, True, False])).tolist() == [1.0, 1.0]
    assert vision_centricity(rows, VISUAL).tolist() == pytest.approx([0.9, 0.3])


def test_auroc_perfect_inverted_and_undefined():
    rows = torch.tensor([[0.0, 0.5, 0.3, 0.2], [0.0, 0.1, 0.3, 0.6]])
    assert keyframe_auroc(rows, VISUAL, KEYFRAMES).tolist() == [1.0, 0.0]
    assert keyframe_auroc(rows, VISUAL, VISUAL).isnan().all()  # every visual token is a keyframe
    assert keyframe_auroc(rows, VISUAL, torch.zeros(4, dtype=torch.bool)).isnan().all()
    assert quality_score(torch.tensor(0.5), torch.tensor(0.5), torch.tensor(0.8)).item() == pytest.approx(0.2)


def test_accumulator_skips_and_counts_undefined_values():
    """Means over samples: AUROC (1.0, NaN, 0.5) → 0.75 from 2 defined of 3."""
    accumulator = QualityAccumulator()
    for auroc in (1.0, math.nan, 0.5):
        accumulator.update({"keyframe_auroc": torch.tensor([auroc]), "sharpness": torch.tensor([0.3])})
    means = accumulator.compute()
    assert means["keyframe_auroc"] == [0.75] and means["sharpness"] == pytest.approx([0.3])
    assert accumulator.undefined("keyframe_auroc", 3) == 1

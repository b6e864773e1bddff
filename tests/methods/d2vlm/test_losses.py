"""D²VLM losses against values worked out by hand."""

import math

import pytest
import torch

from groundlight.methods.d2vlm.losses import (
    evidence_consistency,
    evidence_logits,
    fpo_loss,
    grounding_log_prob,
    grounding_loss,
    salient_span,
    span_targets,
)


def test_similarity_is_a_scaled_dot_product():
    """evi = (1, 2, 0, 0), frames (1, 0, 0, 0) and (0, 1, 1, 0): dots 1 and 2, divided by √4 = 2 → 0.5, 1."""
    logits = evidence_logits(torch.tensor([[1.0, 2.0, 0.0, 0.0]]), torch.tensor([[[1.0, 0, 0, 0], [0, 1.0, 1.0, 0]]]))
    assert logits.tolist() == [[0.5, 1.0]]


def test_targets_hard_and_soft():
    """Span [2, 3] of 6 frames: hard 0 0 1 1 0 0; soft 2^-distance: 1/4 1/2 1 1 1/2 1/4."""
    assert span_targets([(2, 3)], 6).tolist() == [[0, 0, 1, 1, 0, 0]]
    assert span_targets([(2, 3)], 6, soft=True).tolist() == [[0.25, 0.5, 1, 1, 0.5, 0.25]]


def test_grounding_loss_averages_bce_over_real_frames():
    """Logits 0 everywhere (sim 0.5): BCE = log 2 on every frame whatever the target; frame 3 is padding.
    Logit +2 on a positive frame costs log(1 + e^-2) = 0.126928."""
    targets = span_targets([(0, 1)], 4)
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    assert grounding_loss(torch.zeros(1, 4), targets, mask).item() == pytest.approx(math.log(2))
    logits = torch.tensor([[2.0, 0.0, 0.0, 99.0]])
    expected = (math.log1p(math.exp(-2)) + 2 * math.log(2)) / 3
    assert grounding_loss(logits, targets, mask).item() == pytest.approx(expected, rel=1e-6)


def test_consistency_is_the_mean_absolute_difference():
    """|(1, 2) − (0, 4)| = (1, 2), mean 1.5."""
    assert evidence_consistency(torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 4.0]])).item() == 1.5


def test_grounding_log_prob_by_hand():
    """sim = σ(0) = 0.5 on 3 real frames, span covers frame 1: log p_g = 3 · log 0.5; a confident right answer
    (logits +10 inside, −10 outside) is ≈ 0; padding (frame 3) is ignored."""
    inside = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    assert grounding_log_prob(torch.zeros(1, 4), inside, mask).item() == pytest.approx(3 * math.log(0.5))
    confident = torch.tensor([[-10.0, 10.0, -10.0, 50.0]])
    assert grounding_log_prob(confident, inside, mask).item() == pytest.approx(-3 * math.log1p(math.exp(-10)), rel=1e-5)


def test_fpo_is_sigmoid_dpo_on_the_factorized_log_probs():
    """Chosen −10, rejected −12, no reference, β 0.1: −log σ(0.1 · 2) = 0.598139. With references −11 and −11
    the margin is 1 − (−1) = 2 again. Equal chosen and rejected give log 2."""
    chosen, rejected = torch.tensor([-10.0]), torch.tensor([-12.0])
    loss, diagnostics = fpo_loss(chosen, rejected, beta=0.1)
    assert loss.item() == pytest.approx(-math.log(1 / (1 + math.exp(-0.2))), rel=1e-6)
    assert diagnostics["reward_accuracy"].item() == 1.0
    with_reference, _ = fpo_loss(chosen, rejected, torch.tensor([-11.0]), torch.tensor([-11.0]), beta=0.1)
    assert with_reference.item() == pytest.approx(loss.item())
    assert fpo_loss(chosen, chosen)[0].item() == pytest.approx(math.log(2))


def test_salient_span_takes_the_heaviest_run_above_the_threshold():
    """max 0.9 → threshold 0.54: runs [1, 2] (mass 1.5) and [5, 5] (mass 0.9); the first wins."""
    probabilities = torch.tensor([0.1, 0.6, 0.9, 0.2, 0.5, 0.9, 0.1])
    assert salient_span(probabilities) == (1, 2)
    assert salient_span(torch.tensor([0.2, 0.2])) == (0, 1)

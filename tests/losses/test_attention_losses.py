"""Attention losses against values worked out by hand."""

import math

import pytest
import torch

from groundlight.losses.attention import consistency_loss, entropy_loss, head_validity, visual_distribution

VISUAL = torch.tensor([[False, True, True, False]])


def rows(*values):
    return torch.tensor(values, dtype=torch.float, requires_grad=True)


def test_visual_distribution_renormalises_over_visual_tokens():
    probs, mass = visual_distribution(torch.tensor([[0.5, 0.1, 0.3, 0.1]]), VISUAL)
    assert torch.allclose(probs, torch.tensor([[0.0, 0.25, 0.75, 0.0]]))
    assert torch.allclose(mass, torch.tensor([0.4]))


def test_consistency_kl_by_hand():
    """gen visual (0.25, 0.25)/0.5 = (1/2, 1/2); ver (0.6, 0.2)/0.8 = (3/4, 1/4).

    KL(ver ‖ gen) = 3/4·ln(3/2) + 1/4·ln(1/2) = 0.304099 − 0.173287 = 0.130812.
    KL(gen ‖ ver) = 1/2·ln(2/3) + 1/2·ln(2) = −0.202733 + 0.346574 = 0.143841.
    """
    gen, ver = rows([0.5, 0.25, 0.25, 0.0]), rows([0.2, 0.6, 0.2, 0.0])
    loss, diag = consistency_loss(gen, ver, VISUAL, torch.tensor([True]))
    assert loss.item() == pytest.approx(0.75 * math.log(1.5) + 0.25 * math.log(0.5), abs=1e-6)
    assert loss.item() == pytest.approx(0.130812, abs=1e-6) and diag["cons_pairs"] == 1
    loss.backward()
    assert ver.grad is None and gen.grad.abs().sum() > 0  # stop-gradient on the verification pathway
    reverse, _ = consistency_loss(gen, ver, VISUAL, torch.tensor([True]), stop_gradient="generation")
    assert reverse.item() == pytest.approx(0.143841, abs=1e-6)
    gen.grad = None
    reverse.backward()
    assert gen.grad is None and ver.grad.abs().sum() > 0


def test_consistency_ignores_invalid_pairs_without_nan():
    """A NaN pair is excluded: the mean is over the one valid pair (0.130812), and gradients stay finite."""
    gen = rows([0.5, 0.25, 0.25, 0.0], [float("nan")] * 4)
    ver = rows([0.2, 0.6, 0.2, 0.0], [0.2, 0.6, 0.2, 0.0])
    visual = VISUAL.expand(2, -1)
    loss, diag = consistency_loss(gen, ver, visual, torch.tensor([True, False]))
    assert loss.item() == pytest.approx(0.130812, abs=1e-6) and diag["cons_pairs"] == 1
    loss.backward()
    assert torch.isfinite(gen.grad).all() and gen.grad[1].abs().sum() == 0


def test_no_valid_pair_gives_zero():
    loss, diag = consistency_loss(rows([1.0, 0, 0, 0]), rows([1.0, 0, 0, 0]), VISUAL, torch.tensor([False]))
    assert loss.item() == 0 and diag["cons_pairs"] == 0


def test_entropy_sharpened_by_hand():
    """Visual (0.72, 0.18)/0.9 = (0.8, 0.2). With T = 1/2: (0.64, 0.04)/0.68 = (16/17, 1/17),
    H = ln 17 − (16/17)·ln 16 = 2.833213 − 2.609496 = 0.223718. With T = 1: H(0.8, 0.2) = 0.500402."""
    gen = rows([0.1, 0.72, 0.18, 0.0])
    sharp, diag = entropy_loss(gen, VISUAL, torch.tensor([True]), temperature=0.5)
    assert sharp.item() == pytest.approx(math.log(17) - 16 / 17 * math.log(16), abs=1e-6)
    assert sharp.item() == pytest.approx(0.223718, abs=1e-6)
    assert diag["visual_entropy"].item() == pytest.approx(0.500402, abs=1e-6)
    plain, _ = entropy_loss(gen, VISUAL, torch.tensor([True]), temperature=1.0)
    assert plain.item() == pytest.approx(0.500402, abs=1e-6)
    sharp.backward()
    assert torch.isfinite(gen.grad).all()


def test_entropy_rejects_bad_temperature():
    with pytest.raises(ValueError, match="positive"):
        entropy_loss(rows([0.1, 0.72, 0.18, 0.0]), VISUAL, torch.tensor([True]), temperature=0)


def test_head_validity_counts_each_reason():
    """Row 0 fine; row 1 has no visual mass; row 2 is NaN; row 3 puts all visual mass on the sink (token 1)."""
    attention = torch.tensor([
        [0.5, 0.25, 0.25, 0.0],
        [0.9, 0.0, 0.0, 0.1],
        [float("nan"), 0.2, 0.2, 0.2],
        [0.5, 0.5, 0.0, 0.0],
    ])
    visual = VISUAL.expand(4, -1)
    sinks = torch.tensor([[False, True, False, False]]).expand(4, -1)
    valid, counts = head_validity(attention, visual, sinks)
    assert valid.tolist() == [True, False, False, False]
    assert {k: int(v) for k, v in counts.items()} == {"heads_nonfinite": 1, "heads_no_visual": 1, "heads_all_sink": 1}
    valid_without_sinks, _ = head_validity(attention, visual)
    assert valid_without_sinks.tolist() == [True, False, False, True]


def test_row_without_visual_tokens_stays_finite():
    gen = rows([0.5, 0.5])
    no_visual = torch.tensor([[False, False]])
    loss, _ = entropy_loss(gen, no_visual, torch.tensor([False]))
    cons, _ = consistency_loss(gen, rows([0.5, 0.5]), no_visual, torch.tensor([False]))
    assert loss.item() == 0 and cons.item() == 0

"""Sink tokens, the non-sink ratio, top-K heads and head bipartite matching, by hand."""

import pytest
import torch

from groundlight.attention.matching import match_heads, pairwise_kl
from groundlight.attention.sinks import massive_dimensions, non_sink_ratio, rms_normalise, sink_tokens, top_heads


def test_sink_tokens_threshold_on_rms_normalised_dims():
    """Token 1 has a massive value on dim 2: h = (1, 1, 60, 1) → RMS = sqrt((3 + 3600)/4) = 30.01,
    normalised dim 2 = 60/30.01 = 1.999 → a sink at τ = 1.5, not at τ = 20 (no learned weight)."""
    hidden = torch.ones(1, 3, 4)
    hidden[0, 1, 2] = 60.0
    visual = torch.tensor([[False, True, True]])
    assert rms_normalise(hidden)[0, 1, 2].item() == pytest.approx(60 / (3603 / 4) ** 0.5, rel=1e-5)
    assert sink_tokens(hidden, visual, [2], tau=1.5).tolist() == [[False, True, False]]
    assert not sink_tokens(hidden, visual, [2], tau=20).any()
    assert not sink_tokens(hidden, visual, [], tau=1.5).any()
    with pytest.raises(ValueError, match="outside the hidden size"):
        sink_tokens(hidden, visual, [7])


def test_non_sink_ratio_and_top_heads():
    """Keys: text, sink, visual, visual. Head 0 puts (0.4 sink, 0.4 non-sink) → 0.5; head 1 all non-sink → 1;
    head 2 no visual mass → 0; head 3 (0.1 sink, 0.3 non-sink) → 0.75."""
    attention = torch.tensor([[[0.2, 0.4, 0.2, 0.2], [0.5, 0.0, 0.25, 0.25], [1.0, 0.0, 0.0, 0.0], [0.6, 0.1, 0.2, 0.1]]])
    visual = torch.tensor([[False, True, True, True]])
    sinks = torch.tensor([[False, True, False, False]])
    ratio = non_sink_ratio(attention, visual, sinks)
    assert torch.allclose(ratio, torch.tensor([[0.5, 1.0, 0.0, 0.75]]))
    assert top_heads(ratio, 2).tolist() == [[1, 3]]
    with pytest.raises(ValueError, match="top-k"):
        top_heads(ratio, 5)


def test_top_heads_break_ties_by_visual_mass():
    ratio = torch.ones(1, 4)
    mass = torch.tensor([[0.1, 0.4, 0.3, 0.2]])
    assert top_heads(ratio, 3, tie_break=mass).tolist() == [[1, 2, 3]]


def test_massive_dimensions_ranks_outliers():
    hidden = torch.randn(50, 16, generator=torch.Generator().manual_seed(0))
    hidden[:10, 5] = 100.0
    found = massive_dimensions(hidden, torch.ones(50, dtype=torch.bool), tau=3.5, top=3)
    assert found[0]["dim"] == 5 and found[0]["fraction_over_tau"] == pytest.approx(0.2)


def test_pairwise_kl_by_hand():
    """KL((3/4, 1/4) ‖ (1/2, 1/2)) = 0.130812; KL(p ‖ p) = 0."""
    p = torch.tensor([[0.75, 0.25]])
    q = torch.tensor([[0.5, 0.5], [0.75, 0.25]])
    assert torch.allclose(pairwise_kl(p, q), torch.tensor([[0.130812, 0.0]]), atol=1e-6)


def test_match_exact_then_hungarian():
    """Generation heads (1, 4, 6), verification heads (4, 2, 7): head 4 matches exactly; the Hungarian
    step pairs 1↔7 and 6↔2 because that costs 0.1 + 0.2 rather than 0.9 + 0.8."""
    gen, ver = [1, 4, 6], [4, 2, 7]
    cost = torch.tensor([[5.0, 0.9, 0.1], [0.0, 5.0, 5.0], [5.0, 0.2, 0.8]])
    assert sorted(match_heads(gen, ver, cost)) == [(1, 7), (4, 4), (6, 2)]
    assert match_heads(gen, ver, cost, "exact_discard") == [(4, 4)]
    random_pairs = match_heads(gen, ver, cost, "exact_random", generator=torch.Generator().manual_seed(0))
    assert (4, 4) in random_pairs and sorted(g for g, _ in random_pairs) == [1, 4, 6]
    assert sorted(v for _, v in random_pairs) == [2, 4, 7]


def test_match_hungarian_only_ignores_indices():
    """Without the exact stage, the cheapest full assignment wins: 1↔4 (0.1), 4↔2 (0.1), 6↔7 (0.1)."""
    gen, ver = [1, 4, 6], [4, 2, 7]
    cost = torch.tensor([[0.1, 5.0, 5.0], [5.0, 0.1, 5.0], [5.0, 5.0, 0.1]])
    assert sorted(match_heads(gen, ver, cost, "hungarian")) == [(1, 4), (4, 2), (6, 7)]
    assert sorted(match_heads(gen, ver, cost)) == [(1, 2), (4, 4), (6, 7)]
    with pytest.raises(ValueError, match="unknown matching"):
        match_heads(gen, ver, cost, "greedy")

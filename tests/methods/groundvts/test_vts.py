"""The VTS module (Eq. 2-7) on hand-sized inputs."""

import logging
import math

import pytest
import torch

from groundlight.methods.groundvts.vts import (
    VisualTokenSampler,
    VTSConfig,
    kept_weights,
    sample_gumbel,
    straight_through_top_k,
    top_k_mask,
)


def _inputs(batch=2, text=4, visual=8, dim=6, seed=0):
    """Rows: [text x2, visual x N, text x2]; the query is text positions 0-1; 2 tokens per frame group."""
    torch.manual_seed(seed)
    length = text + visual
    embeds = torch.randn(batch, length, dim)
    is_visual = torch.zeros(batch, length, dtype=torch.bool)
    is_visual[:, 2 : 2 + visual] = True
    query = torch.zeros_like(is_visual)
    query[:, :2] = True
    frames = torch.full((batch, length), -1)
    frames[:, 2 : 2 + visual] = (torch.arange(visual) // 2) * 2
    return embeds, is_visual, query, torch.ones(batch, length, dtype=torch.long), frames


@pytest.mark.parametrize("rho", [0.0, -0.1, 1.5])
def test_keep_ratio_outside_unit_interval_is_rejected_at_config_time(rho):
    with pytest.raises(ValueError, match="keep_ratio"):
        VTSConfig(keep_ratio=rho)


def test_keeps_ceil_rho_times_n_and_every_text_token():
    embeds, visual, query, attention, frames = _inputs(visual=7)
    sampler = VisualTokenSampler(6, VTSConfig(keep_ratio=0.5, hidden_size=4)).eval()
    out = sampler(embeds, visual, query, attention, frames)
    assert (out.keep & visual).sum(1).tolist() == [math.ceil(0.5 * 7)] * 2
    assert out.keep[~visual].all()


def test_eq7_weights_by_hand():
    """w = (0.5, 0.3, 0.2), top-2 kept, tau' = 1: w^ = (e^.5, e^.3, 0) / (e^.5 + e^.3) = (0.5498, 0.4502, 0)."""
    w = torch.tensor([[0.5, 0.3, 0.2]])
    hard = top_k_mask(w, torch.ones_like(w, dtype=torch.bool), torch.tensor([2])).float()
    weights = kept_weights(w, hard, 1.0)
    assert torch.allclose(weights, torch.tensor([[0.549834, 0.450166, 0.0]]), atol=1e-5)


def test_top_k_mask_takes_each_rows_own_k_among_valid_scores():
    scores = torch.tensor([[3.0, 1.0, 9.0, 0.0], [0.0, 5.0, 4.0, 1.0]])
    valid = torch.tensor([[True, True, False, True], [True, True, True, True]])  # row 0's 9.0 is padding
    mask = top_k_mask(scores, valid, torch.tensor([2, 3]))
    assert mask.tolist() == [[True, True, False, False], [False, True, True, True]]


def test_gumbel_noise_has_the_standard_gumbel_moments():
    """Gumbel(0, 1): mean = Euler-Mascheroni 0.5772, variance = pi^2 / 6 = 1.6449 (200k draws: s.e. 0.003, 0.007)."""
    torch.manual_seed(0)
    noise = sample_gumbel(torch.empty(200_000))
    assert torch.isfinite(noise).all()
    assert abs(noise.mean().item() - 0.5772) < 0.015
    assert abs(noise.var().item() - math.pi**2 / 6) < 0.04


def test_straight_through_forward_is_hard_and_backward_is_the_relaxation():
    log_w = torch.log(torch.tensor([[0.5, 0.3, 0.2]])).requires_grad_(True)
    valid = torch.ones(1, 3, dtype=torch.bool)
    z_tilde, hard = straight_through_top_k(log_w, valid, torch.tensor([1]), tau_g=0.5, noise=None)
    assert torch.allclose(z_tilde.detach(), torch.tensor([[1.0, 0.0, 0.0]]))
    coefficients = torch.tensor([[1.0, 2.0, 3.0]])
    (z_tilde * coefficients).sum().backward()
    relaxed = log_w.detach().clone().requires_grad_(True)
    (torch.softmax(relaxed / 0.5, dim=1) * coefficients).sum().backward()
    assert torch.allclose(log_w.grad, relaxed.grad) and log_w.grad.abs().sum() > 0


def test_paper_selection_is_stochastic_in_training_and_released_is_not():
    embeds, visual, query, attention, frames = _inputs(batch=1, visual=32)
    paper = VisualTokenSampler(6, VTSConfig(hidden_size=4, gumbel_temperature=1.0)).train()
    released = VisualTokenSampler(6, VTSConfig(hidden_size=4, selection="released")).train()
    released.load_state_dict(paper.state_dict())
    picks = {tuple(paper(embeds, visual, query, attention, frames).keep[0].tolist()) for _ in range(8)}
    assert len(picks) > 1
    fixed = {tuple(released(embeds, visual, query, attention, frames).keep[0].tolist()) for _ in range(4)}
    assert len(fixed) == 1
    # at eval the paper's selection is the deterministic top-K of w, which is the released choice
    assert torch.equal(paper.eval()(embeds, visual, query, attention, frames).keep,
                       released(embeds, visual, query, attention, frames).keep)


def test_rescale_and_residual_mlp():
    """The zero-initialised residual MLP is the identity, so kept token i becomes w^_i * K * v_i under rescale K."""
    embeds, visual, query, attention, frames = _inputs(batch=1, visual=8)
    sampler = VisualTokenSampler(6, VTSConfig(hidden_size=4, rescale="K", selection="released")).eval()
    out = sampler(embeds, visual, query, attention, frames)
    kept = out.keep & visual
    factors = out.embeds[kept].norm(dim=-1) / embeds[kept].norm(dim=-1)
    assert torch.allclose(factors.sum(), torch.tensor(4.0), atol=1e-4)  # the K weights times K sum to K
    plain = VisualTokenSampler(6, VTSConfig(hidden_size=4, rescale="none", selection="released")).eval()
    plain.load_state_dict(sampler.state_dict())
    factors = plain(embeds, visual, query, attention, frames).embeds[kept].norm(dim=-1) / embeds[kept].norm(dim=-1)
    assert torch.allclose(factors.sum(), torch.tensor(1.0), atol=1e-5)


def test_query_pooling_default_ignores_answer_tokens_released_does_not():
    embeds, visual, query, attention, frames = _inputs(batch=1, visual=16)
    changed = embeds.clone()
    changed[:, -1] += 5.0  # the last text token plays the answer
    for pooling, should_change in (("query", False), ("released", True)):
        sampler = VisualTokenSampler(6, VTSConfig(hidden_size=4, query_pooling=pooling)).eval()
        a = sampler(embeds, visual, query, attention, frames).relevance
        b = sampler(changed, visual, query, attention, frames).relevance
        assert (not torch.allclose(a, b)) == should_change, pooling


def test_query_without_text_tokens_is_a_clear_error():
    embeds, visual, query, attention, frames = _inputs()
    query[1] = False
    with pytest.raises(ValueError, match=r"rows \[1\] have no query text tokens"):
        VisualTokenSampler(6, VTSConfig(hidden_size=4))(embeds, visual, query, attention, frames)


def test_too_short_video_keeps_all_and_logs(caplog):
    embeds, visual, query, attention, frames = _inputs(batch=1, visual=2)
    sampler = VisualTokenSampler(6, VTSConfig(hidden_size=4, keep_ratio=0.5, min_keep=2)).eval()
    with caplog.at_level(logging.INFO):
        out = sampler(embeds, visual, query, attention, frames)
    assert out.keep.all()
    assert "keeping all" in caplog.text


def test_frame_strategy_keeps_whole_groups_and_random_keeps_k():
    embeds, visual, query, attention, frames = _inputs(batch=2, visual=12)
    frame = VisualTokenSampler(6, VTSConfig(hidden_size=4, strategy="frame")).eval()
    out = frame(embeds, visual, query, attention, frames)
    kept_visual = (out.keep & visual)[:, 2:14].view(2, 6, 2)
    assert torch.equal(kept_visual[..., 0], kept_visual[..., 1])  # both tokens of a group, or neither
    assert kept_visual[..., 0].sum(1).tolist() == [3, 3]  # ceil(0.5 * 6 groups)
    rand = VisualTokenSampler(6, VTSConfig(hidden_size=4, strategy="random")).eval()
    assert (rand(embeds, visual, query, attention, frames).keep & visual).sum(1).tolist() == [6, 6]


def test_gradients_reach_both_projections():
    embeds, visual, query, attention, frames = _inputs(batch=2, visual=8)
    sampler = VisualTokenSampler(6, VTSConfig(hidden_size=4, mlp="plain")).train()
    out = sampler(embeds, visual, query, attention, frames)
    (out.embeds[out.keep & visual] * torch.randn_like(out.embeds[out.keep & visual])).sum().backward()
    for name, param in sampler.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


@pytest.mark.parametrize("selection", ["paper", "released"])
def test_a_sharp_relevance_softmax_still_keeps_the_top_scores(selection):
    """With tau so small that all but one w underflow to 0, the kept tokens are still the top-K by score
    (ranking on clamped w left every token after the first to index order)."""
    embeds, visual, query, attention, frames = _inputs(batch=1, visual=16)
    sampler = VisualTokenSampler(6, VTSConfig(hidden_size=4, keep_ratio=0.5, temperature=1e-4, selection=selection)).eval()
    out = sampler(embeds, visual, query, attention, frames)
    assert int((out.relevance > 0).sum()) < 8  # most weights underflowed
    pooled = embeds[0, query[0]].mean(0)
    scores = sampler.visual_proj(embeds[0, visual[0]]) @ sampler.query_proj(pooled)
    expected = torch.zeros(16, dtype=torch.bool)
    expected[scores.topk(8).indices] = True
    assert torch.equal(out.keep[0, visual[0]], expected)

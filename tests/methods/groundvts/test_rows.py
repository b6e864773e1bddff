"""Row bookkeeping of the VTS: visual columns and the one-gradient row edit, against plain indexing."""

import pytest
import torch

from groundlight.methods.groundvts.rows import RowEdit, flat_rows


def _plain(source, first, second, slots, values_fn):
    """The same reads and write with autograd's own indexing (index_select, index_copy)."""
    batch, length, dim = source.shape
    flat = source.reshape(-1, dim)
    tokens = flat.index_select(0, flat_rows(first, length)).view(batch, -1, dim)
    query = flat.index_select(0, flat_rows(second, length)).view(batch, -1, dim)
    chosen = tokens.reshape(-1, dim).index_select(0, slots)
    positions = flat_rows(first, length).index_select(0, slots)
    out = flat.index_copy(0, positions, values_fn(chosen, tokens, query)).view(batch, length, dim)
    return out, tokens, query


def _edited(source, first, second, slots, values_fn):
    rows = RowEdit(source)
    tokens, query = rows.take(first, second)
    chosen = rows.subset(tokens, slots)
    return rows.splice(values_fn(chosen, tokens, query)), tokens, query


def _values(chosen, tokens, query):
    """Kept rows rewritten from themselves and from every read row (as the VTS's scores do)."""
    return chosen * 2.0 + tokens.sum((0, 1)) * query.sum((0, 1)).sin()


@pytest.mark.parametrize("overlap", [False, True], ids=["distinct", "repeated"])
@pytest.mark.parametrize("upstream", ["dense", "expanded"])
def test_row_edit_matches_plain_indexing_forward_and_backward(upstream, overlap):
    torch.manual_seed(0)
    batch, length, dim = 2, 11, 3
    first = torch.tensor([[1, 2, 4, 5, 7, 8], [0, 3, 4, 6, 9, 10]])
    second = torch.tensor([[0, 10], [1, 2]]) if not overlap else torch.tensor([[0, 8], [1, 0]])  # 8, 0: also read as tokens
    slots = torch.tensor([0, 3, 4, 6, 7, 11])  # three kept rows per batch row
    grad = torch.randn(batch, length, dim)
    results = []
    for build in (_plain, _edited):
        source = torch.randn(batch, length, dim, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
        out, _, _ = build(source, first, second, slots, _values)
        (out.sum() if upstream == "expanded" else (out * grad).sum()).backward()
        results.append((out.detach(), source.grad))
    (out_plain, grad_plain), (out_edit, grad_edit) = results
    assert torch.allclose(out_plain, out_edit)
    assert torch.allclose(grad_plain, grad_edit, atol=1e-6)
    # rows neither read nor written pass the upstream gradient through unchanged
    untouched = grad if upstream == "dense" else torch.ones_like(grad)  # (0, 3) and (1, 5): never read
    assert torch.equal(grad_edit[0, 3], untouched[0, 3]) and torch.equal(grad_edit[1, 5], untouched[1, 5])


def test_row_edit_backward_twice_and_without_source_gradient():
    torch.manual_seed(0)
    first, second, slots = torch.tensor([[1, 2, 3]]), torch.tensor([[0]]), torch.tensor([0, 2])
    weight = torch.randn(4, 4, requires_grad=True)
    source = torch.randn(1, 5, 4, requires_grad=True)
    out, tokens, _ = _edited(source, first, second, slots, lambda chosen, tokens, query: chosen @ weight)
    out.sum().backward(retain_graph=True)
    once = source.grad.clone()
    out.sum().backward(retain_graph=True)  # the second pass starts from a fresh gradient buffer: twice the first
    assert torch.allclose(source.grad, 2 * once)
    tokens.sum().backward()  # a pass that skips the write: only the read rows get a gradient
    expected = 2 * once
    expected[0, [1, 2, 3]] += 1
    assert torch.allclose(source.grad, expected)
    frozen = source.detach()
    weight.grad = None
    out, _, _ = _edited(frozen, first, second, slots, lambda chosen, tokens, query: chosen @ weight)
    out.sum().backward()
    expected = frozen[0, [1, 3]].sum(0, keepdim=True).T.expand(4, 4)  # d sum(chosen @ W) / dW
    assert torch.allclose(weight.grad, expected)


def test_row_edit_writes_values_of_another_dtype_in_the_source_dtype():
    """Under bf16 autocast the MLP's rows come back in bf16 while fp32 embeddings hold the sequence."""
    source = torch.randn(1, 6, 4, requires_grad=True)
    weight = torch.randn(4, 4, dtype=torch.bfloat16, requires_grad=True)
    out, _, _ = _edited(source, torch.tensor([[1, 2, 3]]), torch.tensor([[0]]), torch.tensor([0, 2]),
                        lambda chosen, tokens, query: chosen.to(torch.bfloat16) @ weight)
    out.sum().backward()
    assert out.dtype == source.grad.dtype == torch.float32 and weight.grad.dtype == torch.bfloat16
    assert torch.equal(out[0, 2], source[0, 2].detach()) and torch.isfinite(weight.grad).all()


def test_row_edit_does_not_keep_the_source_alive_until_backward():
    """Plain indexing saves no copy of the embeddings; neither may the edit (one (L, D) tensor per step on a 7B model)."""
    import weakref

    leaf = torch.randn(1, 6, 4, requires_grad=True)
    source = leaf * 2.0
    alive = weakref.ref(source)
    out, _, _ = _edited(source, torch.tensor([[1, 2, 3]]), torch.tensor([[0]]), torch.tensor([0, 2]),
                        lambda chosen, tokens, query: chosen * 3.0)
    del source
    assert alive() is None
    out.sum().backward()
    assert torch.allclose(leaf.grad[0, :, 0], torch.tensor([2.0, 6.0, 2.0, 6.0, 2.0, 2.0]))

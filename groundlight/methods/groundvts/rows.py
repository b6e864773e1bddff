"""Row bookkeeping for the VTS: which sequence rows are visual, and reading and rewriting a few rows of
``(B, L, D)`` input embeddings with one full-length gradient.

The VTS reads the visual and the query rows of the sequence, and writes back the kept visual rows.
With plain indexing (``index_select`` then ``index_copy``) autograd allocates a zero gradient for
every read, another for every slice of it, and adds them all to the write's gradient: several
passes over the whole sequence in the backward of a module that only touches a part of it. Here
the write's backward makes the one full-length gradient, every read adds its rows into it, and the
first read hands it to the embeddings. The reads and the write share a :class:`RowEdit`.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable


def flat_rows(index: torch.Tensor, length: int) -> torch.Tensor:
    """``(B, N)`` per-row sequence positions → positions in the ``(B * L, D)`` flattened sequence."""
    if index.shape[0] == 1:
        return index.reshape(-1)
    return (index + torch.arange(index.shape[0], device=index.device).unsqueeze(1) * length).reshape(-1)


class RowEdit:
    """Reads rows of ``source`` ``(B, L, D)`` and writes some back; see the module docstring.

    Use in this order: :meth:`take`, :meth:`subset` of its first output, :meth:`splice`. The write's
    backward runs before the reads' (they feed it), which is what lets it own the gradient.
    """

    def __init__(self, source: torch.Tensor) -> None:
        self.source: torch.Tensor | None = source  # dropped after the write: the graph need not keep it alive
        self.shape, self.dtype, self.device = source.shape, source.dtype, source.device
        self.source_needs_gradient = source.requires_grad
        self.gradient: torch.Tensor | None = None
        self.first: torch.Tensor | None = None
        self.written: torch.Tensor | None = None

    def take(self, first: torch.Tensor, second: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``source[b, first[b, n]]`` and ``source[b, second[b, m]]`` as ``(B, N, D)`` and ``(B, M, D)``.

        Positions may repeat (a ragged batch pads with text positions): gradients of repeated reads add up.
        """
        length = self.shape[1]
        self.first = flat_rows(first, length)
        return _Take.apply(self.source, self.first, flat_rows(second, length), self)

    def subset(self, rows: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
        """``rows.reshape(-1, D)[slots]`` for the first output of :meth:`take`; :meth:`splice` writes these rows."""
        self.written = self.first.index_select(0, slots)
        return _Subset.apply(rows, slots, self.written, self)

    def splice(self, values: torch.Tensor) -> torch.Tensor:
        """A copy of ``source`` with the :meth:`subset` rows replaced by ``values`` ``(P, D)``."""
        out = _Splice.apply(self.source.detach(), values, self.written, self)
        self.source = None
        return out

    def gradient_buffer(self) -> torch.Tensor:
        """The flattened full-length gradient the reads add into (zeros when the write got none)."""
        if self.gradient is None:
            self.gradient = torch.zeros(self.shape[0] * self.shape[1], self.shape[2], dtype=self.dtype, device=self.device)
        return self.gradient

    def claim_gradient(self) -> torch.Tensor:
        """:meth:`gradient_buffer`, handed over once (a second backward starts afresh)."""
        gradient, self.gradient = self.gradient_buffer(), None
        return gradient


class _Take(torch.autograd.Function):
    @staticmethod
    def forward(ctx, source, first, second, edit):  # noqa: ANN001, ANN205
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(first, second)
        ctx.edit = edit
        flat = source.reshape(-1, source.shape[-1])
        batch = source.shape[0]
        return (flat.index_select(0, first).view(batch, -1, flat.shape[1]),
                flat.index_select(0, second).view(batch, -1, flat.shape[1]))

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_first, grad_second):  # noqa: ANN001, ANN205
        first, second = ctx.saved_tensors
        gradient = ctx.edit.claim_gradient()
        for index, grad in ((first, grad_first), (second, grad_second)):
            if grad is not None:
                gradient.index_add_(0, index, grad.reshape(-1, gradient.shape[1]))
        return gradient.view(ctx.edit.shape), None, None, None


class _Subset(torch.autograd.Function):
    @staticmethod
    def forward(ctx, rows, slots, positions, edit):  # noqa: ANN001, ANN205
        ctx.save_for_backward(positions)
        ctx.edit = edit
        return rows.reshape(-1, rows.shape[-1]).index_select(0, slots)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        (positions,) = ctx.saved_tensors
        ctx.edit.gradient_buffer().index_add_(0, positions, grad)
        return None, None, None, None  # reaches the source through the edit's gradient, not through `rows`


class _Splice(torch.autograd.Function):
    @staticmethod
    def forward(ctx, source, values, positions, edit):  # noqa: ANN001, ANN205
        ctx.save_for_backward(positions)
        ctx.edit = edit
        out = source.clone(memory_format=torch.contiguous_format)
        out.view(-1, out.shape[-1]).index_copy_(0, positions, values.to(out.dtype))
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        (positions,) = ctx.saved_tensors
        flat = grad.reshape(-1, grad.shape[-1])
        if not ctx.edit.source_needs_gradient:
            return None, flat.index_select(0, positions), None, None
        # the rows not rewritten pass their gradient straight to the source; a contiguous copy first,
        # since an upstream gradient may be expanded (``out.sum()``), and reading rows of that is slow
        gradient = flat.clone(memory_format=torch.contiguous_format)
        grad_values = gradient.index_select(0, positions)
        ctx.edit.gradient = gradient.index_fill_(0, positions, 0)
        return None, grad_values, None, None

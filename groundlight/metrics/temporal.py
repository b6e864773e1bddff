"""The one temporal IoU every metric, baseline and method uses."""

from __future__ import annotations

import torch


def as_windows(windows, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Coerce ``[s, e]`` pairs (list, tuple, ndarray, tensor) to a ``(N, 2)`` tensor of ``dtype``."""
    t = torch.as_tensor(windows, dtype=dtype)
    if t.numel() == 0:
        return t.reshape(0, 2)
    if t.ndim == 1:
        t = t.reshape(1, -1)
    if t.shape[-1] != 2:
        raise ValueError(f"windows must have shape (N, 2), got {tuple(t.shape)}")
    return t


def temporal_intersection(pred, gt) -> torch.Tensor:
    """Pairwise overlap length ``(N, M)`` between ``pred`` (N, 2) and ``gt`` (M, 2) windows."""
    p, g = as_windows(pred), as_windows(gt)
    start = torch.maximum(p[:, None, 0], g[None, :, 0])
    end = torch.minimum(p[:, None, 1], g[None, :, 1])
    return (end - start).clamp(min=0)


def _divide_or_zero(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """``numerator / denominator`` where the denominator is positive, else 0 (never NaN)."""
    positive = denominator > 0
    return torch.where(positive, numerator / torch.where(positive, denominator, 1), 0).to(numerator.dtype)


def paired_temporal_iou(pred: torch.Tensor, gt: torch.Tensor, *, hull: bool = False) -> torch.Tensor:
    """Element-wise IoU of broadcastable ``(..., 2)`` window tensors (the one IoU formula).

    The union is ``len(pred) + len(gt) - inter`` with negative lengths (reversed windows)
    taken as 0. With ``hull`` it is instead ``max(ends) - min(starts)``, the convex hull
    that TimeChat, lmms-eval, Moment-DETR's R1 and NExT-GQA divide by: equal to the union
    whenever the windows overlap (and the IoU is 0 otherwise), but rounded differently in
    the last bit, which decides ties at a threshold. A non-positive union gives IoU 0,
    never NaN.
    """
    inter = (torch.minimum(pred[..., 1], gt[..., 1]) - torch.maximum(pred[..., 0], gt[..., 0])).clamp(min=0)
    if hull:
        union = torch.maximum(pred[..., 1], gt[..., 1]) - torch.minimum(pred[..., 0], gt[..., 0])
    else:
        union = (pred[..., 1] - pred[..., 0]).clamp(min=0) + (gt[..., 1] - gt[..., 0]).clamp(min=0) - inter
    return _divide_or_zero(inter, union)


def temporal_iou(pred, gt, *, hull: bool = False, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Pairwise IoU ``(N, M)`` of 1-D windows ``[start, end]``.

    Windows are taken as given (callers decide how to treat reversed pairs; see
    ``groundlight.metrics.parse``); a reversed window overlaps nothing. ``hull`` picks the
    hull union (see ``paired_temporal_iou``); ``dtype=torch.float32`` reproduces scripts
    that compute on ``torch.Tensor`` (E.T. Chat), where e.g. 7/10 rounds below 0.7.
    """
    p, g = as_windows(pred, dtype), as_windows(gt, dtype)
    return paired_temporal_iou(p[:, None, :], g[None, :, :], hull=hull)


def temporal_iop(pred, gt) -> torch.Tensor:
    """Pairwise intersection over *prediction* length ``(N, M)`` (NExT-GQA's IoP).

    A point prediction (start == end) scores 1 inside a ground-truth window (ends
    included) and 0 outside, the limit of a vanishing window and NExT-GQA's rule. A
    reversed prediction scores 0.
    """
    p, g = as_windows(pred), as_windows(gt)
    inter = temporal_intersection(p, g)
    len_p = (p[:, 1] - p[:, 0])[:, None]
    inside = (g[None, :, 0] <= p[:, None, 0]) & (p[:, None, 0] <= g[None, :, 1])
    return torch.where(len_p == 0, inside.to(inter.dtype), _divide_or_zero(inter, len_p))

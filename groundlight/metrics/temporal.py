"""The one temporal IoU every metric, baseline and method uses."""

from __future__ import annotations

import torch


def as_windows(windows) -> torch.Tensor:
    """Coerce ``[s, e]`` pairs (list, tuple, ndarray, tensor) to a float64 ``(N, 2)`` tensor."""
    t = torch.as_tensor(windows, dtype=torch.float64)
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


def temporal_iou(pred, gt) -> torch.Tensor:
    """Pairwise IoU ``(N, M)`` of 1-D windows ``[start, end]``.

    Windows are taken as given (callers decide how to treat reversed pairs; see
    ``groundlight.metrics.parse``). Zero-length windows with zero union give IoU 0,
    never NaN: two identical points do not overlap on any length.
    """
    p, g = as_windows(pred), as_windows(gt)
    inter = temporal_intersection(p, g)
    len_p = (p[:, 1] - p[:, 0]).clamp(min=0)
    len_g = (g[:, 1] - g[:, 0]).clamp(min=0)
    union = len_p[:, None] + len_g[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(union))


def temporal_iop(pred, gt) -> torch.Tensor:
    """Pairwise intersection over *prediction* length ``(N, M)`` (NExT-GQA's IoP)."""
    p = as_windows(pred)
    inter = temporal_intersection(p, gt)
    len_p = (p[:, 1] - p[:, 0]).clamp(min=0)[:, None]
    return torch.where(len_p > 0, inter / len_p.clamp(min=1e-12), torch.zeros_like(inter))

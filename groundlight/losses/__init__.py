"""Losses as pure functions of tensors; each returns the loss and diagnostics worth logging."""

from groundlight.losses.cross_entropy import answer_cross_entropy, answer_window

__all__ = ["answer_cross_entropy", "answer_window"]

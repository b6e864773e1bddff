"""Attention self-consistency (see :mod:`.module`); its science report is :mod:`.report`."""

from groundlight.methods.self_consistency.module import ConsistencyOptions, PathwayAttention, SelfConsistencyModule

__all__ = ["ConsistencyOptions", "PathwayAttention", "SelfConsistencyModule"]

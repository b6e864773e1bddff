"""torchmetrics classes plus the one temporal IoU and the one answer parser."""

from groundlight.metrics.choice import ChoiceAccuracy
from groundlight.metrics.moment import MomentRetrieval
from groundlight.metrics.parse import format_window, parse_choice, parse_time, parse_window, parse_windows
from groundlight.metrics.temporal import temporal_iop, temporal_iou

__all__ = [
    "ChoiceAccuracy",
    "MomentRetrieval",
    "format_window",
    "parse_choice",
    "parse_time",
    "parse_window",
    "parse_windows",
    "temporal_iop",
    "temporal_iou",
]

"""torchmetrics classes plus the one temporal IoU and the one answer parser.

Names resolve lazily so that light users (the parser, the data generator) do not pay
for importing torchmetrics.
"""

import importlib

_EXPORTS = {
    "ChoiceAccuracy": "groundlight.metrics.choice",
    "MomentRetrieval": "groundlight.metrics.moment",
    "format_window": "groundlight.metrics.parse",
    "parse_choice": "groundlight.metrics.parse",
    "parse_time": "groundlight.metrics.parse",
    "parse_window": "groundlight.metrics.parse",
    "parse_windows": "groundlight.metrics.parse",
    "paired_temporal_iou": "groundlight.metrics.temporal",
    "temporal_iop": "groundlight.metrics.temporal",
    "temporal_iou": "groundlight.metrics.temporal",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'groundlight.metrics' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)

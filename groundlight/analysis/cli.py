"""``groundlight analyze <tool>``: one entry point for every analysis and report."""

from __future__ import annotations

import importlib
import sys

ANALYZE_TOOLS = {
    "sink-dims": ("groundlight.analysis.attention:sink_dims_main", "calibrate a backbone's sink dimensions (massive activations)"),
    "attention": ("groundlight.analysis.attention:attention_main", "per-layer/per-head attention quality on keyframe data + heatmaps"),
    "vts": ("groundlight.methods.groundvts.report:main", "GroundVTS kept-token density plots"),
    "vts-seeds": ("groundlight.methods.groundvts.report:seeds_main", "mean of the GroundVTS science summaries over seeds"),
    "self-consistency": ("groundlight.methods.self_consistency.report:main", "SFT vs self-consistency science summary over seeds"),
    "d2vlm": ("groundlight.methods.d2vlm.report:main", "text timestamps vs evidence tokens vs + FPO, with intervals, over seeds"),
    "sf2t": ("groundlight.methods.sf2t.report:main", "base vs SF2T vs SFT vs SF2T-then-SFT, and the sampling ablation, over seeds"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ANALYZE_TOOLS:
        lines = "\n".join(f"  {name:<17}{text}" for name, (_, text) in ANALYZE_TOOLS.items())
        print(f"usage: groundlight analyze <tool> [options]\n\ntools:\n{lines}", file=sys.stderr)
        return 2
    module, function = ANALYZE_TOOLS[argv[0]][0].split(":")
    return int(getattr(importlib.import_module(module), function)(argv[1:]) or 0)

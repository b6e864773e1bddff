"""``groundlight data <tool>``: dataset generators and converters."""

from __future__ import annotations

import argparse
import importlib
import sys

DATA_TOOLS = {
    "synth": ("data_modules.synthetic:main", "generate the embedded synthetic benchmark"),
    "grounding-ft": ("groundlight.tools.grounding_ft:main", "Charades-STA/ActivityNet/QVHighlights → Grounding-FT instructions"),
    "fitnessqa-mcq": ("groundlight.tools.fitnessqa_mcq:main", "FitnessQA open-ended answers → 4-option MCQ with a chat LLM"),
    "d2vlm-preferences": ("groundlight.tools.d2vlm_preferences:main", "D²VLM annotations → factorized FPO preference pairs"),
    "d2vlm-synth": ("data_modules.d2vlm_synth:main", "add D²VLM's multi-event tasks (E.T. Instruct format) to a generated benchmark"),
    "finevid": ("groundlight.tools.data:finevid_main", "add FineVidBench-style questions to a generated synthetic benchmark"),
    "check": ("groundlight.tools.data_check:main", "check every annotation file and video of a data directory (JSON report)"),
}


def finevid_main(argv: list[str]) -> int:
    """``groundlight data finevid --data DIR``: ``DIR/finevid/{split}.json`` and ``DIR/videos/finevid/``."""
    parser = argparse.ArgumentParser(prog="groundlight data finevid",
                                     description="add FineVidBench-style questions to a generated synthetic benchmark")
    parser.add_argument("--data", default="data/synth", help="a benchmark made by `groundlight data synth` (default data/synth)")
    args = parser.parse_args(argv)
    from data_modules.finevid import generate_finevid

    for split, path in generate_finevid(args.data).items():
        print(f"{split}: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in DATA_TOOLS:
        width = max(map(len, DATA_TOOLS)) + 2
        lines = "\n".join(f"  {name:<{width}}{text}" for name, (_, text) in DATA_TOOLS.items())
        print(f"usage: groundlight data <tool> [options]\n\ntools:\n{lines}", file=sys.stderr)
        return 2
    module, function = DATA_TOOLS[argv[0]][0].split(":")
    return int(getattr(importlib.import_module(module), function)(argv[1:]) or 0)

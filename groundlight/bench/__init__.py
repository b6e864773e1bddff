"""``groundlight bench``: speed and memory benchmarks → ``runs/bench/*.json``.

Ratios are measured side by side in one process run, interleaved, because the machine
is shared and noisy; absolute seconds are reported beside them for context only.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

SUITES = {
    "video": "groundlight.bench.video:run",
    "generation": "groundlight.bench.model:run_generation",
    "sft": "groundlight.bench.model:run_sft_step",
    "groundvts": "groundlight.bench.groundvts:run",
    "self_consistency": "groundlight.bench.self_consistency:run",
    "sf2t": "groundlight.bench.sf2t:run",
    "d2vlm": "groundlight.bench.d2vlm:run",
    "qvhighlights": "groundlight.bench.qvhighlights:run",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="groundlight bench", description=__doc__.splitlines()[0])
    # Checked here, not by `choices`: Python 3.11's argparse checks an empty `nargs="*"` positional's default (a list)
    # against the choices and rejects it, so `groundlight bench` without arguments failed.
    parser.add_argument("suites", nargs="*", metavar="suite", help=f"suites to run (default: all of {', '.join(SUITES)})")
    parser.add_argument("--out", type=Path, default=Path("runs/bench"))
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    unknown = [name for name in args.suites if name not in SUITES]
    if unknown:
        parser.error(f"unknown suite {', '.join(map(repr, unknown))} (choose from {', '.join(SUITES)})")
    for name in args.suites or list(SUITES):
        module, function = SUITES[name].split(":")
        result = getattr(importlib.import_module(module), function)(args.out)
        print(f"[{name}] " + ", ".join(f"{k}={v}" for k, v in result.items() if not isinstance(v, dict)))
    return 0

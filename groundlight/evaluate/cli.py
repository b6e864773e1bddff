"""``groundlight eval BENCHMARK [--gt FILE] --pred FILE [...] [--json OUT]``.

Benchmarks are looked up in ``BENCHMARKS`` and imported only when asked for, so one that
cannot be imported fails alone, with a message saying which. Every benchmark gets
``--pred`` and ``--json``; its module adds the rest (and may redefine those two).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from types import ModuleType

from groundlight.io import write_text_atomic

BENCHMARKS: dict[str, str] = {
    "charades_sta": "groundlight.evaluate.moment",
    "activitynet": "groundlight.evaluate.moment",
    "qvhighlights": "groundlight.evaluate.qvhighlights",
    "nextgqa": "groundlight.evaluate.nextgqa",
    "etbench": "groundlight.evaluate.etbench",
    "dense_captioning": "groundlight.evaluate.dense_captioning",
    "mcq": "groundlight.evaluate.mcq",
    "bertscore": "groundlight.evaluate.bertscore",
}
PROG = "groundlight eval"


class BenchmarkUnavailable(RuntimeError):
    """A registered benchmark whose module cannot be imported."""


def load(name: str) -> ModuleType:
    """The module of benchmark ``name``."""
    try:
        return importlib.import_module(BENCHMARKS[name])
    except ImportError as err:
        raise BenchmarkUnavailable(f"benchmark {name!r} is unavailable: cannot import "
                                   f"{BENCHMARKS[name]} ({err})") from err


def usage() -> str:
    """The list of benchmarks with their one-line help (or why each is unavailable)."""
    lines = [f"usage: {PROG} BENCHMARK [--gt FILE] --pred FILE [...] [--json OUT]", "", "benchmarks:"]
    for name in BENCHMARKS:
        try:
            text = load(name).HELP
        except BenchmarkUnavailable as err:
            text = f"(unavailable: {err.__cause__})"
        lines.append(f"  {name:<17} {text}")
    lines.append(f"\n'{PROG} BENCHMARK -h' shows the options of one benchmark.")
    return "\n".join(lines)


def build_parser(name: str, module: ModuleType) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"{PROG} {name}", description=module.HELP, conflict_handler="resolve")
    parser.add_argument("--pred", required=True, help="prediction file")
    parser.add_argument("--json", metavar="OUT", help="also write the result JSON here (atomically)")
    module.add_arguments(parser)
    return parser


def run(name: str, argv: Sequence[str]) -> int:
    """Parse ``argv`` for benchmark ``name``, score, print the table and write the JSON."""
    module = load(name)
    args = build_parser(name, module).parse_args(list(argv))
    args.benchmark = name
    result = module.evaluate(args)
    print(module.table(result))
    if getattr(args, "json", None):
        write_text_atomic(args.json, json.dumps(result, indent=4))  # byte for byte as the official scripts write it
        print(f"wrote {args.json}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``groundlight eval``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    name = argv[0]
    if name not in BENCHMARKS:
        print(f"{PROG}: unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    try:
        return run(name, argv[1:])
    except BenchmarkUnavailable as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as err:
        print(f"{PROG} {name}: error: {err}", file=sys.stderr)
        return 1
    except SystemExit as exit_:  # argparse: -h or a usage error
        return exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)


if __name__ == "__main__":
    sys.exit(main())

"""``groundlight sweep FILE``: run a wandb sweep YAML's grid locally, one CLI run per point.

``wandb sweep`` + ``wandb agent`` need the wandb server. This runner reads the same YAML
(``method: grid`` or ``random`` with ``run_cap``/``--max-runs``; ``parameters`` with
``values`` or ``value``; ``command`` as a block list using wandb's ``${program}``,
``${env}``, ``${interpreter}``, ``${args}`` and ``${args_no_hyphens}``)
and runs each point as a subprocess, so sweeps also work offline. Each run is named
``sweeps/<file stem>/<index>`` unless the command names an ``--experiment``.
"""

from __future__ import annotations

import argparse
import itertools
import random
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml


def grid_points(parameters: dict[str, Any]) -> list[dict[str, Any]]:
    """Every combination of the parameters' ``values`` (a ``value`` is a one-point axis)."""
    names = list(parameters)
    axes = []
    for name in names:
        spec = parameters[name]
        if "values" in spec:
            axes.append(list(spec["values"]))
        elif "value" in spec:
            axes.append([spec["value"]])
        else:
            raise ValueError(f"sweep parameter {name!r}: only `values`/`value` can run offline (got {sorted(spec)})")
    return [dict(zip(names, combo)) for combo in itertools.product(*axes)]


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return yaml.safe_dump(value, default_flow_style=True).strip()
    return str(value)


def commands(sweep: dict[str, Any], name: str, max_runs: int | None, seed: int) -> list[list[str]]:
    """The command line of every run, in order."""
    points = grid_points(sweep.get("parameters", {}))
    method = sweep.get("method", "grid")
    cap = max_runs or sweep.get("run_cap")
    if method == "random":
        random.Random(seed).shuffle(points)
    elif method != "grid":
        raise ValueError(f"method {method!r} needs the wandb server; offline runs support grid and random")
    template = sweep.get("command") or ["${program}", "${args}"]
    program = sweep.get("program", "groundlight")
    words = {"${program}": program, "${env}": "/usr/bin/env", "${interpreter}": sys.executable}
    runs = []
    for index, point in enumerate(points[:cap] if cap else points):
        args = {
            "${args}": [f"--{key}={format_value(value)}" for key, value in point.items()],
            "${args_no_hyphens}": [f"{key}={format_value(value)}" for key, value in point.items()],
        }
        line: list[str] = []
        for word in template:
            line += args.get(word) or [words.get(word, word)]
        if not any(w.startswith("--experiment") for w in line):
            line += ["--experiment", f"sweeps/{name}/{index:03d}"]
        runs.append(line)
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="groundlight sweep", description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, help="a wandb sweep YAML")
    parser.add_argument("--max-runs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0, help="order of points for method: random")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    args, extra = parser.parse_known_args(sys.argv[1:] if argv is None else argv)  # extra: appended to every run
    sweep = yaml.safe_load(args.file.read_text())
    extra = [w for w in extra if w != "--"]
    runs = [line + extra for line in commands(sweep, args.file.stem, args.max_runs, args.seed)]
    failed = 0
    for index, line in enumerate(runs):
        print(f"[{index + 1}/{len(runs)}] {shlex.join(line)}", flush=True)
        if not args.dry_run:
            failed += subprocess.run(line, check=False).returncode != 0
    if failed:
        print(f"{failed} of {len(runs)} runs failed", file=sys.stderr)
    return 1 if failed else 0

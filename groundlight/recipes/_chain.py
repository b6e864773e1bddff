"""The machinery every recipe shares: run groundlight commands in order, skip the ones already done.

A step is one groundlight command line. When it finishes, an atomically written marker
``<root>/steps/<name>.json`` records its arguments, the steps it read from (by their run ids) and
its result (a fit's ``last_model_path``, as Lightning's ``ModelCheckpoint`` reports it). A re-run
skips a step whose marker holds the same arguments and dependencies and whose outputs still exist;
a step that runs again gets a new run id, so every step after it that read from it runs again too.

Each step runs in a subprocess (:mod:`groundlight.recipes._step`): memory, seeds and other global
state start clean as they do for a command typed by hand, and a crash stops the recipe there.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from groundlight.io import write_json_atomic


class StepFailed(RuntimeError):
    """A step's command failed or did not write what it should have."""


@dataclass(frozen=True)
class Step:
    """One groundlight command line (``argv`` without the program name) and the files it must leave behind."""

    name: str
    argv: list[str]
    outputs: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Done:
    """A finished step: its run id (new each time it runs) and its result (``last_model_path`` for a fit)."""

    name: str
    run_id: str
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def checkpoint(self) -> str:
        return self.result["last_model_path"]


Runner = Callable[[Step], dict[str, Any]]


def run_in_subprocess(step: Step) -> dict[str, Any]:
    """Run the step's command in a fresh interpreter and return what it reported."""
    with tempfile.TemporaryDirectory(prefix="groundlight-step-") as folder:
        result = Path(folder) / "result.json"
        command = [sys.executable, "-m", "groundlight.recipes._step", "--result", str(result), "--", *step.argv]
        code = subprocess.run(command, check=False).returncode
        if code != 0:
            raise StepFailed(f"step {step.name} failed (exit {code}): groundlight {shlex.join(step.argv)}")
        return json.loads(result.read_text()) if result.exists() else {}


def print_only(step: Step) -> dict[str, Any]:
    """The dry run's runner: nothing runs; a fit's checkpoint is a placeholder."""
    return {"last_model_path": f"<{step.name} last.ckpt>"} if step.argv[0] == "fit" else {}


class Chain:
    """Runs a recipe's steps in order, skipping those done with the same arguments and inputs."""

    def __init__(self, root: str | Path, runner: Runner = run_in_subprocess, dry_run: bool = False) -> None:
        self.root, self.runner, self.dry_run = Path(root), runner, dry_run

    def marker(self, name: str) -> Path:
        return self.root / "steps" / f"{name}.json"

    def run(self, name: str, argv: Sequence[str], outputs: Sequence[str | Path] = (), after: Sequence[Done] = ()) -> Done:
        """Run ``groundlight <argv>`` unless an earlier run did it with the same arguments and inputs."""
        step = Step(name, [str(word) for word in argv], tuple(Path(o) for o in outputs))
        inputs = {done.name: done.run_id for done in after}
        previous = self._finished(step, inputs)
        if previous is not None:
            print(f"[recipe] {name}: done before, skipped", flush=True)
            return previous
        print(f"[recipe] {name}: groundlight {shlex.join(step.argv)}", flush=True)
        result = self.runner(step)
        done = Done(name, uuid.uuid4().hex, result)
        if not self.dry_run:
            missing = [str(p) for p in self._files(step, result) if not p.exists()]
            if missing:
                raise StepFailed(f"step {name} finished without writing {', '.join(missing)}")
            write_json_atomic(self.marker(name), {"argv": step.argv, "after": inputs, "run_id": done.run_id, "result": result})
        return done

    def ensure(self, path: str | Path, argv: Sequence[str]) -> None:
        """Run ``groundlight <argv>`` (which makes ``path``) only if ``path`` is missing."""
        if not Path(path).exists():
            print(f"[recipe] {path} is missing: groundlight {shlex.join(map(str, argv))}", flush=True)
            self.runner(Step(f"make {path}", [str(word) for word in argv], (Path(path),)))

    def _finished(self, step: Step, inputs: dict[str, str]) -> Done | None:
        path = self.marker(step.name)
        if not path.exists():
            return None
        record = json.loads(path.read_text())
        same = record["argv"] == step.argv and record["after"] == inputs
        if not same or not all(p.exists() for p in self._files(step, record["result"])):
            return None
        return Done(step.name, record["run_id"], record["result"])

    @staticmethod
    def _files(step: Step, result: dict[str, Any]) -> list[Path]:
        """What a finished step leaves behind: its declared outputs and the files its result names."""
        return [*step.outputs, *(Path(value) for value in result.values() if isinstance(value, str))]


def add_common_arguments(parser: argparse.ArgumentParser, data_dir: str, root: str) -> None:
    """Options every recipe takes; ``--fit-args``/``--eval-args`` are one string each, split like a shell would."""
    parser.add_argument("--data-dir", default=data_dir, help=f"data folder (default {data_dir})")
    parser.add_argument("--root", default=root, help=f"run root: runs and step markers go under it (default {root})")
    parser.add_argument("--fit-args", type=shlex.split, default=[], help="extra options for every fit, e.g. '--trainer.max_steps 2'")
    parser.add_argument("--dry-run", action="store_true", help="print the steps that would run; run and write nothing")


def add_seed_arguments(parser: argparse.ArgumentParser, report: str,
                       eval_help: str = "extra options for every test") -> None:
    """Options of the multi-seed science recipes: the seeds, extra test options, and leaving out the report."""
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--eval-args", type=shlex.split, default=[], help=eval_help)
    parser.add_argument("--no-report", action="store_true", help=f"leave out `{report}` (one seed of a larger set)")


def recipe_main(parser: Callable[[], argparse.ArgumentParser], run: Callable[[Chain, argparse.Namespace], None],
                argv: list[str] | None) -> int:
    """A recipe module's ``main``: parse, build the chain (a dry run prints), run."""
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    run(chain_for(args), args)
    return 0


def chain_for(args: argparse.Namespace, runner: Runner | None = None) -> Chain:
    """The chain a recipe's parsed options ask for (a dry run prints instead of running)."""
    if args.dry_run:
        return Chain(args.root, print_only, dry_run=True)
    return Chain(args.root, runner or run_in_subprocess)

"""``groundlight recipe d2vlm-synth``: text timestamps vs evidence tokens vs evidence tokens + FPO on synth.

Per seed, under ``<root>/seed<N>/``, all from groundlight-tiny with the same data and step budget: the text-timestamp
baseline (``synth_text.yaml``), D²VLM's SFT stage (``synth.yaml``) and its FPO stage from the SFT stage's checkpoint,
without a reference as released (``synth_fpo.yaml``) and with a precomputed one (``synth_fpo_reference.yaml``), each
fitted then tested on the same test questions. The D²VLM tasks are
made first with ``groundlight data d2vlm-synth`` when missing. Then ``groundlight analyze d2vlm`` writes
``<root>/summary.json``.

    groundlight recipe d2vlm-synth --seeds 0 1 2
    groundlight recipe d2vlm-synth --seeds 0 --fit-args '--trainer.max_steps 2' --eval-args '--data.init_args.max_eval_samples 4'
"""

from __future__ import annotations

import argparse
import shlex

from groundlight.recipes._chain import (
    Chain,
    Done,
    add_common_arguments,
    add_seed_arguments,
    recipe_main,
)

CONFIGS = {"text_timestamps": "experiments/d2vlm/synth_text.yaml", "evi": "experiments/d2vlm/synth.yaml",
           "evi_fpo": "experiments/d2vlm/synth_fpo.yaml", "evi_fpo_reference": "experiments/d2vlm/synth_fpo_reference.yaml"}


def seed_chain(chain: Chain, seed: int, args: argparse.Namespace) -> list[Done]:
    """One seed's fits and tests; returns the tests the report reads."""
    runs = f"{args.root}/seed{seed}"

    def cli(verb: str, run: str) -> list:
        return [verb, "--config", CONFIGS[run], "--runs_dir", ".", "--experiment", f"{runs}/{run}",
                "--data.init_args.data_dir", args.data_dir, "--seed_everything", seed, "--data.init_args.seed", seed]

    fits = {run: chain.run(f"seed{seed}.{run}.fit", [*cli("fit", run), *args.fit_args]) for run in ("text_timestamps", "evi")}
    for run in ("evi_fpo", "evi_fpo_reference"):
        fits[run] = chain.run(f"seed{seed}.{run}.fit", [*cli("fit", run), "--model.init_args.init_from", fits["evi"].checkpoint,
                                                        *args.fpo_args], after=[fits["evi"]])
    return [chain.run(f"seed{seed}.{run}.test", [*cli("test", run), "--ckpt_path", fit.checkpoint, *args.eval_args],
                      outputs=[f"{runs}/{run}/summary.json", f"{runs}/{run}/test_records.jsonl"], after=[fit])
            for run, fit in fits.items()]


def run(chain: Chain, args: argparse.Namespace) -> None:
    chain.ensure(args.data_dir, ["data", "synth", "--out", args.data_dir, "--seed", "0"])
    chain.ensure(f"{args.data_dir}/d2vlm", ["data", "d2vlm-synth", "--data", args.data_dir])
    tests = [done for seed in args.seeds for done in seed_chain(chain, seed, args)]
    if not args.no_report:
        chain.run("report", ["analyze", "d2vlm", "--root", args.root, "--data-dir", args.data_dir, "--seeds", *args.seeds],
                  outputs=[f"{args.root}/summary.json"], after=tests)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="groundlight recipe d2vlm-synth", description=__doc__.splitlines()[0])
    add_common_arguments(parser, data_dir="data/synth", root="runs/d2vlm/synth")
    add_seed_arguments(parser, "analyze d2vlm")
    parser.add_argument("--fpo-args", type=shlex.split, default=[], help="extra options for the FPO stage's fit")
    return parser


def main(argv: list[str] | None = None) -> int:
    return recipe_main(parser, run, argv)

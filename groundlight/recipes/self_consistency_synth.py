"""``groundlight recipe self-consistency-synth``: SFT vs attention self-consistency on the embedded benchmark.

Per seed, under ``<root>/seed<N>/``: SFT and self-consistency fitted from the same init (same seed, budget and data),
both tested, both analysed with ``groundlight analyze attention`` (keyframe MCQ → ``attention/``, moment retrieval
→ ``attention_mr/``), then the SFT checkpoint tested with attention steered onto the ground-truth keyframes
(``steer_<mode>/``, one run per steering mode). Then ``groundlight analyze self-consistency`` writes
``<root>/summary.json`` over the seeds.

    groundlight recipe self-consistency-synth --seeds 0 1 2
    groundlight recipe self-consistency-synth --seeds 0 --fit-args '--trainer.max_steps 2' --eval-args '--data.init_args.max_eval_samples 4'
    groundlight recipe self-consistency-synth --seeds 3 --steer-only      # the steering tests of seed 3's SFT run
"""

from __future__ import annotations

import argparse

from groundlight.methods.self_consistency.report import STEER_MODES
from groundlight.recipes._chain import (
    Chain,
    Done,
    add_common_arguments,
    add_seed_arguments,
    recipe_main,
)

RUNS = {"sft": "experiments/self_consistency/synth_sft.yaml", "sc": "experiments/self_consistency/synth.yaml"}
STEERING = "groundlight.attention.steering.AttentionSteering"


def seed_chain(chain: Chain, seed: int, args: argparse.Namespace) -> list[Done]:
    """One seed's fits, tests, attention analyses and steering tests; returns the steps the report reads."""
    runs = f"{args.root}/seed{seed}"

    def cli(verb: str, run: str, experiment: str) -> list:
        return [verb, "--config", RUNS[run], "--runs_dir", ".", "--experiment", f"{runs}/{experiment}",
                "--data.init_args.data_dir", args.data_dir, "--seed_everything", seed, "--data.init_args.seed", seed]

    fits = {run: chain.run(f"seed{seed}.{run}.fit", [*cli("fit", run, run), *args.fit_args])
            for run in (["sft"] if args.steer_only else RUNS)}
    if args.steer_only:
        return steer_chain(chain, seed, args, fits["sft"], cli)
    read = []
    for run, fit in fits.items():
        read.append(chain.run(f"seed{seed}.{run}.test", [*cli("test", run, run), "--ckpt_path", fit.checkpoint, *args.eval_args],
                              outputs=[f"{runs}/{run}/summary.json"], after=[fit]))
    for run, fit in fits.items():
        for folder, tasks in (("attention", []), ("attention_mr", ["--tasks", "charades_sta"])):
            read.append(chain.run(f"seed{seed}.{run}.{folder}",
                                  ["analyze", "attention", "--config", RUNS[run], *tasks, "--ckpt", fit.checkpoint,
                                   "--layer", args.layer, "--split", "test", "--out", f"{runs}/{run}/{folder}",
                                   "--max-samples", 100, "--data.init_args.data_dir", args.data_dir, *args.eval_args],
                                  outputs=[f"{runs}/{run}/{folder}/attention.json"], after=[fit]))
    return read + steer_chain(chain, seed, args, fits["sft"], cli)


def steer_chain(chain: Chain, seed: int, args: argparse.Namespace, sft: Done, cli) -> list[Done]:  # noqa: ANN001
    """The SFT checkpoint tested with attention steered onto the ground-truth keyframes, one run per mode."""
    return [chain.run(f"seed{seed}.steer_{mode}.test",
                      [*cli("test", "sft", f"steer_{mode}"), "--ckpt_path", sft.checkpoint, f"--trainer.callbacks+={STEERING}",
                       f"--trainer.callbacks.mode={mode}", f"--trainer.callbacks.layer={args.layer}", "--trainer.callbacks.top_k=2",
                       *args.eval_args],
                      outputs=[f"{args.root}/seed{seed}/steer_{mode}/summary.json"], after=[sft])
            for mode in STEER_MODES]


def run(chain: Chain, args: argparse.Namespace) -> None:
    chain.ensure(args.data_dir, ["data", "synth", "--out", args.data_dir, "--seed", "0"])
    read = [done for seed in args.seeds for done in seed_chain(chain, seed, args)]
    if not (args.no_report or args.steer_only):
        chain.run("report", ["analyze", "self-consistency", "--root", args.root, "--layer", args.layer, "--seeds", *args.seeds,
                             "--data-dir", args.data_dir], outputs=[f"{args.root}/summary.json"], after=read)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="groundlight recipe self-consistency-synth", description=__doc__.splitlines()[0])
    add_common_arguments(parser, data_dir="data/synth", root="runs/self_consistency/synth")
    add_seed_arguments(parser, "analyze self-consistency", eval_help="extra options for every test and analysis")
    parser.add_argument("--layer", type=int, default=1, help="the probed and steered decoder layer (synth.yaml: 1)")
    parser.add_argument("--steer-only", action="store_true", help="only the SFT fit (skipped if done) and its steering tests")
    return parser


def main(argv: list[str] | None = None) -> int:
    return recipe_main(parser, run, argv)

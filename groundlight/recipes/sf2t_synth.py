"""``groundlight recipe sf2t-synth``: base vs SF2T vs SFT vs SF2T-then-SFT, and SF2T's sampling ablation, on synth.

Per seed, under ``<root>/seed<N>/``: the base model (groundlight-tiny, ``synth_sft.yaml``'s initial weights, not fine-tuned)
tested; SF2T (``synth.yaml``) and SFT (``synth_sft.yaml``) fitted from the same init and budget, and tested; the SFT
stage after SF2T (``synth_then_sft.yaml``, ``init_from`` SF2T's checkpoint: the paper's order) fitted and tested;
SF2T with each other frame strategy (``sf2t_<strategy>/``) fitted and tested. Every test asks the same questions:
the fragment questions of the test clips and the FineVidBench-style test questions (made first with
``groundlight data finevid`` when missing). Then ``groundlight analyze sf2t`` writes ``<root>/summary.json``.

    groundlight recipe sf2t-synth --seeds 0 1 2
    groundlight recipe sf2t-synth --seeds 0 --fit-args '--trainer.max_steps 2' --eval-args '--data.init_args.max_eval_samples 4'
"""

from __future__ import annotations

import argparse

from groundlight.methods.sf2t.report import SAMPLING
from groundlight.recipes._chain import (
    Chain,
    Done,
    add_common_arguments,
    add_seed_arguments,
    recipe_main,
)

CONFIGS = {"base": "experiments/sf2t/synth_sft.yaml", "sf2t": "experiments/sf2t/synth.yaml",
           "sft": "experiments/sf2t/synth_sft.yaml", "sf2t_then_sft": "experiments/sf2t/synth_then_sft.yaml"}


def seed_chain(chain: Chain, seed: int, args: argparse.Namespace) -> list[Done]:
    """One seed's fits and tests; returns the tests the report reads."""
    runs = f"{args.root}/seed{seed}"

    def cli(verb: str, run: str, config: str) -> list:
        return [verb, "--config", config, "--runs_dir", ".", "--experiment", f"{runs}/{run}",
                "--data.init_args.data_dir", args.data_dir, "--seed_everything", seed, "--data.init_args.seed", seed]

    def test(run: str, config: str, fit: Done | None) -> Done:
        checkpoint = ["--ckpt_path", fit.checkpoint] if fit is not None else []
        return chain.run(f"seed{seed}.{run}.test", [*cli("test", run, config), *checkpoint, *args.eval_args],
                         outputs=[f"{runs}/{run}/summary.json", f"{runs}/{run}/test_records.jsonl"],
                         after=[fit] if fit is not None else [])

    fits = {run: chain.run(f"seed{seed}.{run}.fit", [*cli("fit", run, CONFIGS[run]), *args.fit_args]) for run in ("sf2t", "sft")}
    fits["sf2t_then_sft"] = chain.run(
        f"seed{seed}.sf2t_then_sft.fit", [*cli("fit", "sf2t_then_sft", CONFIGS["sf2t_then_sft"]),
                                          "--model.init_args.init_from", fits["sf2t"].checkpoint, *args.fit_args],
        after=[fits["sf2t"]])
    for strategy, run in SAMPLING.items():
        if run not in fits:
            fits[run] = chain.run(f"seed{seed}.{run}.fit", [*cli("fit", run, CONFIGS["sf2t"]),
                                                            "--data.init_args.fragments.strategy", strategy, *args.fit_args])
    tests = [test("base", CONFIGS["base"], None)]
    tests += [test(run, CONFIGS.get(run, CONFIGS["sf2t"]), fit) for run, fit in fits.items()]
    return tests


def run(chain: Chain, args: argparse.Namespace) -> None:
    chain.ensure(args.data_dir, ["data", "synth", "--out", args.data_dir, "--seed", "0"])
    chain.ensure(f"{args.data_dir}/finevid", ["data", "finevid", "--data", args.data_dir])
    tests = [done for seed in args.seeds for done in seed_chain(chain, seed, args)]
    if not args.no_report:
        chain.run("report", ["analyze", "sf2t", "--root", args.root, "--seeds", *args.seeds],
                  outputs=[f"{args.root}/summary.json"], after=tests)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="groundlight recipe sf2t-synth", description=__doc__.splitlines()[0])
    add_common_arguments(parser, data_dir="data/synth", root="runs/sf2t/synth")
    add_seed_arguments(parser, "analyze sf2t")
    return parser


def main(argv: list[str] | None = None) -> int:
    return recipe_main(parser, run, argv)

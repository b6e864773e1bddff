"""``groundlight recipe groundvts-synth``: the GroundVTS chain and its Table-5 variants on the embedded benchmark.

Per seed, under ``<root>/seed<N>/``: stage 1 (the paper's recipe, capped at ``--stage1-steps``), stage 2 from stage 1's
checkpoint and each Table-5 variant's stage 3 from the same stage-2 checkpoint, all from groundlight-tiny, stage 2 and
the variants with the fine-tuning budget overlay (``--budget``); each variant is tested; the token-level model predicts and
``groundlight analyze vts`` draws its kept-token density and gathers ``seed<N>/summary.json``. Then
``groundlight analyze vts-seeds`` writes ``<root>/summary.json`` over the seeds, with intervals over questions × seeds
and the best constant window scored on the same questions.

    groundlight recipe groundvts-synth --seeds 0 1
    groundlight recipe groundvts-synth --seeds 2 --no-report --fit-args '--trainer.max_steps 2'
"""

from __future__ import annotations

import argparse
import shlex

from groundlight.methods.groundvts.report import VARIANTS
from groundlight.recipes._chain import (
    Chain,
    Done,
    add_common_arguments,
    add_seed_arguments,
    recipe_main,
)

STAGE = "experiments/groundvts/synth_stage{}.yaml"
BUDGET = "--config experiments/base/groundvts_tiny_budget.yaml"


def variant_config(variant: str) -> str:
    """A Table-5 row's config: the token-level row is stage 3 itself, ``<name>[_level]`` is ``synth_<name>.yaml``."""
    name = "stage3" if variant == "token_level" else variant.removesuffix("_level")
    return f"experiments/groundvts/synth_{name}.yaml"


def seeded(seed: int) -> list:
    return ["--seed_everything", seed, "--data.init_args.seed", seed]


def where(args: argparse.Namespace, seed: int, run: str) -> list:
    """Where a run of the seed files itself and what data it reads."""
    return ["--runs_dir", ".", "--experiment", f"{args.root}/seed{seed}/{run}", "--data.init_args.data_dir", args.data_dir]


def stages(chain: Chain, seed: int, args: argparse.Namespace) -> Done:
    """Stage 1 (the paper's recipe, capped), then stage 2 from it with the budget overlay; returns stage 2."""
    stage1 = chain.run(f"seed{seed}.stage1.fit", ["fit", "--config", STAGE.format(1), *seeded(seed), "--trainer.max_steps",
                                                  args.stage1_steps, *where(args, seed, "stage1"), *args.fit_args])
    return chain.run(f"seed{seed}.stage2.fit", ["fit", "--config", STAGE.format(2), *args.budget, *seeded(seed), "--trainer.max_steps",
                                                args.stage2_steps, "--model.init_args.init_from", stage1.checkpoint,
                                                *where(args, seed, "stage2"), *args.fit_args], after=[stage1])


def variants(chain: Chain, seed: int, args: argparse.Namespace, stage2: Done) -> tuple[dict[str, Done], list[Done]]:
    """Each Table-5 row's stage 3 from the same stage-2 checkpoint, then its test; returns the fits and the tests."""
    fits, tests = {}, []
    for variant in VARIANTS:
        config = ["--config", variant_config(variant), *args.budget, *seeded(seed)]
        fits[variant] = chain.run(f"seed{seed}.{variant}.fit", ["fit", *config, *where(args, seed, variant),
                                                               "--model.init_args.init_from", stage2.checkpoint, *args.fit_args],
                                  after=[stage2])
        tests.append(chain.run(f"seed{seed}.{variant}.test", ["test", *config, *where(args, seed, variant), "--ckpt_path",
                                                              fits[variant].checkpoint, *args.eval_args],
                               outputs=[f"{args.root}/seed{seed}/{variant}/summary.json"], after=[fits[variant]]))
    return fits, tests


def seed_chain(chain: Chain, seed: int, args: argparse.Namespace) -> Done:
    """One seed's stages, variants and tests; the token-level model's predictions and density plots, and the seed's
    science summary (``seed<N>/summary.json``), which is the step returned."""
    runs = f"{args.root}/seed{seed}"
    fits, tests = variants(chain, seed, args, stages(chain, seed, args))
    predicted = chain.run(f"seed{seed}.token_level.predict",
                          ["predict", "--config", variant_config("token_level"), *args.budget, *seeded(seed),
                           *where(args, seed, "token_level"), "--ckpt_path", fits["token_level"].checkpoint, *args.eval_args],
                          outputs=[f"{runs}/token_level/predictions.jsonl"], after=[fits["token_level"]])
    return chain.run(f"seed{seed}.density",
                     ["analyze", "vts", f"{runs}/token_level/predictions.jsonl", "--out", f"{runs}/token_level/density",
                      "--science", runs, "--seed", seed, "--data-dir", args.data_dir, "--max-eval-samples", 150],
                     outputs=[f"{runs}/token_level/density/density.json", f"{runs}/summary.json"], after=[predicted, *tests])


def run(chain: Chain, args: argparse.Namespace) -> None:
    chain.ensure(args.data_dir, ["data", "synth", "--out", args.data_dir, "--seed", "0"])
    summaries = [seed_chain(chain, seed, args) for seed in args.seeds]
    if not args.no_report:
        chain.run("report", ["analyze", "vts-seeds", "--root", args.root, "--seeds", *args.seeds, "--data-dir", args.data_dir,
                             "--max-eval-samples", 150],
                  outputs=[f"{args.root}/summary.json"], after=summaries)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="groundlight recipe groundvts-synth", description=__doc__.splitlines()[0])
    add_common_arguments(parser, data_dir="data/synth", root="runs/groundvts/synth")
    add_seed_arguments(parser, "analyze vts-seeds", eval_help="extra options for every test and predict")
    parser.add_argument("--budget", type=shlex.split, default=shlex.split(BUDGET),
                        help=f"configs added to stage 2 and every variant (default '{BUDGET}')")
    parser.add_argument("--stage1-steps", type=int, default=150)
    parser.add_argument("--stage2-steps", type=int, default=400)
    return parser


def main(argv: list[str] | None = None) -> int:
    return recipe_main(parser, run, argv)

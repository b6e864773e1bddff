"""``groundlight recipe groundvts-qwen``: the GroundVTS-Q chain on real data with Qwen2.5-VL-7B (GPU).

Stages 1 and 2 on LLaVA-Video (``llava_video``), stage 3 on Grounding-FT from Charades-STA, QVHighlights and
ActivityNet Captions, each stage from the previous one's checkpoint, all with the ``groundvts_qwen7b.yaml``
overlay; then stage 3 is tested. ``--data-dir`` holds ``llava_video/``, ``charades_sta/``, ``qvhighlights/`` and
``activitynet_captions/``; runs go under ``<root>/stage<N>/``.

    groundlight recipe groundvts-qwen --data-dir data/real
"""

from __future__ import annotations

import argparse
import sys

from groundlight.recipes._chain import Chain, add_common_arguments, chain_for

STAGE = "experiments/groundvts/synth_stage{}.yaml"
OVERLAY = "experiments/base/groundvts_qwen7b.yaml"
TASKS = {1: "[llava_video]", 2: "[llava_video]", 3: "[charades_sta_ft,qvhighlights_ft,activitynet_captions_ft]"}


def run(chain: Chain, args: argparse.Namespace) -> None:
    def where(stage: int) -> list:
        return ["--runs_dir", ".", "--experiment", f"{args.root}/stage{stage}", "--data.init_args.data_dir", args.data_dir]

    previous = None
    for stage, tasks in TASKS.items():
        start = ["--model.init_args.init_from", previous.checkpoint] if previous else []
        previous = chain.run(f"stage{stage}.fit", ["fit", "--config", STAGE.format(stage), "--config", OVERLAY, "--data.init_args.tasks",
                                                   tasks, *start, *where(stage), *args.fit_args], after=[previous] if previous else [])
    chain.run("stage3.test", ["test", "--config", STAGE.format(3), "--config", OVERLAY, *where(3), "--ckpt_path", previous.checkpoint],
              outputs=[f"{args.root}/stage3/summary.json"], after=[previous])


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="groundlight recipe groundvts-qwen", description=__doc__.splitlines()[0])
    add_common_arguments(parser, data_dir="data/real", root="runs/groundvts/qwen")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    run(chain_for(args), args)
    return 0

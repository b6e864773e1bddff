"""``groundlight recipe gpu-smoke``: one real-size training step per method on a lent GPU, at bf16.

Each method's synth config is fitted for ``--steps`` steps (3 by default) with the backbone swapped for a random-init
build of a real model's shape (``experiments/base/backbones/qwen2_5_vl_7b_shaped.yaml``: Qwen2.5-VL-7B, 8.3B
parameters, LoRA r16, frozen tower, gradient checkpointing), one clip per batch decoded at ``--frame-size`` (448 px:
5120 visual tokens for 40 frames), ``bf16-true``. A callback records every step's seconds, loss and the allocator's
peak; ``<root>/summary.json`` gathers per method the median step time after the first, the peak GiB, whether every
loss was finite, and ``groundlight estimate``'s total for the same config beside the measured peak.

    make gpu-smoke                                           # on the GPU machine
    groundlight recipe gpu-smoke --methods sft d2vlm --steps 2
    groundlight recipe gpu-smoke --accelerator cpu --build experiments/base/backbones/tiny_qwen2_5_vl_lora8.yaml \\
        --precision 32-true --frame-size 56   # the same chain on CPU with a tiny build (its test)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback

from groundlight.io import write_json_atomic
from groundlight.recipes._chain import Chain, add_common_arguments, recipe_main

BUILD = "experiments/base/backbones/qwen2_5_vl_7b_shaped.yaml"
# The method configs a smoke step fits; each trains that method's own loss (GroundVTS: its stage 3, VTS and LLM).
METHODS = {
    "sft": "experiments/sft/synth.yaml",
    "self_consistency": "experiments/self_consistency/synth.yaml",
    "groundvts": "experiments/groundvts/synth_stage3.yaml",
    "d2vlm": "experiments/d2vlm/synth.yaml",
    "d2vlm_fpo": "experiments/d2vlm/synth_fpo.yaml",
    "sf2t": "experiments/sf2t/synth.yaml",
}
# D²VLM's builds add the evidence tokens before LoRA (qwen2_5_vl_7b_evidence.yaml).
EXTRA = {"d2vlm": ["--model.init_args.backbone.init_args.add_tokens", "[<evi>, </evi>]"],
         "d2vlm_fpo": ["--model.init_args.backbone.init_args.add_tokens", "[<evi>, </evi>]"]}
RECORD = "smoke_steps.json"


class StepRecorder(Callback):
    """Per training step: seconds, loss and peak allocated bytes (CUDA, reset every step; ``None`` on CPU); written
    to ``<default_root_dir>/smoke_steps.json`` when fitting ends."""

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []
        self._start = 0.0

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:  # noqa: ANN001
        if torch.cuda.is_available():
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.synchronize()
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.steps.append({
            "seconds": time.perf_counter() - self._start,
            "loss": float(loss) if loss is not None else None,
            "peak_bytes": int(torch.cuda.max_memory_allocated()) if cuda else None,
            "sequence": int(batch["input_ids"].shape[1]) if "input_ids" in batch else None,
        })

    def on_train_end(self, trainer, module) -> None:  # noqa: ANN001
        if trainer.is_global_zero:
            write_json_atomic(Path(trainer.default_root_dir) / RECORD, {"steps": self.steps})


def method_args(method: str, args: argparse.Namespace) -> list[str]:
    """The config options a method's smoke fit and its estimate share."""
    size = str([args.frame_size, args.frame_size])
    return ["--config", METHODS[method], "--model.init_args.backbone", args.build, *EXTRA.get(method, []),
            "--data.init_args.data_dir", args.data_dir, "--data.init_args.batch_size", "1",
            "--data.init_args.sampling.decode_size", size, "--trainer.precision", args.precision]


def fit_args(method: str, args: argparse.Namespace) -> list[str]:
    return ["fit", *method_args(method, args), "--runs_dir", ".", "--experiment", f"{args.root}/{method}",
            "--trainer.accelerator", args.accelerator, "--trainer.devices", "1", "--trainer.max_steps", str(args.steps),
            "--trainer.max_epochs", "-1", "--trainer.limit_val_batches", "0", "--trainer.log_every_n_steps", "1",
            "--trainer.callbacks+=groundlight.recipes.gpu_smoke.StepRecorder", *args.fit_args]


def summarize(root: Path, methods: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Per method: median step seconds after the first, the largest peak, finite losses, and the estimate beside it."""
    from groundlight.tools.estimate import GIB, estimate

    rows = {}
    for method in methods:
        steps = json.loads((root / method / RECORD).read_text())["steps"]
        peaks = [s["peak_bytes"] for s in steps if s["peak_bytes"] is not None]
        estimated = estimate([*method_args(method, args), "--video-seconds", "40"])["memory_bytes_per_device"]["total"]
        rows[method] = {
            "steps": len(steps),
            "step_seconds_median": statistics.median(s["seconds"] for s in steps[1:] or steps),
            "peak_gib": round(max(peaks) / GIB, 3) if peaks else None,
            "estimate_gib": round(estimated / GIB, 3),
            "estimate_over_peak": round(estimated / max(peaks), 3) if peaks else None,
            "losses_finite": all(s["loss"] is not None and s["loss"] == s["loss"] and abs(s["loss"]) != float("inf")
                                 for s in steps),
            "sequence": steps[-1]["sequence"],
        }
    return {"build": args.build, "precision": args.precision, "frame_size": args.frame_size,
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu", "methods": rows}


def run(chain: Chain, args: argparse.Namespace) -> None:
    chain.ensure(args.data_dir, ["data", "synth", "--out", args.data_dir, "--seed", "0"])
    chain.ensure(f"{args.data_dir}/d2vlm", ["data", "d2vlm-synth", "--data", args.data_dir])
    chain.ensure(f"{args.data_dir}/finevid", ["data", "finevid", "--data", args.data_dir])
    for method in args.methods:
        chain.run(f"{method}.fit", fit_args(method, args), outputs=[f"{args.root}/{method}/{RECORD}"])
    if chain.dry_run:
        return
    summary = summarize(Path(args.root), args.methods, args)
    write_json_atomic(Path(args.root) / "summary.json", summary)
    print(json.dumps(summary, indent=2))
    bad = [m for m, row in summary["methods"].items() if not row["losses_finite"]]
    if bad:
        raise SystemExit(f"non-finite losses in {bad}")


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="groundlight recipe gpu-smoke", description=__doc__.splitlines()[0])
    add_common_arguments(parser, data_dir="data/synth", root="runs/gpu_smoke")
    parser.add_argument("--methods", nargs="+", choices=sorted(METHODS), default=list(METHODS))
    parser.add_argument("--build", default=BUILD, help=f"backbone build (default {BUILD})")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--frame-size", type=int, default=448, help="frames decoded at this square size")
    parser.add_argument("--precision", default="bf16-true")
    parser.add_argument("--accelerator", default="gpu")
    return parser


def main(argv: list[str] | None = None) -> int:
    return recipe_main(parser, run, argv)

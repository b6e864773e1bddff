"""Collect `make self-consistency-synth`'s runs into ``<root>/summary.json``.

Expected under ``--root``/``seed<N>`` for each seed (the Makefile writes them):

- ``sft/summary.json``, ``sc/summary.json``: test metrics of the two trained runs;
- ``sft/attention/attention.json``, ``sc/attention/attention.json``: ``groundlight analyze attention``;
- ``steer_{none,uniform,proportional}/summary.json``: the SFT checkpoint tested with
  :class:`~groundlight.attention.steering.AttentionSteering` on ground-truth keyframes (the
  annotated keyframes for MCQ, the ground-truth window for moment retrieval).

``accuracy`` is the synthetic MCQ (``keyframes`` task) accuracy, ``keyframe_auroc`` the probed
layer's head-averaged attention AUROC against keyframes on its test questions, ``mr_window_auroc``
the same on the moment-retrieval test queries against their ground-truth windows
(``attention_mr/``), ``vision_centricity`` the layer's visual attention mass on the MCQ questions,
``mIoU`` moment retrieval.
The top-level numbers are means over the seeds (``per_seed`` holds each seed's); a value
missing from any seed's runs is reported as ``null``, never filled in.

``training`` and ``steering`` hold, from each run's ``test_records.jsonl``, every metric's mean with a
95 % bootstrap interval over questions × seeds (``intervals``), and the paired differences SC − SFT and
steered − unsteered on the same questions (``differences``, with "no effect detected" when the interval
holds 0); ``training`` also scores the no-model control (``constant``: best constant window for moment
retrieval, majority answer for MCQ) on the same questions.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from groundlight.analysis.controls import split_control_records, split_controls
from groundlight.io import write_json_atomic
from groundlight.analysis.seeds import average_over_seeds, seed_records
from groundlight.analysis.stats import compare_runs

STEER_MODES = ("none", "uniform", "proportional")
METRICS = ("mIoU", "R1@0.5", "mcq_accuracy")


def _read(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def run_summary(root: Path, name: str, layer: int) -> dict[str, Any]:
    """``accuracy``, ``mIoU`` and ``keyframe_auroc`` of one trained run."""
    test = _read(root / name / "summary.json") or {}
    return {"accuracy": test.get("mcq_accuracy"), "mIoU": test.get("mIoU"),
            "keyframe_auroc": _layer_value(root / name / "attention", "keyframe_auroc", layer),
            "mr_window_auroc": _layer_value(root / name / "attention_mr", "keyframe_auroc", layer),
            "vision_centricity": _layer_value(root / name / "attention", "vision_centricity", layer),
            "mcq_parse_failed": test.get("mcq_parse_failed")}


def _layer_value(folder: Path, key: str, layer: int) -> float | None:
    """One layer's value from ``groundlight analyze attention``'s ``attention.json`` (``None`` if absent)."""
    attention = _read(folder / "attention.json")
    values = attention["layers"].get(key, []) if attention is not None else []
    return values[layer] if layer < len(values) else None


def collect_seed(root: Path, layer: int) -> dict[str, Any]:
    """One seed's runs: ``sft``, ``sc`` and ``steer.<mode>``."""
    steer = {}
    for mode in STEER_MODES:
        test = _read(root / f"steer_{mode}" / "summary.json") or {}
        steer[mode] = {"accuracy": test.get("mcq_accuracy"), "mIoU": test.get("mIoU")}
    return {"sft": run_summary(root, "sft", layer), "sc": run_summary(root, "sc", layer), "steer": steer}


def collect(root: Path, layer: int, seeds: list[int]) -> dict[str, Any]:
    per_seed = {seed: collect_seed(root / f"seed{seed}", layer) for seed in seeds}
    return average_over_seeds(list(per_seed.values())) | {"layer": layer, "seeds": seeds,
                                                 "per_seed": {str(k): v for k, v in per_seed.items()}}


def comparisons(root: Path, seeds: list[int], controls: list[dict[str, Any]] | None) -> dict[str, Any]:
    """Intervals over questions × seeds: SC vs SFT (with the no-model control), and each steering mode vs none."""
    training = {name: seed_records(root, seeds, name) for name in ("sft", "sc")}
    steering = {mode: seed_records(root, seeds, f"steer_{mode}") for mode in STEER_MODES}
    out: dict[str, Any] = {}
    if all(training.values()):
        out["training"] = compare_runs(training, METRICS, baseline="sft", controls={"constant": controls} if controls else None)
    if all(steering.values()):
        out["steering"] = compare_runs(steering, METRICS, baseline="none")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="groundlight analyze self-consistency", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("runs/self_consistency/synth"))
    parser.add_argument("--layer", type=int, default=1, help="the probed layer (synth.yaml: 1)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="the seeds whose runs are under <root>/seed<N>")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="also score the no-model controls (best constant window, majority answer) on its test split")
    parser.add_argument("--tasks", nargs="+", default=["charades_sta", "keyframes"], help="the runs' tasks (controls)")
    parser.add_argument("--max-eval-samples", type=int, default=100, help="the runs' test cap per task (controls)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    summary = collect(args.root, args.layer, args.seeds)
    control_records = None
    if args.data_dir is not None:
        controls = split_controls(args.data_dir, args.tasks, args.max_eval_samples)
        summary["controls"] = {"constant_window": {"mIoU": controls.get("mIoU"), "R1@0.5": controls.get("R1@0.5")},
                               "majority_answer": {"accuracy": controls.get("mcq_accuracy")}}
        control_records = split_control_records(args.data_dir, args.tasks, args.max_eval_samples)
    summary |= comparisons(args.root, args.seeds, control_records)
    write_json_atomic(args.root / "summary.json", summary)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

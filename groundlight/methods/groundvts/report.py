"""``groundlight analyze vts``: kept-token density plots (paper Fig. 5) and the density/GT overlap.

    groundlight predict --config experiments/groundvts/synth_stage3.yaml --ckpt_path <ckpt> \\
        --predictions runs/groundvts/synth/predictions.jsonl
    groundlight analyze vts runs/groundvts/synth/predictions.jsonl --out runs/groundvts/synth/density

``--science <root>`` also gathers ``<root>/<variant>/summary.json`` (token_level, frame_level,
random, uniform, no_pe test runs) with the density overlap into ``<root>/summary.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from groundlight.analysis.controls import split_control_records, split_controls
from groundlight.io import write_json_atomic
from groundlight.analysis.seeds import average_over_seeds, seed_records
from groundlight.analysis.stats import compare_runs
from groundlight.viz.vts import density_overlap, plot_density, relevance_peak_overlap


VARIANTS = ("token_level", "frame_level", "random", "uniform", "no_pe")


def science_summary(root: Path, density: dict, seed: int | None = None) -> dict:
    """mIoU per variant (absent when its run is missing) plus the kept-token density overlap."""
    keys = ("kept_in_gt_fraction", "gt_fraction", "peak_relevance_in_gt_fraction", "peak_relevance_chance")
    summary: dict = {k: density[k] for k in keys if k in density} | {"seed": seed}
    for variant in VARIANTS:
        path = root / variant / "summary.json"
        if path.exists():
            run = json.loads(path.read_text())
            summary[variant] = {"mIoU": run.get("mIoU"), "R1@0.5": run.get("R1@0.5"), "configs": run.get("configs", run.get("config"))}
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="groundlight analyze vts", description=__doc__.splitlines()[0])
    parser.add_argument("predictions", type=Path, help="jsonl of a GroundVTS predict run")
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNGs and density.json")
    parser.add_argument("--limit", type=int, default=8, help="plots to draw (first N records)")
    parser.add_argument("--science", type=Path, default=None, help="run root holding the variants' test summaries")
    parser.add_argument("--seed", type=int, default=None, help="the runs' seed, recorded in the science summary")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="with --science: also score the best constant window on its charades_sta test split")
    parser.add_argument("--max-eval-samples", type=int, default=None, help="the runs' test cap (controls)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    records = [json.loads(line) for line in args.predictions.read_text().splitlines() if line.strip()]
    records = [r for r in records if "vts_kept" in r]
    if not records:
        raise SystemExit(f"{args.predictions}: no GroundVTS records (run `groundlight predict` with a GroundVTS config)")
    for record in records[: args.limit]:
        plot_density(record, args.out / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', record['sample_id'])}.png")
    summary = density_overlap(records) | relevance_peak_overlap(records) | {"records": len(records), "plots": min(args.limit, len(records))}
    write_json_atomic(args.out / "density.json", summary)
    print(json.dumps(summary))
    if args.science is not None:
        science = science_summary(args.science, summary, args.seed)
        if args.data_dir is not None:
            controls = split_controls(args.data_dir, ["charades_sta"], args.max_eval_samples)
            science["constant_window"] = {"mIoU": controls["mIoU"], "R1@0.5": controls["R1@0.5"]}
        write_json_atomic(args.science / "summary.json", science)
        print(json.dumps(science))
    return 0


def seeds_main(argv: list[str] | None = None) -> int:
    """``groundlight analyze vts-seeds``: ``<root>/seed<N>/summary.json`` of each seed → ``<root>/summary.json``."""
    parser = argparse.ArgumentParser(prog="groundlight analyze vts-seeds", description=seeds_main.__doc__)
    parser.add_argument("--root", type=Path, required=True, help="folder holding seed<N>/summary.json")
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="also score the best constant window per question on its charades_sta test split")
    parser.add_argument("--max-eval-samples", type=int, default=None, help="the runs' test cap (controls)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    per_seed = {}
    for seed in args.seeds:
        path = args.root / f"seed{seed}" / "summary.json"
        if not path.exists():
            raise SystemExit(f"{path}: missing; run `make groundvts-synth-seed GVTS_SEED={seed}` first")
        per_seed[seed] = {k: v for k, v in json.loads(path.read_text()).items() if k != "seed"}
    summary = average_over_seeds(list(per_seed.values())) | {"seeds": args.seeds,
                                                             "per_seed": {str(k): v for k, v in per_seed.items()}}
    runs = {variant: seed_records(args.root, args.seeds, variant) for variant in VARIANTS}
    if all(runs.values()):  # every variant vs token-level on the same questions, with intervals over questions x seeds
        controls = None if args.data_dir is None else {
            "constant_window": split_control_records(args.data_dir, ["charades_sta"], args.max_eval_samples)}
        summary["comparison"] = compare_runs(runs, ("mIoU", "R1@0.5"), baseline="token_level", controls=controls)
    write_json_atomic(args.root / "summary.json", summary)
    print(json.dumps({k: v for k, v in summary.items() if k != "per_seed"}))
    return 0

"""Collect ``groundlight recipe d2vlm-synth``'s runs into ``<root>/summary.json`` (``groundlight analyze d2vlm``).

Expected under ``--root``/``seed<N>`` for each seed, each run with ``summary.json`` and ``test_records.jsonl``:
``text_timestamps`` (the baseline: spans written as text), ``evi`` (D²VLM's SFT stage), ``evi_fpo`` (its FPO
stage without a reference, as released) and ``evi_fpo_reference`` (with a precomputed reference). Every run answers the same test questions. Each question's ``evidence_F1`` and ``evidence_mIoU`` is also
filed under its kind: ``single_*`` (one event) or ``multi_*`` (two or more).

The no-model control ``constant``: one span at the same fractions of every video, the pair of fractions (a 0.05
grid) with the best mean F1 on the training questions, scored on the test questions like a model's answer.

``intervals`` holds each run's (and the control's) mean with a 95 % bootstrap interval over questions × seeds;
``vs_text_timestamps`` the paired differences from the baseline (the paper's claim: evidence tokens beat text
timestamps, and FPO adds to that; ``evi_fpo - evi`` is in ``vs_evi``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from data_modules.formats.d2vlm import read_d2vlm_records
from groundlight.analysis.seeds import seed_records
from groundlight.analysis.stats import compare_runs
from groundlight.io import write_json_atomic
from groundlight.metrics.evidence import evidence_scores

RUNS = ("text_timestamps", "evi", "evi_fpo", "evi_fpo_reference")
BASE_METRICS = ("evidence_F1", "evidence_mIoU", "evidence_parse_failed")
METRICS = (*BASE_METRICS, *(f"{kind}_{m}" for kind in ("single", "multi") for m in ("F1", "mIoU")))


def with_kind_scores(record: dict[str, Any]) -> dict[str, Any]:
    """A record whose F1 and mIoU are also filed under ``single_`` or ``multi_``."""
    scores = record.get("scores", {})
    if "evidence_F1" not in scores:
        return record
    kind = "single" if len(record["windows"]) == 1 else "multi"
    return record | {"scores": scores | {f"{kind}_F1": scores["evidence_F1"], f"{kind}_mIoU": scores["evidence_mIoU"]}}


def constant_control(data_dir: Path, test_records: list[dict[str, Any]], step: float = 0.05) -> list[dict[str, Any]]:
    """The best constant relative span on the training questions, scored on ``test_records``' questions."""
    train = read_d2vlm_records(data_dir / "d2vlm" / "train.json")
    grid = [round(i * step, 4) for i in range(round(1 / step) + 1)]
    best, best_f1 = (0.0, 1.0), -1.0
    for a in grid:
        for b in (g for g in grid if g > a):
            f1 = sum(evidence_scores([(a * r["duration"], b * r["duration"])], r["response"].spans)["F1"] for r in train)
            if f1 > best_f1:
                best, best_f1 = (a, b), f1
    durations = {r["id"]: r["duration"] for r in read_d2vlm_records(data_dir / "d2vlm" / "test.json")}
    records = []
    for record in test_records:
        duration = durations[record["sample_id"]]
        windows = [tuple(w) for w in record["windows"]]
        scores = evidence_scores([(best[0] * duration, best[1] * duration)], windows)
        records.append(with_kind_scores({"sample_id": record["sample_id"], "windows": record["windows"],
                                         "scores": {f"evidence_{k}": v for k, v in scores.items()}}))
    return records


def summarize(root: Path, seeds: list[int], data_dir: Path | None) -> dict[str, Any]:
    runs = {}
    for run in RUNS:
        records = seed_records(root, seeds, run)
        if records is not None:
            runs[run] = [[with_kind_scores(r) for r in seed] for seed in records]
    if not runs:
        raise FileNotFoundError(f"no run of {RUNS} has test records under {root}/seed<N>/ for seeds {seeds}")
    controls = {}
    if data_dir is not None:
        controls["constant"] = constant_control(data_dir, next(iter(runs.values()))[0])
    out: dict[str, Any] = {"seeds": seeds, "runs": sorted(runs)}
    means = {}
    for label, per_seed in runs.items():
        for metric in METRICS:
            values = [[r["scores"][metric] for r in records if metric in r["scores"]] for records in per_seed]
            if all(values):
                means.setdefault(label, {})[metric] = [round(sum(v) / len(v), 4) for v in values]
    out["means"] = means
    for baseline in ("text_timestamps", "evi"):
        if baseline in runs and len(runs) > 1:
            result = compare_runs(runs, METRICS, baseline=baseline, controls=controls)
            out.setdefault("intervals", result["intervals"])
            out[f"vs_{baseline}"] = result["differences"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="groundlight analyze d2vlm", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("runs/d2vlm/synth"))
    parser.add_argument("--data-dir", type=Path, default=None, help="the benchmark (for the constant-span control)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="the seeds whose runs are under <root>/seed<N>")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    summary = summarize(args.root, args.seeds, args.data_dir)
    write_json_atomic(args.root / "summary.json", summary)
    print(json.dumps(summary.get("intervals", summary["means"]), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Collect ``groundlight recipe sf2t-synth``'s runs into ``<root>/summary.json`` (``groundlight analyze sf2t``).

Expected under ``--root``/``seed<N>`` for each seed, each run with ``summary.json`` and ``test_records.jsonl``:

- ``TRAINING``: ``base`` (the same initial weights, not fine-tuned), ``sf2t``, ``sft`` and ``sf2t_then_sft``
  (the SFT stage started from SF2T's checkpoint, the paper's order);
- ``SAMPLING``: SF2T with each frame strategy (``sf2t`` is the motion-salient run).

Every run is tested on the same questions: the fragment questions of the test clips and the FineVidBench-style
test questions. Scores are read per question: each fragment task's (``counting_accuracy``, ...,
``rearrangement_exact``), and each FineVid question's ``mcq_accuracy`` filed under its kind (``finevid_speed``,
...), its level (``finevid_scene``, ``finevid_fragment``) and ``finevid_all``.

``training`` holds the intervals over questions × seeds of every run and metric, the no-model control
``majority`` (each question answered with its task's most frequent true answer) among them, and the paired
differences from SFT (``vs_sft``) and from the base model (``vs_base``); ``sampling`` the same for the strategies, against
random sampling (the paper's claim: motion-salient ≥ random ≥ uniform). ``means`` has each run's per-seed mean
of every metric; a run missing from a seed is left out of that section rather than filled in.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from data_modules.finevid import LEVELS
from groundlight.analysis.seeds import seed_records
from groundlight.analysis.stats import compare_runs
from groundlight.io import write_json_atomic

TRAINING = ("base", "sf2t", "sft", "sf2t_then_sft")
STRATEGIES = ("motion", "random", "uniform")
SAMPLING = {"motion": "sf2t", "random": "sf2t_random", "uniform": "sf2t_uniform"}
"""Strategy → its run (the motion-salient run is SF2T itself)."""
FRAGMENT_METRICS = ("counting_accuracy", "consistency_accuracy", "localization_accuracy", "disorder_accuracy",
                    "rearrangement_exact", "rearrangement_position_accuracy")
FINEVID_METRICS = ("finevid_all", "finevid_scene", "finevid_fragment", *(f"finevid_{kind}" for kind in LEVELS))
METRICS = (*FRAGMENT_METRICS, *FINEVID_METRICS)


def finevid_kind(sample_id: str) -> str | None:
    """The kind of a FineVid question from its id (``finevid/test.json:<clip>_<kind>``); ``None`` for others."""
    if not sample_id.startswith("finevid/"):
        return None
    return next((kind for kind in LEVELS if sample_id.endswith(f"_{kind}")), None)


def with_finevid_scores(record: dict[str, Any]) -> dict[str, Any]:
    """A test record whose FineVid accuracy is also filed under its kind, its level and ``finevid_all``."""
    kind = finevid_kind(record["sample_id"])
    if kind is None or "mcq_accuracy" not in record.get("scores", {}):
        return record
    score = record["scores"]["mcq_accuracy"]
    names = (f"finevid_{kind}", f"finevid_{LEVELS[kind]}", "finevid_all")
    return record | {"scores": record["scores"] | dict.fromkeys(names, score)}


def runs_of(root: Path, seeds: list[int], names: dict[str, str]) -> dict[str, list[list[dict[str, Any]]]]:
    """Label → per-seed records (FineVid scores filed), for the runs every seed has."""
    found = {}
    for label, run in names.items():
        records = seed_records(root, seeds, run)
        if records is not None:
            found[label] = [[with_finevid_scores(r) for r in seed] for seed in records]
    return found


def means(runs: dict[str, list[list[dict[str, Any]]]]) -> dict[str, dict[str, list[float]]]:
    """Each run's mean of every metric, seed by seed (over the questions that seed scored)."""
    out: dict[str, dict[str, list[float]]] = {}
    for label, seeds in runs.items():
        for metric in METRICS:
            values = [[r["scores"][metric] for r in records if metric in r["scores"]] for records in seeds]
            if all(values):
                out.setdefault(label, {})[metric] = [round(sum(v) / len(v), 4) for v in values]
    return out


def comparisons(runs: dict[str, list[list[dict[str, Any]]]], baselines: tuple[str, ...]) -> dict[str, Any]:
    """Intervals of every run, and paired differences from each baseline present."""
    out: dict[str, Any] = {}
    for baseline in baselines:
        if baseline in runs and len(runs) > 1:
            result = compare_runs(runs, METRICS, baseline=baseline)
            out.setdefault("intervals", result["intervals"])
            out[f"vs_{baseline}"] = result["differences"]
    return out


ANSWER_FIELDS = ("answer", "label", "order")
"""Where a test record keeps its true answer: an option index, a yes/no label, or an order."""


def majority_records(records: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The no-model control: every question answered with its group's most frequent true answer (ties: the smallest),
    a group being a fragment task or a FineVid kind, scored as its metrics score an answer. Read from the test
    questions themselves, so it is the best any constant answer per group can do on them. ``None`` when a record
    does not carry its true answer."""
    if not all("task" in r and any(field in r for field in ANSWER_FIELDS) for r in records):
        return None

    def group(record: dict[str, Any]) -> str:
        return finevid_kind(record["sample_id"]) or record["task"]

    def truth(record: dict[str, Any]) -> Any:
        value = next(record[field] for field in ANSWER_FIELDS if field in record)
        return tuple(value) if isinstance(value, list) else value

    answers: dict[str, Counter] = {}
    for record in records:
        answers.setdefault(group(record), Counter())[truth(record)] += 1
    majority = {name: min(counts, key=lambda a: (-counts[a], str(a))) for name, counts in answers.items()}
    out = []
    for record in records:
        guess, right = majority[group(record)], truth(record)
        scores = {}
        for metric in record["scores"]:
            if metric.endswith("parse_failed"):
                scores[metric] = 0.0
            elif metric.endswith("position_accuracy"):
                scores[metric] = sum(a == b for a, b in zip(guess, right)) / len(right)
            else:
                scores[metric] = float(guess == right)
        out.append(with_finevid_scores({**record, "prediction": None, "scores": scores}))
    return out


def summarize(root: Path, seeds: list[int]) -> dict[str, Any]:
    training = runs_of(root, seeds, {name: name for name in TRAINING})
    control = [majority_records(records) for records in training.get("base", [])]
    if control and all(records is not None for records in control):  # the same questions in every seed
        training["majority"] = control
    sampling = runs_of(root, seeds, SAMPLING)
    return {"seeds": seeds, "means": {"training": means(training), "sampling": means(sampling)},
            "training": comparisons(training, ("sft", "base")), "sampling": comparisons(sampling, ("random",))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="groundlight analyze sf2t", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("runs/sf2t/synth"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="the seeds whose runs are under <root>/seed<N>")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    summary = summarize(args.root, args.seeds)
    write_json_atomic(args.root / "summary.json", summary)
    print(json.dumps(summary["means"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

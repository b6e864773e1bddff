"""``groundlight eval etbench``: E.T. Bench, as its ``evaluation/compute_metrics.py`` scores it.

``--pred`` is the submission: the annotation list with the model's answer added to each
sample as ``a`` (a JSON list, or jsonl), or a folder of such files (every ``*.json`` /
``*.jsonl`` whose name does not contain "metrics", as the official script reads a
folder). Scoring is ``ETBench``; the result is the official ``metrics.json`` nesting
plus the log's ``Overall`` and ``Merged`` rows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from groundlight.evaluate.io import InputError, read_json, read_jsonl, render_table
from groundlight.metrics.etbench import ETBench, etbench_summary

NAME = "etbench"
HELP = "E.T. Bench (12 tasks): Acc, F1@IoU, mIoU, recall, caption scores; official nesting + Overall/Merged"
SECTIONS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("Referring", ("rar", "eca", "rvq"), ("Acc",)),
    ("Grounding", ("tvg", "epm", "tal", "evs", "vhd"), ("F1@0.1", "F1@0.3", "F1@0.5", "F1@0.7", "F1")),
    ("Captioning", ("dvc", "slc"), ("F1@0.1", "F1@0.3", "F1@0.5", "F1@0.7", "F1", "METEOR", "ROUGE_L",
                                    "CIDEr", "SentSim")),
    ("Complex", ("tem", "gvq"), ("R@0.1", "R@0.3", "R@0.5", "R@0.7", "mRec", "Acc")),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pred", required=True,
                        help="submission JSON/jsonl (samples with the answer in 'a'), or a folder of them")
    parser.add_argument("--sim-model", metavar="DIR", help="local sentence-transformers/all-MiniLM-L6-v2 folder; "
                        "without it SentSim is skipped and answers needing the similarity fallback score 0")
    parser.add_argument("--subset", metavar="FILE", help="E.T. Bench's subset.json ({task: {source: [idx, ...]}})")
    parser.add_argument("--meteor-jar", help="meteor-1.5.jar (default: the one pycocoevalcap ships)")
    parser.add_argument("--no-meteor", action="store_true", help="skip METEOR even if Java is present")
    parser.add_argument("--device", default="cpu", help="device for the sentence model (default: cpu)")


def submission_files(path: Path) -> list[Path]:
    """The file itself, or the folder's ``*.json``/``*.jsonl`` without "metrics" in the name, sorted."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".json", ".jsonl") and "metrics" not in p.name)
        if not files:
            raise InputError(f"{path}: no .json or .jsonl submission files in this folder")
        return files
    return [path]


def read_samples(path: Path) -> list[dict]:
    """The samples of one submission file."""
    samples = read_jsonl(path) if path.suffix == ".jsonl" else read_json(path)
    if not isinstance(samples, list) or not all(isinstance(s, dict) for s in samples):
        raise InputError(f"{path}: expected a list of sample objects")
    return samples


def in_subset(sample: dict, subset: dict | None) -> bool:
    """Whether ``sample`` is in E.T. Bench's ``subset.json`` (always, without one)."""
    if subset is None:
        return True
    return sample.get("idx") in subset.get(sample.get("task"), {}).get(sample.get("source"), [])


def feed(metric: ETBench, path: Path, subset: dict | None) -> None:
    """Score the samples of ``path``; a malformed one raises ``InputError`` naming the entry."""
    for index, sample in enumerate(read_samples(path)):
        if not in_subset(sample, subset):
            continue
        try:
            metric.update([sample])
        except ValueError as err:
            message = str(err).split(": ", 1)[-1]
            raise InputError(f"{path}: entry {index} (idx {sample.get('idx')!r}): {message}") from None


def notices(metric: ETBench, results: dict) -> list[str]:
    """Why some official numbers are missing or not final."""
    out = []
    if metric.meteor_jar is None and any(t in results for t in ("dvc", "slc")):
        out.append("METEOR skipped: it needs `java` and meteor-1.5.jar (pip install pycocoevalcap or --meteor-jar)")
    if metric.sim_model is None and any(t in results for t in ("dvc", "slc")):
        out.append("SentSim skipped: pass --sim-model DIR (a local all-MiniLM-L6-v2 folder)")
    unscored = sum(m.get("Unscored", 0) for sources in results.values() for m in sources.values())
    if unscored:
        out.append(f"{unscored} answers needed E.T. Bench's sentence-similarity fallback and were scored wrong "
                   "('Unscored'); pass --sim-model DIR for the official Acc")
    return out


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    subset = read_json(Path(args.subset)) if args.subset else None
    metric = ETBench(sim_model=args.sim_model, meteor=False if args.no_meteor else None,
                     meteor_jar=args.meteor_jar, device=args.device)
    for path in submission_files(Path(args.pred)):
        feed(metric, path, subset)
    results = metric.compute()
    if not results:
        raise InputError(f"{args.pred}: no samples to score")
    for line in notices(metric, results):
        print(f"notice: {line}", file=sys.stderr)
    return {**results, **etbench_summary(results)}


def table(result: dict[str, Any]) -> str:
    blocks = []
    for title, tasks, keys in SECTIONS:
        rows = [(task, source, m["Total"], m["Failed"], *(m.get(k, "-") for k in keys))
                for task in tasks for source, m in result.get(task, {}).items()]
        if rows:
            blocks.append(f"{title}\n" + render_table(("Task", "Source", "Total", "Failed", *keys), rows))
    for name in ("Overall", "Merged"):
        if result.get(name):
            blocks.append(f"{name} (%)\n" + render_table(tuple(result[name]), [tuple(result[name].values())]))
    return "\n\n".join(blocks)

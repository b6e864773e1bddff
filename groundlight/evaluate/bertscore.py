"""``groundlight eval bertscore``: BERTScore of generated text against references (ExpertAF).

``--pred`` is a jsonl file (or a JSON list) of ``{"id", "prediction", "reference"}``, where
``reference`` is a string or a list of strings (the best-matching one counts, per P/R/F).
Defaults follow ExpertAF: ``roberta-large`` at bert-score's layer 17, rescaled with the
baseline, English. ``--make-baseline OUT --sentences FILE`` writes a baseline file for a
model bert-score ships none for (pass it back with ``--baseline-path``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from groundlight.evaluate.io import InputError, read_json, read_jsonl, render_table
from groundlight.metrics.bertscore import BERTScore, make_baseline

NAME = "bertscore"
HELP = "BERTScore P/R/F1 (bert-score BERTScorer; roberta-large, rescaled) of predictions vs references"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pred", help='jsonl (or JSON list) of {"id", "prediction", "reference": str | [str]}')
    parser.add_argument("--model-type", default="roberta-large", help="bert-score model name or a local folder")
    parser.add_argument("--num-layers", type=int, help="layer to use (required for models bert-score does not know)")
    parser.add_argument("--lang", default="en", help="baseline language (default: en)")
    parser.add_argument("--no-rescale", action="store_true", help="report raw, unrescaled scores")
    parser.add_argument("--baseline-path", help="baseline file (LAYER,P,R,F rows) instead of bert-score's own")
    parser.add_argument("--idf", action="store_true", help="idf-weight tokens using the references")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", help="torch device (default: cuda when available)")
    parser.add_argument("--make-baseline", metavar="OUT", help="write a baseline for --model-type to OUT and exit")
    parser.add_argument("--sentences", help="with --make-baseline: text file, one sentence per line")
    parser.add_argument("--num-pairs", type=int, default=10000, help="with --make-baseline: random pairs to average")


def read_pairs(path: Path) -> tuple[list[str], list[str | list[str]]]:
    """Predictions and their references; a malformed record raises ``InputError`` naming it."""
    records = read_json(path) if path.read_text().lstrip().startswith("[") else read_jsonl(path)
    if not isinstance(records, list) or not records:
        raise InputError(f"{path}: expected a non-empty JSON list or jsonl of records")
    preds, refs = [], []
    for n, record in enumerate(records, start=1):
        where = f"{path}: record {n} (id {record.get('id') if isinstance(record, dict) else None!r})"
        if not isinstance(record, dict) or not isinstance(record.get("prediction"), str):
            raise InputError(f"{where}: needs a 'prediction' string")
        reference = record.get("reference")
        ok = isinstance(reference, str) or (isinstance(reference, list) and reference
                                            and all(isinstance(r, str) for r in reference))
        if not ok:
            raise InputError(f"{where}: 'reference' must be a string or a non-empty list of strings")
        preds.append(record["prediction"])
        refs.append(reference)
    return preds, refs


def write_baseline(args: argparse.Namespace) -> dict[str, Any]:
    if not args.sentences:
        raise InputError("--make-baseline needs --sentences FILE (one sentence per line)")
    sentences = Path(args.sentences).read_text().splitlines()
    path = make_baseline(sentences, args.make_baseline, args.model_type, lang=args.lang,
                         num_pairs=args.num_pairs, batch_size=args.batch_size, device=args.device)
    layers = len(path.read_text().splitlines()) - 1
    return {"baseline_path": str(path), "model_type": args.model_type, "layers": layers, "pairs": args.num_pairs}


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    if args.make_baseline:
        return write_baseline(args)
    if not args.pred:
        raise InputError("--pred FILE is required (or --make-baseline OUT)")
    preds, refs = read_pairs(Path(args.pred))
    metric = BERTScore(model_type=args.model_type, num_layers=args.num_layers, lang=args.lang,
                       rescale_with_baseline=not args.no_rescale, baseline_path=args.baseline_path,
                       idf=args.idf, batch_size=args.batch_size, device=args.device)
    metric.update(preds, refs)
    scores = {key: float(value) for key, value in metric.compute().items()}
    return {**scores, "total": len(preds), "hash": metric.scorer().hash}


def table(result: dict[str, Any]) -> str:
    rows = [(key, round(value, 4) if isinstance(value, float) else value) for key, value in result.items()]
    return render_table(("metric", "value"), rows)

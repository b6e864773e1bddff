"""BERTScore through bert-score's ``BERTScorer``, kept in input order, with a checked baseline.

torchmetrics' ``BERTScore`` returns scores sorted by length, so this metric wraps
``bert_score.BERTScorer`` instead. With ``rescale_with_baseline=True`` bert-score reads
``rescale_baseline/<lang>/<model_type>.tsv`` (row ``num_layers``) from its package; for a
model without such a file (any local folder, for instance) some bert-score entry points
only warn and return unrescaled scores. Here a missing or too short baseline is an
error at construction, naming the file and how to make one (``make_baseline``).

Defaults follow ExpertAF: ``roberta-large`` (layer 17), rescaled, English, no idf.
"""

from __future__ import annotations

import csv
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

_SCORERS: dict[tuple, Any] = {}


def default_baseline_path(model_type: str, lang: str) -> Path:
    """Where bert-score looks for a model's baseline: ``rescale_baseline/<lang>/<model_type>.tsv``."""
    import bert_score

    return Path(os.path.dirname(bert_score.__file__)) / "rescale_baseline" / lang / f"{model_type}.tsv"


def resolve_num_layers(model_type: str, num_layers: int | None) -> int:
    """``num_layers``, or bert-score's recommended layer for a model it knows."""
    if num_layers is not None:
        return num_layers
    from bert_score.utils import model2layers

    if model_type not in model2layers:
        raise ValueError(f"bert-score has no default layer for {model_type!r}; pass num_layers")
    return model2layers[model_type]


def check_baseline(path: Path, num_layers: int, model_type: str) -> None:
    """Raise unless ``path`` is a baseline file with a row for layer ``num_layers``."""
    hint = ("pass baseline_path (--baseline-path) to an existing file, make one with "
            "`groundlight eval bertscore --make-baseline OUT --sentences FILE ...`, "
            "or turn rescaling off (--no-rescale) and report unrescaled scores")
    shipped = default_baseline_path(Path(model_type).name, "en")
    if Path(model_type).is_dir() and shipped.is_file():
        hint = f"this looks like a local copy of {Path(model_type).name}: pass baseline_path={shipped}, or " + hint
    if not path.is_file():
        raise FileNotFoundError(f"no BERTScore baseline for {model_type!r} at {path}; "
                                f"bert-score would return unrescaled scores. {hint}")
    with path.open() as handle:
        rows = list(csv.reader(handle))
    if rows[:1] != [["LAYER", "P", "R", "F"]] or len(rows) - 1 <= num_layers:
        raise ValueError(f"{path} is not a baseline with a 'LAYER,P,R,F' row for layer {num_layers}")


def _restore_prefix_space(scorer: Any) -> None:
    """Make RoBERTa/GPT-2 tokenizers add the leading space bert-score asks for.

    bert-score encodes with ``add_prefix_space=True``; transformers 5 ignores that
    argument at call time, so the first word would be tokenised without its space
    marker (and differ from the setting the shipped baselines were computed in). A
    tokenizer for which the argument makes no difference is rebuilt with the option set.
    """
    from transformers import AutoTokenizer

    tokenizer = scorer._tokenizer
    if tokenizer.encode("hello", add_prefix_space=True) == tokenizer.encode(" hello"):
        return
    scorer._tokenizer = AutoTokenizer.from_pretrained(scorer.model_type, use_fast=scorer.use_fast_tokenizer,
                                                      add_prefix_space=True)


class BERTScore(Metric):
    """Mean BERTScore precision, recall and F1 of predictions against references.

    Args:
        model_type: a name bert-score knows or a local model folder.
        num_layers: the layer whose embeddings are compared (required for unknown models).
        lang: language of the baseline (``rescale_baseline/<lang>/``).
        rescale_with_baseline: rescale with the baseline, ``(s - b) / (1 - b)``.
        baseline_path: a baseline file to use instead of bert-score's own.
        idf: idf-weight tokens (weights from the references seen by ``update``).
        batch_size: sentences per forward pass.
        device: torch device (bert-score's default: cuda when available).

    Raises:
        FileNotFoundError: rescaling asked for, but the baseline file does not exist.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, model_type: str = "roberta-large", num_layers: int | None = None, lang: str = "en",
                 rescale_with_baseline: bool = True, baseline_path: str | None = None, idf: bool = False,
                 batch_size: int = 64, device: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.model_type, self.lang, self.idf = model_type, lang, idf
        self.num_layers = resolve_num_layers(model_type, num_layers)
        self.rescale, self.batch_size, self.device_name = rescale_with_baseline, batch_size, device
        self.baseline_path = Path(baseline_path) if baseline_path else default_baseline_path(model_type, lang)
        if rescale_with_baseline:
            check_baseline(self.baseline_path, self.num_layers, model_type)
        for name in ("precision", "recall", "f1"):
            self.add_state(name, [], dist_reduce_fx="cat")

    def scorer(self):
        """The (cached) ``bert_score.BERTScorer`` for this configuration."""
        from bert_score import BERTScorer

        key = (self.model_type, self.num_layers, self.lang, self.rescale, str(self.baseline_path),
               self.idf, self.device_name)
        if key not in _SCORERS:
            _SCORERS[key] = BERTScorer(
                model_type=self.model_type, num_layers=self.num_layers, lang=self.lang,
                rescale_with_baseline=self.rescale, baseline_path=str(self.baseline_path) if self.rescale else None,
                idf=self.idf, batch_size=self.batch_size, device=self.device_name)
            _restore_prefix_space(_SCORERS[key])
        return _SCORERS[key]

    def _pair_scores(self, cands: list[str], refs: list[str]) -> torch.Tensor:
        """``(N, 3)`` P/R/F per pair; a pair with an empty side scores raw 0, as bert-score."""
        scorer = self.scorer()
        out = torch.zeros(len(cands), 3)
        if self.rescale:
            out[:] = (0 - scorer.baseline_vals) / (1 - scorer.baseline_vals)
        keep = [i for i, (c, r) in enumerate(zip(cands, refs)) if c.strip() and r.strip()]
        if keep:
            scores = scorer.score([cands[i] for i in keep], [refs[i] for i in keep], batch_size=self.batch_size)
            out[keep] = torch.stack(scores, dim=-1).float()
        return out

    def update(self, preds: Sequence[str], targets: Sequence[str | Sequence[str]]) -> None:
        """Score each prediction against its reference (the best of several, per P/R/F)."""
        if len(preds) != len(targets):
            raise ValueError(f"{len(preds)} predictions for {len(targets)} references")
        groups = [[t] if isinstance(t, str) else list(t) for t in targets]
        if any(not g for g in groups):
            raise ValueError("every prediction needs at least one reference")
        if self.idf:
            self.scorer().compute_idf([r for g in groups for r in g])
        cands = [p for p, g in zip(preds, groups) for _ in g]
        pairs = self._pair_scores(cands, [r for g in groups for r in g])
        bounds = torch.tensor([0] + [len(g) for g in groups]).cumsum(0)
        best = torch.stack([pairs[a:b].max(dim=0).values for a, b in zip(bounds[:-1], bounds[1:])])
        for column, name in enumerate(("precision", "recall", "f1")):
            getattr(self, name).append(best[:, column].double())

    def compute(self) -> dict[str, torch.Tensor]:
        if not self.precision:
            return {"P": torch.tensor(0.0), "R": torch.tensor(0.0), "F1": torch.tensor(0.0)}
        return {"P": dim_zero_cat(self.precision).mean(), "R": dim_zero_cat(self.recall).mean(),
                "F1": dim_zero_cat(self.f1).mean()}

    def per_sample(self) -> dict[str, torch.Tensor]:
        """Per-prediction scores in update order."""
        return {"P": dim_zero_cat(self.precision), "R": dim_zero_cat(self.recall), "F1": dim_zero_cat(self.f1)}


def make_baseline(sentences: Sequence[str], out: str | os.PathLike, model_type: str, lang: str = "en",
                  num_pairs: int = 10000, seed: int = 0, batch_size: int = 64, device: str | None = None) -> Path:
    """Write a bert-score baseline file: mean P/R/F of random sentence pairs, per layer.

    bert-score's shipped baselines average one million random Common Crawl pairs; pass a
    large, varied corpus of the target language. Rows are layers 0..L (``LAYER,P,R,F``).
    """
    from bert_score import BERTScorer

    pool = [s for s in sentences if s.strip()]
    if len(pool) < 2:
        raise ValueError("need at least two non-empty sentences to pair")
    rng = random.Random(seed)
    pairs = [tuple(rng.sample(range(len(pool)), 2)) for _ in range(num_pairs)]
    # with all_layers the model keeps every layer; num_layers only labels the scorer
    scorer = BERTScorer(model_type=model_type, num_layers=0, lang=lang, all_layers=True, batch_size=batch_size,
                        device=device)
    precision, recall, f1 = scorer.score([pool[a] for a, _ in pairs], [pool[b] for _, b in pairs])
    rows = torch.stack([precision.mean(1), recall.mean(1), f1.mean(1)], dim=1)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["LAYER", "P", "R", "F"])
        writer.writerows([[layer, *(f"{v:.8f}" for v in row.tolist())] for layer, row in enumerate(rows)])
    return path

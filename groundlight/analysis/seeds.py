"""Aggregation over seeds: means of nested run summaries and the per-question records of each seed's runs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def average_over_seeds(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """The keys of the first summary, each the mean over ``per_seed`` (nested dicts recursively).

    A number missing (or ``None``) in any seed gives ``None``, never the mean of the others; a
    non-numeric value is kept when every seed has the same one, else ``None``.
    """
    first = per_seed[0]
    out: dict[str, Any] = {}
    for key, value in first.items():
        values = [summary.get(key) for summary in per_seed]
        if isinstance(value, dict):
            out[key] = average_over_seeds([v if isinstance(v, dict) else {} for v in values])
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            out[key] = round(sum(values) / len(values), 4) if numeric else None
        else:
            out[key] = value if all(v == value for v in values) else None
    return out


def seed_records(root: Path, seeds: Sequence[int], run: str) -> list[list[dict[str, Any]]] | None:
    """``<root>/seed<N>/<run>/test_records.jsonl`` of every seed, or ``None`` when any seed lacks them."""
    per_seed = []
    for seed in seeds:
        path = root / f"seed{seed}" / run / "test_records.jsonl"
        if not path.exists():
            return None
        per_seed.append([json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()])
    return per_seed

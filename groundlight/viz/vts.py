"""Kept-token density over time (GroundVTS paper Fig. 5), from GroundVTS prediction records.

A record (``groundlight predict`` with a :class:`GroundVTSModule`) holds, per temporal token
group, its start time ``vts_seconds``, its visual tokens ``vts_tokens`` and how many the VTS
kept ``vts_kept``; plus the ground-truth ``windows`` and the ``parsed`` prediction.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from groundlight.viz import save_figure


def group_centres(record: dict[str, Any]) -> list[float]:
    """Mid-time of each token group (the last group's span is the previous step)."""
    starts = record["vts_seconds"]
    step = starts[1] - starts[0] if len(starts) > 1 else 1.0
    return [t + step / 2 for t in starts]


def density_overlap(records: Iterable[dict[str, Any]]) -> dict[str, float]:
    """``kept_in_gt_fraction`` (kept tokens inside the GT window / kept tokens) and ``gt_fraction``
    (all visual tokens inside the GT window / all visual tokens: the same share under uniform keeping)."""
    kept = kept_in = tokens = tokens_in = 0
    for record in records:
        if not record.get("windows"):
            continue
        start, end = record["windows"][0]
        for centre, total, chosen in zip(group_centres(record), record["vts_tokens"], record["vts_kept"]):
            inside = start <= centre <= end
            kept, kept_in = kept + chosen, kept_in + chosen * inside
            tokens, tokens_in = tokens + total, tokens_in + total * inside
    if not kept:
        raise ValueError("no GroundVTS records with windows and kept-token counts")
    return {"kept_in_gt_fraction": kept_in / kept, "gt_fraction": tokens_in / tokens}


def relevance_peak_overlap(records: Iterable[dict[str, Any]]) -> dict[str, float]:
    """How often the group with the highest mean relevance ``vts_relevance`` lies inside the GT window
    (``peak_relevance_in_gt_fraction``), against the share of groups inside it (``peak_relevance_chance``,
    what a peak placed at random would score). Records without relevance or windows are left out."""
    hits = chance = count = 0.0
    for record in records:
        relevance = record.get("vts_relevance")
        if not relevance or not record.get("windows"):
            continue
        start, end = record["windows"][0]
        inside = [start <= centre <= end for centre in group_centres(record)]
        peak = max(range(len(relevance)), key=relevance.__getitem__)
        hits, chance, count = hits + inside[peak], chance + sum(inside) / len(inside), count + 1
    if not count:
        return {}
    return {"peak_relevance_in_gt_fraction": hits / count, "peak_relevance_chance": chance / count}


def plot_density(record: dict[str, Any], path: str | Path) -> Path:
    """One PNG: normalised kept-token density over time, the GT window shaded, the prediction drawn,
    and the group's mean VTS relevance (divided by its maximum) when the record has it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centres = group_centres(record)
    density = [k / t if t else 0.0 for k, t in zip(record["vts_kept"], record["vts_tokens"])]
    figure, axis = plt.subplots(figsize=(7, 2.4))
    for start, end in record.get("windows") or []:
        axis.axvspan(start, end, color="tab:green", alpha=0.25, label="GT")
    axis.plot(centres, density, color="tab:red", marker="o", markersize=3, label="kept-token density")
    relevance = record.get("vts_relevance")
    if relevance and max(relevance) > 0:
        axis.plot(centres, [r / max(relevance) for r in relevance], color="tab:purple", linestyle="--", linewidth=1,
                  label="relevance / max")
    if record.get("parsed"):
        start, end = record["parsed"]
        axis.hlines(1.05, start, end, color="tab:blue", linewidth=4, label="prediction")
    axis.set_ylim(0, 1.15)
    axis.set_xlabel("time (s)")
    axis.set_ylabel("kept / tokens")
    axis.set_title(str(record.get("query", ""))[:80], fontsize=9)
    axis.legend(loc="upper right", fontsize=7)
    return save_figure(figure, path)

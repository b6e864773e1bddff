"""Attention-quality heatmaps like the self-consistency paper's Fig. 3: (a) per layer, (b) per head of one layer."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from groundlight.attention.quality import QUALITY_KEYS
from groundlight.viz import save_figure


def plot_quality_heatmap(values: dict[str, Sequence[float]], column_name: str, title: str, path: str | Path) -> Path:
    """One PNG: rows are the quality quantities, columns layers (or heads), each cell annotated.

    Args:
        values: ``{quantity: [value per column]}`` for the keys in ``QUALITY_KEYS``.
        column_name: ``layer`` or ``head``, the x-axis label.
        title: figure title.
        path: where the PNG goes (parents are created).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = [[math.nan if v is None else float(v) for v in values[key]] for key in QUALITY_KEYS]
    columns = len(matrix[0])
    figure, axis = plt.subplots(figsize=(max(4.0, 0.6 * columns + 2.5), 2.8))
    image = axis.imshow(matrix, aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0)
    for row, line in enumerate(matrix):
        best = max(range(columns), key=lambda c: -math.inf if math.isnan(line[c]) else line[c])
        for column, value in enumerate(line):
            text = "–" if math.isnan(value) else f"{value:.2f}"
            axis.text(column, row, text, ha="center", va="center", fontsize=7,
                      color="red" if column == best else "white", fontweight="bold" if column == best else None)
    axis.set_xticks(range(columns), [str(c) for c in range(columns)])
    axis.set_yticks(range(len(QUALITY_KEYS)), [k.replace("_", " ") for k in QUALITY_KEYS])
    axis.set_xlabel(column_name)
    axis.set_title(title, fontsize=9)
    figure.colorbar(image, ax=axis, fraction=0.03)
    return save_figure(figure, path)

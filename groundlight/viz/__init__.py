"""Plots written as results: every figure goes through :func:`save_figure`."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any


def save_figure(figure: Any, path: str | Path, dpi: int = 120) -> Path:
    """Lay out ``figure``, write it as a PNG atomically (temporary file, then rename) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".png.tmp", delete=False) as handle:
        figure.savefig(handle, dpi=dpi, format="png")
    os.replace(handle.name, path)
    plt.close(figure)
    return path

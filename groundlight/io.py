"""The one way results are written: a temporary file beside the target, then an atomic rename.

A reader (or a resumed run) finds either the previous file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.",
                                     suffix=".tmp", delete=False) as handle:
        handle.write(text)
    try:
        os.chmod(handle.name, 0o666 & ~_umask())  # the temporary file is private (0600); the result is not
        os.replace(handle.name, path)
    finally:
        Path(handle.name).unlink(missing_ok=True)
    return path


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    """Indented JSON with sorted keys (numpy/torch scalars as floats)."""
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=float) + "\n")


def write_jsonl_atomic(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> Path:
    """One JSON object per line."""
    return write_text_atomic(path, "".join(json.dumps(row, default=float) + "\n" for row in rows))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask

"""Which reader and which file hold each task's split inside a data directory."""

from __future__ import annotations

import importlib
from pathlib import Path

from data_modules.samples import VideoSample

# task name → (file pattern under data_dir, "module:function" of the official-format reader)
TASK_FILES = {
    "charades_sta": ("charades_sta/{split}.txt", "data_modules.formats.charades_sta:read_charades_sta"),
    "qvhighlights": ("qvhighlights/{split}.jsonl", "data_modules.formats.qvhighlights:read_qvhighlights"),
    "mcq": ("mcq/{split}.json", "data_modules.formats.mcq:read_mcq"),
    "verify": ("verify/{split}.jsonl", "data_modules.formats.verify:read_verify"),
}


def read_task_split(data_dir: str | Path, task: str, split: str, video_dir: str = "videos") -> list[VideoSample]:
    """Read ``task``'s ``split`` file from ``data_dir`` with its official-format reader."""
    if task not in TASK_FILES:
        raise ValueError(f"unknown task {task!r}; known: {sorted(TASK_FILES)}")
    pattern, reader = TASK_FILES[task]
    path = Path(data_dir) / pattern.format(split=split)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: does {data_dir} hold a `{split}` split of `{task}`?")
    module, function = reader.split(":")
    return getattr(importlib.import_module(module), function)(path, Path(data_dir) / video_dir)

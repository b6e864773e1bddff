"""Moments in Time video lists, as released (``trainingSet.csv``, ``validationSet.csv``).

Comma-separated rows without a header (the release's README names the fields)::

    blocking/getty-karate-video-id635808620_4.mp4,blocking,3,1

filename (under ``training/`` or ``validation/``), label, annotation positive responses,
annotation negative responses. A header row starting with ``filename`` is tolerated. The
video of ``trainingSet.csv`` row ``f`` is ``<video_dir>/training/f``. Each row becomes one
``open_qa`` sample asking for the action, the label as the reference answer; SF2T uses the
videos alone (``data_modules.tasks.fragments.read_mit_fragments``).
"""

from __future__ import annotations

import csv
from pathlib import Path

from data_modules.formats._records import check_unique, parse_each, read_text, sample_id, video_path
from data_modules.formats.ssv2 import ACTION_QUESTION
from data_modules.samples import AnnotationError, VideoSample


def video_folder(path: str | Path) -> str:
    """``training`` for ``trainingSet.csv``, ``validation`` for ``validationSet.csv``."""
    return Path(path).stem.removesuffix("Set")


def parse_row(row: list[str], path: str | Path, line: int, video_dir: str | Path) -> VideoSample:
    """One ``VideoSample`` (task ``open_qa``) from one row."""
    if len(row) < 2 or not row[0].strip() or not row[1].strip():
        raise AnnotationError(str(path), line, f"expected 'filename,label[,positive,negative]', got {','.join(row)!r}")
    votes = [value.strip() for value in row[2:4]]
    if not all(value.isdigit() for value in votes):
        raise AnnotationError(str(path), line, f"annotation responses must be counts, got {votes}")
    filename, label = row[0].strip(), row[1].strip()
    return VideoSample(
        sample_id=sample_id(path, filename),
        video_path=video_path(Path(video_dir) / video_folder(path), filename, where=(str(path), line)),
        task="open_qa",
        query=ACTION_QUESTION,
        answer_text=label,
        source=f"{path}:{line}",
        meta={"vid": Path(filename).stem, "votes": [int(v) for v in votes]},
    )


def read_moments_in_time(path: str | Path, video_dir: str | Path) -> list[VideoSample]:
    """One sample per row.

    Raises:
        AnnotationError: a row without filename and label, or non-numeric response counts.
    """
    lines = read_text(path).splitlines(keepends=True)
    rows = [(number, row) for number, row in enumerate(csv.reader(lines), start=1) if any(f.strip() for f in row)]
    if rows and rows[0][1][0].strip().lower() == "filename":
        rows = rows[1:]
    samples = parse_each(rows, lambda number, row: parse_row(row, path, number, video_dir))
    check_unique(samples, path)
    return samples

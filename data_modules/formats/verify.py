"""True/false statements about a video, one JSON object per line.

No public benchmark fixes this shape, so it is ours, in QVHighlights' spirit::

    {"id": "train_00003_v0", "vid": "train_00003", "duration": 17,
     "statement": "The red circle is visible from 3 s to 7 s.", "label": true,
     "relevant_windows": [[3, 7]]}

``relevant_windows`` is when the object the statement names is really visible (empty
when it never appears): the evidence a verifier should look at, whatever the label.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from data_modules.formats._records import (
    Fields,
    check_unique,
    jsonl_records,
    parse_each,
    plain_number,
    sample_id,
    video_id,
    video_path,
    write_jsonl,
)
from data_modules.samples import VideoSample


def parse_record(record: Any, path: str | Path, line: int, video_dir: str | Path, video_ext: str) -> VideoSample:
    """One ``VideoSample`` (task ``verify``) from one JSON line."""
    fields = Fields(record, path, line)
    key, vid = fields.text("id"), fields.text("vid")
    duration = fields.number("duration") if fields.has("duration") else None
    windows = fields.windows("relevant_windows", duration) if fields.has("relevant_windows") else []
    return VideoSample(
        sample_id=sample_id(path, key),
        video_path=video_path(video_dir, vid, video_ext, fields),
        task="verify",
        query=fields.text("statement"),
        duration=duration,
        windows=windows,
        label=fields.boolean("label"),
        source=f"{path}:{line}",
        meta={"id": key, "vid": vid, "statement_type": fields.record.get("statement_type")},
    )


def read_verify(path: str | Path, video_dir: str | Path, video_ext: str = ".mp4") -> list[VideoSample]:
    """Verification samples of a jsonl file.

    Raises:
        AnnotationError: bad JSON, a missing field, a non-boolean label, a reversed window
            or one outside ``[0, duration]``.
    """
    samples = parse_each(jsonl_records(path), lambda line, record: parse_record(record, path, line, video_dir, video_ext))
    check_unique(samples, path)
    return samples


def format_record(sample: VideoSample, default_id: str) -> dict[str, Any]:
    """The record of one labelled statement."""
    if sample.label is None:
        raise ValueError(f"{sample.sample_id}: a verify sample needs a label")
    row: dict[str, Any] = {"id": sample.meta.get("id", default_id), "vid": video_id(sample)}
    if sample.duration is not None:
        row["duration"] = plain_number(sample.duration)
    row |= {"statement_type": sample.meta.get("statement_type"), "statement": sample.query, "label": sample.label}
    row["relevant_windows"] = [[plain_number(s), plain_number(e)] for s, e in sample.windows]
    return row


def write_verify(path: str | Path, samples: Iterable[VideoSample]) -> Path:
    """Write samples as jsonl."""
    return write_jsonl(path, (format_record(s, f"{video_id(s)}_{i}") for i, s in enumerate(samples)))

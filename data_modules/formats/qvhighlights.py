"""QVHighlights (moment_detr ``highlight_{split}_release.jsonl``): one query per line.

Fields, as released::

    {"qid": 3158, "query": "...", "duration": 150, "vid": "_6hnl_BrFvs_360.0_510.0",
     "relevant_clip_ids": [35, 36], "saliency_scores": [[0, 3, 2], [3, 4, 3]],
     "relevant_windows": [[70, 74]]}

Clip ``i`` is the 2-second segment ``[2i, 2i + 2)``; ``saliency_scores[j]`` holds three
annotators' 0-4 scores for clip ``relevant_clip_ids[j]``. The test release omits the
last three fields; such lines read as samples with no windows and no saliency.

In a ``VideoSample`` saliency is dense: one ``[a, b, c]`` per clip of the video,
``[0, 0, 0]`` for clips outside ``relevant_clip_ids`` (which stay in ``meta``).
"""

from __future__ import annotations

import math
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

CLIP_SECONDS = 2.0
ANNOTATORS = 3


def num_clips(duration: float) -> int:
    """Number of 2-second clips covering ``duration`` seconds."""
    return math.ceil(duration / CLIP_SECONDS - 1e-9)


def clip_ids_of(windows: Iterable[tuple[float, float]], duration: float) -> list[int]:
    """Clips that overlap any window by a positive length, ascending."""
    ids = set()
    for start, end in windows:
        first, last = int(start // CLIP_SECONDS), math.ceil(end / CLIP_SECONDS) - 1
        ids.update(range(first, min(last, num_clips(duration) - 1) + 1))
    return sorted(ids)


def _saliency(fields: Fields, duration: float) -> tuple[list[int], list[list[int]]]:
    """``relevant_clip_ids`` and the dense per-clip saliency, both validated."""
    clip_ids, scores = fields.get("relevant_clip_ids"), fields.get("saliency_scores")
    if not isinstance(clip_ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in clip_ids):
        raise fields.error(f"field 'relevant_clip_ids' must be a list of integers, got {clip_ids!r}")
    if not isinstance(scores, list) or len(scores) != len(clip_ids):
        raise fields.error(f"'saliency_scores' must hold one score list per relevant clip ({len(clip_ids)})")
    dense = [[0] * ANNOTATORS for _ in range(num_clips(duration))]
    for clip, row in zip(clip_ids, scores, strict=True):
        if not 0 <= clip < len(dense):
            raise fields.error(f"relevant clip id {clip} is outside the video's {len(dense)} clips")
        if (
            not isinstance(row, list)
            or len(row) != ANNOTATORS
            or not all(isinstance(s, int) and 0 <= s <= 4 for s in row)
        ):
            raise fields.error(f"saliency of clip {clip} must be {ANNOTATORS} integers in 0..4, got {row!r}")
        dense[clip] = list(row)
    return clip_ids, dense


def parse_record(record: Any, path: str | Path, line: int, video_dir: str | Path, video_ext: str) -> VideoSample:
    """One ``VideoSample`` from one JSON line."""
    fields = Fields(record, path, line)
    qid, vid, duration = fields.text("qid"), fields.text("vid"), fields.number("duration")
    if duration <= 0:
        raise fields.error(f"duration must be positive, got {duration:g}")
    windows = fields.windows("relevant_windows", duration) if fields.has("relevant_windows") else []
    clip_ids, saliency = _saliency(fields, duration) if fields.has("saliency_scores") else (None, None)
    return VideoSample(
        sample_id=sample_id(path, f"qid{qid}"),
        video_path=video_path(video_dir, vid, video_ext, fields),
        task="moment_retrieval",
        query=fields.text("query"),
        duration=duration,
        windows=windows,
        saliency=saliency,
        source=f"{path}:{line}",
        meta={"qid": fields.get("qid"), "vid": vid, "relevant_clip_ids": clip_ids},
    )


def read_qvhighlights(path: str | Path, video_dir: str | Path, video_ext: str = ".mp4") -> list[VideoSample]:
    """Moment-retrieval samples (windows + dense saliency) of a QVHighlights jsonl file.

    Raises:
        AnnotationError: bad JSON, a missing field, a bad number, a reversed window, a
            window outside ``[0, duration]``, or saliency that does not match the clips.
    """
    samples = parse_each(jsonl_records(path), lambda line, record: parse_record(record, path, line, video_dir, video_ext))
    check_unique(samples, path)
    return samples


def format_record(sample: VideoSample, default_qid: int) -> dict[str, Any]:
    """The released field layout of one sample; saliency is stored for relevant clips only."""
    if sample.duration is None:
        raise ValueError(f"{sample.sample_id}: QVHighlights needs the video duration")
    row: dict[str, Any] = {
        "qid": sample.meta.get("qid", default_qid),
        "query": sample.query,
        "duration": plain_number(sample.duration),
        "vid": video_id(sample),
    }
    if sample.windows:
        clip_ids = sample.meta.get("relevant_clip_ids") or clip_ids_of(sample.windows, sample.duration)
        row["relevant_clip_ids"] = clip_ids
        if sample.saliency is not None:
            row["saliency_scores"] = [list(sample.saliency[clip]) for clip in clip_ids]
        row["relevant_windows"] = [[plain_number(s), plain_number(e)] for s, e in sample.windows]
    return row


def write_qvhighlights(path: str | Path, samples: Iterable[VideoSample]) -> Path:
    """Write samples as QVHighlights jsonl; ``qid`` from ``meta["qid"]``, else the line index."""
    return write_jsonl(path, (format_record(sample, index) for index, sample in enumerate(samples)))

"""Keyframe-annotated questions, after VidDiffBench's ``retrieval_frames``.

VidDiffBench (HF ``jmhb/VidDiffBench``) rows carry ``sample_key``, the videos with
their ``fps_original``, and ``retrieval_frames``: frame indices, at the video's own
frame rate, where the annotated evidence is visible. Its exact nesting (a JSON string
per row, keyed by difference) could not be confirmed from the public card, so this
format keeps the idea in a flat, one-video shape:

    {"sample_key": "train_00003_q2", "video_id": "train_00003", "fps": 8, "duration": 17,
     "question": "When is the red circle visible?", "options": [...], "answer_index": 2,
     "retrieval_frames": [24, 32, 40]}

``options``/``answer_index`` follow ``formats.mcq``. The reader turns frames into
seconds (``frame / fps``) in ``VideoSample.keyframes``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from data_modules.formats._records import (
    Fields,
    check_unique,
    parse_each,
    plain_number,
    records,
    sample_id,
    video_id,
    video_path,
    write_json_list,
)
from data_modules.formats.mcq import options_and_answer
from data_modules.samples import VideoSample


def _keyframe_times(fields: Fields, fps: float, duration: float | None) -> list[float]:
    """``retrieval_frames / fps``, each a non-negative integer frame inside the video."""
    frames = fields.get("retrieval_frames")
    if not isinstance(frames, list) or not all(isinstance(f, int) and not isinstance(f, bool) for f in frames):
        raise fields.error(f"field 'retrieval_frames' must be a list of frame indices, got {frames!r}")
    for frame in frames:
        if frame < 0 or (duration is not None and frame / fps > duration):
            raise fields.error(f"retrieval frame {frame} ({frame / fps:g} s) is outside the video [0, {duration:g}]")
    return [frame / fps for frame in frames]


def parse_record(record: Any, path: str | Path, line: int, video_dir: str | Path, video_ext: str) -> VideoSample:
    """One ``VideoSample`` (task ``mcq`` with ``keyframes``) from one record."""
    fields = Fields(record, path, line)
    key, vid, fps = fields.text("sample_key"), fields.text("video_id"), fields.number("fps")
    if fps <= 0:
        raise fields.error(f"fps must be positive, got {fps:g}")
    duration = fields.number("duration") if fields.has("duration") else None
    options, answer = options_and_answer(fields, key)
    return VideoSample(
        sample_id=sample_id(path, key),
        video_path=video_path(video_dir, vid, video_ext, fields),
        task="mcq",
        query=fields.text("question"),
        duration=duration,
        options=options,
        answer_index=answer,
        keyframes=_keyframe_times(fields, fps, duration),
        source=f"{path}:{line}",
        meta={"id": key, "vid": vid, "fps": fps, "question_type": fields.record.get("question_type")},
    )


def read_keyframes(path: str | Path, video_dir: str | Path, video_ext: str = ".mp4") -> list[VideoSample]:
    """Keyframe-annotated multiple-choice samples of a ``.json`` list or ``.jsonl`` file.

    Raises:
        AnnotationError: bad JSON, a missing field, a non-integer or out-of-video frame.
    """
    samples = parse_each(records(path), lambda line, record: parse_record(record, path, line, video_dir, video_ext))
    check_unique(samples, path)
    return samples


def format_record(sample: VideoSample, default_key: str) -> dict[str, Any]:
    """The record of one sample; needs ``meta["fps"]`` to turn keyframe times into frames."""
    fps = sample.meta.get("fps")
    if not fps or sample.keyframes is None or sample.options is None or sample.answer_index is None:
        raise ValueError(f"{sample.sample_id}: keyframe records need meta['fps'], keyframes, options and answer_index")
    row: dict[str, Any] = {
        "sample_key": sample.meta.get("id", default_key),
        "video_id": video_id(sample),
        "fps": plain_number(fps),
    }
    if sample.duration is not None:
        row["duration"] = plain_number(sample.duration)
    row |= {
        "question_type": sample.meta.get("question_type"),
        "question": sample.query,
        "options": list(sample.options),
        "answer_index": sample.answer_index,
        "retrieval_frames": [round(time * fps) for time in sample.keyframes],
    }
    return row


def write_keyframes(path: str | Path, samples: Iterable[VideoSample]) -> Path:
    """Write samples as a JSON list, one record per line."""
    return write_json_list(path, (format_record(s, f"{video_id(s)}_{i}") for i, s in enumerate(samples)))

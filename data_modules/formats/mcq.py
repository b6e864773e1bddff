"""Multiple-choice video questions, shaped after ExAct's released JSON.

ExAct (Texaser/Exact, ``eval/*.py``) ships a JSON list (or JSON lines) of records with
``id`` (also the video's file stem), ``groundTruth`` (the correct option text),
``negative_comments`` (the wrong options), ``domain`` and an optional
``scenario_text``; the evaluator shuffles the options at random and asks a fixed
question. This was read from its evaluation code; the data files themselves were not
available to confirm other fields.

Our files add what a reproducible benchmark needs, and the reader prefers them:

- ``question``: the question text (default: ``EXACT_QUESTION``);
- ``video_id``: the video's stem, so one video can carry several questions;
- ``options`` + ``answer_index``: the options in a fixed order. Without them the
  reader orders ``[groundTruth] + negative_comments`` by a shuffle seeded with the
  record's ``id``, so the answer is not always first and the order is stable.

Example record::

    {"id": "train_00003_q1", "video_id": "train_00003", "domain": "synthetic",
     "question_type": "first_colour", "question": "What colour is the object that appears first?",
     "options": ["blue", "red", "white", "green"], "answer_index": 1,
     "groundTruth": "red", "negative_comments": ["blue", "white", "green"], "duration": 17}
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from data_modules.faults import Fault
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
from data_modules.samples import VideoSample
from data_modules.tasks.prompts import LETTERS

EXACT_QUESTION = "Based on what you observe in the video, which option is the most accurate?"


def _exact_options(fields: Fields, key: str) -> tuple[list[str], int]:
    """ExAct's ``[groundTruth] + negative_comments``, in a shuffle seeded by the id."""
    options = [fields.text("groundTruth"), *fields.strings("negative_comments")]
    order = list(range(len(options)))
    random.Random(zlib.crc32(key.encode())).shuffle(order)
    return [options[i] for i in order], order.index(0)


def options_and_answer(fields: Fields, key: str) -> tuple[list[str], int]:
    """Options and the correct index, from ``options``/``answer_index`` or ExAct's fields."""
    if not fields.has("options"):
        return _exact_options(fields, key)
    options, answer = fields.strings("options"), fields.integer("answer_index")
    if len(options) < 2:
        raise fields.error(f"need at least 2 options, got {len(options)}")
    if not 0 <= answer < len(options):
        raise fields.error(f"answer_index {answer} is outside the {len(options)} options")
    return options, answer


def parse_record(record: Any, path: str | Path, line: int, video_dir: str | Path, video_ext: str) -> VideoSample:
    """One ``VideoSample`` (task ``mcq``) from one record."""
    fields = Fields(record, path, line)
    key = fields.text("id")
    vid = fields.text("video_id") if fields.has("video_id") else key
    options, answer = options_and_answer(fields, key)
    if len(options) > len(LETTERS):
        raise fields.error(f"{len(options)} options: the prompt letters them A-{LETTERS[-1]}, at most {len(LETTERS)}",
                           Fault.TOO_MANY_OPTIONS)
    duration = fields.number("duration") if fields.has("duration") else None
    return VideoSample(
        sample_id=sample_id(path, key),
        video_path=video_path(video_dir, vid, video_ext, fields),
        task="mcq",
        query=fields.text("question") if fields.has("question") else EXACT_QUESTION,
        duration=duration,
        options=options,
        answer_index=answer,
        source=f"{path}:{line}",
        meta={
            "id": key,
            "vid": vid,
            "question_type": fields.record.get("question_type"),
            "domain": fields.record.get("domain"),
        },
    )


def read_mcq(path: str | Path, video_dir: str | Path, video_ext: str = ".mp4") -> list[VideoSample]:
    """Multiple-choice samples of a ``.json`` list or ``.jsonl`` file.

    Raises:
        AnnotationError: bad JSON, a missing field, or an answer index outside the options.
    """
    samples = parse_each(records(path), lambda line, record: parse_record(record, path, line, video_dir, video_ext))
    check_unique(samples, path)
    return samples


def format_record(sample: VideoSample, default_id: str) -> dict[str, Any]:
    """Our record layout (ExAct's fields plus ``options``/``answer_index``)."""
    if sample.options is None or sample.answer_index is None:
        raise ValueError(f"{sample.sample_id}: an mcq sample needs options and answer_index")
    row: dict[str, Any] = {
        "id": sample.meta.get("id", default_id),
        "video_id": video_id(sample),
        "domain": sample.meta.get("domain") or "synthetic",
        "question_type": sample.meta.get("question_type"),
        "question": sample.query,
        "options": list(sample.options),
        "answer_index": sample.answer_index,
        "groundTruth": sample.options[sample.answer_index],
        "negative_comments": [o for i, o in enumerate(sample.options) if i != sample.answer_index],
    }
    if sample.duration is not None:
        row["duration"] = plain_number(sample.duration)
    return row


def write_mcq(path: str | Path, samples: Iterable[VideoSample]) -> Path:
    """Write samples as a JSON list, one record per line."""
    return write_json_list(path, (format_record(s, f"{video_id(s)}_{i}") for i, s in enumerate(samples)))

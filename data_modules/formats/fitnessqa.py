"""FitnessQA (Panchal et al. 2024, fine-grained fitness coaching QA): open-ended questions about exercise videos.

The released annotation layout could not be confirmed offline (no public file or loader
was found), so this reader takes a documented shape, one question per record, in a JSON
list or JSON lines:

    {"id": "fqa_00017", "video_id": "squat_0042", "exercise": "squats",
     "question": "Is the user's stance wide enough?", "answer": "No, the stance is too narrow."}

``exercise`` is optional. Samples are open-ended (task ``open_qa``; ``answer_text`` is the
reference). For accuracy-based training and evaluation, convert them to 4-option multiple
choice with ``groundlight data fitnessqa-mcq`` (the paper's supplement, Sec. 8) and read the
result with the ``mcq`` task.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from data_modules.formats._records import Fields, check_unique, parse_each, records, sample_id, video_path
from data_modules.samples import VideoSample


def parse_record(record: Any, path: str | Path, line: int, video_dir: str | Path, video_ext: str) -> VideoSample:
    """One open-ended ``VideoSample`` from one record."""
    fields = Fields(record, path, line)
    key = fields.text("id")
    vid = fields.text("video_id") if fields.has("video_id") else key
    exercise = fields.text("exercise") if fields.has("exercise") else None
    return VideoSample(
        sample_id=sample_id(path, key),
        video_path=video_path(video_dir, vid, video_ext, fields),
        task="open_qa",
        query=fields.text("question"),
        answer_text=fields.text("answer"),
        source=f"{path}:{line}",
        meta={"id": key, "vid": vid, "exercise": exercise, "domain": "fitness"},
    )


def read_fitnessqa(path: str | Path, video_dir: str | Path, video_ext: str = ".mp4") -> list[VideoSample]:
    """Open-ended FitnessQA samples of a ``.json`` list or ``.jsonl`` file.

    Raises:
        AnnotationError: bad JSON or a missing ``id``/``question``/``answer``.
    """
    samples = parse_each(records(path), lambda line, record: parse_record(record, path, line, video_dir, video_ext))
    check_unique(samples, path)
    return samples

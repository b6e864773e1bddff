"""ExpertAF (Ashutosh et al. 2024): expert coaching feedback on skilled-activity videos (EgoExo4D).

The task generates open-ended feedback, scored against the expert's reference with
BERTScore (``groundlight.metrics.bertscore``). ExpertAF's released annotation layout could
not be confirmed offline, so this reader takes a documented shape, one clip per record, in a
JSON list or JSON lines:

    {"id": "expertaf_000123", "video_id": "basketball_take17_clip3", "domain": "basketball",
     "feedback": "Keep the elbow under the ball on the release.", "start": 12.0, "end": 19.5}

``start``/``end`` (seconds of the clip inside a longer take) and ``domain`` are optional and
kept in ``meta``. ``question`` overrides the default generation prompt. Samples are
``open_qa`` with ``meta["feedback"] = True``, which selects the verification pathway's
feedback templates ("Please verify if the following feedback statement is correct ...").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from data_modules.formats._records import Fields, check_unique, parse_each, records, sample_id, video_path
from data_modules.samples import VideoSample

FEEDBACK_QUESTION = "What feedback would you give this athlete to improve their technique?"


def parse_record(record: Any, path: str | Path, line: int, video_dir: str | Path, video_ext: str) -> VideoSample:
    """One feedback-generation ``VideoSample`` from one record."""
    fields = Fields(record, path, line)
    key = fields.text("id")
    vid = fields.text("video_id") if fields.has("video_id") else key
    clip = {name: fields.number(name) for name in ("start", "end") if fields.has(name)}
    if len(clip) == 2 and clip["end"] <= clip["start"]:
        raise fields.error(f"clip end {clip['end']:g} is not after its start {clip['start']:g}")
    return VideoSample(
        sample_id=sample_id(path, key),
        video_path=video_path(video_dir, vid, video_ext, fields),
        task="open_qa",
        query=fields.text("question") if fields.has("question") else FEEDBACK_QUESTION,
        answer_text=fields.text("feedback"),
        source=f"{path}:{line}",
        meta={"id": key, "vid": vid, "feedback": True, "domain": fields.record.get("domain"), **clip},
    )


def read_expertaf(path: str | Path, video_dir: str | Path, video_ext: str = ".mp4") -> list[VideoSample]:
    """ExpertAF feedback samples of a ``.json`` list or ``.jsonl`` file.

    Raises:
        AnnotationError: bad JSON, a missing ``id``/``feedback``, or a clip that ends before it starts.
    """
    samples = parse_each(records(path), lambda line, record: parse_record(record, path, line, video_dir, video_ext))
    check_unique(samples, path)
    return samples

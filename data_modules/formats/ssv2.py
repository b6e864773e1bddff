"""Something-Something V2 video lists, as released (``something-something-v2-{train,validation,test}.json``).

A JSON list of records, one per video ``<id>.webm`` (in ``20bn-something-something-v2/``)::

    {"id": "78687", "label": "holding potato next to vicks vaporub bottle",
     "template": "Holding [something] next to [something]", "placeholders": ["potato", "vicks vaporub bottle"]}

The test list holds only ``{"id": ...}``. Each record becomes one ``open_qa`` sample asking
for the action, with the filled-in label as the reference answer (``None`` for the test
list); SF2T uses the videos alone (``data_modules.tasks.fragments.read_ssv2_fragments``).
"""

from __future__ import annotations

from pathlib import Path

from data_modules.formats._records import (
    Fields,
    check_unique,
    parse_each,
    records,
    sample_id,
    video_path,
)
from data_modules.samples import VideoSample

ACTION_QUESTION = "What action is performed in the video?"


def parse_record(record: object, path: str | Path, line: int, video_dir: str | Path, video_ext: str) -> VideoSample:
    """One ``VideoSample`` (task ``open_qa``) from one record."""
    fields = Fields(record, path, line)
    vid = fields.text("id")
    meta = {"vid": vid}
    if fields.has("template"):
        meta |= {"template": fields.text("template"), "placeholders": fields.strings("placeholders")}
    return VideoSample(
        sample_id=sample_id(path, vid),
        video_path=video_path(video_dir, vid, video_ext, fields),
        task="open_qa",
        query=ACTION_QUESTION,
        answer_text=fields.text("label") if fields.has("label") else None,
        source=f"{path}:{line}",
        meta=meta,
    )


def read_ssv2(path: str | Path, video_dir: str | Path, video_ext: str = ".webm") -> list[VideoSample]:
    """One sample per listed video.

    Raises:
        AnnotationError: bad JSON, a record without ``id``, a non-string label or placeholders.
    """
    samples = parse_each(records(path), lambda line, record: parse_record(record, path, line, video_dir, video_ext))
    check_unique(samples, path)
    return samples

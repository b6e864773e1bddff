"""Instruction-format video QA: LLaVA-Video-178K (stage 1-2 of GroundVTS) and Grounding-FT files.

LLaVA-Video-178K, as released (``*_qa_processed.json`` / ``*_cap_processed.json``), is a
JSON list of::

    {"id": "...", "data_source": "...", "video": "academic_source/.../x.mp4",
     "conversations": [{"from": "human", "value": "<image>\\nQuestion ..."}, {"from": "gpt", "value": "..."}, ...]}

Each human/gpt pair becomes one ``open_qa`` sample (prompt = the human turn without the
media placeholder, answer = the gpt turn). Grounding-FT files (``groundlight data
grounding-ft``) are ShareGPT-style: ``{"messages": [{"role": "user", ...}, {"role":
"assistant", ...}], "videos": ["x.mp4"]}``.
"""

from __future__ import annotations

import re
from pathlib import Path

from data_modules.formats._records import Fields, parse_each, records, sample_id, video_path
from data_modules.samples import VideoSample

_PLACEHOLDER = re.compile(r"<(?:image|video)>\s*", re.IGNORECASE)


def _turn_text(value: str) -> str:
    return _PLACEHOLDER.sub("", value).strip()


def _pairs(fields: Fields, key: str, role_key: str, text_key: str, user: str, assistant: str) -> list[tuple[str, str]]:
    turns = fields.get(key)
    if not isinstance(turns, list) or not turns:
        raise fields.error(f"field {key!r} must be a non-empty list of turns")
    roles = [t.get(role_key) if isinstance(t, dict) else None for t in turns]
    if len(turns) % 2 or roles[0::2] != [user] * (len(turns) // 2) or roles[1::2] != [assistant] * (len(turns) // 2):
        raise fields.error(f"turns must alternate {user!r}/{assistant!r}, got roles {roles}")
    texts = [t.get(text_key) for t in turns]
    if not all(isinstance(text, str) and text.strip() for text in texts):
        raise fields.error(f"every turn needs a non-empty {text_key!r} string")
    return [(_turn_text(texts[i]), texts[i + 1].strip()) for i in range(0, len(texts), 2)]


def read_llava_video(path: str | Path, video_dir: str | Path) -> list[VideoSample]:
    """Open-QA samples, one per human/gpt pair, of a LLaVA-Video-178K annotation file.

    Raises:
        AnnotationError: bad JSON, a missing field, or turns that do not alternate human/gpt.
    """
    per_record = parse_each(records(path), lambda line, record: _conversation(Fields(record, path, line), video_dir))
    return [sample for samples in per_record for sample in samples]


def _conversation(fields: Fields, video_dir: str | Path) -> list[VideoSample]:
    video = video_path(video_dir, fields.text("video"), where=fields)
    key = fields.text("id") if fields.has("id") else str(fields.line)
    return [VideoSample(sample_id(fields.path, f"{key}:{turn}"), video, "open_qa", prompt, answer_text=answer,
                        source=f"{fields.path}:{fields.line}", meta={"data_source": fields.record.get("data_source")})
            for turn, (prompt, answer) in enumerate(_pairs(fields, "conversations", "from", "value", "human", "gpt"))]


def read_instructions(path: str | Path, video_dir: str | Path) -> list[VideoSample]:
    """Open-QA samples of a ShareGPT-style instruction file (e.g. Grounding-FT)."""
    per_record = parse_each(records(path), lambda line, record: _instruction(Fields(record, path, line), video_dir))
    return [sample for samples in per_record for sample in samples]


def _instruction(fields: Fields, video_dir: str | Path) -> list[VideoSample]:
    videos = fields.strings("videos")
    if len(videos) != 1:
        raise fields.error(f"expected exactly one video, got {videos}")
    video = video_path(video_dir, videos[0], where=fields)
    return [VideoSample(sample_id(fields.path, f"{fields.line}:{turn}"), video, "open_qa", prompt, answer_text=answer,
                        source=f"{fields.path}:{fields.line}")
            for turn, (prompt, answer) in enumerate(_pairs(fields, "messages", "role", "content", "user", "assistant"))]

"""D²VLM's E.T. Instruct annotations (supplement Fig. 1) and the preference pairs made from them.

One record::

    {"id": ..., "video": "how_to_step/-Yt51vMDbo0.mp4", "duration": 128.395,
     "time_gt": {"evidence_grounding": [[75, 83], ...], "interleaved_response": [[75, 83], ...]},
     "conversations": [{"from": "human", "value": "<image>\\nLocalize ..."},
                       {"from": "gpt", "value": "<evi> <evi> </evi> <evi>, ... <evi>, ..."}]}

Both stages carry the same spans (the paper's assumption); a record whose two lists differ, whose spans
leave the video, or whose response does not match its spans is an error naming the file and line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from data_modules.formats._records import Fields, check_unique, parse_each, records, video_path, write_json_list
from data_modules.samples import VideoSample
from data_modules.tasks.evidence import EvidenceResponse

IMAGE_PLACEHOLDER = "<image>"
"""E.T. Instruct's stand-in for the video in the human turn; the backbone places the video itself."""


def read_d2vlm_records(path: str | Path) -> list[dict[str, Any]]:
    """Records as ``{id, video, duration, prompt, response}`` with a parsed :class:`EvidenceResponse`."""
    return parse_each(records(path), lambda line, record: _d2vlm_record(record, path, line))


def _d2vlm_record(record: Any, path: str | Path, line: int) -> dict[str, Any]:
    fields = Fields(record, path, line)
    duration = fields.number("duration")
    time_gt = fields.get("time_gt")
    if not isinstance(time_gt, dict):
        raise fields.error(f"field 'time_gt' must be an object, got {time_gt!r}")
    stage = Fields(time_gt, path, line)
    grounding = stage.windows("evidence_grounding", duration)
    if stage.windows("interleaved_response", duration) != grounding:
        raise fields.error("time_gt: the evidence_grounding and interleaved_response spans differ")
    turns = fields.get("conversations")
    if not isinstance(turns, list) or [t.get("from") for t in turns if isinstance(t, dict)] != ["human", "gpt"]:
        raise fields.error("conversations must be one human turn then one gpt turn")
    sample_id = str(record.get("id", f"{Path(path).name}:{line}"))
    try:
        response = EvidenceResponse.parse(str(turns[1]["value"]), grounding, f"{path}:{line}")
    except ValueError as error:
        raise fields.error(str(error).split(": ", 1)[1]) from error
    return {"id": sample_id, "video": fields.text("video"), "duration": duration,
            "prompt": str(turns[0]["value"]), "response": response, "source": f"{path}:{line}"}


def _where(record: dict[str, Any]) -> tuple[str, int]:
    path, _, line = record["source"].rpartition(":")
    return path, int(line)


def _video_sample(record: dict[str, Any], path: str | Path, video_dir: str | Path, task: str) -> VideoSample:
    response: EvidenceResponse = record["response"]
    prompt = record["prompt"].replace(IMAGE_PLACEHOLDER, "").strip()
    return VideoSample(
        sample_id=record["id"], video_path=video_path(video_dir, record["video"], where=_where(record)), task=task,
        query=prompt,
        duration=record["duration"], windows=list(response.spans), answer_text=response.render(),
        source=record["source"], meta={"events": len(response.spans)},
    )


def read_et_instruct_d2vlm(path: str | Path, video_dir: str | Path, task: str = "evidence") -> list[VideoSample]:
    """E.T. Instruct's D²VLM annotations as ``evidence`` samples: the question as query, every event's
    window, and the response with its ``<evi>`` tokens as the reference (``task="evidence_text"``: the
    same samples for the text-timestamp baseline, whose reference writes the spans as text)."""
    samples = parse_each(((record,) for record in read_d2vlm_records(path)),
                         lambda record: _video_sample(record, path, video_dir, task))
    check_unique(samples, path)
    return samples


def read_et_instruct_d2vlm_text(path: str | Path, video_dir: str | Path) -> list[VideoSample]:
    return read_et_instruct_d2vlm(path, video_dir, task="evidence_text")


def read_preference_pairs(path: str | Path, video_dir: str | Path) -> list[VideoSample]:
    """Pairs written by :func:`write_preference_pairs` as ``evidence`` samples of the chosen response, the
    rejected one in ``meta["rejected"]`` (its response and spans) with ``meta["factor"]``."""
    samples = parse_each(records(path), lambda line, record: _preference_pair(record, path, line, video_dir))
    check_unique(samples, path)
    return samples


def _preference_pair(record: Any, path: str | Path, line: int, video_dir: str | Path) -> VideoSample:
    fields = Fields(record, path, line)
    duration = fields.number("duration")
    sides = {}
    for side in ("chosen", "rejected"):
        part = fields.get(side)
        if not isinstance(part, dict):
            raise fields.error(f"field {side!r} must be an object with 'value' and 'time_gt'")
        stage = Fields(part.get("time_gt"), path, line)
        spans = stage.windows("evidence_grounding", duration)
        try:
            sides[side] = EvidenceResponse.parse(str(part.get("value")), spans, f"{path}:{line}")
        except ValueError as error:
            raise fields.error(f"{side}: {str(error).split(': ', 1)[1]}") from error
    if sides["chosen"] == sides["rejected"]:
        raise fields.error("the chosen and rejected responses are identical")
    chosen = {"id": f"{fields.text('id')}/{fields.text('factor')}", "video": fields.text("video"),
              "duration": duration, "prompt": fields.text("prompt"), "response": sides["chosen"],
              "source": f"{path}:{line}"}
    sample = _video_sample(chosen, path, video_dir, "evidence")
    rejected = sides["rejected"]
    sample.meta |= {"factor": fields.text("factor"),
                    "rejected": {"response": rejected.render(), "windows": [list(w) for w in rejected.spans]}}
    return sample


def write_preference_pairs(path: str | Path, samples: dict[str, dict[str, Any]], pairs: list[dict[str, Any]]) -> Path:
    """Pairs in the annotation format: the human turn once, then the chosen and rejected gpt turns with their spans."""
    rows = []
    for pair in pairs:
        sample = samples[pair["id"]]
        rows.append({
            "id": pair["id"], "video": sample["video"], "duration": sample["duration"], "factor": pair["factor"],
            "prompt": sample["prompt"],
            "chosen": {"value": pair["chosen"].render(), "time_gt": pair["chosen"].time_gt()},
            "rejected": {"value": pair["rejected"].render(), "time_gt": pair["rejected"].time_gt()},
        })
    return write_json_list(path, rows)

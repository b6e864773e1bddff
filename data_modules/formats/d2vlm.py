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

from data_modules.formats._records import Fields, records, write_json_list
from data_modules.tasks.evidence import EvidenceResponse


def read_d2vlm_records(path: str | Path) -> list[dict[str, Any]]:
    """Records as ``{id, video, duration, prompt, response}`` with a parsed :class:`EvidenceResponse`."""
    out = []
    for line, record in records(path):
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
        out.append({"id": sample_id, "video": fields.text("video"), "duration": duration,
                    "prompt": str(turns[0]["value"]), "response": response})
    return out


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

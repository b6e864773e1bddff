"""Which reader and which file hold each task's split inside a data directory."""

from __future__ import annotations

import importlib
from pathlib import Path

from data_modules.formats._records import AnnotationSkips, skipping_bad_records
from data_modules.samples import VideoSample

# task name → (file pattern under data_dir, "module:function" of the official-format reader)
TASK_FILES = {
    "charades_sta": ("charades_sta/{split}.txt", "data_modules.formats.charades_sta:read_charades_sta"),
    "qvhighlights": ("qvhighlights/{split}.jsonl", "data_modules.formats.qvhighlights:read_qvhighlights"),
    "mcq": ("mcq/{split}.json", "data_modules.formats.mcq:read_mcq"),
    "finevid": ("finevid/{split}.json", "data_modules.formats.mcq:read_mcq"),  # data_modules/finevid.py writes it
    "verify": ("verify/{split}.jsonl", "data_modules.formats.verify:read_verify"),
    "keyframes": ("keyframes/{split}.json", "data_modules.formats.keyframes:read_keyframes"),
    "fitnessqa": ("fitnessqa/{split}.json", "data_modules.formats.fitnessqa:read_fitnessqa"),
    "expertaf": ("expertaf/{split}.json", "data_modules.formats.expertaf:read_expertaf"),
    "activitynet_captions": ("activitynet_captions/{split}.json", "data_modules.formats.activitynet_captions:read_activitynet_captions"),
    # instruction-format tasks (open_qa samples): GroundVTS stages 1-2 (LLaVA-Video) and 3 (Grounding-FT)
    "llava_video": ("llava_video/{split}.json", "data_modules.formats.llava_video:read_llava_video"),
    "grounding_ft": ("grounding_ft/{split}.json", "data_modules.formats.llava_video:read_instructions"),
    "charades_sta_ft": ("charades_sta/{split}.txt", "data_modules.tasks.grounding_templates:read_charades_sta_ft"),
    "qvhighlights_ft": ("qvhighlights/{split}.jsonl", "data_modules.tasks.grounding_templates:read_qvhighlights_ft"),
    "activitynet_captions_ft": ("activitynet_captions/{split}.json", "data_modules.tasks.grounding_templates:read_activitynet_ft"),
    # D²VLM: E.T. Instruct's annotations (supplement Fig. 1), the same file for the text-timestamp baseline,
    # and the factorized preference pairs of `groundlight data d2vlm-preferences`
    "et_instruct_d2vlm": ("d2vlm/{split}.json", "data_modules.formats.d2vlm:read_et_instruct_d2vlm"),
    "et_instruct_d2vlm_text": ("d2vlm/{split}.json", "data_modules.formats.d2vlm:read_et_instruct_d2vlm_text"),
    "d2vlm_preferences": ("d2vlm/{split}_pairs.json", "data_modules.formats.d2vlm:read_preference_pairs"),
    # video lists as released (split: train/validation/test for SSv2, training/validation for MiT); the
    # *_fragments tasks turn their videos into SF2T's self-supervised fragment questions
    "ssv2": ("ssv2/something-something-v2-{split}.json", "data_modules.formats.ssv2:read_ssv2"),
    "moments_in_time": ("moments_in_time/{split}Set.csv", "data_modules.formats.moments_in_time:read_moments_in_time"),
    "ssv2_fragments": ("ssv2/something-something-v2-{split}.json", "data_modules.tasks.fragments:read_ssv2_fragments"),
    "moments_in_time_fragments": ("moments_in_time/{split}Set.csv", "data_modules.tasks.fragments:read_mit_fragments"),
}


def read_task_split(data_dir: str | Path, task: str, split: str, video_dir: str = "videos",
                    skips: AnnotationSkips | None = None) -> list[VideoSample]:
    """Read ``task``'s ``split`` file from ``data_dir`` with its official-format reader.

    Args:
        skips: where to file bad records (each dropped, by kind) instead of raising at the first; ``None``: raise.
    """
    if task not in TASK_FILES:
        raise ValueError(f"unknown task {task!r}; known: {sorted(TASK_FILES)}")
    pattern, reader = TASK_FILES[task]
    path = Path(data_dir) / pattern.format(split=split)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: does {data_dir} hold a `{split}` split of `{task}`?")
    module, function = reader.split(":")
    with skipping_bad_records(skips):
        return getattr(importlib.import_module(module), function)(path, Path(data_dir) / video_dir)

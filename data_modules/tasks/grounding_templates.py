"""Grounding-FT (GroundVTS supplement Sec. 13): instruction templates, answers, evaluation prompt.

Moment retrieval draws one of the 13 templates of Table 15 per sample and answers
``from {start}s to {end}s``; highlight detection draws one of the 7 templates of Table 16
and answers ``The highlights are: very important from ...; important from ...; less
important from ...``, grading each relevant 2-s clip by its mean annotator saliency
(>= 3.5 very important, >= 2.5 important, else less important, as the released
converter does). Prompts carry no timestamps. The template is a pure function of
``(seed, sample_id)``, so a conversion is reproducible.

The ``read_*_ft`` readers convert official files on the fly into instruction samples
(``task="open_qa"``: the prompt is the user turn, the answer the assistant turn), so a
data directory in official formats trains stage 3 without a conversion step.
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path
from statistics import mean

from data_modules.samples import VideoSample

MR_TEMPLATES = (
    "At what point in the video did the following events occur: {query}? Output the start and end timestamps.",
    "What is the location of the moment: {query}?",
    "Find when the following event happens in the video: {query}. Give me the start and end times.",
    "Please indicate the start and end timestamps for the event: {query}.",
    "Please predict start and end time of the following moment: {query}.",
    "During which time interval does this happen in the video: {query}?",
    "Locate the moment in the video where this occurs: {query}. Provide start and end times.",
    "For the video, when does this event take place: {query}? Answer with start and end timestamps.",
    "I want to know the start and end times of the following event in the video: {query}.",
    "Could you tell me from what time to what time this happens: {query}?",
    "Can you tell me the time window of this event: {query}?",
    "Please find the timestamps that mark the occurrence of this event: {query}.",
    "Identify the start and end of the following event in the video: {query}.",
)
HD_TEMPLATES = (
    "Please highlight the most exciting parts related to: {query}.",
    "Find the most relevant or important moments for: {query}.",
    "Which moments in the video best reflect: {query}?",
    "Highlight the key segments that correspond to: {query}.",
    "Show the most interesting clips about: {query}.",
    "What are the highlight moments for: {query}?",
    "Mark the time intervals that are most significant for: {query}.",
)
VIDEO_TOKEN = "<video>"
EVAL_PROMPT = (
    "Based on the video, please provide the start and end timestamps (in seconds) for the moment described by: '{query}'. "
    "Respond in the format 'from {{start}} to {{end}} seconds'. If unsure, make your best guess."
)
"""The paper's evaluation prompt (Fig. 5) as a ``PromptTemplates.moment_retrieval`` template; "<Video>"
reads "video" because the backbone's chat template already places the video before the text."""
GRADES = ((3.5, "very important"), (2.5, "important"), (float("-inf"), "less important"))
CLIP_SECONDS = 2.0


def _seconds(value: float) -> str:
    return f"{round(float(value), 2)}"


def mr_answer(start: float, end: float) -> str:
    """``from 20.8s to 30.0s``."""
    return f"from {_seconds(start)}s to {_seconds(end)}s"


def hd_answer(clip_ids: list[int], scores: list[list[int]]) -> str:
    """The graded highlight answer from relevant clips and their annotator scores."""
    graded: dict[str, list[str]] = {name: [] for _, name in GRADES}
    for clip, row in zip(clip_ids, scores, strict=True):
        grade = next(name for threshold, name in GRADES if mean(row) >= threshold)
        graded[grade].append(f"{clip * CLIP_SECONDS:.1f}s to {(clip + 1) * CLIP_SECONDS:.1f}s")
    parts = [f"{name} from {', '.join(spans)}" for _, name in GRADES if (spans := graded[name])]
    if not parts:
        raise ValueError("highlight answer needs at least one relevant clip")
    return "The highlights are: " + "; ".join(parts)


def _query(text: str) -> str:
    """The query without trailing full stops, so templates ending in '?' or '.' read cleanly."""
    return text.strip().rstrip(".").strip()


def pick(templates: tuple[str, ...], sample_id: str, seed: int) -> tuple[int, str]:
    index = random.Random(f"{seed}:{sample_id}").randrange(len(templates))
    return index, templates[index]


def moment_instruction(sample: VideoSample, seed: int = 0) -> VideoSample:
    """A moment-retrieval sample → an instruction sample (random MR template, ``from s to e`` answer)."""
    if not sample.windows:
        raise ValueError(f"{sample.source or sample.sample_id}: moment retrieval sample has no window")
    index, template = pick(MR_TEMPLATES, sample.sample_id, seed)
    start, end = sample.windows[0]
    return replace(sample, sample_id=sample.sample_id + ":mr", task="open_qa", query=template.format(query=_query(sample.query)),
                   answer_text=mr_answer(start, end), meta={**sample.meta, "template": f"mr{index}"})


def highlight_instruction(sample: VideoSample, seed: int = 0) -> VideoSample | None:
    """A QVHighlights sample → an HD instruction sample; ``None`` when it has no saliency."""
    if sample.saliency is None:
        return None
    clip_ids = sample.meta.get("relevant_clip_ids") or [i for i, row in enumerate(sample.saliency) if any(row)]
    if not clip_ids:
        return None
    index, template = pick(HD_TEMPLATES, sample.sample_id, seed)
    answer = hd_answer(clip_ids, [sample.saliency[clip] for clip in clip_ids])
    return replace(sample, sample_id=sample.sample_id + ":hd", task="open_qa", query=template.format(query=_query(sample.query)),
                   answer_text=answer, meta={**sample.meta, "template": f"hd{index}"})


def grounding_ft_samples(moments: list[VideoSample], highlights: list[VideoSample], seed: int = 0) -> list[VideoSample]:
    """Grounding-FT: MR instructions for every moment sample, HD instructions for every saliency sample."""
    converted = [moment_instruction(s, seed) for s in moments]
    return converted + [h for s in highlights if (h := highlight_instruction(s, seed)) is not None]


def instruction_record(sample: VideoSample) -> dict:
    """The ShareGPT-style record of an instruction sample (``messages`` + ``videos``)."""
    return {
        "messages": [{"role": "user", "content": VIDEO_TOKEN + sample.query},
                     {"role": "assistant", "content": sample.answer_text}],
        "videos": [Path(sample.video_path).name],
    }


def read_charades_sta_ft(path: str | Path, video_dir: str | Path) -> list[VideoSample]:
    """Charades-STA, official format, as MR instructions."""
    from data_modules.formats.charades_sta import read_charades_sta

    return [moment_instruction(s) for s in read_charades_sta(path, video_dir)]


def read_qvhighlights_ft(path: str | Path, video_dir: str | Path) -> list[VideoSample]:
    """QVHighlights, official format, as MR and HD instructions."""
    from data_modules.formats.qvhighlights import read_qvhighlights

    samples = read_qvhighlights(path, video_dir)
    return grounding_ft_samples([s for s in samples if s.windows], samples)


def read_activitynet_ft(path: str | Path, video_dir: str | Path) -> list[VideoSample]:
    """ActivityNet Captions, official format, as MR instructions."""
    from data_modules.formats.activitynet_captions import read_activitynet_captions

    return [moment_instruction(s) for s in read_activitynet_captions(path, video_dir)]

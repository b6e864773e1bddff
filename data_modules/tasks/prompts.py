"""Task prompts. The texts are snapshotted in tests: changing one is a visible decision."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from data_modules.samples import VideoSample
from groundlight.metrics.parse import format_window

LETTERS = "ABCDEFGHIJ"


@dataclass
class PromptTemplates:
    """Per-task prompt templates.

    Attributes:
        moment_retrieval: takes ``{query}`` and ``{duration}``.
        mcq: takes ``{question}`` and ``{options}`` (one ``(A) text`` line each).
        verify: takes ``{statement}``.
        state_duration: prepend the video length, as TimeChat-style prompts do.
        answer_decimals: decimals of seconds in moment-retrieval answers.
    """

    moment_retrieval: str = (
        "Find the moment described by the query: '{query}'. "
        "Respond in the format 'from {{start}}s to {{end}}s'."
    )
    mcq: str = "{question}\n{options}\nAnswer with the option's letter."
    verify: str = "Is this statement true for the video? {statement} Answer yes or no."
    duration_prefix: str = "The video lasts {duration:.1f} seconds. "
    state_duration: bool = True
    answer_decimals: int = 1


def build_example(sample: VideoSample, templates: PromptTemplates, duration: float) -> dict[str, Any]:
    """The prompt, the reference answer text and the scoring target of one sample."""
    prefix = templates.duration_prefix.format(duration=duration) if templates.state_duration else ""
    if sample.task == "moment_retrieval":
        if not sample.windows:
            raise ValueError(f"{sample.source or sample.sample_id}: moment retrieval sample has no window")
        start, end = sample.windows[0]
        prompt = templates.moment_retrieval.format(query=sample.query.strip())
        return {"prompt": prefix + prompt, "answer": format_window(start, end, templates.answer_decimals)}
    if sample.task == "mcq":
        options = "\n".join(f"({LETTERS[i]}) {text}" for i, text in enumerate(sample.options or []))
        prompt = templates.mcq.format(question=sample.query.strip(), options=options)
        return {"prompt": prefix + prompt, "answer": LETTERS[sample.answer_index]}
    if sample.task == "verify":
        prompt = templates.verify.format(statement=sample.query.strip())
        return {"prompt": prefix + prompt, "answer": "yes" if sample.label else "no"}
    if sample.task == "open_qa" and sample.answer_text is not None:
        # instruction-format samples (LLaVA-Video, Grounding-FT): the query is the whole user turn
        return {"prompt": prefix + sample.query.strip(), "answer": sample.answer_text}
    raise ValueError(f"{sample.source or sample.sample_id}: no prompt builder for task {sample.task!r}")


_WORDS = (
    "red green blue yellow white purple orange cyan pink black grey gray brown "
    "circle square triangle star diamond ring cross object shape person people "
    "the a an is are was appears disappears moves changes visible video clip moment query "
    "when what which where who how does do first last before after during between from to "
    "colour color answer option letter true false yes no seconds second time start end"
)


def tokenizer_corpus() -> list[str]:
    """Text the project owns, for training a tiny model's offline BPE."""
    templates = PromptTemplates()
    return [
        templates.moment_retrieval, templates.mcq, templates.verify, templates.duration_prefix,
        _WORDS, _WORDS.title(), "(A) (B) (C) (D) A B C D",
    ]

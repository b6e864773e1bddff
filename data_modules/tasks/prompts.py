"""Task prompts, one builder per task (the registry, ``groundlight.metrics.tasks``, maps tasks to them).

Each builder returns the prompt body, the reference answer text and the query span: the part of the
prompt that states what to look for (query-guided methods pool it). The texts are snapshotted in
tests: changing one is a visible decision.
"""

from __future__ import annotations

from dataclasses import dataclass
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


def moment_retrieval_prompt(sample: VideoSample, templates: PromptTemplates) -> dict[str, str]:
    if not sample.windows:
        raise ValueError(f"{sample.source or sample.sample_id}: moment retrieval sample has no window")
    start, end = sample.windows[0]
    query = sample.query.strip()
    return {"prompt": templates.moment_retrieval.format(query=query),
            "answer": format_window(start, end, templates.answer_decimals), "query": query}


def mcq_prompt(sample: VideoSample, templates: PromptTemplates) -> dict[str, str]:
    options = "\n".join(f"({LETTERS[i]}) {text}" for i, text in enumerate(sample.options or []))
    question = sample.query.strip()
    return {"prompt": templates.mcq.format(question=question, options=options),
            "answer": LETTERS[sample.answer_index], "query": question}


def verify_prompt(sample: VideoSample, templates: PromptTemplates) -> dict[str, str]:
    statement = sample.query.strip()
    return {"prompt": templates.verify.format(statement=statement), "answer": "yes" if sample.label else "no",
            "query": statement}


def instruction_prompt(sample: VideoSample, templates: PromptTemplates) -> dict[str, str]:
    """Instruction-format samples (LLaVA-Video, Grounding-FT): the query is the whole user turn."""
    if sample.answer_text is None:
        raise ValueError(f"{sample.source or sample.sample_id}: an instruction sample needs a reference answer")
    query = sample.query.strip()
    return {"prompt": query, "answer": sample.answer_text, "query": query}


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

"""Verification prompts for self-consistency training (Rai & Kovashka 2026, Sec. 3.2).

The verification pathway asks a yes/no question: is the ground-truth answer correct
for this video, given a rephrasing of the generation prompt? For multiple choice the
answer is the correct option's *text*, never its letter. A pool of templates gives
the "automatic rephrasing"; each sample always gets the same one (by a hash of its
id), so runs are reproducible. The related-task ablation (Table 3, "Summarize this
video.") swaps the whole prompt. The texts are snapshotted in a test.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Literal

from data_modules.samples import VideoSample

QUESTION_TEMPLATES = [
    "Please verify if the following answer is correct for the given video.\nQuestion: {question}\nAnswer: {answer}\nAnswer yes or no.",
    "Watch the video. Is '{answer}' a correct answer to the question '{question}'? Answer yes or no.",
    "Does the video support this answer? Question: {question} Answer: {answer}. Reply yes or no.",
]
FEEDBACK_TEMPLATES = [
    "Please verify if the following feedback statement is correct for the given video: {answer}\nAnswer yes or no.",
    "Is this feedback on the athlete's performance in the video correct? {answer} Answer yes or no.",
]
MOMENT_QUESTION = "When does this happen in the video: '{query}'?"
STATEMENT_QUESTION = "Is this statement true for the video? {statement}"
SUMMARY_PROMPT = "Summarize this video."


@dataclass
class VerificationPrompts:
    """How the verification pathway's prompt is built.

    Attributes:
        related_task: ``verification`` (paper) or ``summary`` (the Table 3 ablation).
        question_templates: pool for tasks with a question (take ``{question}``, ``{answer}``).
        feedback_templates: pool for open-ended feedback, samples with ``meta["feedback"]``
            such as ExpertAF's (take ``{answer}``).
        summary_prompt: the related-task ablation's prompt.
        duration_prefix: prepended when ``state_duration`` (as the generation prompts do).
        state_duration: state the video length first.
    """

    related_task: Literal["verification", "summary"] = "verification"
    question_templates: list[str] = field(default_factory=lambda: list(QUESTION_TEMPLATES))
    feedback_templates: list[str] = field(default_factory=lambda: list(FEEDBACK_TEMPLATES))
    summary_prompt: str = SUMMARY_PROMPT
    duration_prefix: str = "The video lasts {duration:.1f} seconds. "
    state_duration: bool = True

    def __post_init__(self) -> None:
        if self.related_task not in ("verification", "summary"):
            raise ValueError(f"related_task must be 'verification' or 'summary', got {self.related_task!r}")
        if not self.question_templates or not self.feedback_templates:
            raise ValueError("verification template pools must not be empty")


def option_text(sample: VideoSample, answer: str) -> str:
    """A multiple-choice answer as a statement can quote it: the correct option's text, never its letter."""
    if sample.options is None or sample.answer_index is None:
        raise ValueError(f"{sample.sample_id}: a multiple-choice sample needs options and answer_index")
    return sample.options[sample.answer_index]


def reference_text(sample: VideoSample, answer: str) -> str:
    """A free-form answer: the sample's reference text when it has one."""
    return sample.answer_text or answer


def moment_question(sample: VideoSample) -> str:
    return MOMENT_QUESTION.format(query=sample.query.strip().rstrip("."))


def statement_question(sample: VideoSample) -> str:
    return STATEMENT_QUESTION.format(statement=sample.query.strip())


def plain_question(sample: VideoSample) -> str:
    return sample.query.strip()


def verification_prompt(sample: VideoSample, answer: str, duration: float, prompts: VerificationPrompts) -> str:
    """The yes/no verification prompt of one sample whose reference answer text is ``answer``.

    The task registry says how each task rephrases its question and states its answer.
    """
    from groundlight.metrics.tasks import task_spec  # the registry imports this module's builders
    prefix = prompts.duration_prefix.format(duration=duration) if prompts.state_duration else ""
    if prompts.related_task == "summary":
        return prefix + prompts.summary_prompt
    task = task_spec(sample)
    truth = task.truth(sample, answer)
    if sample.meta.get("feedback"):  # open-ended feedback (ExpertAF) has its own pool
        pool = prompts.feedback_templates
        return prefix + pool[zlib.crc32(sample.sample_id.encode()) % len(pool)].format(answer=truth)
    pool = prompts.question_templates
    template = pool[zlib.crc32(sample.sample_id.encode()) % len(pool)]
    return prefix + template.format(question=task.question(sample), answer=truth)

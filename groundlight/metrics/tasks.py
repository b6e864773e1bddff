"""The one task registry: per task, its prompt builder, answer parser, metric and prediction-record fields.

Adding a task is one entry in :data:`TASKS` (plus the builder and parser it names). Everything that
used to branch on ``sample.task`` (prompting, verification prompts, parsing, scoring, prediction
records) looks the task up here instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torchmetrics import Metric

from data_modules.samples import VideoSample
from data_modules.tasks import fragments
from data_modules.tasks import verification as verify_prompts
from data_modules.tasks.evidence import EvidenceResponse
from data_modules.tasks.prompts import (
    PromptTemplates,
    instruction_prompt,
    mcq_prompt,
    moment_retrieval_prompt,
    verify_prompt,
)
from groundlight.metrics.choice import ChoiceAccuracy
from groundlight.metrics.evidence import EvidenceGrounding
from groundlight.metrics.moment import MomentRetrieval
from groundlight.metrics.order import OrderAccuracy
from groundlight.metrics.parse import parse_choice, parse_evidence, parse_order, parse_window

VERIFY_OPTIONS = ("yes", "no")


def _unsupported(sample: VideoSample, templates: PromptTemplates) -> dict[str, str]:
    raise ValueError(f"{sample.source or sample.sample_id}: no prompt builder for task {sample.task!r}")


def _label_record(sample: VideoSample, parsed: Any) -> dict[str, Any]:
    return {"label": sample.label}


@dataclass(frozen=True)
class Task:
    """What one task needs from every layer.

    Attributes:
        build: sample, templates → ``{"prompt", "answer", "query"}`` (the prompt body, before any duration prefix).
        parse: sample, generated text → scorable prediction, ``None`` when unparseable; ``None``: never scored.
        metric: a fresh metric instance for the task (``update(predictions, targets)``).
        target: the metric's ground truth for a sample.
        log_name: metric output name → logged name (``stage/<name>``).
        record: task fields of a prediction record (``parsed`` is the parser's output).
        question: the verification pathway's rephrased question (no answer-format instructions).
        truth: the reference answer as a verification statement quotes it.
    """

    build: Callable[[VideoSample, PromptTemplates], dict[str, str]]
    parse: Callable[[VideoSample, str], Any] | None = None
    metric: Callable[[], Metric] | None = None
    target: Callable[[VideoSample], Any] | None = None
    log_name: Callable[[str], str] = str
    record: Callable[[VideoSample, Any], dict[str, Any]] = _label_record
    question: Callable[[VideoSample], str] = verify_prompts.plain_question
    truth: Callable[[VideoSample, str], str] = verify_prompts.reference_text


def _fragment_choice(build: Callable[[VideoSample, PromptTemplates], dict[str, str]], short: str) -> Task:
    """A fragment task answered by an option letter."""
    return Task(
        build=build,
        parse=lambda sample, text: parse_choice(text, sample.options or []),
        metric=ChoiceAccuracy,
        target=lambda sample: sample.answer_index,
        log_name=lambda name: f"{short}_{name}",
        record=lambda sample, parsed: {"options": sample.options, "answer": sample.answer_index},
        truth=verify_prompts.option_text,
    )


def _fragment_yes_no(short: str) -> Task:
    """A fragment task answered yes (``label``) or no."""
    return Task(
        build=fragments.yes_no_prompt,
        parse=lambda sample, text: parse_choice(text, VERIFY_OPTIONS),
        metric=ChoiceAccuracy,
        target=lambda sample: 0 if sample.label else 1,
        log_name=lambda name: f"{short}_{name}",
    )


def _evidence_response(sample: VideoSample) -> EvidenceResponse:
    if sample.answer_text is None:
        raise ValueError(f"{sample.source or sample.sample_id}: an evidence sample needs its reference response")
    return EvidenceResponse.parse(sample.answer_text, sample.windows, sample.source or sample.sample_id)


def _evidence_prompt(as_text: bool) -> Callable[[VideoSample, PromptTemplates], dict[str, str]]:
    """D²VLM's question; the reference keeps its ``<evi>`` tokens, or (``as_text``) writes their spans as text."""
    def build(sample: VideoSample, templates: PromptTemplates) -> dict[str, str]:
        response = _evidence_response(sample)
        answer = response.timestamp_text(templates.answer_decimals) if as_text else response.render()
        return {"prompt": sample.query.strip(), "answer": answer, "query": sample.query.strip()}
    return build


def _evidence(as_text: bool) -> Task:
    """Both evidence tasks are scored on the first stage's spans, written as text (D²VLM decodes ``<evi>`` so)."""
    return Task(
        build=_evidence_prompt(as_text),
        parse=lambda sample, text: parse_evidence(text),
        metric=EvidenceGrounding,
        target=lambda sample: sample.windows,
        log_name=lambda name: f"evidence_{name}",
        record=lambda sample, parsed: {"windows": [list(w) for w in sample.windows],
                                       "parsed": [list(w) for w in parsed] if parsed is not None else None},
    )


TASKS: dict[str, Task] = {
    "moment_retrieval": Task(
        build=moment_retrieval_prompt,
        parse=lambda sample, text: parse_window(text),
        metric=MomentRetrieval,
        target=lambda sample: sample.windows,
        log_name=lambda name: "mr_parse_failed" if name == "parse_failed" else name,
        record=lambda sample, parsed: {"windows": [list(w) for w in sample.windows],
                                       "parsed": list(parsed) if parsed is not None else None},
        question=verify_prompts.moment_question,
    ),
    "mcq": Task(
        build=mcq_prompt,
        parse=lambda sample, text: parse_choice(text, sample.options or []),
        metric=ChoiceAccuracy,
        target=lambda sample: sample.answer_index,
        log_name=lambda name: f"mcq_{name}",
        record=lambda sample, parsed: {"options": sample.options, "answer": sample.answer_index},
        truth=verify_prompts.option_text,
    ),
    "verify": Task(
        build=verify_prompt,
        parse=lambda sample, text: parse_choice(text, VERIFY_OPTIONS),
        metric=ChoiceAccuracy,
        target=lambda sample: 0 if sample.label else 1,
        log_name=lambda name: f"verify_{name}",
        question=verify_prompts.statement_question,
    ),
    "highlight": Task(build=_unsupported),
    "open_qa": Task(build=instruction_prompt),
    # SF2T's fragment tasks (data_modules/tasks/fragments.py builds the samples and prompts)
    "fragment_counting": _fragment_choice(fragments.choice_prompt, "counting"),
    "fragment_localization": _fragment_choice(fragments.localization_prompt, "localization"),
    "fragment_consistency": _fragment_yes_no("consistency"),
    "fragment_disorder": _fragment_yes_no("disorder"),
    "fragment_rearrangement": Task(
        build=fragments.rearrangement_prompt,
        parse=lambda sample, text: parse_order(text, len(sample.order or [])),
        metric=OrderAccuracy,
        target=lambda sample: sample.order,
        log_name=lambda name: f"rearrangement_{name}",
        record=lambda sample, parsed: {"order": sample.order,
                                       "parsed": list(parsed) if parsed is not None else None},
    ),
    # D²VLM (data_modules/tasks/evidence.py): evidence tokens, and the text-timestamp baseline
    "evidence": _evidence(as_text=False),
    "evidence_text": _evidence(as_text=True),
}


def task_spec(sample: VideoSample) -> Task:
    if sample.task not in TASKS:
        raise ValueError(f"{sample.source or sample.sample_id}: task {sample.task!r} is not registered in {sorted(TASKS)}")
    return TASKS[sample.task]


def build_example(sample: VideoSample, templates: PromptTemplates, duration: float) -> dict[str, Any]:
    """The prompt (with the duration prefix when templates state it), the reference answer and the query span."""
    example = task_spec(sample).build(sample, templates)
    prefix = templates.duration_prefix.format(duration=duration) if templates.state_duration else ""
    return example | {"prompt": prefix + example["prompt"]}


def parse_prediction(sample: VideoSample, text: str) -> Any:
    """The one mapping from a generation to a scorable prediction; ``None`` when unparseable."""
    task = task_spec(sample)
    if task.parse is None:
        raise ValueError(f"{sample.sample_id}: no scorer for task {sample.task!r}")
    return task.parse(sample, text)


def prediction_record(sample: VideoSample, text: str, parsed: Any) -> dict[str, Any]:
    """One line of a predictions jsonl (the project's own format, read by ``groundlight eval``)."""
    record = {"sample_id": sample.sample_id, "task": sample.task, "video": sample.video_path,
              "query": sample.query, "prediction": text, "parsed": parsed}
    return record | task_spec(sample).record(sample, parsed)


class TaskMetrics(nn.Module):
    """One metric per scored task; logs only the tasks that saw samples."""

    def __init__(self) -> None:
        super().__init__()
        self.metrics = nn.ModuleDict({name: task.metric() for name, task in TASKS.items() if task.metric is not None})

    def update(self, samples: Sequence[VideoSample], parsed: Sequence[Any]) -> None:
        groups: dict[str, tuple[list, list]] = {}
        for sample, prediction in zip(samples, parsed):
            if sample.task in self.metrics:
                predictions, targets = groups.setdefault(sample.task, ([], []))
                predictions.append(prediction)
                targets.append(TASKS[sample.task].target(sample))
        for name, (predictions, targets) in groups.items():
            self.metrics[name].update(predictions, targets)

    def compute(self) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for name, metric in self.metrics.items():
            if metric.update_called:
                out |= {TASKS[name].log_name(key): value for key, value in metric.compute().items()}
        return out

    def reset(self) -> None:
        for metric in self.metrics.values():
            metric.reset()

    def question_scores(self, sample: VideoSample, parsed: Any) -> dict[str, float]:
        """One question's score under each logged name; averaging them over questions gives :meth:`compute`
        (``parse_failed`` averages to a rate, where :meth:`compute` counts)."""
        if sample.task not in self.metrics:
            return {}
        task = TASKS[sample.task]
        scores = self.metrics[sample.task].question_scores(parsed, task.target(sample))
        return {task.log_name(key): value for key, value in scores.items()}

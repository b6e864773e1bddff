"""Generated text → parsed prediction → per-task metrics, shared by every method and the demo."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from data_modules.samples import VideoSample
from groundlight.metrics import ChoiceAccuracy, MomentRetrieval, parse_choice, parse_window

VERIFY_OPTIONS = ("yes", "no")


def parse_prediction(sample: VideoSample, text: str) -> Any:
    """The one mapping from a generation to a scorable prediction; ``None`` when unparseable."""
    if sample.task == "moment_retrieval":
        return parse_window(text)
    if sample.task == "mcq":
        return parse_choice(text, sample.options or [])
    if sample.task == "verify":
        return parse_choice(text, VERIFY_OPTIONS)
    raise ValueError(f"{sample.sample_id}: no scorer for task {sample.task!r}")


def prediction_record(sample: VideoSample, text: str, parsed: Any) -> dict[str, Any]:
    """One line of a predictions jsonl (the project's own format, read by ``groundlight eval``)."""
    record = {"sample_id": sample.sample_id, "task": sample.task, "video": sample.video_path,
              "query": sample.query, "prediction": text, "parsed": parsed}
    if sample.task == "moment_retrieval":
        record["windows"] = [list(w) for w in sample.windows]
        record["parsed"] = list(parsed) if parsed is not None else None
    elif sample.task == "mcq":
        record["options"], record["answer"] = sample.options, sample.answer_index
    else:
        record["label"] = sample.label
    return record


class TaskMetrics(nn.Module):
    """One metric per task family; logs only the families that saw samples."""

    def __init__(self) -> None:
        super().__init__()
        self.moment = MomentRetrieval()
        self.mcq = ChoiceAccuracy()
        self.verify = ChoiceAccuracy()

    def update(self, samples: Sequence[VideoSample], parsed: Sequence[Any]) -> None:
        groups: dict[str, tuple[list, list]] = {"moment": ([], []), "mcq": ([], []), "verify": ([], [])}
        for sample, pred in zip(samples, parsed):
            if sample.task == "moment_retrieval":
                groups["moment"][0].append(pred), groups["moment"][1].append(sample.windows)
            elif sample.task == "mcq":
                groups["mcq"][0].append(pred), groups["mcq"][1].append(sample.answer_index)
            elif sample.task == "verify":
                groups["verify"][0].append(pred), groups["verify"][1].append(0 if sample.label else 1)
        for name, (preds, targets) in groups.items():
            if preds:
                getattr(self, name).update(preds, targets)

    def compute(self) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        if self.moment.update_called:
            out |= {("mr_parse_failed" if k == "parse_failed" else k): v for k, v in self.moment.compute().items()}
        for name in ("mcq", "verify"):
            metric = getattr(self, name)
            if metric.update_called:
                out |= {f"{name}_{k}": v for k, v in metric.compute().items()}
        return out

    def reset(self) -> None:
        for metric in (self.moment, self.mcq, self.verify):
            metric.reset()

"""D²VLM's frames and generation: the frame units evidence is grounded on, and the step hook that grounds each
generated ``<evi>``, aggregates its span into the next input and writes the response as text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from data_modules.tasks.evidence import ANSWER_HEAD, timestamp_text
from groundlight.methods.d2vlm.losses import evidence_logits, salient_span

if TYPE_CHECKING:
    from groundlight.methods.d2vlm.module import D2VLMModule


@dataclass
class FrameUnits:
    """One row's frame units: pooling over sequence positions, and the seconds each unit spans.

    Attributes:
        pool: ``(U, L)`` averaging weights over the row's sequence positions.
        start / end: ``(U,)`` seconds each unit spans.
    """

    pool: torch.Tensor
    start: torch.Tensor
    end: torch.Tensor

    @property
    def centre(self) -> torch.Tensor:
        return (self.start + self.end) / 2

    def span_units(self, span: tuple[float, float]) -> tuple[int, int] | None:
        """The units whose centre lies in ``span`` (inclusive indices), ``None`` when none does."""
        inside = ((self.centre >= span[0]) & (self.centre <= span[1])).nonzero().flatten()
        return None if inside.numel() == 0 else (int(inside[0]), int(inside[-1]))

    def seconds(self, units: tuple[int, int]) -> tuple[float, float]:
        return float(self.start[units[0]]), float(self.end[units[1]])


def frame_units(frame_index: torch.Tensor, timestamps: torch.Tensor) -> FrameUnits:
    """Units of one row from its ``frame_index`` ``(L,)`` and its video's sampled ``timestamps`` ``(T,)``."""
    frames = torch.unique(frame_index[frame_index >= 0])  # sorted
    if frames.numel() == 0:
        raise ValueError("a D²VLM sample needs visual tokens: the row has none")
    pool = (frame_index.unsqueeze(0) == frames.unsqueeze(1)).float()
    pool = pool / pool.sum(1, keepdim=True)
    times = timestamps.detach().double().cpu()
    step = float(torch.diff(times).median()) if times.numel() > 1 else 1.0
    index = frames.cpu()
    start = times[index]
    end = torch.cat([times[index[1:]], times[-1:] + step])
    return FrameUnits(pool, start.float(), end.float())


def answer_stage(text: str) -> str:
    """The answer stage of a decoded response ("s - e seconds, caption. ..."), the form E.T. Bench's grounding and
    dense-captioning parsers read; empty when the response never closed its grounding stage."""
    head = text.find(ANSWER_HEAD)
    return text[head + len(ANSWER_HEAD):].strip() if head >= 0 else ""


class EvidenceDecoder:
    """The generation step hook: grounds each generated ``<evi>`` and aggregates its span into the next input."""

    def __init__(self, module: D2VLMModule, batch: dict[str, Any]) -> None:
        self.module, self.batch = module, batch
        self.units = module._units(batch)
        self.spans: list[list[list[float]]] = [[] for _ in self.units]
        self.frames: list[torch.Tensor] = []
        self.aggregated: list[torch.Tensor] = []

    def __call__(self, step: int, token: torch.Tensor, hidden_states: tuple[torch.Tensor, ...]) -> torch.Tensor | None:
        module, options = self.module, self.module.evidence
        if step == 0:  # the prompt's frame features, once per question
            features = hidden_states[options.feature_layer]
            self.frames = [module.frame_head((u.pool.to(features.dtype) @ features[b]).float()) for b, u in enumerate(self.units)]
            if options.aggregation_layer is not None:
                states = hidden_states[options.aggregation_layer]
                self.aggregated = [u.pool.to(states.dtype) @ states[b] for b, u in enumerate(self.units)]
        rows = token.eq(module.evi_id).nonzero().flatten().tolist()
        if not rows:
            return None
        predicting = hidden_states[options.feature_layer][:, -1]
        extra = predicting.new_zeros(predicting.shape[0], 1, predicting.shape[-1])
        evidence = module.evidence_head(predicting[rows].float())  # the states that predicted each <evi>
        for row, b in enumerate(rows):
            probabilities = torch.sigmoid(evidence_logits(evidence[row : row + 1], self.frames[b].unsqueeze(0)))[0]
            chosen = salient_span(probabilities, options.threshold)
            self.spans[b].append(list(self.units[b].seconds(chosen)))
            if self.aggregated:
                extra[b, 0] = self.aggregated[b][chosen[0] : chosen[1] + 1].mean(0)
        return extra

    def render(self, row: int, tokens: torch.Tensor) -> str:
        """The row's response with each ``<evi>`` written as its predicted span (``timestamp_text``); a response
        with no evidence token at all is decoded as it is."""
        processor, module = self.module.backbone.processor, self.module
        if module.evi_id not in tokens.tolist() and module.end_id not in tokens.tolist():
            return processor.decode(tokens.unsqueeze(0))[0]  # an answer without evidence (another task's question)
        spans = [tuple(s) for s in self.spans[row]]
        grounding, answer, text_ids, stage, lead = [], [], [], 1, ""
        evi = 0
        pending: tuple[float, float] | None = None

        def flush() -> str:
            text = processor.tokenizer.decode(text_ids, skip_special_tokens=True) if text_ids else ""
            text_ids.clear()
            return text

        for token in tokens.tolist():
            if token == processor.tokenizer.eos_token_id:
                break
            if token == module.evi_id:
                span = spans[evi] if evi < len(spans) else None
                evi += 1
                if stage == 1:
                    flush()
                    grounding.append(span)
                else:
                    text = flush()
                    if pending is not None or answer:
                        answer.append((pending, text))
                    else:
                        lead = text.strip()
                    pending = span
            elif token == module.end_id:
                if stage == 2:  # a second </evi>: malformed
                    return "Evidence: " + ", ".join(f"{s:.1f} - {e:.1f} seconds" for s, e in grounding if s is not None)
                flush()
                stage = 2
            else:
                text_ids.append(token)
        if stage == 1:  # never closed its grounding stage: no Answer: stage, a parse failure
            return "Evidence: " + ", ".join(f"{s:.1f} - {e:.1f} seconds" for s, e in grounding if s is not None)
        text = flush()
        if pending is not None:
            answer.append((pending, text))
        elif text.strip():
            lead = (lead + " " + text).strip()
        return timestamp_text([g for g in grounding if g is not None], lead, answer)

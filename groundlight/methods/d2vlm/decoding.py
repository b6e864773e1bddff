"""D²VLM's frames and generation: the frame units evidence is grounded on, and the step hook that grounds each
generated ``<evi>``, aggregates its span into the next input and writes the response as text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from data_modules.tasks.evidence import ANSWER_HEAD, timestamp_text
from groundlight.methods.d2vlm.losses import salient_span

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
    """The generation step hook: grounds each generated ``<evi>`` and aggregates its span into the next input.

    Everything that depends only on the prompt is done once, at step 0: each row's frame features, folded with the
    evidence head's last linear layer into one ``(width, U)`` matrix and a ``(U,)`` bias
    (``(W₂g + b₂)·F/√d = g·(W₂ᵀF/√d) + b₂·F/√d``), the units' seconds as Python floats, and the aggregation
    states. A generated ``<evi>`` then costs the head's first three layers, one ``addmm``, one sigmoid, one host
    transfer and two rows of the aggregation states' prefix sums (``make bench`` measures it against a decode step).
    """

    def __init__(self, module: D2VLMModule, batch: dict[str, Any]) -> None:
        self.module, self.batch = module, batch
        self.units = module._units(batch)
        self.spans: list[list[list[float]]] = [[] for _ in self.units]
        self.evi_id, self.layer, self.threshold = module.evi_id, module.evidence.feature_layer, module.evidence.threshold
        norm, first, self.activation, _ = module.evidence_head  # its last layer is folded into self.keys
        self.norm = (norm.normalized_shape, norm.weight, norm.bias, norm.eps)
        self.first = (first.weight, first.bias)
        self.keys: list[tuple[torch.Tensor, torch.Tensor]] = []  # per row: (width, U) similarity matrix, (U,) bias
        self.seconds: list[tuple[list[float], list[float]]] = []
        self.prefix: list[torch.Tensor] = []  # per row: (U + 1, D) prefix sums of the units' aggregation states

    def _prompt(self, hidden_states: tuple[torch.Tensor, ...]) -> None:
        module, options = self.module, self.module.evidence
        features = hidden_states[options.feature_layer]
        last = module.evidence_head[-1]
        self.keys, self.seconds, self.prefix = [], [], []
        for b, units in enumerate(self.units):
            frames = module.frame_head((units.pool.to(features.dtype) @ features[b]).float())  # (U, d)
            scale = frames.shape[-1] ** -0.5
            self.keys.append(((last.weight.t() @ frames.t()) * scale, (frames @ last.bias) * scale))
            self.seconds.append((units.start.tolist(), units.end.tolist()))
        if options.aggregation_layer is not None:
            states = hidden_states[options.aggregation_layer]
            for b, units in enumerate(self.units):
                summed = (units.pool.to(states.dtype) @ states[b]).cumsum(0)
                self.prefix.append(torch.cat([summed.new_zeros(1, summed.shape[-1]), summed]))

    def __call__(self, step: int, token: torch.Tensor, hidden_states: tuple[torch.Tensor, ...]) -> torch.Tensor | None:
        if step == 0:  # the prompt's frame features, once per question
            self._prompt(hidden_states)
        rows = [b for b, t in enumerate(token.tolist()) if t == self.evi_id]
        if not rows:
            return None
        batch = token.shape[0]
        predicting = hidden_states[self.layer][:, -1]  # the states that predicted each <evi>
        if len(rows) < batch:
            predicting = predicting[rows]
        inner = self.activation(F.linear(F.layer_norm(predicting.float(), *self.norm), *self.first))
        means = []
        for row, b in enumerate(rows):
            weight, bias = self.keys[b]
            probabilities = torch.sigmoid(torch.addmm(bias, inner[row : row + 1], weight))[0]
            first, last = salient_span(probabilities, self.threshold)
            starts, ends = self.seconds[b]
            self.spans[b].append([starts[first], ends[last]])
            if self.prefix:  # the mean of the chosen units' states, from two rows of the prefix sums
                prefix = self.prefix[b]
                means.append(torch.sub(prefix[last + 1], prefix[first]).div_(last + 1 - first))
        if not means:
            return None
        if len(rows) == batch:
            return torch.stack(means).unsqueeze(1) if len(means) > 1 else means[0].view(1, 1, -1)
        extra = means[0].new_zeros(batch, 1, means[0].shape[-1])
        extra[rows, 0] = torch.stack(means)
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

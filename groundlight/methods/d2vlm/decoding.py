"""D²VLM's frames and generation: the frame units evidence is grounded on, and the step hook that grounds each
generated ``<evi>``, aggregates its span into the next input and writes the response as text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import expit, ndtr

from data_modules.tasks.evidence import ANSWER_HEAD, timestamp_text
from groundlight.methods.d2vlm.losses import salient_span

if TYPE_CHECKING:
    from groundlight.methods.d2vlm.module import D2VLMModule

def _host(tensor: torch.Tensor) -> np.ndarray:
    """A float32 host array of a tensor (a view of a CPU float32 one, which costs no copy)."""
    if tensor.dtype == torch.float32 and tensor.device.type == "cpu":
        return tensor.detach().numpy()
    return tensor.detach().float().cpu().numpy()


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
    (``(W₂g + b₂)·F/√d = g·(W₂ᵀF/√d) + b₂·F/√d``), the units' seconds, and the prefix sums of the aggregation
    states. Those are kept as host arrays. A generated ``<evi>`` then costs the head's layer norm and first linear
    layer, the GELU, one matrix-vector product, the sigmoid, the span and two rows of the prefix sums, all on the
    host; the mean goes back to the model's device as the next input's offset. On a CPU model the layer norm and
    first layer run on host arrays too (the norm's affine folded into the layer); on an accelerator they run there,
    so that only a ``(width,)`` vector crosses to the host. At tens of frames, a host step costs about a
    microsecond where a tensor op costs several (``make bench`` measures the hook against a decode step).

    Args:
        on_host: run the layer norm and first layer on the host; ``None``: when the head's weights are on the CPU.
    """

    def __init__(self, module: D2VLMModule, batch: dict[str, Any], on_host: bool | None = None) -> None:
        self.module, self.batch = module, batch
        self.units = module._units(batch)
        self.spans: list[list[list[float]]] = [[] for _ in self.units]
        self.probabilities: list[list[np.ndarray]] = [[] for _ in self.units]  # per row, per <evi>: (U,) σ(sim)
        self.evi_id, self.layer, self.threshold = module.evi_id, module.evidence.feature_layer, module.evidence.threshold
        norm, first, activation, _ = module.evidence_head  # its last layer is folded into self.keys
        if not isinstance(activation, torch.nn.GELU) or activation.approximate != "none":
            raise ValueError(f"the evidence hook computes an exact GELU on the host; the head has {activation}")
        self.norm = (norm.normalized_shape, norm.weight, norm.bias, norm.eps)
        self.first = (first.weight, first.bias)
        self.on_host = first.weight.device.type == "cpu" if on_host is None else on_host
        if self.on_host:  # LN's affine folded into the first layer: (x̂γ + β)Wᵀ + b = x̂(γ ⊙ Wᵀ) + (βWᵀ + b)
            with torch.no_grad():
                weight = first.weight.float().t()
                self.host_first = (_host(norm.weight.float().unsqueeze(1) * weight),
                                   _host(norm.bias.float() @ weight + first.bias.float()), np.float32(norm.eps),
                                   np.full((weight.shape[0], 1), 1 / weight.shape[0], dtype=np.float32))
        self.keys: list[tuple[np.ndarray, np.ndarray]] = []  # per row: (width, U) similarity matrix, (U,) bias
        self.seconds: list[tuple[list[float], list[float]]] = []
        self.prefix: list[np.ndarray] = []  # per row: (U + 1, D) prefix sums of the units' aggregation states
        self.offset_to: tuple[torch.device, torch.dtype] | None = None  # the returned offsets' device and dtype

    def _prompt(self, hidden_states: tuple[torch.Tensor, ...]) -> None:
        module, options = self.module, self.module.evidence
        features = hidden_states[options.feature_layer]
        last = module.evidence_head[-1]
        self.keys, self.seconds, self.prefix = [], [], []
        for b, units in enumerate(self.units):
            frames = module.frame_head((units.pool.to(features.dtype) @ features[b]).float())  # (U, d)
            scale = frames.shape[-1] ** -0.5
            self.keys.append((_host((last.weight.t() @ frames.t()) * scale), _host((frames @ last.bias) * scale)))
            self.seconds.append((units.start.tolist(), units.end.tolist()))
        if options.aggregation_layer is not None:
            states = hidden_states[options.aggregation_layer]
            if states.device.type != "cpu" or states.dtype != torch.float32:
                self.offset_to = (states.device, states.dtype)
            for b, units in enumerate(self.units):
                summed = (units.pool.to(states.dtype) @ states[b]).float().cumsum(0)
                self.prefix.append(_host(torch.cat([summed.new_zeros(1, summed.shape[-1]), summed])))

    def __call__(self, step: int, token: torch.Tensor, hidden_states: tuple[torch.Tensor, ...]) -> torch.Tensor | None:
        if step == 0:  # the prompt's frame features, once per question
            self._prompt(hidden_states)
        rows = [b for b, t in enumerate(token.tolist()) if t == self.evi_id]
        if not rows:
            return None
        batch = token.shape[0]
        if self.on_host:
            predicting = _host(hidden_states[self.layer])[:, -1]  # the states that predicted each <evi>
            if len(rows) < batch:
                predicting = predicting[rows]
            weight, bias, eps, inverse_width = self.host_first
            centred = predicting - predicting @ inverse_width
            linear = (centred @ weight) / np.sqrt(np.square(centred) @ inverse_width + eps) + bias
        else:
            predicting = hidden_states[self.layer][:, -1]
            if len(rows) < batch:
                predicting = predicting[rows]
            linear = _host(F.linear(F.layer_norm(predicting.float(), *self.norm), *self.first))
        inner = linear * ndtr(linear)  # the head's exact GELU: x·Φ(x)
        means = []
        for row, b in enumerate(rows):
            weight, bias = self.keys[b]
            probabilities = expit(inner[row] @ weight + bias)
            first, last = salient_span(probabilities, self.threshold)
            starts, ends = self.seconds[b]
            self.spans[b].append([starts[first], ends[last]])
            self.probabilities[b].append(probabilities)
            if self.prefix:  # the mean of the chosen units' states, from two rows of the prefix sums
                prefix = self.prefix[b]
                means.append((prefix[last + 1] - prefix[first]) / (last + 1 - first))
        if not means:
            return None
        if len(rows) == batch:
            joined = means[0][None, None] if batch == 1 else np.stack(means)[:, None]
        else:
            joined = np.zeros((batch, 1, means[0].shape[-1]), dtype=np.float32)
            joined[rows, 0] = means
        offsets = torch.from_numpy(joined)
        return offsets if self.offset_to is None else offsets.to(*self.offset_to)

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

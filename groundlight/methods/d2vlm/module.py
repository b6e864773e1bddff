"""D²VLM: evidence tokens with visual semantic aggregation, and Factorized Preference Optimization (ICCV'25).

A response has two stages (``data_modules/tasks/evidence.py``): ``<evi>`` per event closed by ``</evi>``,
then the answer with an ``<evi>`` before each event's text. What this module adds to the backbone:

- **Frames.** The LLM-processed visual tokens, pooled per *frame unit*: the visual tokens that show the
  same sampled frame (``frame_index``). One unit per frame where a family spends tokens on every frame
  (InternVL, PerceptionLM), one per temporal token group where it merges frames (Qwen: 2 frames a group).
  A unit spans from its first frame's time to the next unit's; it is inside an event when its centre is.
- **Heads.** ``LN → Linear → GELU → Linear`` on the frame units and on the hidden state that *predicts*
  each ``<evi>`` (as the released code), both read at ``feature_layer`` (released: ``h[-2]``);
  ``sim = evi · frm / √d``. ``L_gnd``: BCE against the event's units (soft ``2^-distance`` targets
  optionally); ``L_cons``: L1 between the two stages' ``<evi>`` features of each event.
- **Aggregation.** The mean of the units' ``aggregation_layer`` states over the event's span is added to the
  ``<evi>`` input embedding: the ground-truth span in training (teacher forcing), the span just predicted in
  generation. The released code runs the whole model twice for this. Here the frames come before the
  response, so under causal attention their states do not depend on it: the pass runs in two parts over one
  KV cache, the video and prompt and then the response with the offsets added, which is one pass in all
  (``VideoBackbone.forward_continued``). Under gradient checkpointing, which drops the cache, a first pass
  without gradients stops at ``aggregation_layer`` instead, reusing the vision features when the vision
  encoder is frozen.
- **Generation.** Greedy with a KV cache; at each generated ``<evi>`` the predicted unit probabilities
  ``σ(sim)`` give the span (``p ≥ threshold · max p``, the best contiguous run), which is aggregated into
  the next input and written as ``"s - e seconds"`` (``timestamp_text``). A response without exactly one
  ``</evi>`` is written without its ``Answer:`` stage, so the parser counts it as a parse failure. Each prediction
  record also carries ``answer``: the answer stage alone, which E.T. Bench's parsers read as one window per event.
- **FPO** (``stage: fpo``, samples from ``d2vlm_preferences``): ``log π(R)`` = Σ answer-token log-probs
  (``text``) + Σ over the response's ``<evi>`` of ``log p_g`` of its span (``grounding``), sigmoid DPO with
  ``β``; reference ``none`` (released), ``adapter-disabled`` (LoRA off, the heads as they were when training
  started) or ``precomputed`` (every pair scored once before the first step, kept in the checkpoint).

Configs: ``experiments/d2vlm/``.
"""

from __future__ import annotations

import copy
import logging
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from data_modules.tasks.evidence import EVIDENCE, EVIDENCE_END, EvidenceResponse
from groundlight.backbones.base import VideoBackbone
from groundlight.losses import answer_cross_entropy, answer_window
from groundlight.methods.base import GroundingModule, OptimizerConfig
from groundlight.methods.d2vlm.decoding import (
    EvidenceDecoder,
    FrameUnits,
    answer_stage,
    frame_units,
)
from groundlight.methods.d2vlm.losses import (
    evidence_consistency,
    evidence_logits,
    fpo_loss,
    grounding_log_prob,
    grounding_loss,
    span_targets,
)
from groundlight.ops import IGNORE_INDEX

log = logging.getLogger(__name__)

Reference = Literal["none", "adapter-disabled", "precomputed"]
FACTORS = ("text", "grounding")


@dataclass
class EvidenceOptions:
    """Evidence tokens: heads, losses, aggregation and inference.

    Attributes:
        threshold: inference keeps units with ``p ≥ threshold · max p`` (paper: 0.6; Table 3 sweeps it).
        soft_targets: the released ``2^-distance`` targets; ``False``: 1 inside the span, 0 outside.
        grounding_weight / consistency_weight: ``L_gnd`` and ``L_cons`` weights (released: 10 and 10).
        feature_layer: the hidden-state index both heads read (released: ``-2``).
        aggregation_layer: the hidden-state index (``≥ 1``) whose unit states are aggregated into ``<evi>``
            (released: 6); ``None`` turns aggregation off.
        head_dim: width of the heads' output (``None``: the LLM's width).
    """

    threshold: float = 0.6
    soft_targets: bool = True
    grounding_weight: float = 10.0
    consistency_weight: float = 10.0
    feature_layer: int = -2
    aggregation_layer: int | None = 6
    head_dim: int | None = None

    def __post_init__(self) -> None:
        if not 0 < self.threshold <= 1:
            raise ValueError(f"evidence.threshold must lie in (0, 1], got {self.threshold}")
        if self.aggregation_layer is not None and self.aggregation_layer < 1:
            raise ValueError(f"evidence.aggregation_layer must be >= 1 (a decoder layer's output) or null, got {self.aggregation_layer}")


@dataclass
class FPOOptions:
    """Factorized Preference Optimization.

    Attributes:
        beta: DPO's β (released: 0.1).
        reference: ``none`` (released), ``adapter-disabled`` or ``precomputed`` (see the module docstring).
        factors: which log-probabilities make ``log π``: ``text``, ``grounding`` or both (paper).
    """

    beta: float = 0.1
    reference: Reference = "none"
    factors: tuple[str, ...] = FACTORS

    def __post_init__(self) -> None:
        if self.reference not in ("none", "adapter-disabled", "precomputed"):
            raise ValueError(f"fpo.reference must be none, adapter-disabled or precomputed, got {self.reference!r}")
        if not self.factors or set(self.factors) - set(FACTORS):
            raise ValueError(f"fpo.factors must be a non-empty subset of {FACTORS}, got {self.factors}")


def projection_head(width: int, out: int) -> nn.Sequential:
    """``LN → Linear → GELU → Linear``."""
    return nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(), nn.Linear(width, out))


@dataclass
class Scores:
    """Per row of a response batch: Σ answer-token log-probs and Σ ``<evi>`` grounding log-probs."""

    text: torch.Tensor
    grounding: torch.Tensor


class D2VLMModule(GroundingModule):
    """D²VLM's SFT stage (CE + ``L_gnd`` + ``L_cons``) and FPO stage on any backbone family.

    Args:
        backbone: any backbone family; ``<evi>`` and ``</evi>`` are added here when missing (mean-initialised
            rows), except under LoRA, where the backbone's config must name them (``add_tokens``) so that their
            rows train beside the adapters.
        optimizer: AdamW schedule.
        max_new_tokens: generation length at validation/test.
        stage: ``sft`` or ``fpo`` (training samples must then come from ``d2vlm_preferences``).
        evidence: heads, losses, aggregation and inference threshold.
        fpo: β, reference and factors of the FPO stage.
        init_from: a previous stage's checkpoint (the SFT stage's, for FPO); its weights are loaded (strictly),
            optimizer and loops start fresh.
    """

    def __init__(
        self,
        backbone: VideoBackbone,
        optimizer: OptimizerConfig = OptimizerConfig(),  # noqa: B008
        max_new_tokens: int = 64,
        stage: Literal["sft", "fpo"] = "sft",
        evidence: EvidenceOptions = EvidenceOptions(),  # noqa: B008
        fpo: FPOOptions = FPOOptions(),  # noqa: B008
        init_from: str | None = None,
    ) -> None:
        super().__init__(backbone, optimizer, max_new_tokens)
        if stage not in ("sft", "fpo"):
            raise ValueError(f"stage must be 'sft' or 'fpo', got {stage!r}")
        self.evi_id, self.end_id = backbone.add_tokens([EVIDENCE, EVIDENCE_END])  # no-op when the config added them
        self.stage, self.evidence, self.fpo = stage, evidence, fpo
        layers = len(backbone.decoder_layers())
        if evidence.aggregation_layer is not None and evidence.aggregation_layer > layers:
            raise ValueError(f"evidence.aggregation_layer {evidence.aggregation_layer} exceeds the LLM's {layers} layers")
        width = backbone.embedding_dim
        out = evidence.head_dim or width
        self.evidence_head, self.frame_head = projection_head(width, out), projection_head(width, out)
        self.empty_spans = 0  # events whose span holds no frame unit: no L_gnd for them (counted, logged)
        self.reference_scores: dict[str, tuple[float, float, float, float]] = {}
        self._reference_heads: nn.ModuleDict | None = None
        if init_from is not None:
            state = torch.load(init_from, map_location="cpu", weights_only=True)
            self.load_state_dict(state.get("state_dict", state), strict=True)
            log.info("D²VLM: initialised from %s", init_from)

    # ---- shared pieces -------------------------------------------------------------------------------
    def _units(self, batch: dict[str, Any]) -> list[FrameUnits]:
        return [frame_units(batch["frame_index"][b], visual.timestamps) for b, visual in enumerate(batch["visuals"])]

    def _evidence_positions(self, batch: dict[str, Any], events: list[int]) -> list[torch.Tensor]:
        """Per row, the answer's ``<evi>`` positions: ``2K`` of them for ``K`` events (both stages)."""
        positions = []
        for b, count in enumerate(events):
            found = ((batch["input_ids"][b] == self.evi_id) & (batch["labels"][b] != IGNORE_INDEX)).nonzero().flatten()
            if found.numel() != 2 * count:
                sample = batch["samples"][b]
                raise ValueError(f"{sample.source or sample.sample_id}: the response holds {found.numel()} {EVIDENCE} "
                                 f"for {count} events (two stages need {2 * count})")
            positions.append(found)
        return positions

    def _aggregates(self, units: list[FrameUnits], positions: list[torch.Tensor],
                    spans: list[list[tuple[float, float]]], states: torch.Tensor, length: int) -> torch.Tensor:
        """``(B, length, D)`` offsets: at each ``<evi>``, the mean ``aggregation_layer`` state of its span's units.
        ``states`` ``(B, S, D)`` cover at least every visual column (``S ≤ length``)."""
        offsets = states.new_zeros(states.shape[0], length, states.shape[-1])
        for b, (row_units, row_positions, row_spans) in enumerate(zip(units, positions, spans)):
            unit_states = row_units.pool[:, : states.shape[1]].to(states.dtype) @ states[b]
            for position, span in zip(row_positions.tolist(), [*row_spans, *row_spans]):
                chosen = row_units.span_units(span)
                if chosen is not None:
                    offsets[b, position] = unit_states[chosen[0] : chosen[1] + 1].mean(0)
        return offsets

    def _split(self, batch: dict[str, Any]) -> torch.Tensor | None:
        """Where each row's teacher-forced pass can be cut in two over one KV cache (``forward_continued``): its
        first answer column, when every visual token lies before it and the layers keep their cache (not under
        gradient checkpointing); ``None`` otherwise."""
        if self.evidence.aggregation_layer is None or "labels" not in batch or self.backbone.checkpointing:
            return None
        answer = batch["labels"] != IGNORE_INDEX
        if not bool(answer.any(1).all()):
            return None
        split = answer.long().argmax(1)  # each row's first answer column
        columns = torch.arange(answer.shape[1], device=answer.device)
        if bool((self.backbone.visual_mask(batch) & (columns >= split.unsqueeze(1))).any()):
            return None
        return split

    def _grounding(self, hidden: torch.Tensor, units: list[FrameUnits], positions: list[torch.Tensor],
                   heads: nn.ModuleDict | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per row: the ``<evi>`` features ``(2K, P)`` and their unit logits ``(2K, U)`` (``heads``: other heads, the
        adapter-disabled reference's)."""
        evidence_head = heads["evidence"] if heads is not None else self.evidence_head
        frame_head = heads["frame"] if heads is not None else self.frame_head
        out = []
        for b, (row_units, row_positions) in enumerate(zip(units, positions)):
            frames = frame_head((row_units.pool.to(hidden.dtype) @ hidden[b]).float())
            evidence = evidence_head(hidden[b, row_positions - 1].float())  # the state that predicts <evi>
            out.append((evidence, evidence_logits(evidence, frames.unsqueeze(0))))
        return out

    def _forward(self, batch: dict[str, Any], spans: list[list[tuple[float, float]]], heads: nn.ModuleDict | None = None
                 ) -> tuple[torch.Tensor, list[FrameUnits], list[torch.Tensor], list[tuple[torch.Tensor, torch.Tensor]]]:
        """Teacher-forced pass with the spans aggregated into ``<evi>``: answer-window logits, units, positions,
        grounding.

        The aggregation states are the ``aggregation_layer`` states of the frames, which under causal attention do
        not depend on the response. So the pass runs in two parts over one KV cache where it can (:meth:`_split`):
        the video and prompt, whose states give the offsets, then the response with them added; one pass in all.
        Otherwise (gradient checkpointing drops the cache) a first pass without gradients stops at that layer,
        replaying the vision features into the full pass when the vision encoder is frozen."""
        units = self._units(batch)
        positions = self._evidence_positions(batch, [len(s) for s in spans])
        layer, length = self.evidence.aggregation_layer, batch["input_ids"].shape[1]
        split = self._split(batch)
        if split is not None:

            def continuation(states: Any) -> torch.Tensor:
                return self._aggregates(units, positions, spans, states(layer).detach(), length)

            continued = self.backbone.forward_continued(batch, split, continuation, answer_window(batch["labels"]))
            logits, hidden = continued.logits, continued.hidden_state(self.evidence.feature_layer)
        else:
            frozen = not any(p.requires_grad for p in self.backbone.vision_encoder().parameters())
            with self.backbone.reuse_visual_features() if frozen else nullcontext() as replay:
                offsets = None
                if layer is not None:
                    offsets = self._aggregates(units, positions, spans, self.backbone.hidden_state(batch, layer), length)
                if replay is not None:
                    replay.replay = True
                with self.backbone.embedding_offsets(offsets):
                    output, _ = self.answer_forward(batch, output_hidden_states=True)
            logits, hidden = output.logits, output.hidden_states[self.evidence.feature_layer]
        return logits, units, positions, self._grounding(hidden, units, positions, heads)

    # ---- SFT ------------------------------------------------------------------------------------------
    def loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self.stage == "fpo":
            return self.fpo_loss(batch)
        spans = [list(sample.windows) for sample in batch["samples"]]
        logits, units, _, grounding = self._forward(batch, spans)
        ce, diagnostics = answer_cross_entropy(logits, batch["labels"][:, -logits.shape[1] :])
        gnd_terms, cons_terms, empty = [], [], 0
        for row_units, row_spans, (features, logits) in zip(units, spans, grounding):
            count = len(row_spans)
            ranges = [row_units.span_units(span) for span in [*row_spans, *row_spans]]
            valid = [i for i, r in enumerate(ranges) if r is not None]
            empty += (len(ranges) - len(valid)) // 2
            if valid:
                targets = span_targets([ranges[i] for i in valid], logits.shape[1], self.evidence.soft_targets)
                mask = torch.ones_like(targets)
                gnd_terms.append(grounding_loss(logits[valid], targets.to(logits.device), mask.to(logits.device)))
            cons_terms.append(evidence_consistency(features[:count], features[count:]))
        zero = ce.new_zeros(())
        gnd = torch.stack(gnd_terms).mean() if gnd_terms else zero + 0.0 * sum(f.sum() for f, _ in grounding)
        cons = torch.stack(cons_terms).mean() if cons_terms else zero
        if empty:
            self.empty_spans += empty
            log.warning("%d events of this batch cover no frame unit: no grounding loss for them (%d so far)",
                        empty, self.empty_spans)
            self.log("train/empty_spans", float(self.empty_spans), batch_size=len(spans))
        total = ce + self.evidence.grounding_weight * gnd + self.evidence.consistency_weight * cons
        return total, diagnostics | {"ce": ce.detach(), "grounding": gnd.detach(), "consistency": cons.detach()}

    # ---- FPO ------------------------------------------------------------------------------------------
    def _scores(self, batch: dict[str, Any], spans: list[list[tuple[float, float]]],
                heads: nn.ModuleDict | None = None) -> Scores:
        """Σ answer-token log-probs and Σ ``<evi>`` grounding log-probs per row of a response batch."""
        window, units, _, grounding = self._forward(batch, spans, heads)
        logits, labels = window[:, :-1].float(), batch["labels"][:, -window.shape[1] :][:, 1:]
        mask = labels != IGNORE_INDEX
        token = torch.log_softmax(logits, -1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        text = (token * mask).sum(1)
        ground = []
        for row_units, row_spans, (_, row_logits) in zip(units, spans, grounding):
            ranges = [row_units.span_units(span) for span in [*row_spans, *row_spans]]
            inside = span_targets([r if r is not None else (1, 0) for r in ranges], row_logits.shape[1])
            ground.append(grounding_log_prob(row_logits, inside.to(row_logits.device), torch.ones_like(row_logits)).sum())
        return Scores(text, torch.stack(ground))

    def _policy(self, scores: Scores) -> torch.Tensor:
        return sum(getattr(scores, factor) for factor in self.fpo.factors)

    def rejected_batch(self, batch: dict[str, Any]) -> tuple[dict[str, Any], list[list[tuple[float, float]]]]:
        """The same videos and prompts with each pair's rejected response, collated by the backbone's processor."""
        items, spans = [], []
        for visual, sample, prompt, query in zip(batch["visuals"], batch["samples"], batch["prompts"], batch["queries"]):
            rejected = sample.meta.get("rejected")
            if rejected is None:
                raise ValueError(f"{sample.source or sample.sample_id}: the FPO stage needs preference pairs "
                                 "(task `d2vlm_preferences`)")
            response = EvidenceResponse.parse(rejected["response"], rejected["windows"], sample.source or sample.sample_id)
            items.append({"visual": visual, "sample": sample, "prompt": prompt, "query": query, "answer": response.render()})
            spans.append(list(response.spans))
        collated = self.backbone.processor.collate(items, with_answer=True, with_pixels=False)
        for key in self.backbone.processor.visual_keys:  # the same videos in the same order: share, do not copy
            collated[key] = batch[key]
        collated = {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in collated.items()}
        return collated | {"samples": batch["samples"], "visuals": batch["visuals"]}, spans

    def _reference(self, batch: dict[str, Any], rejected: dict[str, Any], chosen_spans: list, rejected_spans: list
                   ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        mode = self.fpo.reference
        if mode == "none":
            return None, None
        if mode == "precomputed":
            ids = [s.sample_id for s in batch["samples"]]
            missing = [i for i in ids if i not in self.reference_scores]
            if missing:
                raise ValueError(f"no precomputed reference for {missing[:3]}: the reference is scored at the start of fit")
            rows = torch.tensor([self.reference_scores[i] for i in ids], device=self.device, dtype=torch.float32)
            chosen = Scores(rows[:, 0], rows[:, 1])
            other = Scores(rows[:, 2], rows[:, 3])
            return self._policy(chosen), self._policy(other)
        with torch.no_grad(), self.backbone.adapters_disabled():
            return (self._policy(self._scores(batch, chosen_spans, self._reference_heads)),
                    self._policy(self._scores(rejected, rejected_spans, self._reference_heads)))

    def fpo_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        chosen_spans = [list(sample.windows) for sample in batch["samples"]]
        rejected, rejected_spans = self.rejected_batch(batch)
        # the reference first: its no-grad passes are freed before the policy's graphs exist, not stacked on them
        reference_chosen, reference_rejected = self._reference(batch, rejected, chosen_spans, rejected_spans)
        chosen = self._scores(batch, chosen_spans)
        other = self._scores(rejected, rejected_spans)
        loss, diagnostics = fpo_loss(self._policy(chosen), self._policy(other), reference_chosen, reference_rejected,
                                     self.fpo.beta)
        return loss, diagnostics | {"chosen_text": chosen.text.mean().detach(), "chosen_grounding": chosen.grounding.mean().detach(),
                                    "rejected_text": other.text.mean().detach(),
                                    "rejected_grounding": other.grounding.mean().detach()}

    def on_fit_start(self) -> None:
        if self.stage != "fpo":
            return
        if self.fpo.reference == "adapter-disabled":
            self._reference_heads = nn.ModuleDict({"evidence": copy.deepcopy(self.evidence_head),
                                                   "frame": copy.deepcopy(self.frame_head)}).requires_grad_(False)

    def on_train_start(self) -> None:
        if self.stage == "fpo" and self.fpo.reference == "precomputed" and not self.reference_scores:
            self.precompute_reference(self.trainer.train_dataloader)

    @torch.no_grad()
    def precompute_reference(self, loader: Any) -> None:
        """Score every training pair once with the weights training starts from."""
        was_training = self.training
        self.eval()
        for batch in loader:
            if not batch["samples"]:
                continue
            batch = self._apply_batch_transfer_handler(batch)
            chosen_spans = [list(sample.windows) for sample in batch["samples"]]
            rejected, rejected_spans = self.rejected_batch(batch)
            chosen, other = self._scores(batch, chosen_spans), self._scores(rejected, rejected_spans)
            for b, sample in enumerate(batch["samples"]):
                self.reference_scores[sample.sample_id] = (float(chosen.text[b]), float(chosen.grounding[b]),
                                                           float(other.text[b]), float(other.grounding[b]))
        self.train(was_training)
        log.info("precomputed the FPO reference for %d pairs", len(self.reference_scores))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["d2vlm_reference_scores"] = self.reference_scores
        checkpoint["d2vlm_empty_spans"] = self.empty_spans

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.reference_scores = dict(checkpoint.get("d2vlm_reference_scores", {}))
        self.empty_spans = int(checkpoint.get("d2vlm_empty_spans", 0))

    # ---- generation -----------------------------------------------------------------------------------
    def generate_texts(self, batch: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
        decoder = EvidenceDecoder(self, batch)
        embeds = self.backbone.embed_inputs(batch)
        tokens = self.backbone.greedy_tokens(batch, embeds, self.max_new_tokens, on_step=decoder)
        texts = [decoder.render(b, tokens[b]) for b in range(tokens.shape[0])]
        return texts, [{"evidence_spans": spans, "answer": answer_stage(text)} for spans, text in zip(decoder.spans, texts)]

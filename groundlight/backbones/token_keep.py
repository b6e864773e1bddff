""""Run with these tokens kept": the backbone half of visual token sampling, for every family.

A method scores visual tokens and hands the backbone a ``keep`` mask over the sequence
together with (re-weighted) input embeddings; this file turns that into LLM inputs:

1. the family gives the full sequence's position ids as ``(R, B, L)`` (``R = 3`` for Qwen's
   MRoPE, ``1`` for 1-D RoPE), so a kept token keeps its original ids;
2. ``gather`` mode physically gathers the kept embeddings, position ids, attention
   mask and labels into a shorter, re-left-padded sequence: that is the speed gain;
   ``mask`` mode keeps the length and zeroes the dropped tokens' attention instead;
3. ``positions="contiguous"`` is the paper's no-PE ablation: the kept sequence gets
   1-D positions as if it had never had gaps;
4. generation is an explicit greedy loop over a KV cache whose new tokens get position
   ``max kept position + 1 + step`` on every axis (the correct rope delta for the *shrunk* cache)
   and whose attention mask keeps the dropped tokens at 0 while decoding, unlike the
   released GroundVTS code, where cached decoding attends to "dropped" tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Literal

import torch
from transformers import DynamicCache

from groundlight.backbones.base import ContinuedOutput, KeptOutput, in_batch_layout
from groundlight.ops import IGNORE_INDEX, mask_columns

StepHook = Callable[[int, torch.Tensor, tuple[torch.Tensor, ...]], torch.Tensor | None]
"""``on_step(step, token (B,), hidden_states)`` → ``(B, 1, D)`` added to the next input embedding, or ``None``.
``hidden_states`` are the step's per-layer states (the whole prompt at step 0, the new token after)."""
KeepMode = Literal["gather", "mask"]
PositionMode = Literal["original", "contiguous"]


def hf_model(model: torch.nn.Module) -> torch.nn.Module:
    """The ``Qwen2_5_VLForConditionalGeneration`` under an optional peft wrapper."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _contiguous_positions(valid: torch.Tensor, rows: int) -> torch.Tensor:
    """1-D positions over the valid columns, copied to every position axis: ``(rows, B, K)``."""
    positions = (valid.long().cumsum(1) - 1).clamp(min=0)
    return positions.unsqueeze(0).expand(rows, -1, -1).contiguous()


class TokenKeep:
    """Mixin implementing the backbone's token-keep hooks; a family supplies four things.

    - :meth:`full_positions`: ``(R, B, L)`` position ids of the full sequence, as the family's LLM uses them;
    - :meth:`embed_inputs`: input embeddings with the projected visual features in the visual slots;
    - :meth:`projector_parameters`: the multimodal projector;
    - :meth:`vision_encoder` (from the backbone contract).
    """

    model: torch.nn.Module
    processor: Any

    def full_positions(self, batch: dict[str, Any]) -> torch.Tensor:
        raise NotImplementedError

    @property
    def embedding_dim(self) -> int:
        return hf_model(self.model).config.text_config.hidden_size

    def language_model_parameters(self) -> list[torch.nn.Parameter]:
        """Every parameter but the vision encoder's and the projector's."""
        vision = {id(p) for p in self.vision_encoder().parameters()} | {id(p) for p in self.projector_parameters()}
        return [p for p in self.model.parameters() if id(p) not in vision]

    @staticmethod
    def model_position_ids(positions: torch.Tensor) -> torch.Tensor:
        """``(R, B, L)`` → what the HF model takes: MRoPE keeps the axes, 1-D RoPE takes ``(B, L)``."""
        return positions if positions.shape[0] > 1 else positions[0]

    def kept_inputs(
        self, batch: dict[str, Any], embeds: torch.Tensor, keep: torch.Tensor,
        mode: KeepMode = "gather", positions: PositionMode = "original", columns: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """LLM inputs for the kept tokens: ``inputs_embeds``, ``position_ids``, ``attention_mask``, ``index``, ``labels``.

        ``columns`` ``(B, K)`` (gather mode): the original column of each gathered one, ``-1`` for padding, in place
        of the kept columns re-left-padded."""
        if mode not in ("gather", "mask") or positions not in ("original", "contiguous"):
            raise ValueError(f"mode must be gather|mask and positions original|contiguous, got {mode!r}, {positions!r}")
        attention = batch["attention_mask"].bool()
        keep = keep.bool() & attention
        full = self.full_positions(batch)
        rows = full.shape[0]
        labels = batch.get("labels")
        if mode == "mask":
            index = torch.arange(keep.shape[1], device=keep.device).expand_as(keep)
            inputs = {"inputs_embeds": embeds, "position_ids": full, "attention_mask": keep.long(), "index": index}
            if positions == "contiguous":
                inputs["position_ids"] = _contiguous_positions(keep, rows)
            if labels is not None:
                inputs["labels"] = labels.masked_fill(~keep, IGNORE_INDEX)
            return inputs
        if columns is None:
            index, valid = mask_columns(keep, "right")  # kept last: generation continues from the last column
        else:
            index, valid = columns.clamp(min=0), columns >= 0
        batch_size, length, dim = embeds.shape
        flat = (index + torch.arange(batch_size, device=index.device).unsqueeze(1) * length).reshape(-1)
        gathered = embeds.reshape(batch_size * length, dim).index_select(0, flat).view(*index.shape, dim)
        position_ids = full.gather(2, index.unsqueeze(0).expand(rows, -1, -1))
        if positions == "contiguous":
            position_ids = _contiguous_positions(valid, rows)
        inputs = {
            "inputs_embeds": gathered * valid.unsqueeze(-1).to(gathered.dtype),
            "position_ids": position_ids.masked_fill(~valid.unsqueeze(0), 0),
            "attention_mask": valid.long(),
            "index": index.masked_fill(~valid, -1),
        }
        if labels is not None:
            inputs["labels"] = labels.gather(1, index).masked_fill(~valid, IGNORE_INDEX)
        return inputs

    def forward_kept(
        self, batch: dict[str, Any], embeds: torch.Tensor, keep: torch.Tensor,
        mode: KeepMode = "gather", positions: PositionMode = "original",
    ) -> KeptOutput:
        inputs = self.kept_inputs(batch, embeds, keep, mode, positions)
        output = self.model(
            inputs_embeds=inputs["inputs_embeds"], position_ids=self.model_position_ids(inputs["position_ids"]),
            attention_mask=inputs["attention_mask"], use_cache=False,
        )
        return KeptOutput(output.logits, inputs.get("labels"), inputs["attention_mask"], inputs["index"])

    @torch.no_grad()
    def generate_kept(
        self, batch: dict[str, Any], embeds: torch.Tensor, keep: torch.Tensor, max_new_tokens: int,
        mode: KeepMode = "gather", positions: PositionMode = "original", use_cache: bool = True,
    ) -> list[str]:
        """Greedy decoding over the kept tokens; ``use_cache=False`` recomputes the whole sequence each step."""
        inputs = self.kept_inputs(batch, embeds, keep, mode, positions)
        with self.kept_context(inputs):
            tokens = self._greedy(inputs, max_new_tokens, use_cache)
        return self.processor.decode(tokens)

    @torch.no_grad()
    def greedy_tokens(self, batch: dict[str, Any], embeds: torch.Tensor, max_new_tokens: int,
                      on_step: StepHook | None = None, stop_at_eos: bool = True) -> torch.Tensor:
        """Greedy ids ``(B, N)`` (pad after EOS) over the whole prompt batch with input ``embeds`` and a KV cache;
        ``on_step`` sees every step's hidden states and may add to the next token's embedding. ``stop_at_eos=False``
        always runs ``max_new_tokens`` steps (benchmarks)."""
        inputs = self.kept_inputs(batch, embeds, batch["attention_mask"].bool())
        with self.kept_context(inputs):
            return self._greedy(inputs, max_new_tokens, use_cache=True, stop_at_eos=stop_at_eos, on_step=on_step)

    def forward_continued(self, batch: dict[str, Any], split: torch.Tensor,
                          continuation: Callable[[Callable[[int], torch.Tensor]], torch.Tensor | None],
                          logits_to_keep: int) -> ContinuedOutput:
        """Row ``b``'s columns before ``split[b]``, with a fresh KV cache, then the rest over that cache (with
        ``continuation``'s offsets added to their inputs). See :meth:`VideoBackbone.forward_continued`.

        Rows split at different columns, so the two parts are laid out apart: the first left-padded, the second
        right-padded after it, every token keeping its full-sequence position ids. Under causal attention that is
        the same computation as one pass; gradients reach the first part through the cache. Results come back in
        the batch's own (left-padded) layout."""
        attention = batch["attention_mask"].bool()
        length = attention.shape[1]
        split = split.to(attention.device).long()
        padding = length - attention.sum(1)
        if not torch.equal(attention, torch.arange(length, device=attention.device) >= padding.unsqueeze(1)):
            raise ValueError("a continued pass needs a left-padded batch (padding first, then every real column)")
        if bool((split <= padding).any() | (split >= length).any()) or not 0 < logits_to_keep <= length:
            raise ValueError(f"cannot split rows of {length} columns at {split.tolist()} (left padding {padding.tolist()})")
        visual = self.visual_mask(batch)
        first_width, second_width = int((split - padding).max()), int((length - split).max())
        first = split.unsqueeze(1) - first_width + torch.arange(first_width, device=split.device)
        second = split.unsqueeze(1) + torch.arange(second_width, device=split.device)
        first = first.masked_fill(first < padding.unsqueeze(1), -1)
        second = second.masked_fill(second >= length, -1)
        if bool(visual.gather(1, second.clamp(min=0))[second >= 0].any()):
            raise ValueError("visual tokens lie after a row's split: the first part must hold every one")
        columns = torch.cat([first, second], dim=1)
        inputs = self.kept_inputs(batch, self.embed_inputs(batch), attention, columns=columns)
        sequence, positions, mask = inputs["inputs_embeds"], inputs["position_ids"], inputs["attention_mask"]

        # logits: the last `logits_to_keep` original columns; some may lie in the first part
        from_first = int((split - padding.clamp(min=length - logits_to_keep)).clamp(min=0).max())
        cache = DynamicCache(config=hf_model(self.model).config.text_config)
        with self.kept_context(inputs):
            head = self.model(
                inputs_embeds=sequence[:, :first_width], position_ids=self.model_position_ids(positions[..., :first_width]),
                attention_mask=mask[:, :first_width], cache=cache, use_cache=True, logits_to_keep=max(from_first, 1),
                output_hidden_states=True,
            )
            rest = sequence[:, first_width:]
            extra = continuation(lambda index: in_batch_layout(head.hidden_states[index], first, length))
            if extra is not None:
                rest = rest + extra.gather(1, second.clamp(min=0).unsqueeze(-1).expand(-1, -1, extra.shape[-1])).mul(
                    (second >= 0).unsqueeze(-1)).to(rest.dtype)
            tail = self.model(
                inputs_embeds=rest, position_ids=self.model_position_ids(positions[..., first_width:]), attention_mask=mask,
                cache=cache, use_cache=True, logits_to_keep=second_width, output_hidden_states=True,
            )
        start = length - logits_to_keep
        logits = in_batch_layout(tail.logits, second, length, start)
        if from_first:
            logits = in_batch_layout(head.logits[:, -from_first:], first[:, first_width - from_first :], length, start, logits)
        return ContinuedOutput(logits, tuple(head.hidden_states), tuple(tail.hidden_states), first, second)

    def kept_context(self, inputs: dict[str, Any]) -> AbstractContextManager:
        """Anything the family's LLM needs around a run on ``kept_inputs`` (Qwen3-VL: DeepStack features)."""
        return nullcontext()

    def _greedy(self, inputs: dict[str, torch.Tensor], max_new_tokens: int, use_cache: bool,
                stop_at_eos: bool = True, on_step: StepHook | None = None) -> torch.Tensor:
        tokenizer = self.processor.tokenizer
        embed = hf_model(self.model).get_input_embeddings()
        sequence, position_ids, attention = inputs["inputs_embeds"], inputs["position_ids"], inputs["attention_mask"]
        next_position = position_ids.masked_fill(attention.eq(0).unsqueeze(0), -1).amax(dim=(0, 2)) + 1
        cache = DynamicCache(config=hf_model(self.model).config.text_config) if use_cache else None
        step_embeds, step_positions = sequence, position_ids
        finished = torch.zeros(sequence.shape[0], dtype=torch.bool, device=sequence.device)
        generated = []
        for step in range(max_new_tokens):
            output = self.model(
                inputs_embeds=step_embeds, position_ids=self.model_position_ids(step_positions), attention_mask=attention,
                cache=cache, use_cache=use_cache, logits_to_keep=1, output_hidden_states=on_step is not None,
            )
            token = output.logits[:, -1].argmax(-1).masked_fill(finished, tokenizer.pad_token_id)
            generated.append(token)
            finished |= token.eq(tokenizer.eos_token_id)
            if stop_at_eos and bool(finished.all()):
                break
            new_embeds = embed(token).unsqueeze(1)
            if on_step is not None and (extra := on_step(step, token, output.hidden_states)) is not None:
                new_embeds = new_embeds + extra.to(new_embeds.dtype)
            new_positions = (next_position + step).view(1, -1, 1).expand(position_ids.shape[0], -1, 1)
            attention = torch.cat([attention, attention.new_ones(attention.shape[0], 1)], dim=1)
            if use_cache:
                step_embeds, step_positions = new_embeds, new_positions
            else:
                step_embeds = torch.cat([step_embeds, new_embeds], dim=1)
                step_positions = torch.cat([step_positions, new_positions], dim=2)
        return torch.stack(generated, dim=1)

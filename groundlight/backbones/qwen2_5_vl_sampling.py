"""Qwen2.5-VL "run with these tokens kept": the backbone half of visual token sampling.

A method scores visual tokens and hands the backbone a ``keep`` mask over the sequence
together with (re-weighted) input embeddings; this file turns that into LLM inputs:

1. the full-sequence 3-D MRoPE ids come from :mod:`~groundlight.backbones.qwen_rope` (the
   installed ``get_rope_index`` misplaces text after a video), so a kept token keeps its ids;
2. ``gather`` mode physically gathers the kept embeddings, position ids, attention
   mask and labels into a shorter, re-left-padded sequence: that is the speed gain;
   ``mask`` mode keeps the length and zeroes the dropped tokens' attention instead;
3. ``positions="contiguous"`` is the paper's no-PE ablation: the kept sequence gets
   1-D positions as if it had never had gaps;
4. generation is an explicit greedy loop over a KV cache whose new tokens get position
   ``last kept position + 1 + step`` (the correct rope delta for the *shrunk* cache)
   and whose attention mask keeps the dropped tokens at 0 while decoding, unlike the
   released GroundVTS code, where cached decoding attends to "dropped" tokens.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from transformers import DynamicCache

from groundlight.backbones.base import KeptOutput
from groundlight.backbones.qwen_rope import rope_index_for_batch
from groundlight.ops import IGNORE_INDEX, mask_columns

KeepMode = Literal["gather", "mask"]
PositionMode = Literal["original", "contiguous"]


def hf_model(model: torch.nn.Module) -> torch.nn.Module:
    """The ``Qwen2_5_VLForConditionalGeneration`` under an optional peft wrapper."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _contiguous_positions(valid: torch.Tensor) -> torch.Tensor:
    """1-D positions over the valid columns, copied to the three MRoPE axes: ``(3, B, K)``."""
    positions = (valid.long().cumsum(1) - 1).clamp(min=0)
    return positions.unsqueeze(0).expand(3, -1, -1).contiguous()


class QwenTokenKeep:
    """Mixin for :class:`~groundlight.backbones.qwen2_5_vl.Qwen25VLBackbone` implementing the token-keep hooks."""

    model: torch.nn.Module
    processor: Any

    @property
    def embedding_dim(self) -> int:
        return hf_model(self.model).config.text_config.hidden_size

    def projector_parameters(self) -> list[torch.nn.Parameter]:
        return list(hf_model(self.model).model.visual.merger.parameters())

    def language_model_parameters(self) -> list[torch.nn.Parameter]:
        vision = {id(p) for p in hf_model(self.model).model.visual.parameters()}
        return [p for p in self.model.parameters() if id(p) not in vision]

    def embed_inputs(self, batch: dict[str, Any]) -> torch.Tensor:
        """Token embeddings ``(B, L, D)`` with the projected visual features scattered into the video slots."""
        hf = hf_model(self.model)
        embeds = hf.get_input_embeddings()(batch["input_ids"])
        pixels = batch["pixel_values_videos"].to(hf.dtype)
        features = hf.model.get_video_features(pixels, batch["video_grid_thw"], return_dict=True).pooler_output
        video = torch.cat(features).to(embeds.dtype)
        slots = (batch["input_ids"] == hf.config.video_token_id).unsqueeze(-1)
        return embeds.masked_scatter(slots, video)

    def full_positions(self, batch: dict[str, Any]) -> torch.Tensor:
        """``(3, B, L)`` reference MRoPE ids of the full (undropped) sequence (see :mod:`~groundlight.backbones.qwen_rope`)."""
        return rope_index_for_batch(batch, hf_model(self.model).config)[0]

    def kept_inputs(
        self, batch: dict[str, Any], embeds: torch.Tensor, keep: torch.Tensor,
        mode: KeepMode = "gather", positions: PositionMode = "original",
    ) -> dict[str, torch.Tensor]:
        """LLM inputs for the kept tokens: ``inputs_embeds``, ``position_ids``, ``attention_mask``, ``index``, ``labels``."""
        if mode not in ("gather", "mask") or positions not in ("original", "contiguous"):
            raise ValueError(f"mode must be gather|mask and positions original|contiguous, got {mode!r}, {positions!r}")
        attention = batch["attention_mask"].bool()
        keep = keep.bool() & attention
        full = self.full_positions(batch)
        labels = batch.get("labels")
        if mode == "mask":
            index = torch.arange(keep.shape[1], device=keep.device).expand_as(keep)
            inputs = {"inputs_embeds": embeds, "position_ids": full, "attention_mask": keep.long(), "index": index}
            if positions == "contiguous":
                inputs["position_ids"] = _contiguous_positions(keep)
            if labels is not None:
                inputs["labels"] = labels.masked_fill(~keep, IGNORE_INDEX)
            return inputs
        index, valid = mask_columns(keep, "right")  # kept last: generation continues from the last column
        batch_size, length, dim = embeds.shape
        flat = (index + torch.arange(batch_size, device=index.device).unsqueeze(1) * length).reshape(-1)
        gathered = embeds.reshape(batch_size * length, dim).index_select(0, flat).view(*index.shape, dim)
        position_ids = full.gather(2, index.unsqueeze(0).expand(3, -1, -1))
        if positions == "contiguous":
            position_ids = _contiguous_positions(valid)
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
            inputs_embeds=inputs["inputs_embeds"], position_ids=inputs["position_ids"],
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
        tokens = self._greedy(inputs, max_new_tokens, use_cache)
        return self.processor.decode(tokens)

    def _greedy(self, inputs: dict[str, torch.Tensor], max_new_tokens: int, use_cache: bool,
                stop_at_eos: bool = True) -> torch.Tensor:
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
                inputs_embeds=step_embeds, position_ids=step_positions, attention_mask=attention,
                past_key_values=cache, use_cache=use_cache, logits_to_keep=1,
            )
            token = output.logits[:, -1].argmax(-1).masked_fill(finished, tokenizer.pad_token_id)
            generated.append(token)
            finished |= token.eq(tokenizer.eos_token_id)
            if stop_at_eos and bool(finished.all()):
                break
            new_embeds = embed(token).unsqueeze(1)
            new_positions = (next_position + step).view(1, -1, 1).expand(3, -1, 1)
            attention = torch.cat([attention, attention.new_ones(attention.shape[0], 1)], dim=1)
            if use_cache:
                step_embeds, step_positions = new_embeds, new_positions
            else:
                step_embeds = torch.cat([step_embeds, new_embeds], dim=1)
                step_positions = torch.cat([step_positions, new_positions], dim=2)
        return torch.stack(generated, dim=1)

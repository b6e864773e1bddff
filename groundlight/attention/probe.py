"""Record (and optionally steer) one query row of attention without eager attention.

The probe registers an attention function with ``transformers.AttentionInterface``.
It runs the usual SDPA kernel for every layer and, on the probed layers only, also
computes ``softmax(q·Kᵀ·scale + mask)`` for one query position per batch row: the
last prompt token. The row keeps its autograd graph, so losses on it train the
model. The mask function must be registered under the same name too: without it the
model passes ``attention_mask=None`` and padding is silently ignored.

Usage::

    with AttentionProbe(backbone, layers=[8]) as probe:
        probe.query_positions = last_prompt_positions(batch)
        output = backbone(batch)
    probe.rows[8]     # (B, H, L) attention of the last prompt token, with gradients
    probe.hidden[8]   # (B, L, D) input hidden state of layer 8 (detached), for sinks
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from groundlight.backbones.base import VideoBackbone
from groundlight.ops import mask_columns

PROBE_IMPLEMENTATION = "groundlight_probe"

Steer = Callable[[int, torch.Tensor], torch.Tensor | None]
"""``steer(layer, probs (B, H, Lk)) -> steered probs or None`` (``None`` leaves the layer alone)."""


def probe_attention_forward(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                            attention_mask: torch.Tensor | None, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """SDPA, plus the probe's row on layers that carry an :class:`AttentionProbe`."""
    output, _ = sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    probe: AttentionProbe | None = getattr(module, "_groundlight_probe", None)
    if probe is None:
        return output, None
    return probe.observe(module, query, key, value, attention_mask, output, kwargs.get("scaling")), None


AttentionInterface.register(PROBE_IMPLEMENTATION, probe_attention_forward)
AttentionMaskInterface.register(PROBE_IMPLEMENTATION, sdpa_mask)


class ProbeComplete(Exception):
    """Raised after the last probed layer when the probe was asked to stop the pass there."""


def _stop_forward(module: nn.Module, args: tuple, output: Any) -> None:
    raise ProbeComplete


def last_prompt_positions(batch: dict[str, Any]) -> torch.Tensor:
    """``(B,)`` index of the last prompt token: before the first answer label, else the last column."""
    input_ids = batch["input_ids"]
    last = torch.full((input_ids.shape[0],), input_ids.shape[1] - 1, dtype=torch.long, device=input_ids.device)
    labels = batch.get("labels")
    if labels is None:
        return last
    is_answer = labels != -100
    first = is_answer.float().argmax(dim=1)
    return torch.where(is_answer.any(dim=1), first - 1, last)


class AttentionProbe:
    """Switches a model's language layers to the probing attention while the context is open.

    Args:
        backbone: the video-LLM whose decoder layers are probed.
        layers: decoder layer indices whose last-prompt-token row is recorded.
        steer: optional redistribution of the recorded probabilities; when it returns a
            tensor, that layer's output row is recomputed from it (inference only).
        stop_after: end the forward pass after the last probed layer (the context swallows
            the stop): for passes whose only use is the recorded rows.
    """

    def __init__(self, backbone: VideoBackbone, layers: Sequence[int], steer: Steer | None = None,
                 stop_after: bool = False) -> None:
        self.layers = backbone.decoder_layers()
        missing = sorted(set(layers) - set(self.layers))
        if missing:
            raise ValueError(f"cannot probe layers {missing}: the language model has layers 0..{max(self.layers)}")
        self.probed = sorted(set(layers))
        self.steer, self.stop_after = steer, stop_after
        self.query_positions: torch.Tensor | None = None
        self.rows: dict[int, torch.Tensor] = {}
        self.hidden: dict[int, torch.Tensor] = {}
        self._saved: list[tuple[Any, str | None]] = []
        self._hooks: list[Any] = []

    def __enter__(self) -> AttentionProbe:
        configs = {id(layer.self_attn.config): layer.self_attn.config for layer in self.layers.values()}
        self._saved = [(config, config._attn_implementation) for config in configs.values()]
        for config in configs.values():
            config._attn_implementation_internal = PROBE_IMPLEMENTATION
        for index in self.probed:
            layer = self.layers[index]
            layer.self_attn._groundlight_probe = self
            self._hooks.append(layer.register_forward_pre_hook(self._hidden_hook(index), with_kwargs=True))
        if self.stop_after:
            self._hooks.append(self.layers[self.probed[-1]].register_forward_hook(_stop_forward))
        return self

    def __exit__(self, exc_type: type | None, *exc: Any) -> bool:
        for config, implementation in self._saved:
            config._attn_implementation_internal = implementation
        for index in self.probed:
            self.layers[index].self_attn._groundlight_probe = None
        for hook in self._hooks:
            hook.remove()
        self._saved, self._hooks = [], []
        return exc_type is ProbeComplete

    def clear(self) -> None:
        self.rows, self.hidden = {}, {}

    def _hidden_hook(self, index: int) -> Callable:
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            hidden = args[0] if args else kwargs["hidden_states"]
            if hidden.shape[1] > 1:  # the prompt pass; decode steps add one token each
                self.hidden[index] = hidden.detach()

        return hook

    def _positions(self, batch: int, q_length: int, device: torch.device) -> torch.Tensor:
        if self.query_positions is None or q_length == 1:
            return torch.full((batch,), q_length - 1, dtype=torch.long, device=device)
        return self.query_positions.to(device)

    def observe(self, module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                attention_mask: torch.Tensor | None, output: torch.Tensor, scaling: float | None) -> torch.Tensor:
        """Record the row of this layer and return the (possibly steered) attention output."""
        batch, heads, q_length, head_dim = query.shape
        positions = self._positions(batch, q_length, query.device)
        rows = torch.arange(batch, device=query.device)
        groups = heads // key.shape[1]
        keys = repeat_kv(key, groups)
        q_row = query[rows, :, positions]  # (B, H, d)
        scores = torch.einsum("bhd,bhld->bhl", q_row, keys) * (scaling if scaling is not None else head_dim**-0.5)
        scores = scores + _mask_row(attention_mask, positions, q_length, keys.shape[2], scores.dtype)[:, None, :]
        probs = torch.softmax(scores.float(), dim=-1)
        if q_length > 1:
            self.rows[module.layer_idx] = probs
        steered = self.steer(module.layer_idx, probs) if self.steer is not None else None
        if steered is None:
            return output
        out_row = torch.einsum("bhl,bhld->bhd", steered.to(value.dtype), repeat_kv(value, groups))
        output = output.clone()
        output[rows, positions] = out_row.to(output.dtype)
        return output


def _mask_row(attention_mask: torch.Tensor | None, positions: torch.Tensor, q_length: int, kv_length: int,
              dtype: torch.dtype) -> torch.Tensor:
    """Additive ``(B, Lk)`` mask of each row's query position (boolean, float or implicit causal)."""
    batch = positions.shape[0]
    if attention_mask is None:
        keys = torch.arange(kv_length, device=positions.device)
        allowed = keys[None, :] <= (positions + kv_length - q_length)[:, None]
    else:
        row = attention_mask[torch.arange(batch, device=positions.device) % attention_mask.shape[0], 0, positions]
        if row.dtype != torch.bool:
            return row.to(dtype)
        allowed = row
    return torch.zeros(allowed.shape, dtype=dtype, device=positions.device).masked_fill(~allowed, float("-inf"))


def visual_rows(rows: torch.Tensor, visual_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention on visual keys only, left-aligned: ``(B, H, V)`` and the ``(B, V)`` mask of real tokens.

    Two prompts over the same video give the same ``V`` visual tokens in the same order,
    so the columns of two pathways line up token by token.
    """
    order, mask = mask_columns(visual_mask)  # visual positions first
    gathered = rows.gather(2, order[:, None, :].expand(-1, rows.shape[1], -1))
    return gathered * mask[:, None, :].to(gathered.dtype), mask

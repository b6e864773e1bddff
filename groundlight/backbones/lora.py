"""LoRA via peft, on the language model only, plus freezing helpers."""

from __future__ import annotations

from collections.abc import Sequence

from peft import LoraConfig, get_peft_model
from torch import nn

from groundlight.backbones.base import LoraOptions


def apply_lora(model: nn.Module, options: LoraOptions, trainable_tokens: Sequence[int] = (), tied: bool = False) -> nn.Module:
    """Wrap ``model`` with LoRA adapters on modules matching ``options.target_modules``.

    The target is a regex so that vision-tower projections sharing the names
    ``q_proj``/``v_proj`` (InternVL, CLIP towers) are never wrapped. ``trainable_tokens``: embedding rows (added
    special tokens) that train beside the adapters, in the input embeddings and, unless ``tied``, the LM head.
    """
    tokens = None
    if trainable_tokens:
        tokens = {"embed_tokens": list(trainable_tokens)} | ({} if tied else {"lm_head": list(trainable_tokens)})
    config = LoraConfig(
        r=options.r, lora_alpha=options.alpha, lora_dropout=options.dropout,
        target_modules=options.target_modules, bias="none", trainable_token_indices=tokens,
    )
    wrapped = get_peft_model(model, config)
    if not any("lora_" in name for name, _ in wrapped.named_parameters()):
        raise ValueError(f"LoRA target {options.target_modules!r} matched no module")
    for name, param in wrapped.named_parameters():
        if any(part in name for part in options.extra_trainable):
            param.requires_grad_(True)
    return wrapped


def freeze_modules(model: nn.Module, name_parts: tuple[str, ...]) -> int:
    """Freeze every parameter whose name contains one of ``name_parts``; returns how many."""
    frozen = 0
    for name, param in model.named_parameters():
        if any(part in name.split(".") for part in name_parts):
            param.requires_grad_(False)
            frozen += 1
    if frozen == 0:
        raise ValueError(f"no parameter matched {name_parts}")
    return frozen

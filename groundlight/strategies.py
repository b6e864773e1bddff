"""Lightning strategies that know the backbone: FSDP sharded at each decoder layer of whichever family is loaded.

Configs: ``experiments/base/strategies/`` (``ddp``, ``fsdp``, ``deepspeed_zero2``, ``deepspeed_zero3``), overlays that
go after an experiment: ``groundlight fit --config experiments/<method>/<config>.yaml --config
experiments/base/strategies/fsdp.yaml --trainer.devices 8``.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.strategies import FSDPStrategy
from torch import nn


def decoder_layer_classes(module: nn.Module) -> set[type[nn.Module]]:
    """The classes of the language model's decoder layers under ``module`` (a method, whose ``backbone`` follows the
    backbone contract, or a backbone itself), found through the contract's ``decoder_layers()``, so the same policy
    serves every family, with or without LoRA (peft wraps the linear layers inside a decoder layer, not the layer)."""
    backbone = getattr(module, "backbone", module)
    layers = backbone.decoder_layers()
    if not layers:
        raise ValueError(f"{type(backbone).__name__} reports no decoder layers to shard at")
    return {type(layer) for layer in layers.values()}


class DecoderLayerFSDP(FSDPStrategy):
    """:class:`~lightning.pytorch.strategies.FSDPStrategy` whose wrapping policy is the backbone's decoder layers:
    each layer is one FSDP unit (its frozen weights and its LoRA adapters together: ``use_orig_params``, Lightning's
    default here, lets one unit hold both), the embeddings, vision tower and heads stay in the root unit, which every
    rank runs at every step.

    Args:
        checkpoint_decoder_layers: also recompute each decoder layer's activations in the backward pass (activation
            checkpointing at the same granularity).
        **kwargs: :class:`FSDPStrategy`'s arguments (``sharding_strategy``, ``state_dict_type``, ``cpu_offload``,
            ``mixed_precision`` ...); an explicit ``auto_wrap_policy`` wins over the decoder layers.

    FSDP runs on GPUs only: torch's ``FullyShardedDataParallel`` raises "FSDP needs a non-CPU accelerator device" on
    CPU, so there the policy is what the tests check (``tests/scale/test_strategies.py``).
    """

    def __init__(self, checkpoint_decoder_layers: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.checkpoint_decoder_layers = checkpoint_decoder_layers

    def _setup_model(self, model: nn.Module) -> nn.Module:
        classes = decoder_layer_classes(model)
        if "auto_wrap_policy" not in self.kwargs:
            from torch.distributed.fsdp.wrap import ModuleWrapPolicy

            self.kwargs["auto_wrap_policy"] = ModuleWrapPolicy(classes)
        if self.checkpoint_decoder_layers and not self._activation_checkpointing_kwargs:
            from torch.distributed.fsdp.wrap import ModuleWrapPolicy

            self._activation_checkpointing_kwargs = {"auto_wrap_policy": ModuleWrapPolicy(classes)}
        return super()._setup_model(model)

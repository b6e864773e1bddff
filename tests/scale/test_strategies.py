"""FSDP sharded at the decoder layers of every family, with and without LoRA.

torch's ``FullyShardedDataParallel`` (what Lightning's FSDP strategy wraps) needs an accelerator: a 2-process CPU fit
with gloo stops in FSDP's constructor with "FSDP needs a non-CPU accelerator device" (tried here), and Lightning refuses
``strategy='fsdp'`` with ``accelerator='cpu'``. So on CPU the wrapping policy is what is tested."""

from __future__ import annotations

import lightning as L
import pytest
from lightning.pytorch.strategies import FSDPStrategy

from groundlight.strategies import DecoderLayerFSDP, decoder_layer_classes
from tests.backbones.families import FAMILIES


def _policy_kwargs(module, monkeypatch, **options):
    """What DecoderLayerFSDP hands to FSDP: the strategy's kwargs and activation-checkpointing kwargs."""
    seen = {}

    def capture(self, model):
        seen.update(kwargs=dict(self.kwargs), checkpointing=dict(self._activation_checkpointing_kwargs))
        return model

    monkeypatch.setattr(FSDPStrategy, "_setup_model", capture)
    DecoderLayerFSDP(**options)._setup_model(module)
    return seen


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_decoder_layer_is_one_fsdp_unit(family, monkeypatch):
    backbone = FAMILIES[family].tiny()
    layers = list(backbone.decoder_layers().values())
    seen = _policy_kwargs(backbone, monkeypatch, checkpoint_decoder_layers=True)
    policy = seen["kwargs"]["auto_wrap_policy"]
    wrapped = policy._run_policy(backbone, set(), {})
    assert {id(m) for m in wrapped} >= {id(layer) for layer in layers}
    assert all(isinstance(m, tuple(decoder_layer_classes(backbone))) for m in wrapped if m is not backbone)
    assert seen["kwargs"]["use_orig_params"] is True  # frozen weights and LoRA adapters in one unit
    assert seen["checkpointing"]["auto_wrap_policy"]._module_classes == policy._module_classes


def test_lora_leaves_the_decoder_layers_the_units(monkeypatch):
    from groundlight.backbones.base import LoraOptions
    from groundlight.backbones.qwen2_5_vl import Qwen25VLBackbone, TinyQwenConfig

    backbone = Qwen25VLBackbone(tiny=TinyQwenConfig(), min_pixels=56 * 56, max_pixels=56 * 56, lora=LoraOptions(r=4))
    layers = backbone.decoder_layers()
    policy = _policy_kwargs(backbone, monkeypatch)["kwargs"]["auto_wrap_policy"]
    wrapped = [m for m in policy._run_policy(backbone, set(), {}) if m is not backbone]
    assert len(wrapped) == len(layers)
    for layer in wrapped:  # each unit holds trainable LoRA weights beside its frozen base weights
        flags = {p.requires_grad for p in layer.parameters()}
        assert flags == {True, False}


def test_an_explicit_policy_wins(monkeypatch):
    backbone = FAMILIES["qwen2_5_vl"].tiny()
    seen = _policy_kwargs(backbone, monkeypatch, auto_wrap_policy={type(backbone.vision_encoder())})
    assert seen["kwargs"]["auto_wrap_policy"]._module_classes == {type(backbone.vision_encoder())}


def test_the_strategy_configs_build():
    """The ddp and fsdp overlays' strategies, as the CLI would build them (DeepSpeed's need the optional package and
    a GPU: tests/experiments/test_configs.py parses them against Lightning's signature)."""
    from pathlib import Path

    import yaml
    from lightning.pytorch.strategies import DDPStrategy

    folder = Path(__file__).resolve().parents[2] / "experiments" / "base" / "strategies"
    ddp = yaml.safe_load((folder / "ddp.yaml").read_text())["trainer.strategy"]
    assert isinstance(L.Trainer(accelerator="cpu", devices=1, strategy=ddp, logger=False).strategy, DDPStrategy)
    fsdp = yaml.safe_load((folder / "fsdp.yaml").read_text())["trainer.strategy"]
    assert fsdp["class_path"] == "groundlight.strategies.DecoderLayerFSDP"
    strategy = DecoderLayerFSDP(**fsdp["init_args"])
    assert strategy.checkpoint_decoder_layers and strategy._state_dict_type == "full"

"""``groundlight estimate``: the estimate against the measured peak of real steps, shapes-only builds of a
checkpoint directory, and what each strategy shards."""

from __future__ import annotations

import json

import pytest
import torch

from groundlight.tools.estimate import (
    Layout,
    Shape,
    estimate,
    estimate_memory,
    main,
    parameter_bytes,
    strategy_sharding,
)

SFT = ["--config", "experiments/sft/synth.yaml"]
BACKBONES = "experiments/base/backbones"


def _measured(synth_dir, *extra: str) -> dict:
    report = estimate([*SFT, "--data.init_args.data_dir", str(synth_dir), "--data.init_args.batch_size", "4",
                       "--data.init_args.cache_visual", "false", *extra, "--measure"])
    return report["measured"]


def test_the_estimate_is_within_20_percent_of_the_measured_peak_of_a_tiny_training_step(synth_dir):
    """Full fine-tuning of the tiny Qwen2.5-VL (vision tower trained, no checkpointing): the peak of live tensor
    storage over one step (weights, AdamW states, activations and the loss's float logits) against the estimate
    for that batch's shape."""
    measured = _measured(synth_dir)
    assert measured["device"] == "cpu" and measured["peak_bytes"] > 0
    assert 0.8 <= measured["estimate_over_measured"] <= 1.2, measured


@pytest.mark.slow
@pytest.mark.parametrize("build", [
    ("--model.init_args.backbone", f"{BACKBONES}/tiny_qwen2_5_vl_lora8.yaml"),
    ("--model.init_args.backbone", f"{BACKBONES}/tiny_qwen2_5_vl_lora8.yaml",
     "--model.init_args.backbone.init_args.gradient_checkpointing", "true",
     "--model.init_args.backbone.init_args.freeze_vision", "true"),
    ("--model.init_args.backbone", f"{BACKBONES}/tiny_internvl.yaml"),
    ("--model.init_args.backbone", f"{BACKBONES}/tiny_perception_lm.yaml"),
    ("--model.init_args.backbone", f"{BACKBONES}/tiny_qwen3_vl.yaml"),
], ids=["lora", "lora_checkpointed_frozen_vision", "internvl", "perception_lm", "qwen3_vl"])
def test_every_family_and_layout_is_estimated_within_20_percent(synth_dir, build):
    measured = _measured(synth_dir, *build)
    assert 0.8 <= measured["estimate_over_measured"] <= 1.2, measured


def test_a_checkpoint_directory_is_estimated_from_its_config_without_its_weights(tmp_path, synth_dir):
    """The hub path (``pretrained: <dir>``) under shapes-only reads config.json and the tokenizer: with the
    weights file deleted, the estimate still counts every parameter of the model the directory describes."""
    from groundlight.backbones.qwen2_5_vl import Qwen25VLBackbone, TinyQwenConfig

    source = Qwen25VLBackbone(tiny=TinyQwenConfig(), min_pixels=3136, max_pixels=3136)
    source.save_pretrained(tmp_path / "ckpt")
    for weights in (tmp_path / "ckpt").glob("*.safetensors"):
        weights.unlink()
    build = tmp_path / "backbone.yaml"
    build.write_text("class_path: groundlight.backbones.qwen2_5_vl.Qwen25VLBackbone\n"
                     f"init_args: {{pretrained: {tmp_path / 'ckpt'}, tiny: null, min_pixels: 3136, max_pixels: 3136}}\n")
    report = estimate([*SFT, "--data.init_args.data_dir", str(synth_dir), "--model.init_args.backbone", str(build)])
    assert report["parameters"]["parameters"] == sum(p.numel() for p in source.parameters())
    assert report["tokens"]["visual_tokens"] == 80  # 40 frames at 56x56: 20 temporal groups of 4 tokens
    assert report["tokens"]["sequence"] == 80 + 160


def test_strategies_shard_what_they_shard():
    assert strategy_sharding("ddp") == "none"
    assert strategy_sharding("fsdp") == "all"
    assert strategy_sharding("deepspeed_stage_2") == "grads_optimizer"
    assert strategy_sharding({"class_path": "lightning.pytorch.strategies.DeepSpeedStrategy", "init_args": {"stage": 3}}) == "all"
    assert strategy_sharding({"class_path": "groundlight.strategies.DecoderLayerFSDP",
                              "init_args": {"sharding_strategy": "SHARD_GRAD_OP"}}) == "grads_optimizer"


def test_sharding_divides_state_by_the_world_size_and_checkpointing_keeps_one_input_per_layer(tiny_backbone):
    """Weights 4 B x N, gradients and AdamW states of the trainable share: FULL_SHARD over 8 divides all three by 8,
    ZeRO-2 only gradients and states. Checkpointing keeps h per token per layer, plus in backward one recomputed
    layer's activations and their gradients."""
    counts = parameter_bytes(tiny_backbone)
    config = tiny_backbone.model.config
    shape = Shape(batch=2, sequence=100, vision_tokens=64, pixel_elements=0, logit_positions=20)
    plain = Layout(4, False, True, False, 0, "none", 8)
    full = estimate_memory(config, counts, shape, plain)
    sharded = estimate_memory(config, counts, shape, Layout(4, False, True, False, 0, "all", 8))
    zero2 = estimate_memory(config, counts, shape, Layout(4, False, True, False, 0, "grads_optimizer", 8))
    assert sharded["weights"] == pytest.approx(full["weights"] / 8)
    assert sharded["optimizer"] == pytest.approx(full["optimizer"] / 8)
    assert zero2["weights"] == full["weights"] and zero2["gradients"] == pytest.approx(full["gradients"] / 8)
    assert full["optimizer"] == 2 * counts["trainable_bytes"]
    checkpointed = estimate_memory(config, counts, shape, Layout(4, True, True, False, 0, "none", 1))
    text = config.get_text_config()
    per_layer = (full["activations"] - full["activations_logits"]) / text.num_hidden_layers
    expected = text.num_hidden_layers * text.hidden_size * 200 * 4 + 2 * per_layer
    assert checkpointed["activations"] - checkpointed["activations_logits"] == pytest.approx(expected)


def test_the_command_prints_json(synth_dir, capsys):
    assert main([*SFT, "--data.init_args.data_dir", str(synth_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["memory_bytes_per_device"]["total"] > report["memory_bytes_per_device"]["activations"] > 0
    assert not any(p.device.type == "meta" for p in torch.nn.Linear(1, 1).parameters())  # meta was not left on

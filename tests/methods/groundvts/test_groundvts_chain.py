"""The three GroundVTS stages chain through the real CLI, each from the previous checkpoint (slow)."""

from pathlib import Path

import pytest
import torch

from groundlight.cli import main

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
@pytest.mark.parametrize("budget", [[], ["--config", "experiments/base/groundvts_tiny_budget.yaml"]], ids=["paper", "tiny_budget"])
def test_three_stages_chain_through_the_cli(budget, synth_dir, tmp_path, monkeypatch):
    """As `make groundvts-synth` chains them: the tiny-budget overlay on stages 2-3 keeps the vision encoder frozen."""
    monkeypatch.chdir(ROOT)
    previous = None
    for stage in (1, 2, 3):
        overlay = budget if stage > 1 else []
        args = ["fit", "--config", f"experiments/groundvts/synth_stage{stage}.yaml", *overlay, "--data.init_args.data_dir", str(synth_dir),
                "--runs_dir", str(tmp_path), "--experiment", f"stage{stage}", "--trainer.logger", "false",
                "--trainer.max_steps", "1", "--trainer.limit_val_batches", "0"]
        if previous is not None:
            args += ["--model.init_args.init_from", str(previous)]
        main(args)
        checkpoint = tmp_path / f"stage{stage}" / "checkpoints" / "last.ckpt"
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
        if previous is not None:
            before = torch.load(previous, map_location="cpu", weights_only=True)["state_dict"]
            frozen = [k for k in state if "visual.blocks" in k]
            assert frozen and all(torch.equal(state[k], before[k]) for k in frozen)
            assert any(not torch.equal(state[k], before[k]) for k in state if k.startswith("vts."))
        previous = checkpoint


def test_tiny_budget_overlay_instantiates_with_a_stage_config(synth_dir, monkeypatch):
    """The overlay `make groundvts-synth` adds: from groundlight-tiny, the whole LLM and the VTS train for 300 steps,
    the vision encoder stays frozen."""
    from groundlight.cli import lightning_main

    monkeypatch.chdir(ROOT)
    cli = lightning_main(["--config", "experiments/groundvts/synth_stage3.yaml", "--config",
                          "experiments/base/groundvts_tiny_budget.yaml", "--data.init_args.data_dir", str(synth_dir)], run=False)
    trainable = {n for n, p in cli.model.named_parameters() if p.requires_grad}
    assert any(n.startswith("vts.") for n in trainable) and any("language_model" in n and "lora_" not in n for n in trainable)
    assert not any("visual.blocks" in n for n in trainable)
    assert cli.trainer.max_steps == 300 and cli.datamodule.curriculum_epochs == 0
    assert cli.model.backbone.model.config.text_config.num_hidden_layers == 3  # groundlight-tiny, not a random init

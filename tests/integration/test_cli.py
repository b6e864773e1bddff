"""The real CLI on every config under experiments/, plus resume and training-changes-weights checks."""

import json
from pathlib import Path

import pytest
import torch
import yaml

from groundlight.cli import command_line_configs, experiment_name, lightning_main, main

ROOT = Path(__file__).resolve().parents[2]


def backbone_file(config: Path) -> Path | None:
    """The backbone build a config names, following its ``config:`` includes (the last one named wins)."""
    data = yaml.safe_load(config.read_text()) or {}
    named = data.get("model.init_args.backbone") or (data.get("model") or {}).get("init_args", {}).get("backbone")
    if isinstance(named, str):
        return (config.parent / named).resolve()
    return backbone_file((config.parent / data["config"]).resolve()) if "config" in data else None


def builds_on_cpu(config: Path) -> bool:
    """A tiny random-init build, or weights the repository ships (groundlight-tiny); never hub weights."""
    build = backbone_file(config)
    if build is None:
        return False
    pretrained = yaml.safe_load(build.read_text())["init_args"].get("pretrained")
    return pretrained is None or (ROOT / pretrained).is_dir()


# Hub-weight configs are parsed (and built with a tiny backbone swapped in) by tests/experiments/test_configs.py.
RUNNABLE = sorted(p for p in (ROOT / "experiments").rglob("*.yaml")
                  if p.relative_to(ROOT / "experiments").parts[0] not in ("base", "sweeps") and builds_on_cpu(p))


def tiny_overrides(synth_dir, tmp_path):
    return [
        "--data.init_args.data_dir", str(synth_dir),
        "--runs_dir", str(tmp_path / "runs"),
        "--trainer.logger", "false",
    ]


def test_experiment_name_from_config_path():
    assert experiment_name(["experiments/sft/synth.yaml"]) == "sft/synth"
    # an overlay from experiments/base/ never names a run (the wandb config named runs base/wandb)
    assert experiment_name(["experiments/sft/synth.yaml", "experiments/base/wandb.yaml"]) == "sft/synth"
    assert experiment_name(["experiments/base/wandb.yaml"]) == "base/wandb"
    assert experiment_name(["a.yaml", "experiments/demo/synth.yaml"]) == "demo/synth"
    assert command_line_configs(["fit", "--config", "a.yaml", "-c", "b.yaml", "--config=c.yaml", "--x", "d.yaml"]) == \
        ["a.yaml", "b.yaml", "c.yaml"]


def test_tiny_configs_are_found():
    names = {p.relative_to(ROOT / "experiments").as_posix() for p in RUNNABLE}
    assert {"demo/synth.yaml", "sft/synth.yaml", "self_consistency/synth.yaml", "groundvts/synth_frame.yaml",
            "sf2t/synth.yaml", "d2vlm/synth.yaml"} <= names
    assert not any(name.startswith("self_consistency/gpu/") for name in names)


@pytest.mark.parametrize("config", RUNNABLE, ids=lambda p: p.relative_to(ROOT / "experiments").with_suffix("").as_posix())
def test_every_config_fast_dev_run(config, synth_dir, tmp_path, monkeypatch):
    """One real `groundlight fit` step: a finite loss, and a checkpoint filed under runs/<config path>/ in which some
    trainable weight moved from the (seeded) initial weights and no frozen weight did."""
    monkeypatch.chdir(ROOT)
    args = ["--config", str(config), *tiny_overrides(synth_dir, tmp_path), "--trainer.fast_dev_run", "1"]
    initial = lightning_main(args, run=False).model
    cli = lightning_main(["fit", *args])
    assert cli.trainer.global_step == 1 and torch.isfinite(cli.trainer.callback_metrics["train/loss"])
    checkpoint = tmp_path / "runs" / experiment_name([str(config)]) / "checkpoints" / "last.ckpt"
    trained = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    trainable = {n for n, p in initial.named_parameters() if p.requires_grad}
    moved = {n for n, p in initial.named_parameters() if not torch.equal(p.detach(), trained[n])}
    assert moved and moved <= trainable, f"frozen weights moved: {sorted(moved - trainable)[:5]}"


def fit_cli(synth_dir, tmp_path, *extra):
    args = ["--config", str(ROOT / "experiments/sft/synth.yaml"), *tiny_overrides(synth_dir, tmp_path),
            "--trainer.max_epochs", "2", "--trainer.limit_val_batches", "0",
            "--data.init_args.batch_size", "4", "--trainer.log_every_n_steps", "1", *extra]
    return lightning_main(args, run=False)


class LossRecorder:
    def __init__(self):
        self.losses = []

    def __call__(self, module, outputs):
        self.losses.append(round(float(outputs["loss"]), 6))


def record_losses(cli):
    import lightning as L

    recorder = LossRecorder()

    class Hook(L.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            recorder(module, outputs)

    cli.trainer.callbacks.append(Hook())
    return recorder


def test_training_changes_trainable_parameters(synth_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    cli = fit_cli(synth_dir, tmp_path, "--trainer.max_steps", "3")
    before = {n: p.detach().clone() for n, p in cli.model.named_parameters() if p.requires_grad}
    cli.trainer.fit(cli.model, cli.datamodule)
    changed = [n for n, p in cli.model.named_parameters() if p.requires_grad and not torch.equal(p, before[n])]
    assert len(changed) == len(before), f"unchanged: {set(before) - set(changed)}"


def test_resume_from_checkpoint_gives_identical_losses(synth_dir, tmp_path, monkeypatch):
    """Two epochs straight vs one epoch, stop, resume from the epoch-1 checkpoint: same epoch-2 losses."""
    monkeypatch.chdir(ROOT)
    straight = fit_cli(synth_dir, tmp_path / "a")
    full = record_losses(straight)
    straight.trainer.fit(straight.model, straight.datamodule)

    first = fit_cli(synth_dir, tmp_path / "b", "--trainer.max_epochs", "1")
    first.trainer.fit(first.model, first.datamodule)
    checkpoint = first.trainer.checkpoint_callback.last_model_path
    assert Path(checkpoint).exists()

    resumed = fit_cli(synth_dir, tmp_path / "c")
    tail = record_losses(resumed)
    resumed.trainer.fit(resumed.model, resumed.datamodule, ckpt_path=checkpoint, weights_only=True)
    assert len(full.losses) == 2 * len(tail.losses) > 0
    assert full.losses[len(tail.losses):] == tail.losses


def test_wandb_config_runs_offline(synth_dir, tmp_path, monkeypatch):
    """The wandb logger config composes with an experiment and never needs the network."""
    monkeypatch.chdir(tmp_path)  # the config's relative save_dir lands here
    monkeypatch.setenv("WANDB_MODE", "offline")
    main(["fit", "--config", str(ROOT / "experiments/sft/synth.yaml"), "--config", str(ROOT / "experiments/base/wandb.yaml"),
          "--data.init_args.data_dir", str(synth_dir), "--runs_dir", str(tmp_path / "runs"),
          "--trainer.max_steps", "1", "--trainer.limit_val_batches", "0"])  # fast_dev_run would mute loggers
    assert list((tmp_path / "runs" / "sft" / "synth").rglob("*.wandb")), "no offline wandb run in the run's folder"
    assert (tmp_path / "runs" / "sft" / "synth" / "lightning_logs").is_dir(), "the CSV logger left the run's folder"
    assert not (tmp_path / "runs" / "csv").exists() and not (tmp_path / "runs" / "base").exists()


def test_test_run_writes_summary_with_every_config(synth_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("data:\n  init_args:\n    max_eval_samples: 2\n")
    config = str(ROOT / "experiments/sft/synth.yaml")
    main(["test", "--config", config, "--config", str(overlay), "--data.init_args.data_dir", str(synth_dir),
          "--runs_dir", str(tmp_path / "runs"), "--experiment", "t", "--trainer.logger", "false"])
    summary = json.loads((tmp_path / "runs" / "t" / "summary.json").read_text())
    assert summary["config"] == config and summary["configs"] == [config, str(overlay)]
    assert 0.0 <= summary["mIoU"] <= 1.0


def test_sigterm_mid_epoch_writes_a_checkpoint_and_exits_143(synth_dir, tmp_path, monkeypatch):
    """A scheduler's SIGTERM at step 2 of an epoch: last.ckpt holds step 2, and the exit status is 143, not 0."""
    import os
    import signal

    import lightning as L

    monkeypatch.chdir(ROOT)
    cli = fit_cli(synth_dir, tmp_path, "--trainer.max_steps", "6")

    class Preempt(L.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if trainer.global_step == 2:
                os.kill(os.getpid(), signal.SIGTERM)

    cli.trainer.callbacks.append(Preempt())
    with pytest.raises(SystemExit) as stopped:
        cli.trainer.fit(cli.model, cli.datamodule)
    assert stopped.value.code == 143
    checkpoint = torch.load(tmp_path / "runs" / "sft" / "synth" / "checkpoints" / "last.ckpt", map_location="cpu",
                            weights_only=True)
    assert checkpoint["global_step"] == 2


def test_a_run_stopped_mid_epoch_resumes_as_if_it_never_stopped(synth_dir, tmp_path, monkeypatch):
    """Two epochs straight vs SIGTERM at step 3 of the first, then ``--ckpt_path last.ckpt``: the resumed run trains on
    the rest of that epoch's batches (not the epoch again) and its losses are the straight run's from step 4 on."""
    import os
    import signal

    import lightning as L

    monkeypatch.chdir(ROOT)
    one = ("--data.init_args.batch_size", "1")  # enough batches in an epoch to stop inside one
    straight = fit_cli(synth_dir, tmp_path / "a", *one)
    full = record_losses(straight)
    straight.trainer.fit(straight.model, straight.datamodule)
    per_epoch = straight.trainer.num_training_batches
    assert per_epoch > 4 and len(full.losses) == 2 * per_epoch

    stopped = fit_cli(synth_dir, tmp_path / "b", *one)
    head = record_losses(stopped)

    class Preempt(L.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if trainer.global_step == 3:
                os.kill(os.getpid(), signal.SIGTERM)

    stopped.trainer.callbacks.append(Preempt())
    with pytest.raises(SystemExit):
        stopped.trainer.fit(stopped.model, stopped.datamodule)
    checkpoint = tmp_path / "b" / "runs" / "sft" / "synth" / "checkpoints" / "last.ckpt"
    assert head.losses == full.losses[:3]

    resumed = fit_cli(synth_dir, tmp_path / "c", *one)
    tail = record_losses(resumed)
    resumed.trainer.fit(resumed.model, resumed.datamodule, ckpt_path=str(checkpoint), weights_only=True)
    assert tail.losses == full.losses[3:]

"""Two CPU processes (gloo) through Lightning's own strategy: every test question is asked exactly once, the
records file holds every rank's questions, and the logged metrics equal one process's (slow: spawning processes)."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch

from groundlight.callbacks import RunSummary
from groundlight.cli import lightning_main

ROOT = Path(__file__).resolve().parents[2]


def _test_run(synth_dir: Path, out: Path, devices: int) -> tuple[dict, list[dict]]:
    torch.manual_seed(0)
    cli = lightning_main([
        "--config", "experiments/sft/synth.yaml", "--data.init_args.data_dir", str(synth_dir),
        "--data.init_args.tasks", "[mcq]", "--data.init_args.max_eval_samples", "7", "--data.init_args.cache_visual", "false",
        "--runs_dir", str(out / "cli"), "--trainer.logger", "false",
    ], run=False)
    trainer = L.Trainer(accelerator="cpu", devices=devices, strategy="ddp_spawn" if devices > 1 else "auto",
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        callbacks=[RunSummary(out, None)])
    results = trainer.test(cli.model, cli.datamodule)
    records = [json.loads(line) for line in (out / "test_records.jsonl").read_text().splitlines()]
    return results[0], records


@pytest.fixture(scope="module")
def runs(synth_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    previous = Path.cwd()
    import os

    os.chdir(ROOT)
    try:
        return _test_run(synth_dir, out / "one", devices=1), _test_run(synth_dir, out / "two", devices=2)
    finally:
        os.chdir(previous)


@pytest.mark.slow
def test_two_processes_ask_every_question_once_and_keep_every_record(runs):
    """7 questions on 2 ranks: the padding sampler asked one twice (8); the shard sampler asks 4 + 3."""
    (_, one), (_, two) = runs
    assert len(one) == 7 and sorted(r["sample_id"] for r in two) == sorted(r["sample_id"] for r in one)
    for score in one[0]["scores"]:
        assert sum(r["scores"][score] for r in two) == pytest.approx(sum(r["scores"][score] for r in one))


@pytest.mark.slow
def test_two_processes_log_the_one_process_metrics(runs):
    """ddp_spawn shares the module's tensors with its workers: metric states updated in place added up across
    ranks (parse_failed 14 for 7 questions) until each process reset its own."""
    (one, _), (two, _) = runs
    # under a strategy every rank logs its skipped-video count at every step (a synced log is a collective), zero too
    assert two.pop("test/skipped_videos") == 0.0 and "test/skipped_videos" not in one
    assert two == pytest.approx(one)


from groundlight.methods.sft import SFTModule  # noqa: E402


class _NonFiniteOnRankOne(SFTModule):
    """SFT whose loss on rank 1 at step 1 is NaN: that rank skips while rank 0 trains."""

    def loss(self, batch):
        loss, diagnostics = super().loss(batch)
        if self.global_rank == 1 and self.global_step == 1:
            return loss * float("nan"), diagnostics
        return loss, diagnostics


@pytest.mark.slow
def test_a_skip_on_one_rank_neither_hangs_nor_diverges_the_ranks(synth_dir, tmp_path, monkeypatch):
    """2 processes (gloo), 3 steps; rank 1 skips step 1 (a non-finite loss): the skip joins the all-reduce with a
    zero loss that replays its last batch, both ranks finish (a synced count logged by the skipping rank alone waited
    for the other rank forever), and the skip is counted once over the ranks."""
    monkeypatch.chdir(ROOT)
    torch.manual_seed(0)
    cli = lightning_main([
        "--config", "experiments/sft/synth.yaml", "--data.init_args.data_dir", str(synth_dir),
        "--data.init_args.batch_size", "2", "--runs_dir", str(tmp_path), "--trainer.logger", "false",
    ], run=False)
    model = cli.model
    model.__class__ = _NonFiniteOnRankOne
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn", max_steps=3, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, limit_val_batches=0)
    trainer.fit(model, cli.datamodule)  # a synced log made by the skipping rank alone used to hang here
    assert float(trainer.callback_metrics["train/skipped_batches"]) == 1.0
    assert torch.isfinite(trainer.callback_metrics["train/loss"])


class _StepLosses(L.Callback):
    """Every rank's training loss at every step, gathered on rank 0 into ``path`` (a JSON list of per-rank lists)."""

    def __init__(self, path: Path) -> None:
        self.path, self.losses = path, []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))

    def on_train_end(self, trainer, module):
        gathered = [self.losses]
        if trainer.world_size > 1:
            gathered = [None] * trainer.world_size
            torch.distributed.all_gather_object(gathered, self.losses)
        if trainer.is_global_zero:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(gathered))


def _fit_then_test(synth_dir: Path, out: Path, devices: int) -> tuple[list[float], dict, list[dict], dict]:
    """2 epochs of 2 steps on 8 MCQ questions (a global batch of 4: 4 on one process, 2 per rank on two), then
    the 7 test questions."""
    torch.manual_seed(0)
    cli = lightning_main([
        "--config", "experiments/sft/synth.yaml", "--data.init_args.data_dir", str(synth_dir),
        "--data.init_args.tasks", "[mcq]", "--data.init_args.train_limits", "{mcq: 8}",
        "--data.init_args.batch_size", str(4 // devices), "--data.init_args.max_eval_samples", "7",
        "--data.init_args.cache_visual", "false", "--runs_dir", str(out / "cli"), "--trainer.logger", "false",
    ], run=False)
    trainer = L.Trainer(accelerator="cpu", devices=devices, strategy="ddp_spawn" if devices > 1 else "auto",
                        max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        limit_val_batches=0, callbacks=[RunSummary(out, None), _StepLosses(out / "losses.json")])
    trainer.fit(cli.model, cli.datamodule)
    results = trainer.test(cli.model, cli.datamodule)
    ranks = json.loads((out / "losses.json").read_text())
    losses = [sum(step) / len(step) for step in zip(*ranks)]  # DDP averages the ranks' gradients, so their losses
    records = [json.loads(line) for line in (out / "test_records.jsonl").read_text().splitlines()]
    return losses, results[0], records, {k: v.detach().clone() for k, v in cli.model.state_dict().items()}


@pytest.mark.slow
def test_a_two_process_fit_and_test_equal_one_process(synth_dir, tmp_path, monkeypatch):
    """Same global batch (4 questions: 4 on one process, 2 on each of two ranks, every MCQ answer the same number of
    tokens, so the ranks' mean losses average to the one process's), 2 epochs: the step losses, the trained weights
    and the 7 test questions' metrics (7 does not divide by 2) equal the single process's. The second epoch checks
    that each rank's shard follows the epoch's order (Lightning's wrapper of a custom sampler kept epoch 0's)."""
    monkeypatch.chdir(ROOT)
    one = _fit_then_test(synth_dir, tmp_path / "one", devices=1)
    two = _fit_then_test(synth_dir, tmp_path / "two", devices=2)
    assert len(one[0]) == len(two[0]) == 4
    assert two[0] == pytest.approx(one[0], rel=1e-5)
    for name, weights in one[3].items():  # an update from another batch moves weights by ~lr = 3e-3; float
        # summation order moves them by < 1e-7, and by ~3e-6 a key bias, whose gradient is rounding noise (softmax
        # ignores a constant key shift) that Adam normalises into full steps
        torch.testing.assert_close(two[3][name], weights, rtol=0, atol=1e-5, msg=name)
    two[1].pop("test/skipped_videos", None)
    assert two[1] == pytest.approx(one[1])
    assert sorted(r["sample_id"] for r in two[2]) == sorted(r["sample_id"] for r in one[2]) and len(one[2]) == 7

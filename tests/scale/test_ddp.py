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

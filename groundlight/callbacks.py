"""Callbacks: atomic checkpoints, the run summary and the predictions file."""

from __future__ import annotations

import logging
import os
import signal
from collections import Counter
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from groundlight.io import write_json_atomic, write_jsonl_atomic


class AtomicModelCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that never leaves a half-written file: save to a temp name, then rename."""

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        temporary = f"{filepath}.tmp"
        trainer.save_checkpoint(temporary, self.save_weights_only)
        if trainer.is_global_zero:
            os.replace(temporary, filepath)
        trainer.strategy.barrier("atomic_checkpoint")
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        for logger in trainer.loggers:
            logger.after_save_checkpoint(self)


log = logging.getLogger(__name__)

SIGTERM_EXIT = 128 + signal.SIGTERM
"""The exit status of a run stopped by SIGTERM (143), as a shell reports a process it killed: never 0."""


class CheckpointOnSigterm(L.Callback):
    """A SIGTERM during fit (a scheduler's preemption, ``scancel``, ``kill``) writes ``last.ckpt`` where the run's
    checkpoints go, atomically, then the process exits 143 instead of Lightning's 0, so a scheduler never sees
    success. Resume with ``--ckpt_path <dir>/last.ckpt``.

    Lightning notices the signal between steps and raises :class:`SIGTERMException` (a ``SystemExit`` without a
    status); this callback saves on it and gives the exception its status.
    """

    filename = "last.ckpt"

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException) or not trainer.training:
            return
        checkpoints = trainer.checkpoint_callback
        directory = Path(checkpoints.dirpath) if checkpoints is not None and checkpoints.dirpath else \
            Path(trainer.default_root_dir) / "checkpoints"
        path = directory / self.filename
        temporary = f"{path}.tmp"
        trainer.save_checkpoint(temporary)
        if trainer.is_global_zero:
            os.replace(temporary, path)
            log.warning("SIGTERM at step %d: checkpoint written to %s; exiting %d", trainer.global_step, path,
                        SIGTERM_EXIT)
        exception.code = SIGTERM_EXIT


class RunSummary(L.Callback):
    """Writes ``<run_dir>/summary.json``: the flat final ``test/*`` metrics, the config paths and ``skipped``, the
    test samples dropped by kind (``data_modules.faults.Fault`` names: the module's skipped videos, summed over
    ranks, and the datamodule's skipped annotation records); and ``<run_dir>/test_records.jsonl``: one prediction
    record per test question with its scores (the input of the science reports' confidence intervals).

    ``config`` is the first ``--config`` (the experiment), ``configs`` all of them in order (overlays after it).
    """

    def __init__(self, run_dir: str | Path, config_paths: list[str] | str | None) -> None:
        paths = [config_paths] if isinstance(config_paths, str) else list(config_paths or [])
        self.run_dir, self.config_paths = Path(run_dir), paths

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        records = list(getattr(pl_module, "test_records", []))
        if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list = [None] * trainer.world_size  # every rank's questions (each asked on one rank only)
            torch.distributed.all_gather_object(gathered, records)
            records = [record for rank in gathered for record in rank]
        if not trainer.is_global_zero:
            return
        metrics = {k.removeprefix("test/"): float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
        config = self.config_paths[0] if self.config_paths else None
        write_jsonl_atomic(self.run_dir / "test_records.jsonl", records)
        write_json_atomic(self.run_dir / "summary.json", {**metrics, "skipped": self._skipped(trainer, pl_module),
                                                          "config": config, "configs": self.config_paths})

    @staticmethod
    def _skipped(trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, int]:
        skipped = Counter(getattr(pl_module, "test_skipped", {}))
        skipped.update(getattr(trainer.datamodule, "skipped_annotations", lambda stage: {})("test"))
        return dict(sorted(skipped.items()))


class JsonlPredictionWriter(BasePredictionWriter):
    """Writes every prediction record of a ``predict`` run to ``path`` (one JSON per line)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(write_interval="epoch")
        self.path = Path(path)

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices) -> None:  # noqa: ANN001
        rows = [record for batch in predictions for record in batch]
        path = self.path
        if trainer.world_size > 1:
            path = path.with_name(f"{path.stem}.rank{trainer.global_rank}{path.suffix}")
        write_jsonl_atomic(path, rows)

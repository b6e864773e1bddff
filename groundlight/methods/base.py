"""The shared LightningModule: optimisation, guarded training steps, batched generation and scoring."""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

import lightning as L
import torch

from data_modules.faults import Fault
from groundlight.backbones.base import VideoBackbone
from groundlight.losses import answer_window
from groundlight.metrics.tasks import TaskMetrics, parse_prediction, prediction_record

log = logging.getLogger(__name__)


@dataclass
class OptimizerConfig:
    """AdamW with linear warmup, then cosine/linear decay or a constant rate (per optimizer step)."""

    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    min_lr_ratio: float = 0.0

    def factor(self, step: int, total: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.schedule == "constant" or total <= self.warmup_steps:
            return 1.0
        progress = min(1.0, (step - self.warmup_steps) / (total - self.warmup_steps))
        decay = 0.5 * (1 + math.cos(math.pi * progress)) if self.schedule == "cosine" else 1 - progress
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * decay


class GroundingModule(L.LightningModule):
    """Base of every method: subclasses define :meth:`loss` only.

    Validation and test generate greedily in batches, parse with the one parser and
    update one metric instance per stage, logged as ``stage/name``.
    """

    def __init__(self, backbone: VideoBackbone, optimizer: OptimizerConfig = OptimizerConfig(), max_new_tokens: int = 32) -> None:  # noqa: B008
        super().__init__()
        self.backbone, self.optimizer_config, self.max_new_tokens = backbone, optimizer, max_new_tokens
        self.stage_metrics = torch.nn.ModuleDict({"val": TaskMetrics(), "test": TaskMetrics()})
        self.skipped_batches = 0
        self.test_records: list[dict[str, Any]] = []  # per question, with its scores: the science reports' input
        self.test_skipped: Counter[str] = Counter()  # skipped test videos by fault kind, summed over ranks at the end
        self._replay: dict[str, Any] | None = None  # distributed: the last batch that trained, for a skip's forward

    def loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def answer_forward(self, batch: dict[str, Any], **kwargs: Any) -> tuple[Any, torch.Tensor | None]:
        """The backbone's teacher-forced output with logits only where they predict an answer token (HF's
        ``logits_to_keep``, :func:`~groundlight.losses.answer_window`), and the labels cut to match: the loss is the
        full sequence's, since no other position has a label. Float logits over every position were a real-size
        step's largest activation (7.5 of 10.7 GiB at 5k tokens on the 7B shape, by ``groundlight estimate``)."""
        if "labels" not in batch:  # a prompt-only batch: every position's logits, no labels
            return self.backbone(batch, **kwargs), None
        keep = answer_window(batch["labels"])
        return self.backbone(batch, logits_to_keep=keep, **kwargs), batch["labels"][:, -keep:]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        self._log_skipped_videos(batch, "train")
        if not batch["samples"]:
            self._log_skipped_batches()
            return self._skip()
        loss, diagnostics = self.loss(batch)
        size = len(batch["samples"])
        if not torch.isfinite(loss):
            self.skipped_batches += 1
            ids = [s.sample_id for s in batch["samples"]]
            log.warning("non-finite loss %s (diagnostics %s); skipping batch of %s", loss.item(), diagnostics, ids)
            self._log_skipped_batches()
            return self._skip()
        self._log_skipped_batches()
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        for name, value in diagnostics.items():
            self.log(f"train/{name}", value.float() if torch.is_tensor(value) else value, batch_size=size)
        if self._distributed:
            self._replay = batch
        return loss

    def _log_skipped_batches(self) -> None:
        """The running count of skipped batches, summed over ranks. Logged at every step on every rank, skipped or
        not: a synced log is a collective, and one made by the skipping rank alone would wait for the others forever."""
        if self.skipped_batches or self._distributed:
            self.log("train/skipped_batches", float(self.skipped_batches), batch_size=1, sync_dist=self._distributed,
                     reduce_fx="sum")

    @property
    def _distributed(self) -> bool:
        return self._trainer is not None and self.trainer.world_size > 1

    def _skip(self) -> torch.Tensor | None:
        """What a skipped batch returns. Alone, ``None``: Lightning skips the optimizer step. Under a distributed
        strategy every rank must join the gradient all-reduce, which ``None`` would leave hanging (Lightning refuses
        it): a zero loss over every trainable parameter, so this rank adds zero gradients to the others' average.
        That loss also replays the rank's last batch that trained, times zero, when it has one: the rank then runs
        the same modules as the others, vision tower included, so a sharded strategy (FSDP, ZeRO-3) that gathers
        parameters as modules run does not wait on a rank whose batch held no video."""
        if not self._distributed:
            return None
        zero = sum((p.sum() for p in self.parameters() if p.requires_grad), torch.zeros((), device=self.device)) * 0.0
        if self._replay is None:
            return zero
        replayed, _ = self.loss(self._replay)
        # a non-finite replay would send NaN gradients (0 · NaN) into the all-reduce: then the plain zero
        return zero + replayed * 0.0 if torch.isfinite(replayed) else zero

    def generate_texts(self, batch: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
        """The generation hook: greedy answers for a prompt batch, and per sample any fields the method adds
        to its prediction record. A method that generates differently overrides this, nothing else."""
        texts = self.backbone.generate(batch, self.max_new_tokens)
        return texts, [{} for _ in texts]

    def generate_records(self, batch: dict[str, Any]) -> tuple[list[dict[str, Any]], list[Any]]:
        """One prediction record and one parsed answer per sample of a prompt batch."""
        if not batch["samples"]:
            return [], []
        texts, extras = self.generate_texts(batch)
        parsed = [parse_prediction(s, t) for s, t in zip(batch["samples"], texts)]
        records = [prediction_record(s, t, p) | extra for s, t, p, extra in zip(batch["samples"], texts, parsed, extras)]
        return records, parsed

    def _evaluate(self, batch: dict[str, Any], stage: str) -> None:
        self._log_skipped_videos(batch, stage)
        records, parsed = self.generate_records(batch)
        metrics = self.stage_metrics[stage]
        metrics.update(batch["samples"], parsed)
        if stage == "test":
            self.test_skipped.update(batch.get("skipped_faults", {}))
            self.test_records += [record | {"scores": metrics.question_scores(sample, answer)}
                                  for record, sample, answer in zip(records, batch["samples"], parsed)]

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        return self.generate_records(batch)[0]

    def setup(self, stage: str) -> None:
        """Fresh metric states in every process: ``ddp_spawn`` hands the module to its workers through shared
        memory, so in-place updates of inherited state tensors would add up across ranks (7 questions on 2 ranks
        counted 14); ``reset`` gives each process tensors of its own."""
        for metrics in self.stage_metrics.values():
            metrics.reset()

    def on_test_epoch_start(self) -> None:
        self.test_records, self.test_skipped = [], Counter()

    def on_validation_epoch_end(self) -> None:
        self._log_stage("val")

    def on_test_epoch_end(self) -> None:
        self.test_skipped = self._summed_over_ranks(self.test_skipped)
        self._log_stage("test")

    def _summed_over_ranks(self, counts: Counter[str]) -> Counter[str]:
        """Per-kind counts summed over the ranks: one all-reduce of a vector in :class:`Fault` order, which every
        rank joins (a rank that skipped nothing sends zeros)."""
        kinds = [str(kind) for kind in Fault]
        vector = torch.tensor([float(counts.get(kind, 0)) for kind in kinds], device=self.device)
        if self._distributed:
            vector = self.trainer.strategy.reduce(vector, reduce_op="sum")
        return Counter({kind: int(n) for kind, n in zip(kinds, vector.tolist()) if n})

    def _log_stage(self, stage: str) -> None:
        metrics = self.stage_metrics[stage]
        values = metrics.compute()
        self.log_dict({f"{stage}/{k}": v.float() for k, v in values.items()}, prog_bar=stage == "val")
        metrics.reset()

    def _log_skipped_videos(self, batch: dict[str, Any], stage: str) -> None:
        """Unreadable videos dropped from the batch, summed over the epoch and, under a distributed strategy, over
        the ranks: then every rank logs at every step (zero included), so the epoch-end sync is one every rank joins."""
        if batch.get("skipped_videos") or self._distributed:
            self.log(f"{stage}/skipped_videos", float(batch.get("skipped_videos", 0)), reduce_fx="sum",
                     batch_size=1, on_step=False, on_epoch=True, sync_dist=self._distributed)

    def configure_optimizers(self) -> dict[str, Any]:
        config = self.optimizer_config
        params = [p for p in self.parameters() if p.requires_grad]
        if not params:
            raise ValueError("no trainable parameters: check `lora` / `freeze_vision` in the backbone config")
        optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, betas=config.betas)
        total = int(self.trainer.estimated_stepping_batches)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: config.factor(step, total))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

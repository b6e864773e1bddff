"""SF2T: self-supervised fragment fine-tuning (Liu et al., CVPR 2025, arXiv 2504.07745).

SF2T fine-tunes a video-LLM with the plain answer cross-entropy on five fragment tasks whose answers come from
the video itself (counting, consistency, localization, disorder, rearrangement; ``data_modules/tasks/fragments.py``),
drawn by motion-salient sampling (``FragmentOptions.strategy``). The paper states no new loss: what is particular
to the method is its data (``GroundingDataModule``'s ``fragments`` task, mixed with other samples by
``fragments.ratio``) and its order (SF2T, then SFT from its checkpoint). So this module adds only:

- each task's answer loss as a diagnostic (``train/loss_<task>``, e.g. ``train/loss_rearrangement``), so the logs
  show which fragment task is learnt and which stays at chance;
- ``init_from``: a stage's start from the previous stage's weights (the SFT stage after SF2T), optimizer fresh.

Configs: ``experiments/sf2t/synth.yaml`` (embedded benchmark; its SFT comparison is ``synth_sft.yaml``),
``synth_then_sft.yaml`` (the SFT stage after it), ``synth_mixed.yaml`` (fragments as half of each SFT epoch),
``real.yaml`` (Something-Something V2 fragments, LoRA r16, GPU); ``groundlight recipe sf2t-synth`` runs the science.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from groundlight.backbones.base import VideoBackbone
from groundlight.methods.base import GroundingModule, OptimizerConfig
from groundlight.ops import IGNORE_INDEX

log = logging.getLogger(__name__)


def task_name(task: str) -> str:
    """The diagnostic's name of a task: ``fragment_counting`` → ``loss_counting``, ``mcq`` → ``loss_mcq``."""
    return "loss_" + task.removeprefix("fragment_")


def per_task_answer_loss(logits: torch.Tensor, labels: torch.Tensor,
                         tasks: Sequence[str]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The answer cross-entropy over the batch, and each task's own mean over its answer tokens.

    Args:
        logits: ``(B, L, V)``.
        labels: ``(B, L)`` token ids, ``-100`` outside the answer.
        tasks: each row's task.

    Returns:
        The loss (mean next-token cross-entropy over every answer token, as ``answer_cross_entropy``;
        NaN without answer tokens, for the caller to guard) and ``{"answer_tokens": count,
        "loss_<task>": mean}`` (detached) for each task in the batch.
    """
    shifted = labels[:, 1:]
    tokens = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), shifted.reshape(-1),
                             ignore_index=IGNORE_INDEX, reduction="none").view(shifted.shape)
    row_sums, row_counts = tokens.sum(1), (shifted != IGNORE_INDEX).sum(1)
    diagnostics = {"answer_tokens": row_counts.sum()}
    for task in dict.fromkeys(tasks):
        rows = torch.tensor([t == task for t in tasks], device=labels.device)
        diagnostics[task_name(task)] = (row_sums[rows].sum() / row_counts[rows].sum()).detach()
    return row_sums.sum() / row_counts.sum(), diagnostics


class SF2TModule(GroundingModule):
    """SF2T on the shared base: answer cross-entropy on fragment (and mixed-in) questions, logged per task.

    Args:
        backbone: any backbone (the fragment sets reach it as one video with presentation times).
        init_from: a previous stage's checkpoint (e.g. SF2T's, for the SFT stage after it); its weights are loaded
            strictly, nothing else.
        optimizer / max_new_tokens: as the base.
    """

    def __init__(self, backbone: VideoBackbone, init_from: str | None = None,
                 optimizer: OptimizerConfig = OptimizerConfig(), max_new_tokens: int = 32) -> None:  # noqa: B008
        super().__init__(backbone, optimizer, max_new_tokens)
        if init_from is not None:
            state = torch.load(init_from, map_location="cpu", weights_only=True)
            self.load_state_dict(state.get("state_dict", state), strict=True)
            log.info("SF2T: initialised from %s", init_from)

    def loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        output, labels = self.answer_forward(batch)
        return per_task_answer_loss(output.logits, labels, [sample.task for sample in batch["samples"]])

"""GroundVTS: query-guided visual token sampling inside the video-LLM.

Paper: "GroundVTS: Grounded Visual Token Sampling for Video Temporal Grounding"
(Sec. 3.3, Eq. 2-7; progressive training Sec. 3.4 / Table 13). The VTS module
(:mod:`.vts`) scores the projected visual tokens against the query and keeps
``ceil(rho * N_v)``; the backbone runs the LLM on the kept tokens only, with their
original MRoPE ids (``forward_kept`` / ``generate_kept``).

Configs: ``experiments/groundvts/synth_stage{1,2,3}.yaml`` (the progressive chain on the
embedded benchmark, ``make groundvts-synth``), ``synth_{frame,random,uniform,no_pe}.yaml``
(Table 5 baselines at a matched budget), ``experiments/base/groundvts_qwen7b.yaml``
(the real-data overlay, ``make groundvts-qwen``).
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import torch

from groundlight.backbones.base import VideoBackbone
from groundlight.losses import answer_cross_entropy
from groundlight.methods.base import GroundingModule, OptimizerConfig
from groundlight.methods.groundvts.vts import VisualTokenSampler, VTSConfig, VTSOutput

log = logging.getLogger(__name__)
TRAINABLE_GROUPS = ("vts", "projector", "lora", "llm", "all")


class GroundVTSModule(GroundingModule):
    """GroundVTS on the shared base: VTS → kept tokens → answer cross-entropy.

    Args:
        backbone: any backbone implementing the token-keep hooks.
        vts: the VTS module's options (rho, D_r, temperatures, selection, strategy, ...).
        keep_mode: ``gather`` (the sequence shrinks) or ``mask`` (dropped tokens masked out).
        positions: ``original`` MRoPE ids, or ``contiguous`` (the paper's no-PE ablation).
        trainable: the stage's trainable groups: ``vts``, ``projector``, ``lora``, ``llm`` (every
            language-model weight: full fine-tuning), or ``all``. Stage 1 is ``[vts]``; stages 2-3
            are ``[vts, projector, lora]`` (paper); the random-init synth chain uses ``llm``
            instead of ``lora``: there are no pretrained weights for adapters to build on.
        init_from: a previous stage's checkpoint; its weights are loaded (strictly), nothing else.
        optimizer / max_new_tokens: as the base.
    """

    def __init__(
        self,
        backbone: VideoBackbone,
        vts: VTSConfig = VTSConfig(),  # noqa: B008
        keep_mode: Literal["gather", "mask"] = "gather",
        positions: Literal["original", "contiguous"] = "original",
        trainable: list[str] = ["vts", "projector", "lora"],  # noqa: B006 (jsonargparse reads the default)
        init_from: str | None = None,
        optimizer: OptimizerConfig = OptimizerConfig(),  # noqa: B008
        max_new_tokens: int = 32,
    ) -> None:
        super().__init__(backbone, optimizer, max_new_tokens)
        if keep_mode not in ("gather", "mask") or positions not in ("original", "contiguous"):
            raise ValueError(f"keep_mode must be gather|mask and positions original|contiguous, got {keep_mode!r}, {positions!r}")
        self.vts = VisualTokenSampler(backbone.embedding_dim, vts)
        self.keep_mode, self.positions = keep_mode, positions
        if init_from is not None:
            self.load_stage(init_from)
        self.set_trainable(list(trainable))

    def load_stage(self, path: str) -> None:
        """Weights of a previous stage (same architecture, LoRA included); optimizer and loops start fresh."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.load_state_dict(state.get("state_dict", state), strict=True)
        log.info("GroundVTS: initialised from %s", path)

    def set_trainable(self, groups: list[str]) -> None:
        unknown = set(groups) - set(TRAINABLE_GROUPS)
        if unknown or not groups:
            raise ValueError(f"trainable groups must be a non-empty subset of {TRAINABLE_GROUPS}, got {groups}")
        for param in self.parameters():
            param.requires_grad_("all" in groups)
        chosen = list(self.vts.parameters()) if "vts" in groups else []
        if "projector" in groups:
            chosen += self.backbone.projector_parameters()
        if "lora" in groups:
            lora = [p for n, p in self.backbone.named_parameters() if "lora_" in n]
            if not lora:
                raise ValueError("trainable group `lora` but the backbone has no LoRA adapters: set backbone.lora")
            chosen += lora
        if "llm" in groups:
            chosen += self.backbone.language_model_parameters()
        for param in chosen:
            param.requires_grad_(True)

    def sample_tokens(self, batch: dict[str, Any]) -> VTSOutput:
        embeds = self.backbone.embed_inputs(batch)
        visual = self.backbone.visual_mask(batch)
        return self.vts(embeds, visual, batch["query_mask"], batch["attention_mask"], batch["frame_index"])

    def loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        sampled = self.sample_tokens(batch)
        out = self.backbone.forward_kept(batch, sampled.embeds, sampled.keep, self.keep_mode, self.positions)
        loss, diagnostics = answer_cross_entropy(out.logits, out.labels)
        return loss, {**diagnostics, "kept_fraction": sampled.kept_fraction}

    def generate_texts(self, batch: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
        """Greedy answers over the kept tokens, each record with its kept-token density (for ``analyze vts``)."""
        sampled = self.sample_tokens(batch)
        texts = self.backbone.generate_kept(
            batch, sampled.embeds, sampled.keep, self.max_new_tokens, self.keep_mode, self.positions
        )
        return texts, [kept_density(batch, sampled, row) for row in range(len(texts))]


def kept_density(batch: dict[str, Any], sampled: VTSOutput, row: int) -> dict[str, list]:
    """Per temporal token group: its time (s), its visual tokens, how many were kept, its mean relevance."""
    visual = batch["frame_index"][row] >= 0
    seconds = batch["frame_seconds"][row].to(visual.device)
    kept = sampled.keep[row][visual]
    relevance = sampled.relevance[row][visual]
    times, counts = torch.unique_consecutive(seconds, return_counts=True)
    group = torch.repeat_interleave(torch.arange(len(times), device=visual.device), counts)
    kept_per_group = torch.zeros(len(times), device=visual.device).scatter_add(0, group, kept.float())
    relevance_per_group = torch.zeros(len(times), device=visual.device).scatter_add(0, group, relevance.float())
    return {
        "vts_seconds": [round(float(t), 3) for t in times],
        "vts_tokens": counts.tolist(),
        "vts_kept": [int(k) for k in kept_per_group],
        "vts_relevance": [round(float(r), 6) for r in relevance_per_group / counts],
    }

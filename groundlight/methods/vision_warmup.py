"""Vision warm-up: train a random-init vision tower to see objects before the language model learns to ask about them.

Real video-LLMs start from a pretrained vision encoder; a tiny model built from nothing does not have one, and
measured here (``groundlight recipe tiny-probe``) its language model then never learns even whether a clip is
empty. This stage gives the tower that start on the synthetic stream, whose clips know what is on screen in
every frame (:class:`data_modules.stream.VisionStream`).

Multiple-instance learning on the backbone's own visual tokens, as the language model will receive them
(``embed_inputs``): a linear head scores every token for every object kind; a *bag* is the tokens that show one
sampled frame group (equal ``frame_index``), and its score for a kind is its best token's. The bag's label is
whether that kind is on screen in any frame the group covers (from its first frame up to the next group's).
Binary cross-entropy over bags and kinds. Only the vision tower, its projector and the head train; the head is
dropped afterwards.

Head ``linear``: a free linear layer. Head ``words``: each kind's score is the scaled cosine between a token and
the mean input embedding of the kind's name tokens ("red circle"), with a learnt scale and per-kind bias; the
embeddings do not train here. That pulls each visual token towards the words that name what it shows, the space the
language model reads its questions in, as a projector's alignment stage does for a pretrained language model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F

from groundlight.backbones.base import VideoBackbone
from groundlight.methods.base import OptimizerConfig


def bag_targets(frame_index: torch.Tensor, objects: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Bag ids of the visual positions and each bag's labels.

    Args:
        frame_index: ``(B, L)``, the first frame each position shows, ``-1`` where non-visual.
        objects: per row, ``(T, K)`` bool: kinds on screen in each sampled frame.

    Returns:
        ``(B, L)`` long bag id (``-1`` where non-visual) and ``(num_bags, K)`` float labels.
    """
    bags = torch.full_like(frame_index, -1)
    labels = []
    for row, shown in enumerate(objects):
        firsts = frame_index[row][frame_index[row] >= 0].unique(sorted=True).tolist()
        for at, first in enumerate(firsts):
            last = firsts[at + 1] if at + 1 < len(firsts) else len(shown)
            bags[row][frame_index[row] == first] = len(labels)
            labels.append(shown[first:last].any(dim=0))
    return bags, torch.stack(labels).float()


def bag_logits(token_logits: torch.Tensor, bags: torch.Tensor, num_bags: int) -> torch.Tensor:
    """``(num_bags, K)``: each bag's best token score per kind, from ``(B, L, K)`` scores and ``(B, L)`` bag ids."""
    visual = bags >= 0
    scores, ids = token_logits[visual], bags[visual]
    best = scores.new_full((num_bags, scores.shape[-1]), float("-inf"))
    return best.scatter_reduce(0, ids[:, None].expand_as(scores), scores, reduce="amax")


class VisionWarmupModule(L.LightningModule):
    """The MIL head over a backbone's visual tokens, and what trains (see the module docstring).

    Args:
        backbone: any family (its ``embed_inputs``, ``frame_index`` and input embeddings are all this uses).
        kinds: the object kinds' names, in the order of the labels' columns.
        optimizer: AdamW settings and schedule.
        head: ``linear`` or ``words`` (see the module docstring).
    """

    def __init__(self, backbone: VideoBackbone, kinds: Sequence[str], optimizer: OptimizerConfig = OptimizerConfig(),  # noqa: B008
                 head: Literal["linear", "words"] = "linear") -> None:
        super().__init__()
        if head not in ("linear", "words"):
            raise ValueError(f"vision warm-up head: linear or words, got {head!r}")
        self.backbone, self.optimizer_config, self.kind_head = backbone, optimizer, head
        self.losses: list[float] = []
        if head == "linear":
            self.head = torch.nn.Linear(backbone.embedding_dim, len(kinds))
            return
        tokenizer = backbone.processor.tokenizer
        names = [tokenizer.encode(" " + name, add_special_tokens=False) for name in kinds]
        width = max(len(ids) for ids in names)
        self.register_buffer("name_ids", torch.tensor([ids + [ids[0]] * (width - len(ids)) for ids in names]), persistent=False)
        self.register_buffer("name_mask", torch.tensor([[1.0] * len(ids) + [0.0] * (width - len(ids)) for ids in names]),
                             persistent=False)
        self.head = torch.nn.ParameterDict({"scale": torch.nn.Parameter(torch.tensor(10.0)),
                                            "bias": torch.nn.Parameter(torch.zeros(len(kinds)))})

    def kind_logits(self, embeds: torch.Tensor) -> torch.Tensor:
        """``(B, L, K)`` every token's score for every kind."""
        if self.kind_head == "linear":
            return self.head(embeds)
        table = self.backbone.input_embeddings().weight.detach()
        words = (table[self.name_ids] * self.name_mask.unsqueeze(-1).to(table.dtype)).sum(1) / self.name_mask.sum(1, keepdim=True)
        cosine = F.normalize(embeds.float(), dim=-1) @ F.normalize(words.float(), dim=-1).t()
        return self.head["scale"] * cosine + self.head["bias"]

    def loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        embeds = self.backbone.embed_inputs(batch)
        bags, labels = bag_targets(self.backbone.frame_index(batch), batch["objects"])
        logits = bag_logits(self.kind_logits(embeds), bags, len(labels))
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        exact = ((logits > 0) == labels.bool()).all(dim=-1).float().mean()
        return loss, {"bag_exact": exact.detach()}

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss, logs = self.loss(batch)
        self.log_dict({"vision/loss": loss.detach(), **{f"vision/{k}": v for k, v in logs.items()}},
                      batch_size=len(batch["objects"]))
        self.losses.append(float(loss.detach()))
        return loss

    def trainable(self) -> list[torch.nn.Parameter]:
        """The vision tower, its projector (when separate) and the head."""
        tower = list(self.backbone.vision_encoder().parameters())
        known = {id(p) for p in tower}
        extra = [p for p in self.backbone.projector_parameters() if id(p) not in known]
        return tower + extra + list(self.head.parameters())

    def configure_optimizers(self) -> dict[str, Any]:
        config = self.optimizer_config
        adam = torch.optim.AdamW(self.trainable(), lr=config.lr, weight_decay=config.weight_decay, betas=config.betas)
        total = int(self.trainer.estimated_stepping_batches)
        schedule = torch.optim.lr_scheduler.LambdaLR(adam, lambda step: config.factor(step, total))
        return {"optimizer": adam, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def warm_up_vision(backbone: VideoBackbone, loader: Any, steps: int, optimizer: OptimizerConfig,
                   kinds: Sequence[str], head: Literal["linear", "words"] = "linear") -> list[float]:
    """``steps`` steps of :class:`VisionWarmupModule` on ``loader``'s batches (``collate_vision``), through a
    Lightning ``Trainer``; the loss of every step. ``backbone``'s tower and projector keep what they learn."""
    module = VisionWarmupModule(backbone, kinds, optimizer, head)
    trainer = L.Trainer(accelerator="auto", devices=1, max_steps=steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, loader)
    return module.losses

"""The small interface every video-LLM family implements.

Methods talk to a backbone only through this interface: they never import a model
family's class. A backbone owns its processor (frames → pixels, prompt → tokens),
knows which sequence positions are visual and which frame each one shows, and runs
forward passes and batched generation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass
class LoraOptions:
    """LoRA on the language model's attention projections only.

    Attributes:
        r: rank.
        alpha: scaling numerator (``lora_alpha``).
        dropout: dropout on the LoRA input.
        target_modules: regex over module names; the default keeps the vision tower untouched.
        extra_trainable: name substrings of non-LoRA modules to keep trainable (e.g. ``"merger"``).
    """

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)"
    extra_trainable: tuple[str, ...] = ()


@dataclass
class VisualInput:
    """One video after the backbone's preprocessing, ready to be collated.

    Attributes:
        pixel_values: flattened patches, family-specific layout.
        grid_thw: ``(t, h, w)`` patch grid of the video.
        num_tokens: visual tokens the LLM sees for this video.
        token_frame: ``(num_tokens,)`` index of the (first) sampled frame each token shows.
        timestamps: ``(T,)`` seconds of the sampled frames.
        seconds_per_step: seconds between consecutive temporal token groups.
    """

    pixel_values: torch.Tensor
    grid_thw: tuple[int, int, int]
    num_tokens: int
    token_frame: torch.Tensor
    timestamps: torch.Tensor
    seconds_per_step: float


@dataclass
class KeptOutput:
    """A forward pass over the kept tokens only (see :meth:`VideoBackbone.forward_kept`).

    Attributes:
        logits: ``(B, K, V)`` over the kept (gathered) sequence.
        labels: ``(B, K)`` labels aligned with ``logits``, ``-100`` off the answer; ``None`` without labels.
        attention_mask: ``(B, K)`` the mask the LLM saw.
        index: ``(B, K)`` original sequence position of each column, ``-1`` for padding.
        position_ids: the position ids the LLM saw (family layout; Qwen: ``(3, B, K)``).
    """

    logits: torch.Tensor
    labels: torch.Tensor | None
    attention_mask: torch.Tensor
    index: torch.Tensor
    position_ids: torch.Tensor


class VideoProcessor(ABC):
    """Picklable preprocessing half of a backbone; DataLoader workers run it."""

    @abstractmethod
    def prepare_video(self, frames: torch.Tensor, timestamps: torch.Tensor) -> VisualInput:
        """Frames ``(T, H, W, 3)`` uint8 → :class:`VisualInput`."""

    @abstractmethod
    def collate(self, items: list[dict[str, Any]], with_answer: bool, with_pixels: bool = True) -> dict[str, Any]:
        """Batch prepared items (``visual``, ``prompt``, ``answer``) into model inputs.

        The batch always holds ``frame_index`` ``(B, L)``: the frame each position shows,
        ``-1`` for non-visual positions. With ``with_answer`` it holds ``labels`` with
        ``-100`` everywhere but the answer tokens; without, prompts are left-padded for
        generation. Without ``with_pixels`` the pixel tensors are left out (not copied):
        for a second prompt over videos whose pixels another batch already holds.
        """

    @abstractmethod
    def decode(self, token_ids: torch.Tensor) -> list[str]:
        """Generated ids ``(B, N)`` → answer strings."""


class VideoBackbone(nn.Module, ABC):
    """A video-LLM behind the methods' interface."""

    processor: VideoProcessor

    @abstractmethod
    def forward(self, batch: dict[str, Any], **kwargs: Any) -> Any:
        """Teacher-forced forward pass; returns the HF output with ``logits``."""

    @abstractmethod
    def generate(self, batch: dict[str, Any], max_new_tokens: int) -> list[str]:
        """Batched greedy generation from a left-padded prompt batch."""

    @staticmethod
    def visual_mask(batch: dict[str, Any]) -> torch.Tensor:
        """``(B, L)`` bool: positions that hold visual tokens."""
        return batch["frame_index"] >= 0

    @staticmethod
    def frame_index(batch: dict[str, Any]) -> torch.Tensor:
        """``(B, L)`` frame shown at each position, ``-1`` where non-visual."""
        return batch["frame_index"]

    # Token keeping (query-guided visual token sampling). Optional: a family that does not
    # implement them cannot run GroundVTS-style methods, and says so.
    @property
    def embedding_dim(self) -> int:
        """Width of the LLM's input embeddings."""
        raise NotImplementedError(f"{type(self).__name__} does not implement token keeping")

    def projector_parameters(self) -> list[nn.Parameter]:
        """The multimodal projector's parameters (vision features → LLM embeddings)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement token keeping")

    def language_model_parameters(self) -> list[nn.Parameter]:
        """The LLM's own parameters (embeddings, decoder, LM head, LoRA adapters): not the vision encoder or projector."""
        raise NotImplementedError(f"{type(self).__name__} does not implement token keeping")

    def embed_inputs(self, batch: dict[str, Any]) -> torch.Tensor:
        """``(B, L, D)`` LLM input embeddings with the projected visual features in the visual slots."""
        raise NotImplementedError(f"{type(self).__name__} does not implement token keeping")

    def forward_kept(self, batch: dict[str, Any], embeds: torch.Tensor, keep: torch.Tensor,
                     mode: str = "gather", positions: str = "original") -> KeptOutput:
        """Teacher-forced pass over ``embeds`` where ``keep`` ``(B, L)`` is true.

        Kept tokens keep their full-sequence position ids (``positions="contiguous"``
        renumbers them as if there were no gaps). ``mode="gather"`` shrinks the sequence;
        ``"mask"`` keeps it and masks the dropped tokens out of attention.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement token keeping")

    def generate_kept(self, batch: dict[str, Any], embeds: torch.Tensor, keep: torch.Tensor, max_new_tokens: int,
                      mode: str = "gather", positions: str = "original", use_cache: bool = True) -> list[str]:
        """Greedy generation over the kept tokens; dropped tokens are never attended, cache or not."""
        raise NotImplementedError(f"{type(self).__name__} does not implement token keeping")

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

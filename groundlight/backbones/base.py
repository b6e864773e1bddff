"""The small interface every video-LLM family implements.

Methods talk to a backbone only through this interface: they never import a model
family's class or reach for its HF modules. A backbone owns its processor (frames →
pixels, prompt → tokens), knows which sequence positions are visual and which frame each
one shows, runs forward passes and batched generation, hands out its decoder layers (for
attention probes), replays a batch's visual features for a second prompt over the same
videos, and runs the LLM on a subset of kept tokens. ``tests/backbones/test_contract.py``
holds every registered family to it.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
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

    Families subclass it for what only they need (Qwen: the patch grid and seconds per grid).

    Attributes:
        pixel_values: the video's pixel tensor, family-specific layout.
        num_tokens: visual tokens the LLM sees for this video.
        token_frame: ``(num_tokens,)`` index of the (first) sampled frame each token shows.
        timestamps: ``(T,)`` seconds of the sampled frames.
    """

    pixel_values: torch.Tensor
    num_tokens: int
    token_frame: torch.Tensor
    timestamps: torch.Tensor


@dataclass
class KeptOutput:
    """A forward pass over the kept tokens only (see :meth:`VideoBackbone.forward_kept`).

    Attributes:
        logits: ``(B, K, V)`` over the kept (gathered) sequence.
        labels: ``(B, K)`` labels aligned with ``logits``, ``IGNORE_INDEX`` off the answer; ``None`` without labels.
        attention_mask: ``(B, K)`` the mask the LLM saw.
        index: ``(B, K)`` original sequence position of each column, ``-1`` for padding.
    """

    logits: torch.Tensor
    labels: torch.Tensor | None
    attention_mask: torch.Tensor
    index: torch.Tensor


class VideoProcessor(ABC):
    """Picklable preprocessing half of a backbone; DataLoader workers run it.

    Attributes:
        visual_keys: the batch keys that hold the videos' tensors (pixels, grids, timing): a
            second prompt over the same videos can share them instead of collating copies.
    """

    visual_keys: tuple[str, ...] = ()

    @abstractmethod
    def prepare_video(self, frames: torch.Tensor, timestamps: torch.Tensor) -> VisualInput:
        """Frames ``(T, H, W, 3)`` uint8 → :class:`VisualInput`."""

    @abstractmethod
    def collate(self, items: list[dict[str, Any]], with_answer: bool, with_pixels: bool = True) -> dict[str, Any]:
        """Batch prepared items (``visual``, ``prompt``, ``answer``, optional ``query``) into model inputs.

        Every family's batch holds, besides its own model inputs:

        - ``input_ids`` and ``attention_mask`` ``(B, L)``, left-padded;
        - ``frame_index`` ``(B, L)``: the sampled frame each position shows, ``-1`` where non-visual;
        - ``frame_seconds``: per row, ``(num_tokens,)`` seconds of the frame each visual token shows;
        - ``query_mask`` ``(B, L)`` bool: the prompt tokens overlapping the item's ``query`` span
          (the task builder says which text that is; none without one);
        - with ``with_answer``, ``labels`` with ``IGNORE_INDEX`` everywhere but the answer tokens.

        Without ``with_pixels`` the pixel tensors are left out (not copied): for a second prompt
        over videos whose pixels another batch already holds (see ``visual_keys``).
        """

    @abstractmethod
    def decode(self, token_ids: torch.Tensor) -> list[str]:
        """Generated ids ``(B, N)`` → answer strings."""


class VideoBackbone(nn.Module, ABC):
    """A video-LLM behind the methods' interface.

    Methods, analyses and benches use only what is declared here; the HF model and its
    module names stay inside the family's file.
    """

    processor: VideoProcessor

    @abstractmethod
    def forward(self, batch: dict[str, Any], **kwargs: Any) -> Any:
        """Teacher-forced forward pass; returns the HF output with ``logits`` (``hidden_states`` on request)."""

    @abstractmethod
    def generate(self, batch: dict[str, Any], max_new_tokens: int) -> list[str]:
        """Batched greedy generation from a left-padded prompt batch."""

    @abstractmethod
    def decoder_layers(self) -> dict[int, nn.Module]:
        """``layer index → decoder layer`` of the language model (each has ``self_attn``), for probes and steering."""

    @abstractmethod
    def vision_encoder(self) -> nn.Module:
        """The module that turns a batch's pixels into visual features (what :meth:`reuse_visual_features` replays)."""

    @abstractmethod
    def save_pretrained(self, directory: str | Path) -> None:
        """Write weights, config and tokenizer so that the family's ``pretrained=directory`` loads them back."""

    @contextmanager
    def reuse_visual_features(self) -> Iterator[VisualReuse]:
        """Encode a batch's videos once and replay the features for further prompts over the same videos.

        Inside the context, the first pass records the vision encoder's output; after
        ``reuse.replay = True`` later passes get that output instead of running the encoder again.
        """
        reuse = VisualReuse()
        encoder = self.vision_encoder()
        original, own = encoder.forward, encoder.__dict__.get("forward")

        def forward(*args: Any, **kwargs: Any) -> Any:
            if not reuse.replay or reuse.output is None:
                output = original(*args, **kwargs)
                reuse.output = copy.copy(output)  # callers may rebind fields of the output object
                return output
            return copy.copy(reuse.output)

        encoder.forward = forward
        try:
            yield reuse
        finally:
            if own is None:
                del encoder.forward  # back to the class's forward
            else:
                encoder.forward = own

    @staticmethod
    def visual_mask(batch: dict[str, Any]) -> torch.Tensor:
        """``(B, L)`` bool: positions that hold visual tokens."""
        return batch["frame_index"] >= 0

    @staticmethod
    def frame_index(batch: dict[str, Any]) -> torch.Tensor:
        """``(B, L)`` frame shown at each position, ``-1`` where non-visual."""
        return batch["frame_index"]

    def add_tokens(self, tokens: Sequence[str]) -> list[int]:
        """Special tokens a method needs, added to the tokenizer and the embeddings when missing; their ids."""
        raise NotImplementedError(f"{type(self).__name__} cannot add tokens")

    def input_embeddings(self) -> nn.Module:
        """The LLM's input embedding module (token ids → ``(B, L, D)``), for offsets added to some tokens' inputs."""
        raise NotImplementedError(f"{type(self).__name__} does not expose its input embeddings")

    @contextmanager
    def embedding_offsets(self, offsets: torch.Tensor | None) -> Iterator[None]:
        """Inside the context, forward passes add ``offsets`` ``(B, L, D)`` to the token embeddings of a batch of
        that shape (visual slots are filled after, so offsets there are lost); ``None`` changes nothing."""
        if offsets is None:
            yield
            return

        def add(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
            return output + offsets.to(output.dtype) if output.shape == offsets.shape else output

        handle = self.input_embeddings().register_forward_hook(add)
        try:
            yield
        finally:
            handle.remove()

    @torch.no_grad()
    def hidden_state(self, batch: dict[str, Any], index: int) -> torch.Tensor:
        """``hidden_states[index]`` of a forward pass without gradients (``index ≥ 1``: the output of decoder
        layer ``index - 1``), the layers after it never run."""
        layers = [self.decoder_layers()[k] for k in sorted(self.decoder_layers())]
        if not 1 <= index <= len(layers):
            raise ValueError(f"hidden state {index} does not exist: the language model has {len(layers)} layers (1..{len(layers)})")
        captured: list[torch.Tensor] = []

        def stop(module: nn.Module, args: tuple, output: Any) -> None:
            captured.append(output[0] if isinstance(output, tuple) else output)
            raise _LayerReached

        handle = layers[index - 1].register_forward_hook(stop)
        try:
            self.forward(batch)
        except _LayerReached:
            pass
        finally:
            handle.remove()
        return captured[0]

    @contextmanager
    def adapters_disabled(self) -> Iterator[None]:
        """Run the model without its LoRA adapters (a DPO reference without a second copy of the weights)."""
        raise ValueError(f"{type(self).__name__} has no adapters to disable: configure `lora` on the backbone")
        yield  # pragma: no cover

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

        Kept tokens keep the position ids they have in the full sequence, whatever the family's
        layout (``positions="contiguous"`` renumbers them as if there were no gaps).
        ``mode="gather"`` shrinks the sequence; ``"mask"`` keeps it and masks the dropped tokens out.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement token keeping")

    def generate_kept(self, batch: dict[str, Any], embeds: torch.Tensor, keep: torch.Tensor, max_new_tokens: int,
                      mode: str = "gather", positions: str = "original", use_cache: bool = True) -> list[str]:
        """Greedy generation over the kept tokens; dropped tokens are never attended, cache or not."""
        raise NotImplementedError(f"{type(self).__name__} does not implement token keeping")

    def forward_continued(self, batch: dict[str, Any], split: torch.Tensor,
                          continuation: Callable[[Callable[[int], torch.Tensor]], torch.Tensor | None],
                          logits_to_keep: int) -> ContinuedOutput:
        """Teacher-forced pass in two parts over one KV cache, gradients through both: row ``b``'s columns before
        ``split[b]`` (``(B,)``; every visual token must lie there), then the rest. ``continuation`` gets the first
        part's hidden states (``index → (B, L, D)`` in the batch's layout, zeros after the split) and returns
        offsets ``(B, L, D)`` added to the second part's input embeddings (or ``None``). Logits over the last
        ``logits_to_keep`` positions. Under gradient checkpointing the layers drop their cache, so a caller
        checks :attr:`checkpointing` first."""
        raise NotImplementedError(f"{type(self).__name__} does not implement continued forward passes")

    @property
    def checkpointing(self) -> bool:
        """Whether the model recomputes its layers' activations in backward (which drops any KV cache)."""
        return False

    def greedy_tokens(self, batch: dict[str, Any], embeds: torch.Tensor, max_new_tokens: int,
                      on_step: Any = None, stop_at_eos: bool = True) -> torch.Tensor:
        """Greedy ids ``(B, N)`` from input ``embeds`` with a KV cache; ``on_step(step, token, hidden_states)`` may
        return ``(B, 1, D)`` to add to the next token's input embedding (D²VLM's evidence aggregation)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement step-hooked generation")

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]


@dataclass
class ContinuedOutput:
    """A teacher-forced pass run in two parts (see :meth:`VideoBackbone.forward_continued`).

    Attributes:
        logits: ``(B, K, V)`` over the last ``K`` positions of the batch's layout.
        first / second: per layer, each part's hidden states in its own layout.
        first_columns / second_columns: ``(B, width)`` the batch column of each part's column, ``-1`` for padding.
    """

    logits: torch.Tensor
    first: tuple[torch.Tensor, ...]
    second: tuple[torch.Tensor, ...]
    first_columns: torch.Tensor
    second_columns: torch.Tensor

    def hidden_state(self, index: int) -> torch.Tensor:
        """``hidden_states[index]`` ``(B, L, D)`` in the batch's layout (zeros at its padding)."""
        length = int(max(self.first_columns.max(), self.second_columns.max())) + 1
        out = in_batch_layout(self.first[index], self.first_columns, length)
        return in_batch_layout(self.second[index], self.second_columns, length, out=out)


def in_batch_layout(states: torch.Tensor, columns: torch.Tensor, length: int, start: int = 0,
                    out: torch.Tensor | None = None) -> torch.Tensor:
    """``(B, W, ...)`` states of a re-laid-out part → ``(B, length - start, ...)``: each at its batch column
    (``columns`` ``(B, W)``, ``-1`` for padding) from ``start`` on, zeros elsewhere; written into ``out`` when given
    (out of place, so gradients reach both)."""
    if out is None:
        out = states.new_zeros(states.shape[0], length - start, *states.shape[2:])
    valid = columns >= start
    rows = torch.arange(columns.shape[0], device=columns.device).unsqueeze(1).expand_as(columns)
    return out.index_put((rows[valid], columns[valid] - start), states[valid])


class _LayerReached(Exception):
    """Ends a forward pass early (:meth:`VideoBackbone.hidden_state`)."""


class VisualReuse:
    """State of :meth:`VideoBackbone.reuse_visual_features`: set ``replay`` once the first pass has run."""

    replay: bool = False
    output: Any = None

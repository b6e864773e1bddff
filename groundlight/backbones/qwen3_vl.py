"""Qwen3-VL behind the backbone interface.

What sets the family apart, and where this file follows the Qwen release rather than the installed
transformers (5.24):

* **Time is text.** Each temporal group of 2 frames is written as ``<{t:.1f} seconds>``, then
  ``<|vision_start|>``, its visual tokens and ``<|vision_end|>``; ``t`` is the mean of the group's
  two frame times (its last frame repeated when the frame count is odd), from the sampled frames'
  real timestamps. The chat template's ``<|vision_start|><|video_pad|><|vision_end|>`` is replaced as a
  whole, as the Qwen release processor (transformers 4.57) does; 5.24's processor replaces only the
  ``<|video_pad|>`` and keeps the template's outer start/end pair (2 more tokens per video).
* **Positions** (interleaved MRoPE, :func:`rope_index`): text ids run on; each frame group is its own
  block, temporal id = the block's start, height/width ids = start + row / column of the merged
  grid; what follows a group starts at start + max(rows, columns). 5.24's ``get_rope_index`` gives the
  same ids for this layout (tested); they are passed explicitly anyway, so forward, ``generate`` and the
  kept-token run share one function.
* **DeepStack**: the vision tower's intermediate features (``deepstack_visual_indexes``) are added to the
  hidden states of the visual positions after the first decoder layers. A kept-token run gets them too:
  :meth:`Qwen3VLBackbone.embed_inputs` leaves the batch's features under :data:`DEEPSTACK_KEY` and the
  kept runs add the kept positions' rows.
* **Preprocessing** (no torchvision here): HF's ``Qwen3VLVideoProcessor`` with ``cap_pixels_per_frame``
  (the reference qwen-vl-utils behaviour): per-frame budget ``max(min(max_pixels, total_pixels // T),
  1.05 · min_pixels)``, sides rounded to multiples of 32, bicubic antialiased resize rounded to uint8,
  scale 1/255, mean = std = 0.5, temporal patches of 2 frames, 16-px patches in merge-window order.
  ``mm_token_type_ids`` is 2 on ``<|video_pad|>`` only.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

from groundlight.backbones.base import KeptOutput, LoraOptions, VisualInput
from groundlight.backbones.chat import ChatVideoProcessor, HFVideoBackbone
from groundlight.backbones.qwen2_5_vl import patchify, smart_resize
from groundlight.backbones.token_keep import KeepMode, PositionMode, hf_model
from groundlight.backbones.tokenizer import QWEN_SPECIAL_TOKENS, build_tokenizer, tiny_corpus

IMAGE_MEAN = (0.5, 0.5, 0.5)
IMAGE_STD = (0.5, 0.5, 0.5)
VIDEO_TOKEN, VISION_START, VISION_END = "<|video_pad|>", "<|vision_start|>", "<|vision_end|>"
VIDEO_PART = VISION_START + VIDEO_TOKEN + VISION_END
DEEPSTACK_KEY = "deepstack_features"
"""Batch key :meth:`Qwen3VLBackbone.embed_inputs` fills: per DeepStack level, ``(num visual tokens, D)``."""
PAD_POSITION = 0

# Qwen3-VL's chat layout for text + one video per user turn: no default system turn (unlike Qwen2.5-VL).
QWEN3_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def timestamp_text(seconds: float) -> str:
    """The text Qwen3-VL reads before a frame group: ``<12.5 seconds>``."""
    return f"<{seconds:.1f} seconds>"


def group_seconds(timestamps: torch.Tensor, temporal_patch_size: int = 2) -> list[float]:
    """Mean time of each temporal group's first and last frame; the last frame is repeated to fill a group."""
    times = [float(t) for t in timestamps]
    times += times[-1:] * (-len(times) % temporal_patch_size)
    return [(times[i] + times[i + temporal_patch_size - 1]) / 2 for i in range(0, len(times), temporal_patch_size)]


@dataclass
class Qwen3VisualInput(VisualInput):
    """A Qwen3-VL-preprocessed video: the shared fields plus its patch grid and per-group times.

    Attributes:
        grid_thw: ``(t, h, w)`` patch grid (t temporal groups of 2 frames, 16-px patches).
        group_seconds: the time written before each temporal group.
    """

    grid_thw: tuple[int, int, int] = (0, 0, 0)
    group_seconds: tuple[float, ...] = ()


@dataclass
class Qwen3VideoProcessor(ChatVideoProcessor):
    """Frames and prompts → Qwen3-VL inputs.

    Attributes:
        tokenizer: the backbone's tokenizer, with a chat template.
        min_pixels: per-frame lower bound of smart resize.
        max_pixels: per-frame upper bound (HF's ``max_video_tokens`` · 32², 768 · 32² by default).
        total_pixels: the whole clip's budget (HF's ``size["longest_edge"]``); ``None``: per-frame bounds only.
        system_prompt: system turn; ``None`` sends none (the Qwen3-VL template adds no default).
    """

    tokenizer: Any
    min_pixels: int = 4096
    max_pixels: int = 768 * 32 * 32
    total_pixels: int | None = 24576 * 32 * 32
    patch_size: int = 16
    merge_size: int = 2
    temporal_patch_size: int = 2
    system_prompt: str | None = None
    visual_keys = ("pixel_values_videos", "video_grid_thw")

    @property
    def factor(self) -> int:
        return self.patch_size * self.merge_size

    def frame_size(self, frames: int, height: int, width: int) -> tuple[int, int]:
        """Target ``(h, w)`` of every frame of a ``frames``-frame clip."""
        budget = self.max_pixels
        if self.total_pixels is not None:
            budget = max(min(self.max_pixels, self.total_pixels // frames), int(self.min_pixels * 1.05))
        if height < self.factor or width < self.factor:  # HF scales tiny frames up before rounding
            scale = max(self.factor / height, self.factor / width)
            height, width = int(height * scale), int(width * scale)
        return smart_resize(height, width, self.factor, self.min_pixels, budget)

    def resize(self, frames: torch.Tensor) -> torch.Tensor:
        """``(T, H, W, 3)`` uint8 → ``(T, 3, h, w)`` float in [0, 255], rounded like a uint8 resize."""
        video = frames.permute(0, 3, 1, 2).float()
        size = self.frame_size(video.shape[0], *video.shape[-2:])
        if size != tuple(video.shape[-2:]):
            video = F.interpolate(video, size=size, mode="bicubic", antialias=True, align_corners=False)
            video = video.round().clamp(0, 255)
        return video

    def patchify(self, video: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
        return patchify(video, self.patch_size, self.merge_size, self.temporal_patch_size)

    def prepare_video(self, frames: torch.Tensor, timestamps: torch.Tensor) -> Qwen3VisualInput:
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
            raise ValueError(f"expected frames (T>0, H, W, 3), got {tuple(frames.shape)}")
        if timestamps.numel() != frames.shape[0]:
            raise ValueError(f"{frames.shape[0]} frames but {timestamps.numel()} timestamps")
        mean = torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGE_STD).view(1, 3, 1, 1)
        pixel_values, grid = self.patchify((self.resize(frames) / 255.0 - mean) / std)
        tokens_per_group = grid[1] * grid[2] // self.merge_size**2
        group = torch.arange(grid[0] * tokens_per_group) // tokens_per_group
        return Qwen3VisualInput(
            pixel_values=pixel_values,
            num_tokens=grid[0] * tokens_per_group,
            token_frame=(group * self.temporal_patch_size).clamp(max=frames.shape[0] - 1),
            timestamps=timestamps.double(),
            grid_thw=grid,
            group_seconds=tuple(group_seconds(timestamps, self.temporal_patch_size)),
        )

    def video_text(self, visual: Qwen3VisualInput) -> str:
        """The expansion of one video: per group its time, then its visual tokens between start and end."""
        per_group = visual.num_tokens // visual.grid_thw[0]
        block = VISION_START + VIDEO_TOKEN * per_group + VISION_END
        return "".join(timestamp_text(seconds) + block for seconds in visual.group_seconds)

    @property
    def visual_token_id(self) -> int:
        return self.tokenizer.convert_tokens_to_ids(VIDEO_TOKEN)

    def prompt_ids(self, prompt: str, visual: Qwen3VisualInput, query: str = "") -> tuple[list[int], list[bool]]:
        """Chat-formatted prompt ids with the video expanded (the expanded text tokenized once, as the Qwen
        processor does), and query flags."""
        text = self.chat_text(prompt)
        if text.count(VIDEO_PART) != 1:
            raise ValueError(f"the chat template must place exactly one {VIDEO_PART} per video")
        return self.encode(text.replace(VIDEO_PART, self.video_text(visual)), prompt, query)

    def answer_ids(self, answer: str) -> list[int]:
        return self.tokenizer(answer + "<|im_end|>", add_special_tokens=False)["input_ids"]

    def video_inputs(self, visuals: list[Any], frame_index: torch.Tensor, with_pixels: bool) -> dict[str, Any]:
        inputs = {
            "mm_token_type_ids": (frame_index >= 0).int() * 2,
            "video_grid_thw": torch.tensor([v.grid_thw for v in visuals], dtype=torch.long),
        }
        if with_pixels:
            inputs["pixel_values_videos"] = torch.cat([v.pixel_values for v in visuals])
        return inputs



def rope_index(mm_token_type_ids: torch.Tensor, video_grid_thw: torch.Tensor | None,
               attention_mask: torch.Tensor | None = None, spatial_merge_size: int = 2) -> torch.Tensor:
    """``(3, B, L)`` interleaved-MRoPE ids of a left- (or right-) padded batch of text + video prompts.

    Text ids run on from 0 at the first real token, the same on all three axes. Every run of video tokens
    (``mm_token_type_ids == 2``) is one temporal group of the videos in ``video_grid_thw`` (in prompt
    order over the batch): its ids are ``(start, start + row, start + column)`` over the merged
    ``(h/m, w/m)`` grid, and what follows starts at ``start + max(h/m, w/m)`` (the block's max + 1).
    Padding gets :data:`PAD_POSITION`.

    Raises:
        ValueError: image tokens, a run that is not exactly one group, or groups left over.
    """
    if bool((mm_token_type_ids == 1).any()):
        raise ValueError("mm_token_type_ids holds image tokens (1): only video (2) is supported")
    real = torch.ones_like(mm_token_type_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
    groups: deque[tuple[int, int]] = deque()
    for t, h, w in ([] if video_grid_thw is None else video_grid_thw.tolist()):
        if h % spatial_merge_size or w % spatial_merge_size:
            raise ValueError(f"video grid {(t, h, w)} is not divisible by spatial_merge_size {spatial_merge_size}")
        groups.extend([(h // spatial_merge_size, w // spatial_merge_size)] * t)
    positions = torch.full((3, *mm_token_type_ids.shape), PAD_POSITION, dtype=torch.long)
    for row in range(mm_token_type_ids.shape[0]):
        positions[:, row, real[row].cpu()] = _row_positions(mm_token_type_ids[row][real[row]].cpu(), groups)
    if groups:
        raise ValueError(f"{len(groups)} frame group(s) left over: the prompts hold fewer video blocks")
    return positions.to(mm_token_type_ids.device)


def _row_positions(types: torch.Tensor, groups: deque[tuple[int, int]]) -> torch.Tensor:
    kinds, counts = torch.unique_consecutive(types, return_counts=True)
    pieces, start = [], 0
    for kind, count in zip(kinds.tolist(), counts.tolist()):
        if kind == 0:
            pieces.append(torch.arange(start, start + count).expand(3, -1))
            start += count
            continue
        if not groups:
            raise ValueError("more video tokens than video_grid_thw describes")
        rows, columns = groups.popleft()
        if rows * columns != count:
            raise ValueError(f"a run of {count} video tokens is not one {rows}x{columns} frame group")
        grid = torch.meshgrid(torch.zeros(1, dtype=torch.long), torch.arange(rows), torch.arange(columns), indexing="ij")
        pieces.append(torch.stack(grid).reshape(3, -1) + start)
        start += max(rows, columns)
    return torch.cat(pieces, dim=1) if pieces else torch.zeros(3, 0, dtype=torch.long)


def timestamp_corpus(max_seconds: int = 600) -> list[str]:
    """Group-time strings for the tiny tokenizer's BPE, so ``<12.5 seconds>`` costs a few tokens."""
    return [" ".join(timestamp_text(whole + half / 2) for half in range(2)) for whole in range(max_seconds)]


def build_qwen3_tokenizer(vocab_size: int = 1024) -> Any:
    """The tiny model's offline BPE: the project's corpus plus group times, Qwen3-VL's chat layout."""
    return build_tokenizer([*tiny_corpus(), *timestamp_corpus()], vocab_size=vocab_size,
                           special_tokens=QWEN_SPECIAL_TOKENS, chat_template=QWEN3_VL_CHAT_TEMPLATE)


@dataclass
class TinyQwen3Config:
    """A random-init Qwen3-VL of the real class, small enough to train on a CPU.

    ``mrope_section`` must sum to ``head_dim / 2``; the interleaved layout gives frequency ``i`` to
    height when ``i % 3 == 1`` and ``i < 3·sections[1]``, to width when ``i % 3 == 2`` and
    ``i < 3·sections[2]``, else to time: (4, 2, 2) over 8 frequencies is exactly 4 / 2 / 2.
    ``deepstack_layers`` are vision blocks whose features are added after the first decoder layers.
    """

    hidden_size: int = 64
    intermediate_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    mrope_section: tuple[int, int, int] = (4, 2, 2)
    vision_depth: int = 2
    vision_hidden_size: int = 32
    vision_intermediate_size: int = 64
    vision_heads: int = 2
    vision_position_embeddings: int = 64
    deepstack_layers: tuple[int, ...] = (0,)
    vocab_size: int = 1024

    def build_config(self, tokenizer: Any) -> Qwen3VLConfig:
        head_dim = self.hidden_size // self.num_heads
        if sum(self.mrope_section) * 2 != head_dim:
            raise ValueError(f"mrope_section {self.mrope_section} must sum to head_dim/2 = {head_dim // 2}")
        if any(not 0 <= layer < self.vision_depth for layer in self.deepstack_layers):
            raise ValueError(f"deepstack_layers {self.deepstack_layers} must be vision blocks 0..{self.vision_depth - 1}")
        ids = {t: tokenizer.convert_tokens_to_ids(t) for t in (VIDEO_TOKEN, "<|image_pad|>", VISION_START, VISION_END)}
        text = dict(
            vocab_size=len(tokenizer), hidden_size=self.hidden_size, intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_layers, num_attention_heads=self.num_heads,
            num_key_value_heads=self.num_kv_heads, head_dim=head_dim, max_position_embeddings=32768,
            rope_parameters={"rope_type": "default", "rope_theta": 5e6, "mrope_section": list(self.mrope_section),
                             "mrope_interleaved": True},
            pad_token_id=tokenizer.pad_token_id,
        )
        vision = dict(
            depth=self.vision_depth, hidden_size=self.vision_hidden_size, num_heads=self.vision_heads,
            intermediate_size=self.vision_intermediate_size, out_hidden_size=self.hidden_size, patch_size=16,
            num_position_embeddings=self.vision_position_embeddings, deepstack_visual_indexes=list(self.deepstack_layers),
        )
        return Qwen3VLConfig(
            text_config=text, vision_config=vision, video_token_id=ids[VIDEO_TOKEN], image_token_id=ids["<|image_pad|>"],
            vision_start_token_id=ids[VISION_START], vision_end_token_id=ids[VISION_END], tie_word_embeddings=False,
        )


class Qwen3VLBackbone(HFVideoBackbone):
    """Qwen3-VL: ``pretrained`` (hub id or local dir) or ``tiny`` (random init, offline).

    Args:
        pretrained: hub id (``Qwen/Qwen3-VL-8B-Instruct``) or local directory for ``from_pretrained``.
        tiny: build a random-init model of the same class instead.
        dtype: parameter dtype (``float32``, ``bfloat16``, ``float16``).
        attn_implementation: ``sdpa`` by default; attention probes wrap it, never eager.
        trust_remote_code: off unless the user turns it on.
        local_files_only: never touch the hub (offline clusters).
        lora: LoRA on the LM attention projections; ``None`` trains all unfrozen weights.
        freeze_vision: keep the vision tower (with its merger and DeepStack mergers) frozen.
        min_pixels / max_pixels / total_pixels: smart-resize bounds (see :class:`Qwen3VideoProcessor`).
        gradient_checkpointing: trade compute for memory on real-size models.
        add_tokens: special tokens a method needs (D²VLM: ``["<evi>", "</evi>"]``), see :meth:`HFVideoBackbone.add_tokens`.
        system_prompt: a system turn (the Qwen3-VL template sends none by default).
    """

    def __init__(
        self,
        pretrained: str | None = None,
        tiny: TinyQwen3Config | None = None,
        dtype: str = "float32",
        attn_implementation: str = "sdpa",
        trust_remote_code: bool = False,
        local_files_only: bool = False,
        lora: LoraOptions | None = None,
        freeze_vision: bool = False,
        min_pixels: int = 4096,
        max_pixels: int = 768 * 32 * 32,
        total_pixels: int | None = 24576 * 32 * 32,
        gradient_checkpointing: bool = False,
        add_tokens: tuple[str, ...] = (),
        system_prompt: str | None = None,
    ) -> None:
        super().__init__()
        self.check_source(pretrained, tiny)
        if pretrained is not None:
            self.model, tokenizer = self.from_hub(Qwen3VLForConditionalGeneration, pretrained, dtype,
                                                 attn_implementation, trust_remote_code, local_files_only)
        else:
            tokenizer = build_qwen3_tokenizer(tiny.vocab_size)
            self.model = self.from_config(Qwen3VLForConditionalGeneration, tiny.build_config(tokenizer), dtype,
                                          attn_implementation)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.processor = Qwen3VideoProcessor(tokenizer, min_pixels, max_pixels, total_pixels, system_prompt=system_prompt)
        self.finish(freeze_vision, gradient_checkpointing, lora, add_tokens)

    def full_positions(self, batch: dict[str, Any]) -> torch.Tensor:
        """``(3, B, L)`` interleaved-MRoPE ids (:func:`rope_index`)."""
        merge = hf_model(self.model).config.vision_config.spatial_merge_size
        return rope_index(batch["mm_token_type_ids"], batch["video_grid_thw"], batch["attention_mask"], merge)

    def projector_parameters(self) -> list[torch.nn.Parameter]:
        """The merger and the DeepStack mergers: every map from vision features into the LLM's width."""
        visual = hf_model(self.model).model.visual
        return [*visual.merger.parameters(), *visual.deepstack_merger_list.parameters()]

    def embed_inputs(self, batch: dict[str, Any]) -> torch.Tensor:
        """Token embeddings ``(B, L, D)`` with the projected visual features in the video slots.

        Also leaves the batch's DeepStack features under :data:`DEEPSTACK_KEY` for the kept-token runs.
        """
        hf = hf_model(self.model)
        embeds = hf.get_input_embeddings()(batch["input_ids"])
        features = self._video_features(batch)
        batch[DEEPSTACK_KEY] = [torch.cat(level) for level in features.deepstack_features]
        slots = (batch["input_ids"] == hf.config.video_token_id).unsqueeze(-1)
        return embeds.masked_scatter(slots, torch.cat(features.pooler_output).to(embeds.dtype))

    def _video_features(self, batch: dict[str, Any]) -> Any:
        hf = hf_model(self.model)
        pixels = batch["pixel_values_videos"].to(hf.dtype)
        return hf.model.get_video_features(pixels, batch["video_grid_thw"], return_dict=True)

    def kept_inputs(self, batch: dict[str, Any], embeds: torch.Tensor, keep: torch.Tensor,
                    mode: KeepMode = "gather", positions: PositionMode = "original",
                    columns: torch.Tensor | None = None) -> dict[str, Any]:
        """The shared kept-token inputs plus the kept visual positions and their DeepStack rows."""
        inputs = super().kept_inputs(batch, embeds, keep, mode, positions, columns)
        index = inputs["index"]
        visual = self.visual_mask(batch)
        kept_visual = visual.gather(1, index.clamp(min=0)) & (index >= 0)
        # Row r of a DeepStack level is the r-th visual position of the batch in row-major order.
        rank = (visual.reshape(-1).long().cumsum(0) - 1).view_as(visual)
        rows = rank.gather(1, index.clamp(min=0))[kept_visual]
        levels = batch.get(DEEPSTACK_KEY)
        if levels is None and hf_model(self.model).config.vision_config.deepstack_visual_indexes:
            levels = [torch.cat(level) for level in self._video_features(batch).deepstack_features]
        inputs["visual_pos_masks"] = kept_visual
        inputs["deepstack_visual_embeds"] = [level[rows.to(level.device)] for level in levels or []]
        return inputs

    @contextmanager
    def _deepstack(self, inputs: dict[str, Any]) -> Iterator[None]:
        """Hand the kept run's DeepStack rows to the language model while the prompt is processed.

        The prefill (cache empty) and every uncached step get them, with the generated columns marked
        non-visual; cached decoding steps hold no visual token. The first part of a continued pass is a prefill
        shorter than the sequence, with every visual token in it.
        """
        levels, visual = inputs["deepstack_visual_embeds"], inputs["visual_pos_masks"]
        if not levels:
            yield
            return

        def inject(module: torch.nn.Module, args: tuple, kwargs: dict[str, Any]) -> tuple[tuple, dict[str, Any]] | None:
            cache = kwargs.get("cache")
            if cache is not None and cache.get_seq_length() > 0:
                return None
            length = kwargs["inputs_embeds"].shape[1]
            if length <= visual.shape[1]:  # a first part (forward_continued): it holds every visual token
                mask = visual[:, :length]
            else:  # generated columns are not visual
                mask = torch.cat([visual, visual.new_zeros(visual.shape[0], length - visual.shape[1])], dim=1)
            return args, {**kwargs, "visual_pos_masks": mask, "deepstack_visual_embeds": levels}

        handle = hf_model(self.model).model.language_model.register_forward_pre_hook(inject, with_kwargs=True)
        try:
            yield
        finally:
            handle.remove()

    def forward_kept(self, batch: dict[str, Any], embeds: torch.Tensor, keep: torch.Tensor,
                     mode: KeepMode = "gather", positions: PositionMode = "original") -> KeptOutput:
        inputs = self.kept_inputs(batch, embeds, keep, mode, positions)
        with self._deepstack(inputs):
            output = self.model(
                inputs_embeds=inputs["inputs_embeds"], position_ids=self.model_position_ids(inputs["position_ids"]),
                attention_mask=inputs["attention_mask"], use_cache=False,
            )
        return KeptOutput(output.logits, inputs.get("labels"), inputs["attention_mask"], inputs["index"])

    def kept_context(self, inputs: dict[str, Any]) -> AbstractContextManager:
        return self._deepstack(inputs)

    def model_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        keys = ("input_ids", "attention_mask", "mm_token_type_ids", "pixel_values_videos", "video_grid_thw")
        inputs = {k: batch[k] for k in keys}
        inputs["pixel_values_videos"] = inputs["pixel_values_videos"].to(self.model.dtype)
        # Explicit ids: forward, generate (which extends them by last + 1 per axis) and the kept run share one rule.
        inputs["position_ids"] = self.full_positions(batch)
        return inputs

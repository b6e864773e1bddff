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

import copy
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AutoTokenizer, Qwen3VLConfig, Qwen3VLForConditionalGeneration

from groundlight.backbones.base import KeptOutput, LoraOptions, VideoBackbone, VideoProcessor, VisualInput
from groundlight.backbones.lora import apply_lora, freeze_modules
from groundlight.backbones.qwen2_5_vl import _tiny_corpus, smart_resize
from groundlight.backbones.token_keep import KeepMode, PositionMode, TokenKeep, hf_model
from groundlight.backbones.tokenizer import QWEN_SPECIAL_TOKENS, build_tokenizer
from groundlight.ops import IGNORE_INDEX

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
class Qwen3VideoProcessor(VideoProcessor):
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
        """Normalised ``(T, 3, h, w)`` → ``(t·gh·gw, 3·2·16·16)`` in merge-window order."""
        if pad := -video.shape[0] % self.temporal_patch_size:
            video = torch.cat([video, video[-1:].expand(pad, -1, -1, -1)])
        frames, channels, height, width = video.shape
        p, m, tp = self.patch_size, self.merge_size, self.temporal_patch_size
        grid = (frames // tp, height // p, width // p)
        patches = video.view(grid[0], tp, channels, grid[1] // m, m, p, grid[2] // m, m, p)
        patches = patches.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
        return patches.reshape(grid[0] * grid[1] * grid[2], channels * tp * p * p), grid

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

    def prompt_ids(self, prompt: str, visual: Qwen3VisualInput, query: str = "") -> tuple[list[int], list[bool]]:
        """Chat-formatted prompt ids with the video expanded, and per id: is it query text?

        The expanded text is tokenized once, as the Qwen processor does. The query is located in the
        prompt by its last occurrence and matched to tokens by character offsets.
        """
        messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": prompt}]}]
        if self.system_prompt is not None:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        if text.count(VIDEO_PART) != 1:
            raise ValueError(f"the chat template must place exactly one {VIDEO_PART} per video")
        text = text.replace(VIDEO_PART, self.video_text(visual))
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        at_prompt, at_query = text.rfind(prompt), prompt.rfind(query) if query else -1
        start = at_prompt + at_query if at_prompt >= 0 and at_query >= 0 else len(text)
        end = start + len(query)
        return encoded["input_ids"], [a < end and b > start for a, b in encoded["offset_mapping"]]

    def answer_ids(self, answer: str) -> list[int]:
        return self.tokenizer(answer + "<|im_end|>", add_special_tokens=False)["input_ids"]

    def collate(self, items: list[dict[str, Any]], with_answer: bool, with_pixels: bool = True) -> dict[str, Any]:
        rows = [self._row(item, with_answer) for item in items]
        length = max(len(row[0]) for row in rows)
        input_ids = torch.full((len(rows), length), self.tokenizer.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), length), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
        frame_index = torch.full((len(rows), length), -1, dtype=torch.long)
        query_mask = torch.zeros((len(rows), length), dtype=torch.bool)
        for b, (ids, row_labels, row_frames, row_query) in enumerate(rows):
            start = length - len(ids)  # left padding: generation continues from the last column
            input_ids[b, start:] = torch.tensor(ids)
            labels[b, start:] = torch.tensor(row_labels)
            attention_mask[b, start:] = 1
            frame_index[b, start:] = row_frames
            query_mask[b, start : start + len(row_query)] = torch.tensor(row_query, dtype=torch.bool)
        visuals = [item["visual"] for item in items]
        batch = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "mm_token_type_ids": (frame_index >= 0).int() * 2,
            "video_grid_thw": torch.tensor([v.grid_thw for v in visuals], dtype=torch.long),
            "frame_index": frame_index,
            "query_mask": query_mask,
            "frame_seconds": [v.timestamps[v.token_frame].float() for v in visuals],
        }
        if with_pixels:
            batch["pixel_values_videos"] = torch.cat([v.pixel_values for v in visuals])
        if with_answer:
            batch["labels"] = labels
        return batch

    def _row(self, item: dict[str, Any], with_answer: bool) -> tuple[list[int], list[int], torch.Tensor, list[bool]]:
        visual: Qwen3VisualInput = item["visual"]
        prompt, query = self.prompt_ids(item["prompt"], visual, item.get("query", "").strip())
        answer = self.answer_ids(item["answer"]) if with_answer else []
        ids = prompt + answer
        frames = torch.full((len(ids),), -1, dtype=torch.long)
        is_video = torch.tensor(ids) == self.tokenizer.convert_tokens_to_ids(VIDEO_TOKEN)
        if int(is_video.sum()) != visual.num_tokens:
            raise ValueError(f"{int(is_video.sum())} {VIDEO_TOKEN} tokens for a video of {visual.num_tokens}")
        frames[is_video] = visual.token_frame
        return ids, [IGNORE_INDEX] * len(prompt) + answer, frames, query

    def decode(self, token_ids: torch.Tensor) -> list[str]:
        return [t.strip() for t in self.tokenizer.batch_decode(token_ids, skip_special_tokens=True)]


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
    return build_tokenizer([*_tiny_corpus(), *timestamp_corpus()], vocab_size=vocab_size,
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


class Qwen3VLBackbone(TokenKeep, VideoBackbone):
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
        system_prompt: str | None = None,
    ) -> None:
        super().__init__()
        if (pretrained is None) == (tiny is None):
            raise ValueError("set exactly one of `pretrained` (hub id or directory) or `tiny` (random-init config)")
        torch_dtype = getattr(torch, dtype)
        if pretrained is not None:
            tokenizer = AutoTokenizer.from_pretrained(
                pretrained, trust_remote_code=trust_remote_code, local_files_only=local_files_only
            )
            self.model = Qwen3VLForConditionalGeneration.from_pretrained(
                pretrained, dtype=torch_dtype, attn_implementation=attn_implementation,
                trust_remote_code=trust_remote_code, local_files_only=local_files_only,
            )
        else:
            tokenizer = build_qwen3_tokenizer(tiny.vocab_size)
            config = tiny.build_config(tokenizer)
            config._attn_implementation = attn_implementation
            self.model = Qwen3VLForConditionalGeneration(config).to(torch_dtype)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.processor = Qwen3VideoProcessor(tokenizer, min_pixels, max_pixels, total_pixels, system_prompt=system_prompt)
        if freeze_vision:
            freeze_modules(self.model, ("visual",))
        if gradient_checkpointing:
            self.model.gradient_checkpointing_enable()
        if lora is not None:
            self.model = apply_lora(self.model, lora)

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
                    mode: KeepMode = "gather", positions: PositionMode = "original") -> dict[str, Any]:
        """The shared kept-token inputs plus the kept visual positions and their DeepStack rows."""
        inputs = super().kept_inputs(batch, embeds, keep, mode, positions)
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
        non-visual; cached decoding steps hold no visual token.
        """
        levels, visual = inputs["deepstack_visual_embeds"], inputs["visual_pos_masks"]
        if not levels:
            yield
            return

        def inject(module: torch.nn.Module, args: tuple, kwargs: dict[str, Any]) -> tuple[tuple, dict[str, Any]] | None:
            cache = kwargs.get("cache")
            if cache is not None and cache.get_seq_length() > 0:
                return None
            generated = kwargs["inputs_embeds"].shape[1] - visual.shape[1]
            mask = torch.cat([visual, visual.new_zeros(visual.shape[0], generated)], dim=1)
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

    @torch.no_grad()
    def generate_kept(self, batch: dict[str, Any], embeds: torch.Tensor, keep: torch.Tensor, max_new_tokens: int,
                      mode: KeepMode = "gather", positions: PositionMode = "original", use_cache: bool = True) -> list[str]:
        inputs = self.kept_inputs(batch, embeds, keep, mode, positions)
        with self._deepstack(inputs):
            tokens = self._greedy(inputs, max_new_tokens, use_cache)
        return self.processor.decode(tokens)

    def decoder_layers(self) -> dict[int, torch.nn.Module]:
        return {layer.self_attn.layer_idx: layer for layer in hf_model(self.model).model.language_model.layers}

    def vision_encoder(self) -> torch.nn.Module:
        return hf_model(self.model).model.visual

    def save_pretrained(self, directory: str | Path) -> None:
        """Weights (LoRA merged into a copy), config and tokenizer, loadable with ``pretrained=directory``."""
        model = copy.deepcopy(self.model).merge_and_unload() if hasattr(self.model, "merge_and_unload") else self.model
        model.save_pretrained(directory)
        self.processor.tokenizer.save_pretrained(directory)

    def model_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        keys = ("input_ids", "attention_mask", "mm_token_type_ids", "pixel_values_videos", "video_grid_thw")
        inputs = {k: batch[k] for k in keys}
        inputs["pixel_values_videos"] = inputs["pixel_values_videos"].to(self.model.dtype)
        # Explicit ids: forward, generate (which extends them by last + 1 per axis) and the kept run share one rule.
        inputs["position_ids"] = self.full_positions(batch)
        return inputs

    def forward(self, batch: dict[str, Any], **kwargs: Any) -> Any:
        return self.model(**self.model_inputs(batch), use_cache=False, **kwargs)

    @torch.no_grad()
    def generate(self, batch: dict[str, Any], max_new_tokens: int) -> list[str]:
        tokenizer = self.processor.tokenizer
        output = self.model.generate(
            **self.model_inputs(batch), max_new_tokens=max_new_tokens, do_sample=False,
            pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        )
        return self.processor.decode(output[:, batch["input_ids"].shape[1] :])

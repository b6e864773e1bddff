"""Qwen2.5-VL behind the backbone interface.

The video preprocessing is the project's own (there is no CPU torchvision, which HF's
Qwen video processor needs) and reproduces HF's: smart-resize to multiples of 28,
bicubic antialiased resize rounded to uint8, rescale by 1/255, CLIP normalisation,
temporal patches of 2 frames, and the patch layout of ``Qwen2VLVideoProcessor.patchify``.
``mm_token_type_ids`` marks video tokens with 2; without it the model silently falls
back to 1-D positions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

from groundlight.backbones.base import LoraOptions, VisualInput
from groundlight.backbones.chat import ChatVideoProcessor, HFVideoBackbone, expand_placeholder
from groundlight.backbones.qwen_rope import rope_index_for_batch
from groundlight.backbones.token_keep import hf_model
from groundlight.backbones.tokenizer import build_tokenizer, tiny_corpus

QUERY_POSITION_KEY = "groundlight_query_position"
"""Config attribute ``save_pretrained`` writes: the prompt layout a checkpoint was trained with."""
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Qwen's target size: multiples of ``factor``, pixel count within bounds, aspect kept."""
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio must be below 200, got {height}x{width}")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def patchify(video: torch.Tensor, patch: int, merge: int, temporal: int) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """Normalised ``(T, 3, h, w)`` → ``(t·gh·gw, 3·temporal·patch²)`` in Qwen's merge-window order (Qwen2.5-VL
    and Qwen3-VL alike), the last frame repeated to fill a temporal patch."""
    if pad := -video.shape[0] % temporal:
        video = torch.cat([video, video[-1:].expand(pad, -1, -1, -1)])
    frames, channels, height, width = video.shape
    grid = (frames // temporal, height // patch, width // patch)
    patches = video.view(grid[0], temporal, channels, grid[1] // merge, merge, patch, grid[2] // merge, merge, patch)
    patches = patches.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return patches.reshape(grid[0] * grid[1] * grid[2], channels * temporal * patch * patch), grid


@dataclass
class QwenVisualInput(VisualInput):
    """A Qwen-preprocessed video: the shared fields plus its patch grid and timing.

    Attributes:
        grid_thw: ``(t, h, w)`` patch grid of the video.
        seconds_per_step: seconds between consecutive temporal token groups (``second_per_grid_ts``).
    """

    grid_thw: tuple[int, int, int] = (0, 0, 0)
    seconds_per_step: float = 1.0


@dataclass
class QwenVideoProcessor(ChatVideoProcessor):
    """Frames and prompts → Qwen2.5-VL inputs.

    Attributes:
        tokenizer: the backbone's tokenizer, with a chat template.
        min_pixels / max_pixels: per-frame pixel bounds of smart resize (HF video defaults).
        system_prompt: system turn; ``None`` keeps the chat template's default.
        query_position: ``after`` the video (the chat layout of every Qwen release), or ``both`` before and
            after it: under causal attention, visual tokens only see a query stated before them.
    """

    tokenizer: Any
    min_pixels: int = 128 * 28 * 28
    max_pixels: int = 768 * 28 * 28
    patch_size: int = 14
    merge_size: int = 2
    temporal_patch_size: int = 2
    system_prompt: str | None = None
    query_position: Literal["after", "both"] = "after"
    visual_keys = ("pixel_values_videos", "video_grid_thw", "second_per_grid_ts")

    @property
    def factor(self) -> int:
        return self.patch_size * self.merge_size

    def resize(self, frames: torch.Tensor) -> torch.Tensor:
        """``(T, H, W, 3)`` uint8 → ``(T, 3, h, w)`` float in [0, 255], rounded like a uint8 resize."""
        video = frames.permute(0, 3, 1, 2).float()
        height, width = video.shape[-2:]
        size = smart_resize(height, width, self.factor, self.min_pixels, self.max_pixels)
        if size != (height, width):
            video = F.interpolate(video, size=size, mode="bicubic", antialias=True, align_corners=False)
            video = video.round().clamp(0, 255)
        return video

    def patchify(self, video: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
        return patchify(video, self.patch_size, self.merge_size, self.temporal_patch_size)

    def prepare_video(self, frames: torch.Tensor, timestamps: torch.Tensor) -> QwenVisualInput:
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
            raise ValueError(f"expected frames (T>0, H, W, 3), got {tuple(frames.shape)}")
        video = self.resize(frames) / 255.0
        mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
        pixel_values, grid = self.patchify((video - mean) / std)
        tokens_per_step = grid[1] * grid[2] // self.merge_size**2
        num_tokens = grid[0] * tokens_per_step
        step = torch.arange(num_tokens) // tokens_per_step
        token_frame = (step * self.temporal_patch_size).clamp(max=frames.shape[0] - 1)
        return QwenVisualInput(
            pixel_values=pixel_values,
            grid_thw=grid,
            num_tokens=num_tokens,
            token_frame=token_frame,
            timestamps=timestamps.double(),
            seconds_per_step=self.temporal_patch_size * _frame_interval(timestamps),
        )

    @property
    def visual_token_id(self) -> int:
        return self.tokenizer.convert_tokens_to_ids("<|video_pad|>")

    def prompt_ids(self, prompt: str, visual: VisualInput, query: str = "") -> tuple[list[int], list[bool]]:
        """Chat-formatted prompt ids with the one ``<|video_pad|>`` expanded to the video's tokens, and query flags;
        with ``query_position: both`` the query is also stated before the video."""
        before = [{"type": "text", "text": query + "\n"}] if self.query_position == "both" and query else []
        ids, flags = self.encode(self.chat_text(prompt, before), prompt, query)
        return expand_placeholder(ids, flags, self.visual_token_id, visual.num_tokens, "<|video_pad|>")

    def answer_ids(self, answer: str) -> list[int]:
        return self.tokenizer(answer + "<|im_end|>", add_special_tokens=False)["input_ids"]

    def video_inputs(self, visuals: list[Any], frame_index: torch.Tensor, with_pixels: bool) -> dict[str, Any]:
        inputs = {
            "mm_token_type_ids": (frame_index >= 0).int() * 2,
            "video_grid_thw": torch.tensor([v.grid_thw for v in visuals], dtype=torch.long),
            "second_per_grid_ts": torch.tensor([v.seconds_per_step for v in visuals], dtype=torch.float),
        }
        if with_pixels:
            inputs["pixel_values_videos"] = torch.cat([v.pixel_values for v in visuals])
        return inputs



def _frame_interval(timestamps: torch.Tensor) -> float:
    """Mean seconds between sampled frames (1 s for a single frame)."""
    if timestamps.numel() < 2:
        return 1.0
    return float((timestamps[-1] - timestamps[0]) / (timestamps.numel() - 1)) or 1.0


@dataclass
class TinyQwenConfig:
    """A random-init Qwen2.5-VL of the real class: small enough to train on a CPU by default, or any shape (the
    7B-shaped smoke build, ``qwen2_5_vl_7b_shaped.yaml``).

    ``mrope_section`` must sum to ``hidden_size / num_heads / 2``. ``embedding_rows`` sizes the embedding and LM head
    beyond the offline tokenizer's vocabulary (the checkpoint's 152064 rows; the extra rows are never generated from a
    prompt, their logits still cost what the real model's do). ``full_attention_blocks``: vision blocks with full
    attention (default: the last), the others windowed.
    """

    hidden_size: int = 64
    intermediate_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    mrope_section: tuple[int, int, int] = (2, 3, 3)
    vision_depth: int = 2
    vision_hidden_size: int = 32
    vision_intermediate_size: int = 64
    vision_heads: int = 2
    tokens_per_second: int = 2
    vocab_size: int = 1024
    embedding_rows: int | None = None
    full_attention_blocks: tuple[int, ...] | None = None

    def build_config(self, tokenizer: Any) -> Qwen2_5_VLConfig:
        head_dim = self.hidden_size // self.num_heads
        if sum(self.mrope_section) * 2 != head_dim:
            raise ValueError(f"mrope_section {self.mrope_section} must sum to head_dim/2 = {head_dim // 2}")
        ids = {t: tokenizer.convert_tokens_to_ids(t) for t in ("<|video_pad|>", "<|image_pad|>", "<|vision_start|>", "<|vision_end|>")}
        text = dict(
            vocab_size=max(len(tokenizer), self.embedding_rows or 0), hidden_size=self.hidden_size, intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_layers, num_attention_heads=self.num_heads,
            num_key_value_heads=self.num_kv_heads, max_position_embeddings=32768,
            rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": list(self.mrope_section)},
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
        )
        vision = dict(
            depth=self.vision_depth, hidden_size=self.vision_hidden_size, num_heads=self.vision_heads,
            intermediate_size=self.vision_intermediate_size, out_hidden_size=self.hidden_size,
            tokens_per_second=self.tokens_per_second,
            fullatt_block_indexes=list(self.full_attention_blocks or [self.vision_depth - 1]),
        )
        return Qwen2_5_VLConfig(
            text_config=text, vision_config=vision, video_token_id=ids["<|video_pad|>"],
            image_token_id=ids["<|image_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
            vision_end_token_id=ids["<|vision_end|>"], eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
        )


class Qwen25VLBackbone(HFVideoBackbone):
    """Qwen2.5-VL: ``pretrained`` (hub id or local dir) or ``tiny`` (random init, offline).

    Args:
        pretrained: hub id or local directory for ``from_pretrained``.
        tiny: build a random-init model of the same class instead.
        dtype: parameter dtype (``float32``, ``bfloat16``, ``float16``).
        attn_implementation: ``sdpa`` by default; attention probes wrap it, never eager.
        trust_remote_code: off unless the user turns it on.
        local_files_only: never touch the hub (offline clusters).
        lora: LoRA on the LM attention projections; ``None`` trains all unfrozen weights.
        freeze_vision: keep the vision tower (and merger) frozen.
        min_pixels / max_pixels: smart-resize bounds per frame.
        gradient_checkpointing: trade compute for memory on real-size models.
        add_tokens: special tokens a method needs (D²VLM: ``["<evi>", "</evi>"]``), see :meth:`HFVideoBackbone.add_tokens`.
        system_prompt: overrides the chat template's system turn.
        query_position: ``after`` the video or ``both`` before and after it (see ``QwenVideoProcessor``); ``None``
            takes what the checkpoint was trained with (``save_pretrained`` records it in the config), else ``after``.
    """

    def __init__(
        self,
        pretrained: str | None = None,
        tiny: TinyQwenConfig | None = None,
        dtype: str = "float32",
        attn_implementation: str = "sdpa",
        trust_remote_code: bool = False,
        local_files_only: bool = False,
        lora: LoraOptions | None = None,
        freeze_vision: bool = False,
        min_pixels: int = 128 * 28 * 28,
        max_pixels: int = 768 * 28 * 28,
        gradient_checkpointing: bool = False,
        add_tokens: tuple[str, ...] = (),
        system_prompt: str | None = None,
        query_position: Literal["after", "both"] | None = None,
    ) -> None:
        super().__init__()
        self.check_source(pretrained, tiny)
        if pretrained is not None:
            self.model, tokenizer = self.from_hub(Qwen2_5_VLForConditionalGeneration, pretrained, dtype,
                                                 attn_implementation, trust_remote_code, local_files_only)
        else:
            tokenizer = build_tokenizer(tiny_corpus(), vocab_size=tiny.vocab_size)
            self.model = self.from_config(Qwen2_5_VLForConditionalGeneration, tiny.build_config(tokenizer), dtype,
                                          attn_implementation)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        query_position = query_position or getattr(self.model.config, QUERY_POSITION_KEY, "after")
        if query_position not in ("after", "both"):
            raise ValueError(f"query_position must be 'after' or 'both', got {query_position!r}")
        self.processor = QwenVideoProcessor(
            tokenizer, min_pixels, max_pixels, system_prompt=system_prompt, query_position=query_position
        )
        self.finish(freeze_vision, gradient_checkpointing, lora, add_tokens)

    def full_positions(self, batch: dict[str, Any]) -> torch.Tensor:
        """``(3, B, L)`` reference MRoPE ids (see :mod:`~groundlight.backbones.qwen_rope`)."""
        return rope_index_for_batch(batch, hf_model(self.model).config)[0]

    def projector_parameters(self) -> list[torch.nn.Parameter]:
        return list(hf_model(self.model).model.visual.merger.parameters())

    def embed_inputs(self, batch: dict[str, Any]) -> torch.Tensor:
        """Token embeddings ``(B, L, D)`` with the projected visual features scattered into the video slots."""
        hf = hf_model(self.model)
        embeds = hf.get_input_embeddings()(batch["input_ids"])
        pixels = batch["pixel_values_videos"].to(hf.dtype)
        features = hf.model.get_video_features(pixels, batch["video_grid_thw"], return_dict=True).pooler_output
        video = torch.cat(features).to(embeds.dtype)
        slots = (batch["input_ids"] == hf.config.video_token_id).unsqueeze(-1)
        return embeds.masked_scatter(slots, video)

    def annotate_config(self, config: Any) -> None:
        setattr(config, QUERY_POSITION_KEY, self.processor.query_position)

    def model_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        keys = ("input_ids", "attention_mask", "mm_token_type_ids", "pixel_values_videos", "video_grid_thw", "second_per_grid_ts")
        inputs = {k: batch[k] for k in keys}
        inputs["pixel_values_videos"] = inputs["pixel_values_videos"].to(self.model.dtype)
        # The reference MRoPE ids (qwen_rope.py): the installed get_rope_index puts text after a video inside the
        # video's temporal range. generate() extends explicit ids by last + 1 per axis, the reference's max + 1 + step.
        inputs["position_ids"] = self.full_positions(batch)
        return inputs

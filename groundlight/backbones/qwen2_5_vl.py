"""Qwen2.5-VL behind the backbone interface.

The video preprocessing is the project's own (there is no CPU torchvision, which HF's
Qwen video processor needs) and reproduces HF's: smart-resize to multiples of 28,
bicubic antialiased resize rounded to uint8, rescale by 1/255, CLIP normalisation,
temporal patches of 2 frames, and the patch layout of ``Qwen2VLVideoProcessor.patchify``.
``mm_token_type_ids`` marks video tokens with 2; without it the model silently falls
back to 1-D positions.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AutoTokenizer, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

from groundlight.backbones.base import LoraOptions, VideoBackbone, VideoProcessor, VisualInput
from groundlight.backbones.lora import apply_lora, freeze_modules
from groundlight.backbones.qwen_rope import rope_index_for_batch
from groundlight.backbones.token_keep import TokenKeep, hf_model
from groundlight.backbones.tokenizer import build_tokenizer
from groundlight.ops import IGNORE_INDEX

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
class QwenVideoProcessor(VideoProcessor):
    """Frames and prompts → Qwen2.5-VL inputs.

    Attributes:
        tokenizer: the backbone's tokenizer, with a chat template.
        min_pixels / max_pixels: per-frame pixel bounds of smart resize (HF video defaults).
        system_prompt: system turn; ``None`` keeps the chat template's default.
    """

    tokenizer: Any
    min_pixels: int = 128 * 28 * 28
    max_pixels: int = 768 * 28 * 28
    patch_size: int = 14
    merge_size: int = 2
    temporal_patch_size: int = 2
    system_prompt: str | None = None
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
        """Normalised ``(T, 3, h, w)`` → ``(t·gh·gw, 3·2·14·14)`` in Qwen's merge-window order."""
        if pad := -video.shape[0] % self.temporal_patch_size:
            video = torch.cat([video, video[-1:].expand(pad, -1, -1, -1)])
        frames, channels, height, width = video.shape
        p, m, tp = self.patch_size, self.merge_size, self.temporal_patch_size
        grid = (frames // tp, height // p, width // p)
        patches = video.view(grid[0], tp, channels, grid[1] // m, m, p, grid[2] // m, m, p)
        patches = patches.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
        return patches.reshape(grid[0] * grid[1] * grid[2], channels * tp * p * p), grid

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

    def prompt_ids(self, prompt: str, visual: VisualInput, query: str = "") -> tuple[list[int], list[bool]]:
        """Chat-formatted prompt ids with the video placeholder expanded, and per id: is it query text?

        The query is located in the prompt by its last occurrence; tokens are matched by character
        offsets, so BPE merges across the query's edges count as query tokens. One tokenization gives both.
        """
        messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": prompt}]}]
        if self.system_prompt is not None:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = encoded["input_ids"]
        video_id = self.tokenizer.convert_tokens_to_ids("<|video_pad|>")
        if ids.count(video_id) != 1:
            raise ValueError("the chat template must place exactly one <|video_pad|> per video")
        at_prompt, at_query = text.rfind(prompt), prompt.rfind(query) if query else -1
        start = at_prompt + at_query if at_prompt >= 0 and at_query >= 0 else len(text)
        end = start + len(query)
        flags = [a < end and b > start for a, b in encoded["offset_mapping"]]
        at = ids.index(video_id)
        return (ids[:at] + [video_id] * visual.num_tokens + ids[at + 1 :],
                flags[:at] + [False] * visual.num_tokens + flags[at + 1 :])

    def answer_ids(self, answer: str) -> list[int]:
        return self.tokenizer(answer + "<|im_end|>", add_special_tokens=False)["input_ids"]

    def collate(self, items: list[dict[str, Any]], with_answer: bool, with_pixels: bool = True) -> dict[str, Any]:
        rows = [self._row(item, with_answer) for item in items]
        length = max(len(row[0]) for row in rows)
        pad_id = self.tokenizer.pad_token_id
        input_ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
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
            "second_per_grid_ts": torch.tensor([v.seconds_per_step for v in visuals], dtype=torch.float),
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
        visual: VisualInput = item["visual"]
        prompt, query = self.prompt_ids(item["prompt"], visual, item.get("query", "").strip())
        answer = self.answer_ids(item["answer"]) if with_answer else []
        ids = prompt + answer
        labels = [IGNORE_INDEX] * len(prompt) + answer
        frames = torch.full((len(ids),), -1, dtype=torch.long)
        video_id = self.tokenizer.convert_tokens_to_ids("<|video_pad|>")
        frames[torch.tensor(ids) == video_id] = visual.token_frame
        return ids, labels, frames, query

    def decode(self, token_ids: torch.Tensor) -> list[str]:
        return [t.strip() for t in self.tokenizer.batch_decode(token_ids, skip_special_tokens=True)]


def _frame_interval(timestamps: torch.Tensor) -> float:
    """Mean seconds between sampled frames (1 s for a single frame)."""
    if timestamps.numel() < 2:
        return 1.0
    return float((timestamps[-1] - timestamps[0]) / (timestamps.numel() - 1)) or 1.0


@dataclass
class TinyQwenConfig:
    """A random-init Qwen2.5-VL of the real class, small enough to train on a CPU.

    ``mrope_section`` must sum to ``hidden_size / num_heads / 2``.
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

    def build_config(self, tokenizer: Any) -> Qwen2_5_VLConfig:
        head_dim = self.hidden_size // self.num_heads
        if sum(self.mrope_section) * 2 != head_dim:
            raise ValueError(f"mrope_section {self.mrope_section} must sum to head_dim/2 = {head_dim // 2}")
        ids = {t: tokenizer.convert_tokens_to_ids(t) for t in ("<|video_pad|>", "<|image_pad|>", "<|vision_start|>", "<|vision_end|>")}
        text = dict(
            vocab_size=len(tokenizer), hidden_size=self.hidden_size, intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_layers, num_attention_heads=self.num_heads,
            num_key_value_heads=self.num_kv_heads, max_position_embeddings=32768,
            rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": list(self.mrope_section)},
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
        )
        vision = dict(
            depth=self.vision_depth, hidden_size=self.vision_hidden_size, num_heads=self.vision_heads,
            intermediate_size=self.vision_intermediate_size, out_hidden_size=self.hidden_size,
            tokens_per_second=self.tokens_per_second, fullatt_block_indexes=[self.vision_depth - 1],
        )
        return Qwen2_5_VLConfig(
            text_config=text, vision_config=vision, video_token_id=ids["<|video_pad|>"],
            image_token_id=ids["<|image_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
            vision_end_token_id=ids["<|vision_end|>"], eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
        )


class Qwen25VLBackbone(TokenKeep, VideoBackbone):
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
        system_prompt: overrides the chat template's system turn.
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
            self.model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
                pretrained, dtype=torch_dtype, attn_implementation=attn_implementation,
                trust_remote_code=trust_remote_code, local_files_only=local_files_only,
            )
        else:
            tokenizer = build_tokenizer(_tiny_corpus(), vocab_size=tiny.vocab_size)
            config = tiny.build_config(tokenizer)
            config._attn_implementation = attn_implementation
            self.model = Qwen2_5_VLForConditionalGeneration(config).to(torch_dtype)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.processor = QwenVideoProcessor(tokenizer, min_pixels, max_pixels, system_prompt=system_prompt)
        if freeze_vision:
            freeze_modules(self.model, ("visual",))
        if gradient_checkpointing:
            self.model.gradient_checkpointing_enable()
        if lora is not None:
            self.model = apply_lora(self.model, lora)

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
        keys = ("input_ids", "attention_mask", "mm_token_type_ids", "pixel_values_videos", "video_grid_thw", "second_per_grid_ts")
        inputs = {k: batch[k] for k in keys}
        inputs["pixel_values_videos"] = inputs["pixel_values_videos"].to(self.model.dtype)
        # The reference MRoPE ids (qwen_rope.py): the installed get_rope_index puts text after a video inside the
        # video's temporal range. generate() extends explicit ids by last + 1 per axis, the reference's max + 1 + step.
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


TINY_CORPUS = Path(__file__).with_name("tiny_corpus.json")
"""Text the project owns (prompt templates and the benchmark's words) for the tiny model's BPE; a test keeps
it equal to ``data_modules.tasks.tokenizer_corpus()``."""


def _tiny_corpus() -> list[str]:
    return json.loads(TINY_CORPUS.read_text(encoding="utf-8"))

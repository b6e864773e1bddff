"""InternVL3.5 (HF-native ``InternVLForConditionalGeneration``) behind the backbone interface.

A video is a run of images, one tile per sampled frame (the official video path: no dynamic
tiling for video frames). The prompt holds one block per frame, numbered from 1::

    Frame1: <img><IMG_CONTEXT>×N</img>
    Frame2: <img><IMG_CONTEXT>×N</img>
    <question>

with ``N = (image_size / patch_size)² · downsample_ratio²`` (256 at 448 px), exactly what
``InternVLProcessor.replace_video_token`` writes for the ``<video>`` placeholder of the chat
template. The preprocessing is the project's own (no CPU torchvision) and that of the official
InternVL transform: PIL's bicubic resize of each frame to an ``image_size`` square, rescale by
1/255, ImageNet mean/std. The ``video_preprocessor_config.json``
shipped with the ``-HF`` checkpoints says CLIP mean/std at 384 px instead (OpenGVLab/InternVL
issues #1184, #1222): those are the HF class defaults, not what the model was trained with, and
384 px gives 27×27 patches that the 0.5 pixel shuffle cannot halve.

The language model (Qwen3 in InternVL3.5, Qwen2 in InternVL3) uses 1-D RoPE. Its position ids
are passed explicitly as the count of real tokens before each one: the installed forward numbers
a left-padded row from its first pad column while ``generate`` numbers it from its first real
token, so the two would disagree on padded rows without them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from transformers import InternVLConfig, InternVLForConditionalGeneration

from groundlight.backbones.base import LoraOptions, VisualInput
from groundlight.backbones.chat import ChatVideoProcessor, HFVideoBackbone, one_d_positions
from groundlight.backbones.token_keep import hf_model
from groundlight.backbones.tokenizer import build_tokenizer, tiny_corpus

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMG_START, IMG_END, IMG_CONTEXT = "<img>", "</img>", "<IMG_CONTEXT>"
VIDEO_PLACEHOLDER = "<video>"
TURN_END = "<|im_end|>"

INTERNVL_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", TURN_END, IMG_START, IMG_END, IMG_CONTEXT, VIDEO_PLACEHOLDER)

# The -HF checkpoints' layout for text + video: no default system turn, "<video>\n" before the text.
INTERNVL_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'video' %}<video>\n"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tokens_per_frame(image_size: int, patch_size: int, downsample_ratio: float) -> int:
    """Visual tokens one frame becomes: the patch grid, pixel-shuffled by ``downsample_ratio``."""
    side = image_size // patch_size
    if side * patch_size != image_size or (side * downsample_ratio) % 1:
        raise ValueError(f"image_size {image_size} must be a multiple of patch_size {patch_size} whose patch grid "
                         f"{side} the pixel shuffle ({downsample_ratio}) divides")
    return int(side * downsample_ratio) ** 2


@dataclass
class InternVLVisualInput(VisualInput):
    """An InternVL-preprocessed video: one ``(3, S, S)`` tile per frame.

    Attributes:
        tokens_per_frame: visual tokens of each frame's ``<img>`` block.
    """

    tokens_per_frame: int = 0


@dataclass
class InternVLVideoProcessor(ChatVideoProcessor):
    """Frames and prompts → InternVL inputs.

    Attributes:
        tokenizer: the backbone's tokenizer, with a chat template that writes ``<video>`` once.
        image_size: side of the square tile each frame is resized to (448 for the released models).
        tokens_per_frame: ``<IMG_CONTEXT>`` tokens per frame (256 for the released models).
        system_prompt: system turn; ``None`` keeps the chat template's (none in the -HF template).
    """

    tokenizer: Any
    image_size: int = 448
    tokens_per_frame: int = 256
    system_prompt: str | None = None
    visual_keys = ("pixel_values",)

    def resize(self, frames: torch.Tensor) -> torch.Tensor:
        """``(T, H, W, 3)`` uint8 → ``(T, 3, S, S)`` float in [0, 255]: PIL's bicubic resize to a square.

        PIL, because the official transform (``T.Resize`` on PIL images) and HF's PIL backend use it;
        torch's bicubic kernel differs from PIL's by up to 23/255 on upsampled noise. The aspect ratio
        is not kept, as in the official transform.
        """
        size = (self.image_size, self.image_size)
        if tuple(frames.shape[1:3]) != size:
            frames = torch.stack([
                torch.from_numpy(np.array(Image.fromarray(frame.numpy()).resize(size, Image.Resampling.BICUBIC)))
                for frame in frames.contiguous()
            ])
        return frames.permute(0, 3, 1, 2).float()

    def prepare_video(self, frames: torch.Tensor, timestamps: torch.Tensor) -> InternVLVisualInput:
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
            raise ValueError(f"expected frames (T>0, H, W, 3), got {tuple(frames.shape)}")
        if timestamps.shape != (frames.shape[0],):
            raise ValueError(f"expected one timestamp per frame ({frames.shape[0]}), got {tuple(timestamps.shape)}")
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        count = frames.shape[0]
        return InternVLVisualInput(
            pixel_values=(self.resize(frames) / 255.0 - mean) / std,
            num_tokens=count * self.tokens_per_frame,
            token_frame=torch.arange(count).repeat_interleave(self.tokens_per_frame),
            timestamps=timestamps.double(),
            tokens_per_frame=self.tokens_per_frame,
        )

    def video_text(self, num_frames: int) -> str:
        """What the ``<video>`` placeholder expands to: one numbered ``<img>`` block per frame."""
        block = IMG_START + IMG_CONTEXT * self.tokens_per_frame + IMG_END
        return "\n".join(f"Frame{i}: {block}" for i in range(1, num_frames + 1))

    def prompt_text(self, prompt: str, num_frames: int) -> str:
        """The chat-formatted prompt with the video expanded, as the model reads it."""
        text = self.chat_text(prompt)
        if text.count(VIDEO_PLACEHOLDER) != 1:
            raise ValueError(f"the chat template must write {VIDEO_PLACEHOLDER} exactly once per video")
        return text.replace(VIDEO_PLACEHOLDER, self.video_text(num_frames))

    def prompt_ids(self, prompt: str, visual: InternVLVisualInput, query: str = "") -> tuple[list[int], list[bool]]:
        """Prompt ids and, per id, whether it is query text (matched by character offsets, last occurrence)."""
        if visual.tokens_per_frame != self.tokens_per_frame:
            raise ValueError(f"video prepared with {visual.tokens_per_frame} tokens per frame, processor has {self.tokens_per_frame}")
        return self.encode(self.prompt_text(prompt, len(visual.timestamps)), prompt, query)

    def answer_ids(self, answer: str) -> list[int]:
        return self.tokenizer(answer + TURN_END, add_special_tokens=False)["input_ids"]

    @property
    def visual_token_id(self) -> int:
        return self.tokenizer.convert_tokens_to_ids(IMG_CONTEXT)

    def video_inputs(self, visuals: list[Any], frame_index: torch.Tensor, with_pixels: bool) -> dict[str, Any]:
        return {"pixel_values": torch.cat([v.pixel_values for v in visuals])} if with_pixels else {}



@dataclass
class TinyInternVLConfig:
    """A random-init InternVL of the real class, small enough to train on a CPU.

    The language model is Qwen3 (InternVL3.5) or Qwen2 (InternVL3); the vision tower is an InternViT
    with a CLS token, followed by the 0.5 pixel shuffle and the MLP projector, as in the released models.
    ``(image_size / patch_size)`` must be even: 56 / 14 → 4×4 patches → 4 tokens per frame.
    """

    hidden_size: int = 64
    intermediate_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    text_model_type: Literal["qwen3", "qwen2"] = "qwen3"
    vision_layers: int = 2
    vision_hidden_size: int = 32
    vision_intermediate_size: int = 64
    vision_heads: int = 2
    image_size: int = 56
    patch_size: int = 14
    downsample_ratio: float = 0.5
    vocab_size: int = 1024

    def build_config(self, tokenizer: Any) -> InternVLConfig:
        text = dict(
            model_type=self.text_model_type, vocab_size=len(tokenizer), hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size, num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads, num_key_value_heads=self.num_kv_heads,
            head_dim=self.hidden_size // self.num_heads, max_position_embeddings=32768,
            rope_parameters={"rope_type": "default", "rope_theta": 1e6}, tie_word_embeddings=False,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
        )
        vision = dict(
            hidden_size=self.vision_hidden_size, num_hidden_layers=self.vision_layers,
            num_attention_heads=self.vision_heads, intermediate_size=self.vision_intermediate_size,
            image_size=self.image_size, patch_size=self.patch_size,
        )
        return InternVLConfig(
            text_config=text, vision_config=vision, image_token_id=tokenizer.convert_tokens_to_ids(IMG_CONTEXT),
            image_seq_length=tokens_per_frame(self.image_size, self.patch_size, self.downsample_ratio),
            downsample_ratio=self.downsample_ratio, tie_word_embeddings=False,
        )


def tiny_tokenizer(vocab_size: int) -> Any:
    """The tiny model's offline BPE: the project's corpus plus the frame labels, InternVL's special tokens."""
    corpus = [*tiny_corpus(), " ".join(f"Frame{i}:" for i in range(1, 129))]
    return build_tokenizer(corpus, vocab_size=vocab_size, special_tokens=INTERNVL_SPECIAL_TOKENS,
                           chat_template=INTERNVL_CHAT_TEMPLATE)


class InternVLBackbone(HFVideoBackbone):
    """InternVL3.5 (-HF checkpoints): ``pretrained`` (hub id or local dir) or ``tiny`` (random init, offline).

    Args:
        pretrained: hub id or directory of an HF-format checkpoint (``OpenGVLab/InternVL3_5-8B-HF``;
            the remote-code ``OpenGVLab/InternVL3_5-8B`` is another format and does not load here).
        tiny: build a random-init model of the same class instead.
        dtype: parameter dtype (``float32``, ``bfloat16``, ``float16``).
        attn_implementation: ``sdpa`` by default; attention probes wrap it, never eager.
        trust_remote_code: off unless the user turns it on.
        local_files_only: never touch the hub (offline clusters).
        lora: LoRA on the LM attention projections (the default regex never matches the InternViT's
            ``q_proj``/``k_proj``/``v_proj``); ``None`` trains all unfrozen weights.
        freeze_vision: keep the vision tower and the projector frozen.
        gradient_checkpointing: trade compute for memory on real-size models.
        add_tokens: special tokens a method needs (D²VLM: ``["<evi>", "</evi>"]``), see :meth:`HFVideoBackbone.add_tokens`.
        system_prompt: a system turn (the -HF chat template writes none; the official ``model.chat``
            writes InternVL's own system message).
    """

    vision_module = "vision_tower"
    frozen_with_vision = ("vision_tower", "multi_modal_projector")

    def __init__(
        self,
        pretrained: str | None = None,
        tiny: TinyInternVLConfig | None = None,
        dtype: str = "float32",
        attn_implementation: str = "sdpa",
        trust_remote_code: bool = False,
        local_files_only: bool = False,
        lora: LoraOptions | None = None,
        freeze_vision: bool = False,
        gradient_checkpointing: bool = False,
        add_tokens: tuple[str, ...] = (),
        system_prompt: str | None = None,
    ) -> None:
        super().__init__()
        self.check_source(pretrained, tiny)
        if pretrained is not None:
            self.model, tokenizer = self.from_hub(InternVLForConditionalGeneration, pretrained, dtype,
                                                 attn_implementation, trust_remote_code, local_files_only)
        else:
            tokenizer = tiny_tokenizer(tiny.vocab_size)
            self.model = self.from_config(InternVLForConditionalGeneration, tiny.build_config(tokenizer), dtype,
                                          attn_implementation)
        self.processor = InternVLVideoProcessor(tokenizer, *_tile_layout(self.model.config), system_prompt=system_prompt)
        _settle_tokenizer(tokenizer, self.model.config)
        self.finish(freeze_vision, gradient_checkpointing, lora, add_tokens)

    def full_positions(self, batch: dict[str, Any]) -> torch.Tensor:
        return one_d_positions(batch["attention_mask"])

    def projector_parameters(self) -> list[torch.nn.Parameter]:
        return list(hf_model(self.model).model.multi_modal_projector.parameters())

    def embed_inputs(self, batch: dict[str, Any]) -> torch.Tensor:
        """Token embeddings ``(B, L, D)`` with the projected frame features in the ``<IMG_CONTEXT>`` slots."""
        hf = hf_model(self.model)
        embeds = hf.get_input_embeddings()(batch["input_ids"])
        pixels = batch["pixel_values"].to(hf.dtype)
        features = hf.model.get_image_features(pixel_values=pixels, return_dict=True).pooler_output
        slots = (batch["input_ids"] == hf.config.image_token_id).unsqueeze(-1)
        return embeds.masked_scatter(slots, features.reshape(-1, embeds.shape[-1]).to(embeds.dtype))

    def model_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {
            "input_ids": batch["input_ids"],
            "attention_mask": batch["attention_mask"],
            "pixel_values": batch["pixel_values"].to(self.model.dtype),
            "position_ids": self.model_position_ids(self.full_positions(batch)),  # generate() extends them by last + 1
        }


def _tile_layout(config: InternVLConfig) -> tuple[int, int]:
    """``(image_size, tokens_per_frame)`` from the model config, checked against ``image_seq_length``."""
    vision = config.vision_config
    size, patch = vision.image_size[0], vision.patch_size[0]
    if vision.image_size[0] != vision.image_size[1]:
        raise ValueError(f"InternVL tiles are square, the config says image_size {vision.image_size}")
    tokens = tokens_per_frame(size, patch, config.downsample_ratio)
    if tokens != config.image_seq_length:
        raise ValueError(f"image_seq_length {config.image_seq_length} != ({size}/{patch})² · {config.downsample_ratio}² = {tokens}")
    return size, tokens


def _settle_tokenizer(tokenizer: Any, config: InternVLConfig) -> None:
    """Left padding, a pad token, generation ending at the chat turn's end, and ``<IMG_CONTEXT>`` = the model's image id."""
    tokenizer.padding_side = "left"
    if tokenizer.convert_tokens_to_ids(IMG_CONTEXT) != config.image_token_id:
        raise ValueError(f"tokenizer's {IMG_CONTEXT} is id {tokenizer.convert_tokens_to_ids(IMG_CONTEXT)}, "
                         f"the model's image_token_id is {config.image_token_id}")
    if tokenizer.eos_token != TURN_END:  # answers end with <|im_end|> (answer_ids); generation must stop there
        tokenizer.eos_token = TURN_END
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token

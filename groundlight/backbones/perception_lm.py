"""PerceptionLM behind the backbone interface.

``PerceptionLMForConditionalGeneration`` is a vision tower (PE through timm on the hub
checkpoints), an MLP projector with 2-D average pooling (``projector_pooling_ratio``) and a
Llama LM with 1-D RoPE. A video is one tile per frame: every frame is resized to the tile
(448 px on the hub), encoded on its own and pooled to ``(tile/patch/pooling)²`` tokens, and
the prompt's single ``<|video|>`` is expanded to ``frames × tokens per frame`` copies, frame
after frame (``PerceptionLMProcessor.replace_video_token``). No timestamps or separators
are added: time is only in the frame order.

The preprocessing is the project's own (HF's video processor needs torchvision): bicubic
antialiased resize to the square tile rounded to uint8, rescale by 1/255, normalise with
mean = std = 0.5. The pooling ratio is an option because the self-consistency paper trains
PerceptionLM-8B with ratio 5 (36 tokens per 448-px frame) and infers with 4 (64 tokens); the
checkpoint's own is 2 (256 tokens).

The hub tower needs timm, and timm needs torchvision; neither imports on a CPU-only torch.
The tiny build swaps in a CLIP vision tower (the projector reads its width from
``vision_config.model_args["embed_dim"]``, so the CLIP config carries that key too).
"""

from __future__ import annotations

import importlib
import logging
import re
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from transformers import (
    AutoConfig,
    CLIPVisionConfig,
    LlamaConfig,
    PerceptionLMConfig,
    PerceptionLMForConditionalGeneration,
)

from groundlight.backbones.base import LoraOptions, VisualInput
from groundlight.backbones.chat import ChatVideoProcessor, HFVideoBackbone, expand_placeholder, one_d_positions
from groundlight.backbones.token_keep import hf_model
from groundlight.backbones.tokenizer import build_tokenizer, tiny_corpus

log = logging.getLogger(__name__)

PLM_MEAN = (0.5, 0.5, 0.5)
PLM_STD = (0.5, 0.5, 0.5)
VIDEO_TOKEN = "<|video|>"
END_OF_TURN = "<|eot_id|>"
END_OF_TEXT = "<|end_of_text|>"
BEGIN_OF_TEXT = "<|begin_of_text|>"
PLM_SPECIAL_TOKENS = (BEGIN_OF_TEXT, END_OF_TEXT, "<|image|>", VIDEO_TOKEN,
                      "<|start_header_id|>", "<|end_header_id|>", END_OF_TURN)
DEFAULT_SYSTEM = ("You are a helpful language and vision assistant. You are able to understand the visual content "
                  "that the user provides, and assist the user with a variety of tasks using natural language.")

# The hub model's layout for text + media: BOS, a system turn (a default one if none is given), then per turn the
# header, its images, its videos and its trimmed text, each turn closed by <|eot_id|>.
PLM_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}"
    "{% set system = messages[0]['content'] | trim %}{% set turns = messages[1:] %}"
    "{% else %}{% set system = '" + DEFAULT_SYSTEM + "' %}{% set turns = messages %}{% endif %}"
    "<|start_header_id|>system<|end_header_id|>\n\n{{ system }}<|eot_id|>"
    "{% for message in turns %}"
    "<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{% if message['content'] is string %}{{ message['content'] | trim }}{% else %}"
    "{% for part in message['content'] if part['type'] == 'image' %}<|image|>{% endfor %}"
    "{% for part in message['content'] if part['type'] == 'video' %}<|video|>{% endfor %}"
    "{% for part in message['content'] if part['type'] == 'text' %}{{ part['text'] | trim }}{% endfor %}"
    "{% endif %}<|eot_id|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)

TIMM_MESSAGE = (
    "{source} has a timm vision tower ({architecture}); building it needs timm, and timm needs a torchvision that "
    "imports with your torch; here it does not ({error}). Install both on the GPU nodes "
    "(`pip install timm torchvision`, matching your torch), or load a checkpoint with a CLIP vision config "
    "(a tiny build's save_pretrained directory)."
)


@dataclass
class PerceptionLMVisualInput(VisualInput):
    """A PerceptionLM-preprocessed video: ``pixel_values`` is ``(T, 3, tile, tile)``, one tile per frame.

    Attributes:
        tokens_per_frame: visual tokens of one frame after the projector's pooling.
    """

    tokens_per_frame: int = 0


@dataclass
class PerceptionLMVideoProcessor(ChatVideoProcessor):
    """Frames and prompts → PerceptionLM inputs.

    Attributes:
        tokenizer: the backbone's tokenizer, with a chat template; its EOS is ``<|eot_id|>``.
        tile_size: side of the square each frame is resized to (the vision tower's input).
        patch_size: the vision tower's patch side.
        pooling_ratio: the projector's 2-D pooling ratio.
        system_prompt: system turn; ``None`` keeps the chat template's default.
    """

    tokenizer: Any
    tile_size: int = 448
    patch_size: int = 14
    pooling_ratio: int = 2
    system_prompt: str | None = None
    visual_keys = ("pixel_values_videos",)

    def __post_init__(self) -> None:
        if self.tile_size // self.patch_size // self.pooling_ratio < 1:
            raise ValueError(f"pooling ratio {self.pooling_ratio} leaves no token of a {self.tile_size}-px tile of "
                             f"{self.patch_size}-px patches: lower pooling_ratio")

    @property
    def tokens_per_frame(self) -> int:
        """``(tile/patch // pooling)²``: the pooled grid is ``floor(side / ratio)`` cells a side, as HF pools."""
        return (self.tile_size // self.patch_size // self.pooling_ratio) ** 2

    def resize(self, frames: torch.Tensor) -> torch.Tensor:
        """``(T, H, W, 3)`` uint8 → ``(T, 3, tile, tile)`` float in [0, 255], rounded like a uint8 resize."""
        video = frames.permute(0, 3, 1, 2).float()
        size = (self.tile_size, self.tile_size)
        if tuple(video.shape[-2:]) != size:
            video = F.interpolate(video, size=size, mode="bicubic", antialias=True, align_corners=False)
            video = video.round().clamp(0, 255)
        return video

    def prepare_video(self, frames: torch.Tensor, timestamps: torch.Tensor) -> PerceptionLMVisualInput:
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
            raise ValueError(f"expected frames (T>0, H, W, 3), got {tuple(frames.shape)}")
        if timestamps.shape != (frames.shape[0],):
            raise ValueError(f"expected one timestamp per frame, got {tuple(timestamps.shape)} for {frames.shape[0]} frames")
        mean = torch.tensor(PLM_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(PLM_STD).view(1, 3, 1, 1)
        pixel_values = (self.resize(frames) / 255.0 - mean) / std
        per_frame = self.tokens_per_frame
        num_tokens = frames.shape[0] * per_frame
        return PerceptionLMVisualInput(
            pixel_values=pixel_values,
            num_tokens=num_tokens,
            token_frame=torch.arange(num_tokens) // per_frame,
            timestamps=timestamps.double(),
            tokens_per_frame=per_frame,
        )

    @property
    def visual_token_id(self) -> int:
        return self.tokenizer.convert_tokens_to_ids(VIDEO_TOKEN)

    def prompt_ids(self, prompt: str, visual: VisualInput, query: str = "") -> tuple[list[int], list[bool]]:
        """Chat-formatted prompt ids with ``<|video|>`` expanded, and query flags (the template trims the text,
        so the query is located in the trimmed prompt)."""
        prompt = prompt.strip()
        ids, flags = self.encode(self.chat_text(prompt), prompt, query)
        return expand_placeholder(ids, flags, self.visual_token_id, visual.num_tokens, VIDEO_TOKEN)

    def answer_ids(self, answer: str) -> list[int]:
        """The assistant turn as the template renders it: the trimmed text, then ``<|eot_id|>``."""
        return self.tokenizer(answer.strip() + END_OF_TURN, add_special_tokens=False)["input_ids"]

    def video_inputs(self, visuals: list[Any], frame_index: torch.Tensor, with_pixels: bool) -> dict[str, Any]:
        """``pixel_values_videos``: every video's frames in order, ``(ΣT, 3, tile, tile)``."""
        return {"pixel_values_videos": torch.cat([v.pixel_values for v in visuals])} if with_pixels else {}



@dataclass
class TinyPerceptionLMConfig:
    """A random-init PerceptionLM of the real class with a CLIP vision tower, small enough for a CPU.

    ``tile_size / patch_size`` patches a side go into the projector's pooling.
    """

    hidden_size: int = 64
    intermediate_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    vision_depth: int = 2
    vision_hidden_size: int = 32
    vision_intermediate_size: int = 64
    vision_heads: int = 2
    tile_size: int = 56
    patch_size: int = 14
    vocab_size: int = 1024

    def build_config(self, tokenizer: Any, pooling_ratio: int) -> PerceptionLMConfig:
        ids = {t: tokenizer.convert_tokens_to_ids(t) for t in ("<|image|>", VIDEO_TOKEN)}
        text = LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=self.hidden_size, intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_layers, num_attention_heads=self.num_heads, num_key_value_heads=self.num_kv_heads,
            max_position_embeddings=32768, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        vision = CLIPVisionConfig(
            hidden_size=self.vision_hidden_size, intermediate_size=self.vision_intermediate_size,
            num_hidden_layers=self.vision_depth, num_attention_heads=self.vision_heads,
            image_size=self.tile_size, patch_size=self.patch_size,
        )
        vision.model_args = {"embed_dim": self.vision_hidden_size}  # the projector's input width (timm's key)
        return PerceptionLMConfig(
            text_config=text, vision_config=vision, vision_use_cls_token=True, projector_pooling_ratio=pooling_ratio,
            image_token_id=ids["<|image|>"], video_token_id=ids[VIDEO_TOKEN],
        )


def tower_geometry(vision_config: Any) -> tuple[int, int]:
    """``(tile, patch)`` of a vision config: CLIP's fields; a timm tower's ``model_args`` or architecture name.

    A timm PE tower's name ends in its pretraining size (``..._patch14_336``), not the tile PerceptionLM
    feeds it: ``model_args["img_size"]`` wins, then the HF video processor's 448.
    """
    if getattr(vision_config, "model_type", None) != "timm_wrapper":
        return int(vision_config.image_size), int(vision_config.patch_size)
    args = getattr(vision_config, "model_args", None) or {}
    size = args.get("img_size", 448)
    patch = args.get("patch_size")
    if patch is None:
        found = re.search(r"patch(\d+)", getattr(vision_config, "architecture", "") or "")
        patch = int(found.group(1)) if found else 14
    return int(size[0] if isinstance(size, (list, tuple)) else size), int(patch)


def require_timm(config: PerceptionLMConfig, source: str) -> None:
    """Fail early, naming timm and torchvision, when ``config``'s vision tower cannot be built here."""
    if getattr(config.vision_config, "model_type", None) != "timm_wrapper":
        return
    try:
        importlib.import_module("timm")
    except Exception as error:  # timm's own import of torchvision fails with RuntimeError/OSError on CPU-only torch
        architecture = getattr(config.vision_config, "architecture", "timm_wrapper")
        raise ImportError(TIMM_MESSAGE.format(source=source, architecture=architecture, error=error)) from error


def _chat_tokenizer(tokenizer: Any) -> Any:
    """End turns with ``<|eot_id|>`` (what the model emits), pad with ``<|end_of_text|>``, left-pad."""
    for name, token in (("eos_token", END_OF_TURN), ("pad_token", END_OF_TEXT), ("bos_token", BEGIN_OF_TEXT)):
        if tokenizer.convert_tokens_to_ids(token) in (None, tokenizer.unk_token_id):
            raise ValueError(f"the tokenizer has no {token}: is this a PerceptionLM (Llama 3) tokenizer?")
        setattr(tokenizer, name, token)
    if tokenizer.chat_template is None:  # some hub snapshots keep the template with the processor only
        log.warning("the tokenizer has no chat template; using groundlight's copy of PerceptionLM's layout")
        tokenizer.chat_template = PLM_CHAT_TEMPLATE
    tokenizer.padding_side = "left"
    return tokenizer


class PerceptionLMBackbone(HFVideoBackbone):
    """PerceptionLM: ``pretrained`` (hub id or local dir) or ``tiny`` (random init, CLIP tower, offline).

    Args:
        pretrained: hub id (``facebook/Perception-LM-8B``) or local directory for ``from_pretrained``.
        tiny: build a random-init model of the same class instead.
        dtype: parameter dtype (``float32``, ``bfloat16``, ``float16``).
        attn_implementation: ``sdpa`` by default; attention probes wrap it, never eager.
        trust_remote_code: off unless the user turns it on.
        local_files_only: never touch the hub (offline clusters).
        lora: LoRA on the LM attention projections (the default regex names ``language_model``, which the
            vision tower and the ``multi_modal_projector`` never contain); ``None`` trains all unfrozen weights.
        freeze_vision: keep the vision tower and the projector frozen.
        gradient_checkpointing: trade compute for memory on real-size models.
        add_tokens: special tokens a method needs (D²VLM: ``["<evi>", "</evi>"]``), see :meth:`HFVideoBackbone.add_tokens`.
        pooling_ratio: the projector's 2-D pooling ratio; ``None`` keeps the checkpoint's (2 on the hub; 2 for tiny).
        system_prompt: overrides the chat template's system turn.
    """

    vision_module = "vision_tower"
    frozen_with_vision = ("vision_tower", "multi_modal_projector")

    def __init__(
        self,
        pretrained: str | None = None,
        tiny: TinyPerceptionLMConfig | None = None,
        dtype: str = "float32",
        attn_implementation: str = "sdpa",
        trust_remote_code: bool = False,
        local_files_only: bool = False,
        lora: LoraOptions | None = None,
        freeze_vision: bool = False,
        gradient_checkpointing: bool = False,
        add_tokens: tuple[str, ...] = (),
        pooling_ratio: int | None = None,
        system_prompt: str | None = None,
    ) -> None:
        super().__init__()
        self.check_source(pretrained, tiny)
        if pooling_ratio is not None and pooling_ratio < 1:
            raise ValueError(f"pooling_ratio must be >= 1, got {pooling_ratio}")
        if pretrained is not None:
            self.model, tokenizer = self._load(pretrained, dtype, attn_implementation, trust_remote_code,
                                               local_files_only, pooling_ratio)
        else:
            tokenizer = _chat_tokenizer(build_tokenizer(tiny_corpus(), vocab_size=tiny.vocab_size,
                                                        special_tokens=PLM_SPECIAL_TOKENS, chat_template=PLM_CHAT_TEMPLATE))
            self.model = self.from_config(PerceptionLMForConditionalGeneration,
                                          tiny.build_config(tokenizer, pooling_ratio or 2), dtype, attn_implementation)
        config = self.model.config
        tile, patch = tower_geometry(config.vision_config)
        self.processor = PerceptionLMVideoProcessor(tokenizer, tile, patch, config.projector_pooling_ratio, system_prompt)
        self.finish(freeze_vision, gradient_checkpointing, lora, add_tokens)

    @classmethod
    def _load(cls, pretrained: str, dtype: str, attn_implementation: str, trust_remote_code: bool,
              local_files_only: bool, pooling_ratio: int | None) -> tuple[PerceptionLMForConditionalGeneration, Any]:
        """The checkpoint's config first: a timm tower without timm fails here with a message, not deep in HF."""
        options = {"trust_remote_code": trust_remote_code, "local_files_only": local_files_only}
        config = AutoConfig.from_pretrained(pretrained, **options)
        require_timm(config, pretrained)
        if pooling_ratio is not None:
            config.projector_pooling_ratio = pooling_ratio  # the projector builds its pooling from the config
        model, tokenizer = cls.from_hub(PerceptionLMForConditionalGeneration, pretrained, dtype, attn_implementation,
                                        trust_remote_code, local_files_only, config=config)
        tokenizer = _chat_tokenizer(tokenizer)
        if tokenizer.convert_tokens_to_ids(VIDEO_TOKEN) != config.video_token_id:
            raise ValueError(f"{pretrained}: the tokenizer's {VIDEO_TOKEN} is not config.video_token_id "
                             f"({config.video_token_id})")
        return model, tokenizer

    def full_positions(self, batch: dict[str, Any]) -> torch.Tensor:
        return one_d_positions(batch["attention_mask"])

    def projector_parameters(self) -> list[torch.nn.Parameter]:
        return list(hf_model(self.model).model.multi_modal_projector.parameters())

    def video_features(self, batch: dict[str, Any]) -> torch.Tensor:
        """``(ΣT·tokens per frame, D)`` projected, pooled features of every frame, in sequence order."""
        hf = hf_model(self.model)
        features = hf.model.get_image_features(pixel_values=self._pixels(batch), return_dict=True).pooler_output
        return features.flatten(0, 1)

    def embed_inputs(self, batch: dict[str, Any]) -> torch.Tensor:
        """Token embeddings ``(B, L, D)`` with the projected visual features scattered into the ``<|video|>`` slots."""
        hf = hf_model(self.model)
        embeds = hf.get_input_embeddings()(batch["input_ids"])
        slots = (batch["input_ids"] == hf.config.video_token_id).unsqueeze(-1)
        return embeds.masked_scatter(slots, self.video_features(batch).to(embeds.dtype))

    def _pixels(self, batch: dict[str, Any]) -> torch.Tensor:
        """``(ΣT, 3, S, S)`` → the ``(1, ΣT, 3, S, S)`` HF flattens back to frames: videos may differ in length."""
        return batch["pixel_values_videos"].unsqueeze(0).to(self.model.dtype)

    def model_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {
            "input_ids": batch["input_ids"],
            "attention_mask": batch["attention_mask"],
            "pixel_values_videos": self._pixels(batch),
            "position_ids": self.model_position_ids(self.full_positions(batch)),
        }

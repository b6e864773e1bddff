"""What every family's processor and backbone share, so that a family file holds only its quirks.

- :class:`ChatVideoProcessor`: one tokenization of the chat text with the query span found by character
  offsets, a visual-token count check, the left-padded collate and decoding. A family gives its prompt
  text/ids, its answer ids, the token that marks visual positions and its model inputs for the videos.
- :class:`HFVideoBackbone`: loading from the hub or building the tiny model, the finishing steps (frozen
  vision, gradient checkpointing, LoRA), ``save_pretrained``, forward and greedy generation through the
  family's ``model_inputs``, and the language model's decoder layers.
"""

from __future__ import annotations

import copy
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from transformers import AutoConfig, AutoTokenizer

from groundlight.backbones.base import (
    LoraOptions,
    VideoBackbone,
    VideoProcessor,
    VisualInput,
)
from groundlight.backbones.lora import apply_lora, freeze_modules
from groundlight.backbones.token_keep import TokenKeep, hf_model
from groundlight.ops import IGNORE_INDEX

Row = tuple[list[int], list[int], torch.Tensor, list[bool]]
"""One prompt (+ answer): ids, labels, the frame each id shows (-1 off the video), query flags."""


def query_flags(text: str, prompt: str, query: str, offsets: Sequence[tuple[int, int]]) -> list[bool]:
    """Per token: does it overlap the query's text? The query is found in the prompt's last occurrence in
    ``text``; tokens are matched by character offsets, so BPE merges across its edges count as query."""
    at_prompt, at_query = text.rfind(prompt), prompt.rfind(query) if query else -1
    start = at_prompt + at_query if at_prompt >= 0 and at_query >= 0 else len(text)
    end = start + len(query)
    return [a < end and b > start for a, b in offsets]


def expand_placeholder(ids: list[int], flags: list[bool], token_id: int, count: int, name: str) -> tuple[list[int], list[bool]]:
    """One placeholder token → ``count`` copies (the video's visual tokens), flags padded with False."""
    if ids.count(token_id) != 1:
        raise ValueError(f"the chat template must place exactly one {name} per video")
    at = ids.index(token_id)
    return ids[:at] + [token_id] * count + ids[at + 1 :], flags[:at] + [False] * count + flags[at + 1 :]


def left_padded(rows: Sequence[Row], pad_id: int) -> dict[str, torch.Tensor]:
    """Rows → left-padded ``input_ids``, ``attention_mask``, ``labels``, ``frame_index`` and ``query_mask``."""
    size, length = len(rows), max(len(row[0]) for row in rows)
    batch = {
        "input_ids": torch.full((size, length), pad_id, dtype=torch.long),
        "attention_mask": torch.zeros((size, length), dtype=torch.long),
        "labels": torch.full((size, length), IGNORE_INDEX, dtype=torch.long),
        "frame_index": torch.full((size, length), -1, dtype=torch.long),
        "query_mask": torch.zeros((size, length), dtype=torch.bool),
    }
    for b, (ids, labels, frames, query) in enumerate(rows):
        start = length - len(ids)  # left padding: generation continues from the last column
        batch["input_ids"][b, start:] = torch.tensor(ids)
        batch["attention_mask"][b, start:] = 1
        batch["labels"][b, start:] = torch.tensor(labels)
        batch["frame_index"][b, start:] = frames
        batch["query_mask"][b, start : start + len(query)] = torch.tensor(query, dtype=torch.bool)
    return batch


def one_d_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """``(1, B, L)`` 1-D RoPE ids counted from 0 at each row's first real token (padding 0), as HF ``generate``
    numbers them, so a left-padded row gets the ids it has alone."""
    real = attention_mask.bool()
    return (real.long().cumsum(1) - 1).masked_fill(~real, 0).unsqueeze(0)


class ChatVideoProcessor(VideoProcessor):
    """The collate every chat-templated family shares (see the module docstring)."""

    tokenizer: Any
    system_prompt: str | None

    @property
    @abstractmethod
    def visual_token_id(self) -> int:
        """The token id at every visual position of the expanded prompt."""

    @abstractmethod
    def prompt_ids(self, prompt: str, visual: VisualInput, query: str = "") -> tuple[list[int], list[bool]]:
        """The prompt's ids with the video expanded, and per id: is it query text."""

    @abstractmethod
    def answer_ids(self, answer: str) -> list[int]:
        """The assistant turn's ids as the chat template ends it."""

    @abstractmethod
    def video_inputs(self, visuals: list[Any], frame_index: torch.Tensor, with_pixels: bool) -> dict[str, Any]:
        """The family's model inputs for the batch's videos (pixels only ``with_pixels``), given where they sit."""

    def chat_text(self, prompt: str, content_before: Sequence[dict[str, str]] = ()) -> str:
        """The user turn (video, then the prompt) through the chat template, with the system turn if set."""
        messages = [{"role": "user", "content": [*content_before, {"type": "video"}, {"type": "text", "text": prompt}]}]
        if self.system_prompt is not None:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def encode(self, text: str, prompt: str, query: str) -> tuple[list[int], list[bool]]:
        """``text``'s ids and query flags from one tokenization."""
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return encoded["input_ids"], query_flags(text, prompt, query, encoded["offset_mapping"])

    def collate(self, items: list[dict[str, Any]], with_answer: bool, with_pixels: bool = True) -> dict[str, Any]:
        batch = left_padded([self._row(item, with_answer) for item in items], self.tokenizer.pad_token_id)
        visuals = [item["visual"] for item in items]
        batch["frame_seconds"] = [v.timestamps[v.token_frame].float() for v in visuals]
        batch |= self.video_inputs(visuals, batch["frame_index"], with_pixels)
        if not with_answer:
            del batch["labels"]
        return batch

    def _row(self, item: dict[str, Any], with_answer: bool) -> Row:
        visual: VisualInput = item["visual"]
        prompt, query = self.prompt_ids(item["prompt"], visual, item.get("query", "").strip())
        answer = self.answer_ids(item["answer"]) if with_answer else []
        ids = prompt + answer
        is_visual = torch.tensor(ids) == self.visual_token_id
        if int(is_visual.sum()) != visual.num_tokens:
            raise ValueError(f"{int(is_visual.sum())} visual tokens in the prompt, the video has {visual.num_tokens}")
        frames = torch.full((len(ids),), -1, dtype=torch.long)
        frames[is_visual] = visual.token_frame
        return ids, [IGNORE_INDEX] * len(prompt) + answer, frames, query

    def decode(self, token_ids: torch.Tensor) -> list[str]:
        return [t.strip() for t in self.tokenizer.batch_decode(token_ids, skip_special_tokens=True)]


class HFVideoBackbone(TokenKeep, VideoBackbone):
    """A family built on one HF ``*ForConditionalGeneration`` class (see the module docstring).

    Attributes:
        vision_module: the attribute of the HF inner model holding the vision encoder.
        frozen_with_vision: module names ``freeze_vision`` freezes (the tower, and the projector where it sits apart).
    """

    vision_module: ClassVar[str] = "visual"
    frozen_with_vision: ClassVar[tuple[str, ...]] = ("visual",)

    @staticmethod
    def check_source(pretrained: str | None, tiny: Any) -> None:
        if (pretrained is None) == (tiny is None):
            raise ValueError("set exactly one of `pretrained` (hub id or directory) or `tiny` (random-init config)")

    @staticmethod
    def from_hub(model_class: type, pretrained: str, dtype: str, attn_implementation: str, trust_remote_code: bool,
                 local_files_only: bool, **model_kwargs: Any) -> tuple[nn.Module, Any]:
        """The checkpoint's model and tokenizer; ``trust_remote_code`` stays off unless the user turns it on. Under
        ``torch.device("meta")`` only the config is read and the model holds no memory (``groundlight estimate``)."""
        options = {"trust_remote_code": trust_remote_code, "local_files_only": local_files_only}
        tokenizer = AutoTokenizer.from_pretrained(pretrained, **options)
        if torch.get_default_device().type == "meta":  # shapes only (`groundlight estimate`): the config, no weights
            config = AutoConfig.from_pretrained(pretrained, **options)
            return model_class._from_config(config, dtype=getattr(torch, dtype), attn_implementation=attn_implementation), tokenizer
        model = model_class.from_pretrained(pretrained, dtype=getattr(torch, dtype),
                                           attn_implementation=attn_implementation, **options, **model_kwargs)
        return model, tokenizer

    @staticmethod
    def from_config(model_class: type, config: Any, dtype: str, attn_implementation: str) -> nn.Module:
        """A random-init model of the real class (the tiny builds)."""
        config._attn_implementation = attn_implementation
        return model_class(config).to(getattr(torch, dtype))

    def finish(self, freeze_vision: bool, gradient_checkpointing: bool, lora: LoraOptions | None,
               add_tokens: Sequence[str] = ()) -> None:
        token_ids = self.add_tokens(add_tokens)
        if freeze_vision:
            freeze_modules(self.model, self.frozen_with_vision)
        if gradient_checkpointing:
            self.model.gradient_checkpointing_enable()
        if lora is not None:
            self.model = apply_lora(self.model, lora, trainable_tokens=token_ids, tied=self._tied_embeddings())

    def add_tokens(self, tokens: Sequence[str]) -> list[int]:
        """Special tokens a method needs (D²VLM's ``<evi>``/``</evi>``), before LoRA wraps the model.

        A token the tokenizer lacks is added; the embedding rows (input, and output when untied) grow when
        the model has no spare row for it, and a new token's rows start at the mean of the vocabulary's rows.
        A token already there (a checkpoint saved with it) keeps its trained rows. Returns every token's id:
        under LoRA those rows stay trainable (peft's trainable tokens), merged back by ``save_pretrained``. A method
        may call it on a built backbone without LoRA (all rows train); under LoRA the backbone's config must name
        the tokens, so they exist before the adapters do.
        """
        if not tokens:
            return []
        tokenizer = self.processor.tokenizer
        known = len(tokenizer)
        new = [t for t in dict.fromkeys(tokens) if t not in tokenizer.get_vocab()]
        if new and hasattr(self.model, "peft_config"):
            raise ValueError(f"cannot add {new} after LoRA wrapped the model (their rows could not train): set the "
                             f"backbone's `add_tokens: {list(tokens)}` in its config")
        if new:
            tokenizer.add_tokens(new, special_tokens=True)
        ids = [tokenizer.convert_tokens_to_ids(t) for t in tokens]
        if max(ids) >= self.model.get_input_embeddings().weight.shape[0]:
            self.model.resize_token_embeddings(max(ids) + 1, mean_resizing=False)
        fresh = [tokenizer.convert_tokens_to_ids(t) for t in new]
        layers = [self.model.get_input_embeddings()] + ([] if self._tied_embeddings() else [self.model.get_output_embeddings()])
        with torch.no_grad():
            for layer in layers:
                if fresh:
                    layer.weight[fresh] = layer.weight[:known].mean(0).to(layer.weight.dtype)
        return ids

    def _tied_embeddings(self) -> bool:
        return hf_model(self.model).get_output_embeddings().weight is hf_model(self.model).get_input_embeddings().weight

    def decoder_layers(self) -> dict[int, nn.Module]:
        return {layer.self_attn.layer_idx: layer for layer in hf_model(self.model).model.language_model.layers}

    def vision_encoder(self) -> nn.Module:
        return getattr(hf_model(self.model).model, self.vision_module)

    @property
    def hf_config(self) -> Any:
        """The HF model's config, text and vision sub-configs included (shapes for ``groundlight estimate``)."""
        return hf_model(self.model).config

    @property
    def checkpointing(self) -> bool:
        """Whether the HF model recomputes its layers' activations in backward."""
        model = hf_model(self.model)
        return bool(getattr(model, "is_activation_checkpointing", None) or getattr(model, "is_gradient_checkpointing", False))

    def input_embeddings(self) -> nn.Module:
        return hf_model(self.model).get_input_embeddings()

    @contextmanager
    def adapters_disabled(self) -> Iterator[None]:
        if not hasattr(self.model, "disable_adapter"):
            raise ValueError(f"{type(self).__name__} has no adapters to disable: configure `lora` on the backbone")
        with self.model.disable_adapter():
            yield

    def save_pretrained(self, directory: str | Path) -> None:
        """Weights (LoRA merged into a copy), config and tokenizer, loadable with ``pretrained=directory``."""
        model = copy.deepcopy(self.model).merge_and_unload() if hasattr(self.model, "merge_and_unload") else self.model
        self.annotate_config(model.config)
        model.save_pretrained(directory)
        self.processor.tokenizer.save_pretrained(directory)

    def annotate_config(self, config: Any) -> None:
        """Anything the family records in a saved checkpoint's config (nothing by default)."""

    @abstractmethod
    def model_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        """The HF model's keyword inputs for a collated batch, position ids included."""

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

"""An offline byte-level BPE tokenizer for tiny random-init backbones.

No hub access is needed: the BPE is trained in milliseconds on text the project owns
(prompt templates, the synthetic benchmark's vocabulary, numbers and times), then
wrapped in ``PreTrainedTokenizerFast`` with Qwen-style chat special tokens and a chat
template, so the tiny model goes through exactly the same prompt code as the real one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# Same message layout as Qwen2.5-VL's template for text + one video per user turn.
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


TINY_CORPUS = Path(__file__).with_name("tiny_corpus.json")
"""Text the project owns (prompt templates and the benchmark's words) for the tiny models' BPE; a test keeps
it equal to ``data_modules.tasks.tokenizer_corpus()`` (backbones may not import the prompt builders)."""


def tiny_corpus() -> list[str]:
    return json.loads(TINY_CORPUS.read_text(encoding="utf-8"))


def _number_corpus(max_seconds: int = 600) -> Iterable[str]:
    for whole in range(max_seconds):
        yield f"from {whole}.0s to {whole + 1}.5s, {whole} seconds, 00:{whole % 60:02d}"
    for tenth in range(10):
        yield f"0.{tenth} 1.{tenth}s {tenth}"


def build_tokenizer(
    corpus: Iterable[str],
    vocab_size: int = 1024,
    special_tokens: tuple[str, ...] = QWEN_SPECIAL_TOKENS,
    chat_template: str = QWEN_CHAT_TEMPLATE,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on ``corpus`` (plus numbers and times) and wrap it for chat.

    Deterministic for a given corpus, so a checkpoint trained with a tiny model can be
    reloaded by rebuilding the tokenizer from the same config.
    """
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([*corpus, *_number_corpus()], trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=[t for t in special_tokens if t not in ("<|im_end|>", "<|endoftext|>")],
    )
    wrapped.chat_template = chat_template
    wrapped.padding_side = "left"
    return wrapped

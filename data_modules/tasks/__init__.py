"""Prompt and answer builders: VideoSample → (prompt, answer, target)."""

from data_modules.tasks.prompts import PromptTemplates, build_example, tokenizer_corpus

__all__ = ["PromptTemplates", "build_example", "tokenizer_corpus"]

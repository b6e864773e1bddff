"""Prompt and answer builders: VideoSample → (prompt, answer, query span)."""

from data_modules.tasks.prompts import PromptTemplates, tokenizer_corpus

__all__ = ["PromptTemplates", "tokenizer_corpus"]

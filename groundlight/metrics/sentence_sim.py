"""Sentence embeddings as sentence-transformers computes them, with plain ``transformers``.

E.T. Bench scores caption similarity and falls back to answer-option similarity with
``sentence-transformers/all-MiniLM-L6-v2``: token embeddings mean-pooled over the
attention mask, then L2-normalised, compared by dot product. This module reads the
same model directory (``modules.json``, ``sentence_bert_config.json``,
``1_Pooling/config.json``) and reproduces that without the sentence-transformers package.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch


def _read_json(path: Path) -> dict | list | None:
    return json.loads(path.read_text()) if path.is_file() else None


class SentenceEmbedder:
    """Mean-pooled (optionally normalised) sentence embeddings from a local model directory.

    Args:
        model_dir: a sentence-transformers model folder (``config.json``, weights, tokenizer).
        device: torch device for the encoder.
        batch_size: sentences per forward pass.

    Raises:
        ValueError: the folder asks for a pooling other than mean pooling.
    """

    def __init__(self, model_dir: str | Path, device: str = "cpu", batch_size: int = 32) -> None:
        from transformers import AutoModel, AutoTokenizer

        folder = Path(model_dir)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{folder} is not a model folder (no config.json)")
        pooling = _read_json(folder / "1_Pooling" / "config.json") or {"pooling_mode_mean_tokens": True}
        if not pooling.get("pooling_mode_mean_tokens") or pooling.get("pooling_mode_cls_token"):
            raise ValueError(f"{folder}: only mean pooling is supported, got {pooling}")
        modules = _read_json(folder / "modules.json") or []
        self.normalize = any(m.get("type", "").endswith("Normalize") for m in modules)
        config = _read_json(folder / "sentence_bert_config.json") or {}
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.max_length = int(config.get("max_seq_length", self.tokenizer.model_max_length))
        self.model = AutoModel.from_pretrained(folder).to(device).eval()
        self.device, self.batch_size = device, batch_size

    @torch.no_grad()
    def encode(self, sentences: Sequence[str]) -> torch.Tensor:
        """``(N, D)`` float32 embeddings of ``sentences``."""
        chunks = []
        for start in range(0, len(sentences), self.batch_size):
            batch = self.tokenizer(list(sentences[start : start + self.batch_size]), padding=True,
                                   truncation=True, max_length=self.max_length, return_tensors="pt")
            batch = {k: v.to(self.device) for k, v in batch.items()}
            tokens = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(tokens.dtype)
            pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            chunks.append(torch.nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled)
        return torch.cat(chunks).float().cpu() if chunks else torch.zeros(0, 0)

    def similarity(self, a: str, b: str) -> float:
        """Dot product of the embeddings of two sentences (cosine for normalising models)."""
        emb = self.encode([a, b])
        return float(emb[0] @ emb[1])

    def paired(self, a: Sequence[str], b: Sequence[str]) -> torch.Tensor:
        """``(N,)`` dot products of ``a[i]`` with ``b[i]``."""
        if len(a) != len(b):
            raise ValueError(f"{len(a)} sentences paired with {len(b)}")
        return (self.encode(a) * self.encode(b)).sum(-1) if a else torch.zeros(0)

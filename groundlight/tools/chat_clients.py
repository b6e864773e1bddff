"""Chat-model clients for the data tools that ask an LLM (FitnessQA→MCQ, D²VLM text distortion).

A client is any ``client(messages) -> reply text`` for OpenAI-style ``[{"role", "content"}]`` messages: a local
HF causal LM, or an OpenAI-compatible endpoint whose key is read from the environment and never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.request
from collections.abc import Callable

ChatClient = Callable[[list[dict[str, str]]], str]


class HFChatClient:
    """A local HF causal LM (any path or hub id transformers can load) with its chat template, greedy."""

    def __init__(self, model: str, max_new_tokens: int = 256, device: str = "cpu") -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.model = AutoModelForCausalLM.from_pretrained(model).to(device).eval()
        self.max_new_tokens, self.device = max_new_tokens, device

    def __call__(self, messages: list[dict[str, str]]) -> str:
        import torch

        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                 return_dict=True)["input_ids"].to(self.device)
        with torch.no_grad():
            output = self.model.generate(ids, max_new_tokens=self.max_new_tokens, do_sample=False,
                                         pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id)
        return self.tokenizer.decode(output[0, ids.shape[1]:], skip_special_tokens=True)


class OpenAIChatClient:
    """An OpenAI-compatible ``/chat/completions`` endpoint; the key is read from ``api_key_env`` and never printed."""

    def __init__(self, model: str, base_url: str, api_key_env: str = "OPENAI_API_KEY", timeout: float = 60.0) -> None:
        self.model, self.url, self.timeout = model, base_url.rstrip("/") + "/chat/completions", timeout
        self._key = os.environ.get(api_key_env)
        if not self._key:
            raise SystemExit(f"set the API key in the environment variable {api_key_env}")

    def __call__(self, messages: list[dict[str, str]]) -> str:
        body = json.dumps({"model": self.model, "messages": messages, "temperature": 0}).encode()
        request = urllib.request.Request(self.url, data=body, headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {self._key}"})
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 (user-given endpoint)
            return json.loads(response.read())["choices"][0]["message"]["content"]


def add_client_arguments(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("--client", choices=("hf", "openai"), required=required,
                        help="a local HF causal LM or an OpenAI-compatible endpoint")
    parser.add_argument("--model", help="HF path/id, or the endpoint's model name")
    parser.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL"), help="OpenAI-compatible endpoint")
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the key")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--device", default="cpu")


def client_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> ChatClient | None:
    """The client the arguments name (``None`` without ``--client``); argument errors go through ``parser``."""
    if args.client is None:
        return None
    if not args.model:
        parser.error("--client needs --model")
    if args.client == "openai" and not args.base_url:
        parser.error("--client openai needs --base-url (or OPENAI_BASE_URL)")
    if args.client == "hf":
        return HFChatClient(args.model, args.max_new_tokens, args.device)
    return OpenAIChatClient(args.model, args.base_url, args.api_key_env)

"""D²VLM's costs on the tiny model at ~2k tokens → ``runs/bench/d2vlm.json``.

Measured interleaved in one process, on one batch of one 64-frame 224 px video (2048 visual tokens) whose answer
holds two events (four ``<evi>``):

- ``sft_step_time_ratio_d2vlm_over_sft``: D²VLM's SFT step (the teacher-forced pass in two parts over one KV
  cache, video and prompt then the response with the aggregation, plus heads, ``L_gnd`` and ``L_cons``) over a
  plain cross-entropy step on the same batch; beside it the route taken under gradient checkpointing, a no-grad
  pass that stops at the aggregation layer and then the full pass (``..._d2vlm_without_cache_over_sft``), and the
  released code's anchor, two full forward passes (``..._two_pass_over_sft``);
- ``evi_overhead_fraction``: per generated ``<evi>``, the evidence head, similarities, threshold, span and
  aggregation (the step hook), as a share of one cached decode step of the same model (the median over rounds
  that time the two in alternation);
- ``fpo_peak_mem_ratio_over_sft``: peak RSS growth of an FPO step (one pair, LoRA, ``adapter-disabled`` reference)
  over a D²VLM SFT step on the same two responses as a batch of two; beside it the same FPO step with a full
  reference copy of the model (``..._full_copy_over_sft``) and that copy's parameter bytes.
"""

from __future__ import annotations

import copy
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from data_modules.samples import VideoSample
from data_modules.tasks.evidence import EvidenceResponse
from groundlight.backbones.base import LoraOptions
from groundlight.backbones.qwen2_5_vl import Qwen25VLBackbone, TinyQwenConfig
from groundlight.bench.model import interleaved, return_freed_memory, sft_step
from groundlight.io import write_json_atomic
from groundlight.methods.d2vlm import D2VLMModule, EvidenceOptions, FPOOptions
from groundlight.methods.d2vlm.decoding import EvidenceDecoder
from groundlight.methods.d2vlm.module import Scores

FRAMES, SIDE = 64, 224
CHOSEN = EvidenceResponse(((3.0, 9.0), (20.0, 31.0)), (", the red circle appears.", ", the blue square appears."))
REJECTED = EvidenceResponse(((12.0, 18.0), (20.0, 31.0)), CHOSEN.texts)


def _backbone(lora: bool, side: int = SIDE) -> Qwen25VLBackbone:
    torch.manual_seed(0)
    return Qwen25VLBackbone(tiny=TinyQwenConfig(), min_pixels=side * side, max_pixels=side * side,
                            lora=LoraOptions(r=8) if lora else None, add_tokens=("<evi>", "</evi>"))


def _batch(module: D2VLMModule, responses: list[EvidenceResponse], rejected: EvidenceResponse | None = None,
           with_answer: bool = True, frames: int = FRAMES, side: int = SIDE) -> dict[str, Any]:
    generator = torch.Generator().manual_seed(0)
    video = torch.randint(0, 256, (frames, side, side, 3), dtype=torch.uint8, generator=generator)
    visual = module.backbone.processor.prepare_video(video, torch.arange(frames).double())
    prompt = "Localize every object that appears in the video, then say what each one is."
    items, samples = [], []
    for i, response in enumerate(responses):
        meta = {} if rejected is None else {"rejected": {"response": rejected.render(),
                                                         "windows": [list(s) for s in rejected.spans]}}
        samples.append(VideoSample(f"bench:{i}", "bench.mp4", "evidence", prompt, duration=float(frames),
                                   windows=list(response.spans), answer_text=response.render(), meta=meta))
        items.append({"visual": visual, "prompt": prompt, "query": prompt, "answer": response.render()})
    batch = module.backbone.processor.collate(items, with_answer=with_answer)
    return batch | {"samples": samples, "visuals": [visual] * len(items), "prompts": [prompt] * len(items),
                    "queries": [prompt] * len(items)}


def _step(module: D2VLMModule, batch: dict[str, Any], optimizer: torch.optim.Optimizer) -> None:
    loss, _ = module.loss(batch)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def _without_cache(module: D2VLMModule, batch: dict[str, Any], optimizer: torch.optim.Optimizer) -> None:
    """The route taken under gradient checkpointing (no KV cache): a no-grad pass up to the aggregation layer,
    then the full pass."""
    module._split = lambda batch: None  # type: ignore[method-assign]
    try:
        _step(module, batch, optimizer)
    finally:
        del module._split


def _two_pass(module: D2VLMModule, batch: dict[str, Any], optimizer: torch.optim.Optimizer) -> None:
    """The released anchor: the aggregation states from a whole first forward pass, the encoder run twice."""
    backbone = module.backbone

    def full_pass(batch: dict[str, Any], index: int) -> torch.Tensor:
        with torch.no_grad():
            return backbone(batch, output_hidden_states=True).hidden_states[index]

    backbone.hidden_state = full_pass  # type: ignore[method-assign]
    try:
        _without_cache(module, batch, optimizer)
    finally:
        del backbone.hidden_state


def _fpo_full_copy(module: D2VLMModule, reference: D2VLMModule, batch: dict[str, Any],
                   optimizer: torch.optim.Optimizer) -> None:
    """FPO with a second copy of the model as the reference (what ``adapter-disabled`` avoids)."""
    from groundlight.methods.d2vlm.losses import fpo_loss

    chosen_spans = [list(s.windows) for s in batch["samples"]]
    rejected, rejected_spans = module.rejected_batch(batch)
    with torch.no_grad():
        reference_chosen = reference._policy(reference._scores(batch, chosen_spans))
        reference_rejected = reference._policy(reference._scores(rejected, rejected_spans))
    chosen: Scores = module._scores(batch, chosen_spans)
    other: Scores = module._scores(rejected, rejected_spans)
    loss, _ = fpo_loss(module._policy(chosen), module._policy(other), reference_chosen, reference_rejected)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def _evi_overhead(repeats: int, frames: int, side: int) -> dict[str, float]:
    """Seconds of one cached decode step and of the hook's work on one generated ``<evi>``, measured in alternation:
    each round times a short and a long decode and then the hook, so that both see the machine in the same state; the
    fraction is the median of the rounds' ratios."""
    module = D2VLMModule(_backbone(False, side), evidence=EvidenceOptions(aggregation_layer=1)).eval()
    batch = _batch(module, [CHOSEN], with_answer=False, frames=frames, side=side)
    with torch.no_grad():
        embeds = module.backbone.embed_inputs(batch)
        module.backbone.greedy_tokens(batch, embeds, 2)  # warm-up
        hidden = module.backbone(batch, output_hidden_states=True).hidden_states
        decoder = EvidenceDecoder(module, batch)
        decoder(0, torch.tensor([0]), hidden)  # the prompt's frame features, once per question
        one = tuple(h[:, -1:] for h in hidden)
        evi = torch.tensor([module.evi_id])

        def decode(tokens: int) -> float:
            start = time.perf_counter()
            module.backbone.greedy_tokens(batch, embeds, tokens, on_step=lambda *a: None, stop_at_eos=False)
            return time.perf_counter() - start

        def hook() -> float:
            start = time.perf_counter()
            decoder(1, evi, one)
            return time.perf_counter() - start

        steps, hooks = [], []
        for _ in range(repeats * 3):
            steps.append((decode(17) - decode(1)) / 16)  # 16 cached steps: the prefill cancels out
            hooks.append(statistics.median(hook() for _ in range(200)))
    return {"decode_step_seconds": statistics.median(steps), "evi_hook_seconds": statistics.median(hooks),
            "evi_overhead_fraction": statistics.median(h / s for h, s in zip(hooks, steps))}


def run(out_dir: Path, repeats: int = 5, frames: int = FRAMES, side: int = SIDE) -> dict[str, Any]:
    fixed_malloc = return_freed_memory()
    sized = {"frames": frames, "side": side}
    # SFT step time: D²VLM vs plain cross-entropy vs the released two-pass anchor (full fine-tuning, frozen vision)
    module = D2VLMModule(_backbone(False, side), evidence=EvidenceOptions(aggregation_layer=1)).train()
    module.backbone.vision_encoder().requires_grad_(False)
    batch = _batch(module, [CHOSEN], **sized)
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-5)
    seconds, _ = interleaved({
        "sft": lambda: sft_step(module.backbone, batch, optimizer),
        "d2vlm": lambda: _step(module, batch, optimizer),
        "d2vlm_without_cache": lambda: _without_cache(module, batch, optimizer),
        "two_pass": lambda: _two_pass(module, batch, optimizer),
    }, repeats)

    # FPO memory: LoRA, one pair, against the D²VLM SFT step on the same two responses
    lora = D2VLMModule(_backbone(True, side), evidence=EvidenceOptions(aggregation_layer=1)).train()
    pair = _batch(lora, [CHOSEN], rejected=REJECTED, **sized)
    both = _batch(lora, [CHOSEN, REJECTED], **sized)
    reference = copy.deepcopy(lora).eval().requires_grad_(False)
    copy_bytes = sum(p.numel() * p.element_size() for p in reference.parameters())
    lora_optimizer = torch.optim.AdamW([p for p in lora.parameters() if p.requires_grad], lr=1e-5)

    def fpo(mode: str) -> None:
        lora.stage, lora.fpo = "fpo", FPOOptions(reference=mode)
        lora.on_fit_start()
        try:
            _step(lora, pair, lora_optimizer)
        finally:
            lora.stage = "sft"

    memory_seconds, memory = interleaved({
        "sft": lambda: _step(lora, both, lora_optimizer),
        "fpo_adapter_disabled": lambda: fpo("adapter-disabled"),
        "fpo_full_copy": lambda: _fpo_full_copy(lora, reference, pair, lora_optimizer),
    }, repeats)
    overhead = _evi_overhead(repeats, frames, side)
    result: dict[str, Any] = {
        "tokens": int(batch["input_ids"].shape[1]),
        "visual_tokens": int((batch["frame_index"] >= 0).sum()),
        "repeats": repeats,
        "malloc_returns_freed_memory": fixed_malloc,
        "step_seconds_median": {k: round(v, 4) for k, v in seconds.items()},
        "sft_step_time_ratio_d2vlm_over_sft": round(seconds["d2vlm"] / seconds["sft"], 3),
        "sft_step_time_ratio_d2vlm_without_cache_over_sft": round(seconds["d2vlm_without_cache"] / seconds["sft"], 3),
        "sft_step_time_ratio_two_pass_over_sft": round(seconds["two_pass"] / seconds["sft"], 3),
        "fpo_step_seconds_median": {k: round(v, 4) for k, v in memory_seconds.items()},
        "peak_rss_growth_bytes": memory,
        "reference_copy_parameter_bytes": copy_bytes,
        "decode_step_seconds": round(overhead["decode_step_seconds"], 6),
        "evi_hook_seconds": round(overhead["evi_hook_seconds"], 6),
        "evi_overhead_fraction": round(overhead["evi_overhead_fraction"], 4),
    }
    if memory["sft"] and memory["fpo_adapter_disabled"] is not None:
        result["fpo_peak_mem_ratio_over_sft"] = round(memory["fpo_adapter_disabled"] / memory["sft"], 3)
    if memory["sft"] and memory["fpo_full_copy"] is not None:
        result["fpo_peak_mem_ratio_full_copy_over_sft"] = round((memory["fpo_full_copy"] + copy_bytes) / memory["sft"], 3)
    write_json_atomic(out_dir / "d2vlm.json", result)
    return result

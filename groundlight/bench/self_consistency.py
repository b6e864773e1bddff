"""Self-consistency step vs SFT step on the tiny model at ~2k tokens → ``runs/bench/self_consistency.json``.

Three steps on the same model and batch, measured interleaved in one process:

- ``sft``: one forward/backward with cross-entropy;
- ``sc``: the self-consistency step (SDPA + probe on the generation pass, a no-grad
  verification pass, matching and the attention losses);
- ``naive``: the same losses from eager attention with ``output_attentions=True`` on all layers.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from data_modules.samples import VideoSample
from groundlight.attention.probe import last_prompt_positions
from groundlight.bench.model import (
    interleaved,
    make_items,
    return_freed_memory,
    sft_step,
    tiny_backbone,
)
from groundlight.io import write_json_atomic
from groundlight.losses import answer_cross_entropy
from groundlight.methods.self_consistency import (
    ConsistencyOptions,
    PathwayAttention,
    SelfConsistencyModule,
)

LAYER = 1
def sc_batch(backbone: Any, frames: int, side: int) -> dict[str, Any]:
    items = make_items(backbone, 1, frames=frames, side=side)
    sample = VideoSample("bench:0", "bench.mp4", "moment_retrieval", "the red circle appears.",
                         duration=float(frames), windows=[(3.0, 9.0)])
    batch = backbone.processor.collate(items, with_answer=True)
    return batch | {"samples": [sample], "answers": [items[0]["answer"]], "visuals": [items[0]["visual"]],
                    "durations": [float(frames)]}


def sc_step(module: SelfConsistencyModule, batch: dict[str, Any], optimizer: torch.optim.Optimizer) -> None:
    loss, _ = module.loss(batch)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def _eager_pathway(module: SelfConsistencyModule, batch: dict[str, Any]) -> tuple[torch.Tensor, PathwayAttention]:
    output = module.backbone(batch, output_attentions=True, output_hidden_states=True)
    positions = last_prompt_positions(batch)
    rows = torch.arange(len(positions))
    probe = SimpleNamespace(probed=[LAYER], rows={LAYER: output.attentions[LAYER][rows, :, positions].float()},
                            hidden={LAYER: output.hidden_states[LAYER].detach()})
    return output.logits, PathwayAttention.from_probe(probe, batch, [], 20.0)


def naive_step(module: SelfConsistencyModule, batch: dict[str, Any], optimizer: torch.optim.Optimizer) -> None:
    """The same losses, with attention taken from eager ``output_attentions=True`` (all layers)."""
    configs = {id(m.self_attn.config): m.self_attn.config for m in module.backbone.decoder_layers().values()}
    for config in configs.values():
        config._attn_implementation_internal = "eager"
    try:
        logits, generation = _eager_pathway(module, batch)
        ce, _ = answer_cross_entropy(logits, batch["labels"])
        with torch.no_grad():
            _, verification = _eager_pathway(module, module.verification_batch(batch))
    finally:
        for config in configs.values():
            config._attn_implementation_internal = "sdpa"
    gen_heads, ver_heads = generation.top_heads(module.consistency.top_k), verification.top_heads(module.consistency.top_k)
    pairs = module.matched_pairs(generation, verification, gen_heads, ver_heads)
    cons, ent, _ = module.attention_losses(generation, verification, gen_heads, pairs)
    (ce + cons + ent).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def run(out_dir: Path, repeats: int = 5, frames: int = 64, side: int = 224) -> dict[str, Any]:
    """Median step time and peak RSS growth of the three steps, interleaved; ratios over SFT."""
    fixed_malloc = return_freed_memory()
    backbone = tiny_backbone(side).train()
    module = SelfConsistencyModule(backbone, consistency=ConsistencyOptions(layer=LAYER, top_k=2))
    batch = sc_batch(backbone, frames, side)
    optimizer = torch.optim.AdamW(backbone.parameters(), lr=1e-4)
    steps = {
        "sft": lambda: sft_step(backbone, batch, optimizer),
        "sc": lambda: sc_step(module, batch, optimizer),
        "naive": lambda: naive_step(module, batch, optimizer),
    }
    time, memory = interleaved(steps, repeats)
    result: dict[str, Any] = {
        "tokens": int(batch["input_ids"].shape[1]),
        "visual_tokens": int((batch["frame_index"] >= 0).sum()),
        "repeats": repeats,
        "malloc_returns_freed_memory": fixed_malloc,
        "step_seconds_median": {k: round(v, 4) for k, v in time.items()},
        "peak_rss_growth_bytes": memory,
    }
    for name in ("sc", "naive"):
        result[f"step_time_ratio_{name}_over_sft"] = round(time[name] / time["sft"], 3)
        if memory[name] is not None and memory["sft"]:
            result[f"peak_mem_ratio_{name}_over_sft"] = round(memory[name] / memory["sft"], 3)
    write_json_atomic(out_dir / "self_consistency.json", result)
    return result

"""GroundVTS benchmark: the training step and generation at rho = 0.5 vs rho = 1 on the tiny model.

One video of 64 frames at 224 px gives 2048 visual tokens, so the sequence is dominated by
visual tokens, as in the paper's setting. Both keep ratios run in the same process,
interleaved, on the same module (only ``vts.config.keep_ratio`` changes); the trainable set
is stages 2-3's (VTS + projector + LoRA); D_r = 16 keeps the paper's D_r / D ratio (512 / 3584)
roughly. ``vts_overhead_fraction`` is the VTS module's own forward + backward time (the fastest
of 3 per repeat; clearing the model's gradients afterwards is not timed) over the whole step at
rho = 0.5 (the fastest of the repeats, gradient clearing and optimizer step included).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from groundlight.backbones.base import LoraOptions
from groundlight.backbones.qwen2_5_vl import Qwen25VLBackbone, TinyQwenConfig
from groundlight.bench.model import make_items
from groundlight.io import write_json_atomic
from groundlight.methods.groundvts import GroundVTSModule, VTSConfig

SIDE, FRAMES = 224, 64


def build(hidden_size: int = 16) -> tuple[GroundVTSModule, dict[str, Any], dict[str, Any]]:
    torch.manual_seed(0)
    backbone = Qwen25VLBackbone(tiny=TinyQwenConfig(), min_pixels=SIDE * SIDE, max_pixels=SIDE * SIDE,
                                lora=LoraOptions(r=8, alpha=16, dropout=0.05))
    module = GroundVTSModule(backbone, vts=VTSConfig(hidden_size=hidden_size), trainable=["vts", "projector", "lora"])
    items = make_items(backbone, 1, frames=FRAMES, side=SIDE)
    for item in items:
        item["query"] = "the red circle appears."
    train = backbone.processor.collate(items, with_answer=True)
    prompt = backbone.processor.collate(items, with_answer=False)
    return module, train, prompt


def train_step(module: GroundVTSModule, batch: dict[str, Any], optimizer: torch.optim.Optimizer) -> None:
    loss, _ = module.loss(batch)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def vts_alone(module: GroundVTSModule, batch: dict[str, Any], embeds: torch.Tensor) -> float:
    """Seconds of the VTS module's forward and backward on fixed input embeddings.

    Only those are timed: clearing the gradients afterwards walks every parameter of the model
    (about 0.3 ms on the tiny one), which is the step's bookkeeping, not the VTS's.
    """
    leaf = embeds.detach().requires_grad_(True)
    start = time.perf_counter()
    visual = batch["frame_index"] >= 0
    out = module.vts(leaf, visual, batch["query_mask"], batch["attention_mask"], batch["frame_index"])
    out.embeds.sum().backward()
    elapsed = time.perf_counter() - start
    module.zero_grad(set_to_none=True)
    return elapsed


def generate(module: GroundVTSModule, batch: dict[str, Any], new_tokens: int) -> None:
    """VTS + greedy decoding of exactly ``new_tokens`` (no early stop at EOS, so both ratios decode as much)."""
    sampled = module.sample_tokens(batch)
    inputs = module.backbone.kept_inputs(batch, sampled.embeds, sampled.keep)
    module.backbone._greedy(inputs, new_tokens, use_cache=True, stop_at_eos=False)


def saved_activation_bytes(fn) -> int:  # noqa: ANN001
    """Bytes of the distinct tensors autograd saves for backward while ``fn()`` runs (activation memory)."""
    seen: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        fn()
    return sum(seen.values())


def _seconds(fn) -> float:  # noqa: ANN001
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(out_dir: Path, repeats: int = 7, new_tokens: int = 16, threads: int = 1) -> dict[str, Any]:
    """Interleaved runs, fastest of each (the machine is shared). Memory is the activation memory of one step per ratio: the bytes autograd
    saves for backward (RSS peaks are unusable for a ratio inside one process, freed pages stay mapped)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)  # small ops on a shared 2-core machine are dominated by thread contention
    try:
        return _run(Path(out_dir), repeats, new_tokens, threads)
    finally:
        torch.set_num_threads(previous)


def _run(out_dir: Path, repeats: int, new_tokens: int, threads: int) -> dict[str, Any]:
    module, train, prompt = build()
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-4)
    config = module.vts.config
    times: dict[str, dict[float, list[float]]] = {"step": {0.5: [], 1.0: []}, "generate": {0.5: [], 1.0: []}, "vts": {0.5: []}}
    memory: dict[float, int | None] = {}
    module.train()
    for ratio in (0.5, 1.0):  # warm-up (optimizer state, allocator), then the memory pass
        config.keep_ratio = ratio
        train_step(module, train, optimizer)
        memory[ratio] = saved_activation_bytes(lambda: train_step(module, train, optimizer))
    with torch.no_grad():
        embeds = module.backbone.embed_inputs(train)
    for _ in range(repeats):
        for ratio in (0.5, 1.0):
            config.keep_ratio = ratio
            times["step"][ratio].append(_seconds(lambda: train_step(module, train, optimizer)))
        config.keep_ratio = 0.5
        times["vts"][0.5] += [vts_alone(module, train, embeds) for _ in range(3)]
    module.eval()
    with torch.no_grad():
        for _ in range(max(repeats // 2, 2)):
            for ratio in (0.5, 1.0):
                config.keep_ratio = ratio
                times["generate"][ratio].append(_seconds(lambda: generate(module, prompt, new_tokens)))
    config.keep_ratio = 0.5
    median = {name: {r: min(v) for r, v in by.items()} for name, by in times.items()}  # min: robust to other processes
    result = {
        "visual_tokens": int((train["frame_index"] >= 0).sum()),
        "tokens": int(train["input_ids"].shape[1]),
        "torch_threads": threads,
        "step_seconds_rho05": round(median["step"][0.5], 4),
        "step_seconds_rho1": round(median["step"][1.0], 4),
        "step_time_ratio_rho05_over_rho1": round(median["step"][0.5] / median["step"][1.0], 3),
        "peak_mem_ratio_rho05_over_rho1": round(memory[0.5] / memory[1.0], 3) if memory[0.5] and memory[1.0] else None,
        "activation_bytes_rho05": memory[0.5],
        "activation_bytes_rho1": memory[1.0],
        "vts_seconds": round(median["vts"][0.5], 5),
        "vts_overhead_fraction": round(median["vts"][0.5] / median["step"][0.5], 4),
        "generate_seconds_rho05": round(median["generate"][0.5], 4),
        "generate_seconds_rho1": round(median["generate"][1.0], 4),
        "generate_time_ratio_rho05_over_rho1": round(median["generate"][0.5] / median["generate"][1.0], 3),
        "max_new_tokens": new_tokens,
        "repeats": repeats,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    write_json_atomic(out_dir / "groundvts.json", result)
    return result

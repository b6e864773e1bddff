"""Model benchmarks on the tiny Qwen2.5-VL: batched generation and the SFT step at ~2k tokens."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from groundlight.backbones.qwen2_5_vl import Qwen25VLBackbone, TinyQwenConfig
from groundlight.io import write_json_atomic
from groundlight.losses import answer_cross_entropy, answer_window

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


def return_freed_memory() -> bool:
    """Make glibc give large freed blocks back at once, so RSS growth tracks live tensors.

    By default glibc raises its mmap threshold after the first large free and then keeps
    freed memory, so a warmed-up step shows almost no RSS growth whatever it allocates.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    libc = ctypes.CDLL(name)
    return bool(libc.mallopt(M_MMAP_THRESHOLD, 64 * 1024)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 128 * 1024))


def tiny_backbone(side: int) -> Qwen25VLBackbone:
    torch.manual_seed(0)
    return Qwen25VLBackbone(tiny=TinyQwenConfig(), min_pixels=side * side, max_pixels=side * side)


def make_items(backbone: Qwen25VLBackbone, count: int, frames: int, side: int, seed: int = 0) -> list[dict[str, Any]]:
    generator = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(count):
        video = torch.randint(0, 256, (frames, side, side, 3), dtype=torch.uint8, generator=generator)
        visual = backbone.processor.prepare_video(video, torch.arange(frames).double())
        items.append({"visual": visual, "prompt": "Find the moment: the red circle appears.", "answer": "from 3.0s to 9.0s"})
    return items


def peak_rss_delta(fn) -> tuple[float, int | None]:  # noqa: ANN001
    """Seconds and peak resident-memory growth (bytes) of ``fn()``; Linux ``clear_refs`` resets the peak."""
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")
        before = _status_kb("VmRSS")
    except OSError:
        before = None
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    peak = _status_kb("VmHWM") if before is not None else None
    return seconds, (peak - before) * 1024 if peak is not None else None


def interleaved(steps: dict[str, Any], repeats: int) -> tuple[dict[str, float], dict[str, int | None]]:
    """Each step once to warm up (optimizer state allocated), then ``repeats`` rounds of every step in turn:
    median seconds and largest peak RSS growth per step (side by side, so a busy machine slows them alike)."""
    for step in steps.values():
        step()
    runs: dict[str, list[tuple[float, int | None]]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            runs[name].append(peak_rss_delta(step))
    seconds = {name: statistics.median(s for s, _ in r) for name, r in runs.items()}
    memory = {name: max((m for _, m in r if m is not None), default=None) for name, r in runs.items()}
    return seconds, memory


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(field)


def run_generation(out_dir: Path, samples: int = 16, batch: int = 8, new_tokens: int = 16, repeats: int = 3) -> dict[str, Any]:
    """Batched (``batch``) vs one-at-a-time greedy generation over the same ``samples`` prompts."""
    backbone = tiny_backbone(56).eval()
    items = make_items(backbone, samples, frames=16, side=56)
    collate = backbone.processor.collate

    def generate(size: int) -> None:
        for i in range(0, samples, size):
            backbone.generate(collate(items[i : i + size], with_answer=False), new_tokens)

    generate(batch)  # warm-up
    times: dict[int, list[float]] = {1: [], batch: []}
    for _ in range(repeats):
        for size in (1, batch):
            times[size].append(peak_rss_delta(lambda s=size: generate(s))[0])
    single, batched = statistics.median(times[1]), statistics.median(times[batch])
    result = {
        "samples": samples, "batch_size": batch, "max_new_tokens": new_tokens,
        "batch1_seconds": round(single, 4), "batched_seconds": round(batched, 4),
        f"throughput_ratio_batch{batch}_over_batch1": round(single / batched, 3),
    }
    write_json_atomic(out_dir / "generation.json", result)
    return result


def sft_step(backbone: Qwen25VLBackbone, batch: dict[str, Any], optimizer: torch.optim.Optimizer) -> None:
    keep = answer_window(batch["labels"])  # logits where an answer token is predicted, as SFTModule asks for them
    loss, _ = answer_cross_entropy(backbone(batch, logits_to_keep=keep).logits, batch["labels"][:, -keep:])
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def run_sft_step(out_dir: Path, repeats: int = 5) -> dict[str, Any]:
    """The reference SFT step: tiny model, batch 1, ~2k tokens (64 frames at 224 px → 2048 visual tokens)."""
    fixed_malloc = return_freed_memory()
    backbone = tiny_backbone(224).train()
    batch = backbone.processor.collate(make_items(backbone, 1, frames=64, side=224), with_answer=True)
    optimizer = torch.optim.AdamW(backbone.parameters(), lr=1e-4)
    sft_step(backbone, batch, optimizer)  # warm-up (optimizer state allocated)
    runs = [peak_rss_delta(lambda: sft_step(backbone, batch, optimizer)) for _ in range(repeats)]
    memory = [m for _, m in runs if m is not None]
    result = {
        "tokens": int(batch["input_ids"].shape[1]),
        "visual_tokens": int((batch["frame_index"] >= 0).sum()),
        "step_seconds_median": round(statistics.median(s for s, _ in runs), 4),
        "peak_rss_growth_bytes": max(memory) if memory else None,
        "malloc_returns_freed_memory": fixed_malloc,
    }
    write_json_atomic(out_dir / "sft_step.json", result)
    return result

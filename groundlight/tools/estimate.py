"""``groundlight estimate``: tokens and memory per device of a training config, before any GPU is asked for.

    groundlight estimate --config experiments/d2vlm/synth.yaml --config experiments/base/strategies/fsdp.yaml \\
        --trainer.devices 8 [--video-seconds 120] [--text-tokens 160] [--measure]

The config is parsed by the same CLI as ``fit`` and the backbone is built under ``torch.device("meta")``: a hub
checkpoint contributes its config and tokenizer only (no weights are read, nothing is allocated), so a 7B config is
estimated on a laptop. What it reports:

- frames, visual tokens per video (the backbone's own processor on blank frames of the configured size) and the
  sequence length ``visual + text``;
- parameters (total, trainable), and per device: weights, gradients and AdamW states at their dtypes, divided by
  the world size where the strategy shards them (FSDP ``FULL_SHARD`` and ZeRO-3 everything, ``SHARD_GRAD_OP`` and
  ZeRO-2 gradients and optimizer states);
- activations of one micro-batch: what autograd keeps per decoder layer (only each layer's input under gradient
  checkpointing, plus one layer recomputed in backward beside its activations' gradients), the vision tower's when it trains, and the logits with the
  cross-entropy's float copies over the answer window (``--answer-tokens``: the methods keep logits where an
  answer token is predicted only; GroundVTS's kept-token pass still keeps every position's).

``--measure`` then builds the model for real, runs two training steps on the first training batch and prints the
measured peak beside the estimate for that batch's exact shape: ``torch.cuda.max_memory_allocated`` on a GPU, and on
CPU the peak of live tensor storage (a dispatch-mode tracker; CPU allocators keep no statistics).
"""

from __future__ import annotations

import json
import sys
import warnings
import weakref
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from data_modules.video import sample_timestamps
from groundlight.losses import answer_window

GIB = 1024**3
_SHARDING = {"FULL_SHARD": "all", "HYBRID_SHARD": "all", "SHARD_GRAD_OP": "grads_optimizer", "NO_SHARD": "none",
             "_HYBRID_SHARD_ZERO2": "grads_optimizer"}
_ZERO = {1: "optimizer", 2: "grads_optimizer", 3: "all"}


@dataclass(frozen=True)
class Shape:
    """One micro-batch: ``batch`` rows of ``sequence`` tokens, logits at the last ``logit_positions`` of them (the
    answer window, ``GroundingModule.answer_forward``); per row, ``vision_tokens`` enter the vision tower (patches
    before any merge) from ``pixel_elements`` pixel values."""

    batch: int
    sequence: int
    vision_tokens: int
    pixel_elements: int
    logit_positions: int


@dataclass(frozen=True)
class Layout:
    """How training is laid out: activation dtype, checkpointing, what trains, and how state is sharded."""

    activation_bytes: int
    checkpointing: bool
    lm_trains: bool
    vision_trains: bool
    lora_rank: int
    sharding: str  # none | optimizer | grads_optimizer | all
    world_size: int


def strategy_sharding(strategy: Any) -> str:
    """What a Lightning strategy (a name, a ``class_path``/``init_args`` mapping or an instance) shards."""
    if isinstance(strategy, str):
        name = strategy.lower()
        if "fsdp" in name:
            return "all"
        for stage, kind in _ZERO.items():
            if f"stage_{stage}" in name:
                return kind
        return "none"
    if isinstance(strategy, dict) or hasattr(strategy, "class_path"):
        get = strategy.get if isinstance(strategy, dict) else lambda k, d=None: getattr(strategy, k, d)
        path, args = str(get("class_path", "")), get("init_args", None) or {}
        args = args if isinstance(args, dict) else vars(args)
    else:
        path, args = type(strategy).__name__, vars(strategy)
    if "DeepSpeed" in path:
        return _ZERO.get(int(args.get("stage", 2)), "none")
    if "FSDP" in path:
        sharding = args.get("sharding_strategy", "FULL_SHARD")
        return _SHARDING.get(getattr(sharding, "name", str(sharding)), "all")
    return "none"


def parameter_bytes(model: nn.Module) -> dict[str, int]:
    """Parameter counts and bytes (meta tensors count as if allocated); LoRA rank as found."""
    params = list(model.parameters())
    trainable = [p for p in params if p.requires_grad]
    ranks = [m.r[k] for m in model.modules() if isinstance(getattr(m, "r", None), dict) for k in m.r]
    return {
        "parameters": sum(p.numel() for p in params),
        "trainable_parameters": sum(p.numel() for p in trainable),
        "weight_bytes": sum(p.numel() * p.element_size() for p in params),
        "trainable_bytes": sum(p.numel() * p.element_size() for p in trainable),
        "lora_rank": max(ranks, default=0),
    }


def _text_dims(config: Any) -> dict[str, int]:
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    heads = text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    return {"hidden": text.hidden_size, "q": heads * head_dim, "kv": (text.num_key_value_heads or heads) * head_dim,
            "intermediate": text.intermediate_size, "layers": text.num_hidden_layers, "vocab": text.vocab_size,
            "qk_norm": int("qwen3" in str(getattr(text, "model_type", "")))}  # Qwen3 LMs norm each head's q and k


def _vision_dims(config: Any) -> dict[str, int] | None:
    vision = getattr(config, "vision_config", None)
    if vision is None:
        return None
    hidden = getattr(vision, "hidden_size", None) or getattr(vision, "width", None) or getattr(vision, "embed_dim", 0)
    depth = getattr(vision, "depth", None) or getattr(vision, "num_hidden_layers", None) or getattr(vision, "layers", 0)
    intermediate = getattr(vision, "intermediate_size", None) or int(hidden * getattr(vision, "mlp_ratio", 4))
    return {"hidden": hidden, "intermediate": intermediate, "layers": depth}


def decoder_layer_elements(dims: dict[str, int], trains: bool, lora_rank: int) -> int:
    """Elements autograd keeps per token for one pre-norm GQA decoder layer with a gated MLP (all four families).

    Trained weights: two RMSNorms (float input, normalised and weighted output: 3h each), rotated q, k and v
    (q + 2kv), the key/value heads repeated to the query heads (2(q - kv)), the attention output and its
    contiguous copy (2q), gate, up, activation and product (4i). Frozen weights under LoRA on the attention
    projections: a frozen norm weight keeps no output (2h each), each adapted projection keeps its adapter input
    (h for q/k/v, q for o), its dropout mask and rank-sized middle (4r), attention as above, and the frozen MLP its gate, activation
    and up (3i; a frozen projection keeps no input). Qwen3 language models (Qwen3-VL, InternVL3.5) also RMS-norm
    every head's q and k: 3(q + kv) more, 2(q + kv) frozen."""
    h, q, kv, i = dims["hidden"], dims["q"], dims["kv"], dims["intermediate"]
    attention = q + 2 * kv + 2 * (q - kv) + 2 * q + (3 if trains else 2) * dims.get("qk_norm", 0) * (q + kv)
    if trains:
        return 6 * h + attention + 4 * i
    dropout_masks = (3 * h + q) // 4  # one byte per element
    return 4 * h + 3 * h + q + dropout_masks + attention + 3 * i + 4 * lora_rank


def vision_layer_elements(dims: dict[str, int]) -> int:
    """Per vision token, one ViT block trained: two norms (3h each), the q/k/v projection and its rotated q and k
    (5h), the per-window attention outputs, their concatenation and the output projection's input (3h), the MLP
    input (h) and its hidden before and after the activation (2i)."""
    return 15 * dims["hidden"] + 2 * dims["intermediate"]


def estimate_memory(config: Any, counts: dict[str, int], shape: Shape, layout: Layout) -> dict[str, float]:
    """Bytes per device: weights, gradients, optimizer, activations and their total (see the module docstring)."""
    text, vision = _text_dims(config), _vision_dims(config)
    shard = layout.world_size
    weights = counts["weight_bytes"] / (shard if layout.sharding == "all" else 1)
    grads = counts["trainable_bytes"] / (shard if layout.sharding in ("all", "grads_optimizer") else 1)
    optimizer = 2 * counts["trainable_bytes"] / (shard if layout.sharding != "none" else 1)
    tokens, act = shape.batch * shape.sequence, layout.activation_bytes
    layer = decoder_layer_elements(text, layout.lm_trains, layout.lora_rank) * tokens * act
    if layout.checkpointing:  # the layer inputs, and in backward one layer recomputed with its activations' gradients
        decoder = text["layers"] * text["hidden"] * tokens * act + 2 * layer
    else:
        decoder = text["layers"] * layer
    vision_bytes = 0.0
    if layout.vision_trains and vision:
        vision_layer = vision_layer_elements(vision) * shape.batch * shape.vision_tokens * act
        vision_bytes = vision_layer * (1 if layout.checkpointing else vision["layers"])
    vision_bytes += shape.batch * shape.pixel_elements * 4  # the float pixels the tower reads live through the step
    # at the loss: the answer window's logits in the activation dtype, the shifted float copy, and the log-softmax
    logits = shape.batch * shape.logit_positions * text["vocab"] * (act + 4 + 4)
    activations = decoder + vision_bytes + logits
    total = weights + grads + optimizer + activations
    return {"weights": weights, "gradients": grads, "optimizer": optimizer, "activations": activations,
            "activations_logits": logits, "total": total}


class LiveTensorPeak(TorchDispatchMode):
    """Peak bytes of tensor storage created inside the mode and still alive (CPU has no allocator statistics)."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, int] = {}
        self.now = self.peak = 0

    def _free(self, key: int) -> None:
        self.now -= self.live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, torch.Tensor) and tensor.device.type != "meta":
                storage = tensor.untyped_storage()
                key, size = storage.data_ptr(), storage.nbytes()
                if size and key not in self.live:
                    self.live[key] = size
                    self.now += size
                    self.peak = max(self.peak, self.now)
                    weakref.finalize(storage, self._free, key)
        return out


def _resident_bytes(module: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    seen: dict[int, int] = {}
    tensors = [p for p in module.parameters()] + [p.grad for p in module.parameters() if p.grad is not None]
    tensors += [t for state in optimizer.state.values() for t in state.values() if torch.is_tensor(t)]
    for t in tensors:
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    return sum(seen.values())


def measure_peak(module: Any, batch: dict[str, Any], steps: int = 2) -> int:
    """Peak bytes of ``steps`` training steps (forward, backward, AdamW) on ``batch``, in the last step: allocator
    peak on CUDA, live tensor storage on CPU (resident weights, gradients and optimizer states included)."""
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-5)
    module.train()

    def step() -> None:
        loss, _ = module.loss(batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()  # to None, as Lightning does

    for _ in range(steps - 1):
        step()
    device = next(module.parameters()).device
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device))
    resident = _resident_bytes(module, optimizer)
    with LiveTensorPeak() as tracker:
        step()
    return resident + tracker.peak


def batch_shape(backbone: Any, sampling: Any, batch: int, seconds: float, text_tokens: int,
                frame_size: tuple[int, int], answer_tokens: int) -> tuple[Shape, dict[str, int]]:
    """The micro-batch shape a config implies: the reader's sampled times, as blank frames through the backbone's own
    processor."""
    times = sample_timestamps(seconds, fps=sampling.fps, num_frames=sampling.num_frames, max_frames=sampling.max_frames)
    frames = len(times)
    height, width = sampling.decode_size or frame_size
    visual = backbone.processor.prepare_video(torch.zeros(frames, height, width, 3, dtype=torch.uint8),
                                              torch.tensor(times, dtype=torch.float64))
    vision_tokens = _vision_tokens(visual.pixel_values, backbone)
    facts = {"frames": frames, "frame_size": [height, width], "visual_tokens": visual.num_tokens,
             "text_tokens": text_tokens, "vision_tower_tokens": vision_tokens}
    sequence = visual.num_tokens + text_tokens
    return Shape(batch, sequence, vision_tokens, visual.pixel_values.numel(), min(answer_tokens + 1, sequence)), facts


def _vision_tokens(pixels: torch.Tensor, backbone: Any) -> int:
    """Tokens the vision tower runs on: Qwen's rows of flattened patches, else frames x patches per frame."""
    if pixels.ndim == 2:
        return int(pixels.shape[0])
    vision = getattr(backbone.hf_config, "vision_config", None)
    patch = getattr(vision, "patch_size", 14)
    patch = patch[0] if isinstance(patch, (list, tuple)) else patch
    return int(pixels.shape[0] * (pixels.shape[-2] // patch) * (pixels.shape[-1] // patch))


def layout_of(trainer: Any, backbone: Any, counts: dict[str, int], param_dtype: torch.dtype) -> Layout:
    precision = str(trainer.get("precision") or "32-true")
    half = precision.startswith(("bf16", "16")) or param_dtype in (torch.bfloat16, torch.float16)
    devices = trainer.get("devices")
    world = (devices if isinstance(devices, int) and devices > 0 else len(devices) if isinstance(devices, list) else 1)
    world *= int(trainer.get("num_nodes") or 1)
    sharding = strategy_sharding(trainer.get("strategy") or "auto")
    strategy = trainer.get("strategy")
    strategy_checkpoints = bool(getattr(getattr(strategy, "init_args", None), "checkpoint_decoder_layers", False))
    checkpointing = backbone.checkpointing or strategy_checkpoints
    lm_trains = any(p.requires_grad for layer in backbone.decoder_layers().values()
                    for n, p in layer.named_parameters() if "lora_" not in n)
    vision_trains = any(p.requires_grad for p in backbone.vision_encoder().parameters())
    return Layout(2 if half else 4, checkpointing, lm_trains, vision_trains, counts["lora_rank"], sharding, world)


def _cli(args: list[str], shapes_only: bool) -> Any:
    """The CLI's model and datamodule for ``args``; the trainer is read from the config, never built (a GPU
    strategy is estimated on a machine without one)."""
    from groundlight.cli import GroundlightCLI, lightning_main

    class ConfigOnly(GroundlightCLI):
        def instantiate_classes(self) -> None:
            self.config_init = self.parser.instantiate_classes(self.config)
            self.datamodule = self._get(self.config_init, "data")
            self.model = self._get(self.config_init, "model")

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*args parameter is intended to run from within Python")
        if shapes_only:
            with torch.device("meta"):
                return lightning_main(args, run=False, cli_class=ConfigOnly)
        return lightning_main(args, run=False, cli_class=ConfigOnly)


def _split(argv: list[str]) -> tuple[dict[str, Any], list[str]]:
    import argparse

    parser = argparse.ArgumentParser(prog="groundlight estimate", description=__doc__.splitlines()[0])
    parser.add_argument("--video-seconds", type=float, default=120.0, help="video length for fps sampling")
    parser.add_argument("--text-tokens", type=int, default=160, help="prompt and answer tokens beside the video")
    parser.add_argument("--answer-tokens", type=int, default=32,
                        help="answer tokens (logits are kept for those only; GroundVTS's kept-token pass keeps all)")
    parser.add_argument("--frame-size", type=int, nargs=2, default=(360, 640), metavar=("H", "W"),
                        help="decoded frame size when the config sets no decode_size")
    parser.add_argument("--measure", action="store_true", help="also run two steps on the first training batch")
    parser.add_argument("--json", action="store_true", help="print the report as JSON only")
    known, rest = parser.parse_known_args(argv)
    return vars(known), rest


def estimate(argv: list[str]) -> dict[str, Any]:
    """The report for ``argv`` (CLI config arguments plus this tool's options)."""
    options, cli_args = _split(argv)
    cli = _cli(cli_args, shapes_only=True)
    backbone, data = cli.model.backbone, cli.datamodule
    trainer = cli.config.get("trainer", {})
    counts = parameter_bytes(cli.model)
    param_dtype = next(backbone.parameters()).dtype
    layout = layout_of(trainer, backbone, counts, param_dtype)
    shape, facts = batch_shape(backbone, data.sampling, data.batch_size, options["video_seconds"],
                               options["text_tokens"], tuple(options["frame_size"]), options["answer_tokens"])
    memory = estimate_memory(backbone.hf_config, counts, shape, layout)
    report = {"tokens": facts | {"sequence": shape.sequence, "batch_per_device": shape.batch},
              "parameters": counts, "layout": asdict(layout),
              "memory_gib_per_device": {k: round(v / GIB, 3) for k, v in memory.items()},
              "memory_bytes_per_device": {k: int(v) for k, v in memory.items()}}
    if options["measure"]:
        report["measured"] = measure(cli_args, layout)
    return report


def measure(cli_args: list[str], layout: Layout) -> dict[str, Any]:
    """Two real steps on the first training batch, and the estimate for that batch's exact shape beside them."""
    cli = _cli(cli_args, shapes_only=False)
    module, data = cli.model, cli.datamodule
    if torch.cuda.is_available():
        module = module.cuda()
    data.processor = module.backbone.processor
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    device = next(module.parameters()).device
    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
    peak = measure_peak(module, batch)
    pixels = batch["pixel_values_videos" if "pixel_values_videos" in batch else "pixel_values"]
    rows = batch["input_ids"].shape[0]
    shape = Shape(rows, batch["input_ids"].shape[1], _vision_tokens(pixels, module.backbone) // rows, pixels.numel() // rows,
                  answer_window(batch["labels"]))
    counts = parameter_bytes(module)
    estimated = estimate_memory(module.backbone.hf_config, counts, shape, layout)["total"]
    return {"batch": asdict(shape), "device": device.type, "peak_bytes": peak, "estimated_bytes": int(estimated),
            "estimate_over_measured": round(estimated / peak, 3)}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    report = estimate(argv)
    if "--json" in argv:
        print(json.dumps(report, indent=2))
        return 0
    tokens, memory = report["tokens"], report["memory_gib_per_device"]
    print(f"frames {tokens['frames']} at {tokens['frame_size'][0]}x{tokens['frame_size'][1]} → {tokens['visual_tokens']} "
          f"visual tokens; sequence {tokens['sequence']} x batch {tokens['batch_per_device']} per device")
    params = report["parameters"]
    print(f"parameters {params['parameters'] / 1e6:.1f}M, trainable {params['trainable_parameters'] / 1e6:.2f}M; "
          f"layout {report['layout']}")
    print("memory per device (GiB): " + ", ".join(f"{k} {v}" for k, v in memory.items()))
    if "measured" in report:
        m = report["measured"]
        print(f"measured peak {m['peak_bytes'] / GIB:.4f} GiB on {m['device']} for batch {m['batch']}; estimate "
              f"{m['estimated_bytes'] / GIB:.4f} GiB ({m['estimate_over_measured']}x)")
    return 0

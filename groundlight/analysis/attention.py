"""``groundlight analyze sink-dims|attention``: look inside a trained (or pretrained) video-LLM.

    groundlight analyze sink-dims --config experiments/self_consistency/gpu/exact.yaml --out runs/sink_dims.json
    groundlight analyze attention --config experiments/self_consistency/synth.yaml --ckpt <ckpt> --layer 1 \\
        --split test --out runs/self_consistency/synth/attention

``sink-dims`` calibrates a backbone's sink dimensions (Kang et al. 2025): the LM hidden-state
dimensions with massive RMS-normalised activations on visual tokens, layer by layer.
``attention`` scores each layer (heads averaged) and each head of one layer by sharpness,
vision-centricity, keyframe AUROC and their product (``groundlight.attention.quality``) on
keyframe-annotated samples, and draws the paper's Fig. 3 heatmaps.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from groundlight.attention.probe import AttentionProbe, last_prompt_positions
from groundlight.attention.quality import QualityAccumulator, row_quality
from groundlight.attention.sinks import DEFAULT_TAU, massive_dimensions
from groundlight.attention.steering import keyframe_tokens
from groundlight.io import write_json_atomic


def load_experiment(config: str, overrides: list[str], ckpt: str | None) -> tuple[Any, Any]:
    """The experiment's module (weights from ``ckpt`` if given, eval mode) and its datamodule."""
    from groundlight.cli import lightning_main

    cli = lightning_main(["--config", config, *overrides], run=False)
    model, datamodule = cli.model, cli.datamodule
    if ckpt is not None:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        model.load_state_dict(state.get("state_dict", state))
    datamodule.processor = model.backbone.processor
    return model.eval(), datamodule


def batches(datamodule: Any, split: str, tasks: list[str] | None, max_samples: int | None) -> Iterator[dict[str, Any]]:
    """Prompt-only (generation) batches of ``split``; batches whose videos were all skipped are dropped."""
    samples = datamodule.read(split, limit=max_samples, tasks=tasks)
    for batch in datamodule.eval_loader(samples):
        if batch.get("samples"):
            yield batch


def _common_arguments(parser: argparse.ArgumentParser, split: str) -> None:
    parser.add_argument("--config", required=True, help="experiment YAML (model + data)")
    parser.add_argument("--split", default=split, help="split to read")
    parser.add_argument("--max-samples", type=int, default=32, help="samples per task to analyse")
    parser.add_argument("--tasks", nargs="+", default=None, help="tasks to read (default: the config's)")
    parser.epilog = "Other options are passed to the experiment's CLI, e.g. --data.init_args.data_dir data/x."


# ---- sink-dims ----------------------------------------------------------------------------------


def merge_dimension_stats(per_batch: list[list[dict[str, float]]], token_counts: list[int]) -> list[dict[str, float]]:
    """One layer's per-dimension stats over batches: peak = max, fraction over tau and median token-weighted.

    The median is a token-weighted mean of batch medians (exact for one batch).
    """
    merged: dict[int, dict[str, float]] = {}
    total = sum(token_counts)
    for stats, count in zip(per_batch, token_counts):
        for entry in stats:
            slot = merged.setdefault(entry["dim"], {"dim": entry["dim"], "peak": 0.0, "median": 0.0, "fraction_over_tau": 0.0})
            slot["peak"] = max(slot["peak"], entry["peak"])
            slot["median"] += entry["median"] * count / total
            slot["fraction_over_tau"] += entry["fraction_over_tau"] * count / total
    return sorted(merged.values(), key=lambda e: -e["peak"])


def suggest_sink_dims(layers: dict[int, list[dict[str, float]]], tau: float, min_layer_fraction: float) -> list[int]:
    """Dimensions whose peak exceeds ``tau`` in at least ``min_layer_fraction`` of the layers, most frequent first."""
    hits: dict[int, int] = {}
    for stats in layers.values():
        for entry in stats:
            if entry["peak"] > tau:
                hits[entry["dim"]] = hits.get(entry["dim"], 0) + 1
    needed = min_layer_fraction * len(layers)
    return [dim for dim, n in sorted(hits.items(), key=lambda item: (-item[1], item[0])) if n >= needed]


def sink_dimension_report(model: Any, loader: Iterator[dict[str, Any]], tau: float, top: int,
                          min_layer_fraction: float) -> dict[str, Any]:
    """Massive dimensions of visual tokens per decoder layer input (layer ``l`` ↔ ``hidden_states[l]``)."""
    per_layer: dict[int, list[list[dict[str, float]]]] = {}
    counts: list[int] = []
    samples = 0
    for batch in loader:
        visual = model.backbone.visual_mask(batch)
        with torch.no_grad():
            hidden = model.backbone(batch, output_hidden_states=True).hidden_states[:-1]  # the last one is post-norm
        for layer, states in enumerate(hidden):
            per_layer.setdefault(layer, []).append(massive_dimensions(states.flatten(0, 1), visual.flatten(), tau, top=states.shape[-1]))
        counts.append(int(visual.sum()))
        samples += len(batch["samples"])
    if not counts:
        raise SystemExit("no samples to analyse: check --split/--tasks and the config's data_dir")
    layers = {layer: merge_dimension_stats(stats, counts) for layer, stats in per_layer.items()}
    return {
        "tau": tau, "samples": samples, "visual_tokens": sum(counts),
        "sink_dims": suggest_sink_dims(layers, tau, min_layer_fraction),
        "min_layer_fraction": min_layer_fraction,
        "layers": {str(layer): stats[:top] for layer, stats in layers.items()},
    }


def sink_dims_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="groundlight analyze sink-dims", description=sink_dimension_report.__doc__)
    _common_arguments(parser, split="val")
    parser.add_argument("--tau", type=float, default=DEFAULT_TAU, help="sink threshold on |RMSNorm(h)|")
    parser.add_argument("--top", type=int, default=8, help="dimensions reported per layer")
    parser.add_argument("--min-layer-fraction", type=float, default=0.5,
                        help="a sink dimension exceeds tau in at least this fraction of layers")
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default: print only)")
    args, overrides = parser.parse_known_args(argv)
    model, datamodule = load_experiment(args.config, overrides, None)
    report = sink_dimension_report(model, batches(datamodule, args.split, args.tasks, args.max_samples), args.tau,
                                   args.top, args.min_layer_fraction) | {"config": args.config, "split": args.split}
    if args.out is not None:
        write_json_atomic(args.out, report)
    print(json.dumps({k: report[k] for k in ("sink_dims", "samples", "visual_tokens", "tau")}))
    return 0


# ---- attention ----------------------------------------------------------------------------------


def attention_report(model: Any, loader: Iterator[dict[str, Any]], head_layer: int | None) -> dict[str, Any]:
    """Quality per layer (the head-averaged row, Eq. 6) and per head of one layer, averaged over samples.

    ``head_layer`` ``None`` scores the heads of the layer with the best quality.
    """
    layers = sorted(model.backbone.decoder_layers())
    if head_layer is not None and head_layer not in layers:
        raise SystemExit(f"--layer {head_layer} is not a decoder layer (0..{layers[-1]})")
    per_layer, per_head = QualityAccumulator(), QualityAccumulator()
    samples = 0
    for batch in loader:
        with torch.no_grad(), AttentionProbe(model.backbone, layers, stop_after=True) as probe:
            probe.query_positions = last_prompt_positions(batch)
            model.backbone(batch)
        visual, keyframes = model.backbone.visual_mask(batch).cpu(), keyframe_tokens(batch)
        for b in range(visual.shape[0]):
            rows = torch.stack([probe.rows[layer][b].cpu() for layer in layers])  # (layers, H, L)
            per_layer.update(row_quality(rows.mean(1), visual[b], keyframes[b]))
            per_head.update(row_quality(rows, visual[b], keyframes[b]))
        samples += visual.shape[0]
    if not samples:
        raise SystemExit("no samples to analyse: check --split/--tasks and the config's data_dir")
    layer_values = per_layer.compute()
    quality = [q if q == q else -1.0 for q in layer_values["quality"]]  # NaN ranks last
    best = layers[max(range(len(layers)), key=quality.__getitem__)]
    chosen = best if head_layer is None else head_layer
    return {
        "samples": samples,
        "samples_without_keyframe_contrast": per_layer.undefined("keyframe_auroc", samples),
        "layers": layer_values,
        "best_layer": best,
        "head_layer": chosen,
        "heads": {key: values[layers.index(chosen)] for key, values in per_head.compute().items()},
    }


def attention_main(argv: list[str]) -> int:
    from groundlight.viz.attention import plot_quality_heatmap

    parser = argparse.ArgumentParser(prog="groundlight analyze attention", description=attention_report.__doc__)
    _common_arguments(parser, split="test")
    parser.add_argument("--ckpt", default=None, help="Lightning checkpoint of the module (default: the config's init)")
    parser.add_argument("--layer", type=int, default=None, help="layer whose heads are scored (default: the best layer)")
    parser.add_argument("--out", type=Path, required=True, help="folder for attention.json and the PNGs")
    parser.set_defaults(tasks=["keyframes"])
    args, overrides = parser.parse_known_args(argv)
    model, datamodule = load_experiment(args.config, overrides, args.ckpt)
    report = attention_report(model, batches(datamodule, args.split, args.tasks, args.max_samples), args.layer)
    report |= {"config": args.config, "ckpt": args.ckpt, "split": args.split, "tasks": args.tasks}
    plot_quality_heatmap(report["layers"], "layer", "(a) attention quality per layer (heads averaged)",
                         args.out / "layers.png")
    plot_quality_heatmap(report["heads"], "head", f"(b) attention quality per head, layer {report['head_layer']}",
                         args.out / f"heads_layer{report['head_layer']}.png")
    write_json_atomic(args.out / "attention.json", report)
    print(json.dumps({k: report[k] for k in ("best_layer", "head_layer", "samples")} | {"layer_quality": report["layers"]["quality"]}))
    return 0

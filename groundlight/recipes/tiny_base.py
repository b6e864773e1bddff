"""``groundlight recipe tiny-base`` (``make tiny-base``): build groundlight-tiny, a small pretrained Qwen2.5-VL, from nothing.

1. Pretrain a random-init Qwen2.5-VL of the real class on the unbounded synthetic stream
   (:mod:`data_modules.stream`: fresh clips every step, moment retrieval + highlights + multiple
   choice + verification; queries name any object of a clip, not only its target).
2. Score it on the embedded benchmark's test split (``data/synth``, made if missing) beside the
   no-model controls: moment retrieval (mIoU, R1@0.5), query grounding on clips with distractors
   (each scored twice, see :func:`query_grounding`), multiple choice against the majority answer;
   every number with a 95 % bootstrap interval over questions.
3. Write ``runs/tiny_base/summary.json``, then ``save_pretrained`` into ``groundlight/assets/tiny_base``
   with a ``MODEL_CARD.md`` holding the recipe, the metrics and the weights' sha256.

Re-running resumes from ``runs/tiny_base/checkpoints/last.ckpt`` (a finished run only re-scores).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from groundlight.analysis.grounding import bootstrap, query_grounding, window_iou

TARGETS = {"mIoU": 0.55, "R1@0.5": 0.55, "named_mIoU": 0.5, "named_minus_other": 0.25, "mcq_over_majority": 0.15}
FAMILIES = {"qwen2_5_vl": ("Qwen2.5-VL", "Qwen2_5_VLForConditionalGeneration", "Qwen25VLBackbone"),
            "qwen3_vl": ("Qwen3-VL", "Qwen3VLForConditionalGeneration", "Qwen3VLBackbone")}
"""What the model card calls each family: its name, its HF class, and the backbone that loads it."""
ASSET = Path(__file__).resolve().parents[1] / "assets" / "tiny_base"
WEIGHTS = "model.safetensors"


@dataclass
class TinyBaseRecipe:
    """Every choice of the recipe (the model card records them all)."""

    seed: int = 0
    steps: int = 1500
    batch_size: int = 16
    lr: float = 3e-3
    warmup_steps: int = 50
    hidden_size: int = 64
    intermediate_size: int = 128
    num_layers: int = 3
    num_heads: int = 4
    num_kv_heads: int = 2
    mrope_section: tuple[int, int, int] = (2, 3, 3)
    vision_hidden_size: int = 32
    vision_depth: int = 2
    frame_size: int = 56
    query_position: str = "both"
    weights: tuple[float, float, float, float] = (0.5, 0.1, 0.25, 0.15)
    any_object: float = 0.5
    single_object_items: int = 4800
    num_workers: int = 1
    eval_batch_size: int = 64
    max_eval_samples: int | None = None
    vision_warmup_steps: int = 0
    vision_warmup_lr: float = 3e-3
    vision_warmup_head: str = "linear"
    family: str = "qwen2_5_vl"


def build_module(recipe: TinyBaseRecipe):
    """SFT on a tiny Qwen2.5-VL, or (``family: qwen3_vl``) a tiny Qwen3-VL of the same sizes: its own MRoPE
    sections (4, 2, 2), time written as text before each frame group, the query after the video only,
    ``frame_size`` a multiple of 32."""
    from groundlight.backbones.qwen2_5_vl import Qwen25VLBackbone, TinyQwenConfig
    from groundlight.backbones.qwen3_vl import Qwen3VLBackbone, TinyQwen3Config
    from groundlight.methods.base import OptimizerConfig
    from groundlight.methods.sft import SFTModule

    optimizer = OptimizerConfig(lr=recipe.lr, warmup_steps=recipe.warmup_steps, schedule="cosine")
    pixels = recipe.frame_size**2
    if recipe.family == "qwen3_vl":
        if recipe.query_position != "after" or recipe.frame_size % 32:
            raise ValueError("family qwen3_vl: --query-position after and a --frame-size that is a multiple of 32")
        tiny3 = TinyQwen3Config(
            hidden_size=recipe.hidden_size, intermediate_size=recipe.intermediate_size, num_layers=recipe.num_layers,
            num_heads=recipe.num_heads, num_kv_heads=recipe.num_kv_heads, vision_hidden_size=recipe.vision_hidden_size,
            vision_intermediate_size=2 * recipe.vision_hidden_size, vision_depth=recipe.vision_depth,
        )
        backbone = Qwen3VLBackbone(tiny=tiny3, min_pixels=pixels, max_pixels=pixels, total_pixels=None)
        return SFTModule(backbone, optimizer, max_new_tokens=16)
    if recipe.family != "qwen2_5_vl":
        raise ValueError(f"family: qwen2_5_vl or qwen3_vl, got {recipe.family!r}")
    tiny = TinyQwenConfig(
        hidden_size=recipe.hidden_size, intermediate_size=recipe.intermediate_size, num_layers=recipe.num_layers,
        num_heads=recipe.num_heads, num_kv_heads=recipe.num_kv_heads, mrope_section=tuple(recipe.mrope_section),
        vision_hidden_size=recipe.vision_hidden_size, vision_intermediate_size=2 * recipe.vision_hidden_size,
        vision_depth=recipe.vision_depth,
    )
    backbone = Qwen25VLBackbone(tiny=tiny, min_pixels=pixels, max_pixels=pixels, query_position=recipe.query_position)
    return SFTModule(backbone, optimizer, max_new_tokens=16)


def build_datamodule(recipe: TinyBaseRecipe, data_dir: Path):
    from data_modules.datamodule import FrameSampling
    from data_modules.stream import StreamDataModule, StreamOptions
    from data_modules.tasks import PromptTemplates

    stream = StreamOptions(seed=recipe.seed, weights=tuple(recipe.weights), any_object=recipe.any_object,
                           single_object_items=recipe.single_object_items)
    return StreamDataModule(
        str(data_dir), tasks=["charades_sta", "mcq"], sampling=FrameSampling(1.0, None, 40, (recipe.frame_size,) * 2),
        prompts=PromptTemplates(state_duration=False), batch_size=recipe.batch_size,
        eval_batch_size=recipe.eval_batch_size, num_workers=recipe.num_workers,
        max_eval_samples=recipe.max_eval_samples, seed=recipe.seed, stream=stream,
    )


def window_means(values: list[float], window: int = 25) -> list[float]:
    """The mean of every ``window`` consecutive values (the last window may be shorter), rounded to 4 places."""
    return [round(float(np.mean(values[at : at + window])), 4) for at in range(0, len(values), window)]


def warm_up(backbone: Any, recipe: Any) -> list[float]:
    """Stage 0: the vision warm-up (:mod:`groundlight.methods.vision_warmup`) on stream clips of seed + 1, which
    the language-model stage never draws; the mean loss of every 25 steps. ``recipe``: any recipe with ``seed``,
    ``batch_size``, ``frame_size``, ``warmup_steps`` and the ``vision_warmup_*`` fields."""
    from functools import partial

    from torch.utils.data import DataLoader

    from data_modules.stream import (
        OBJECT_KINDS,
        StreamOptions,
        VisionStream,
        collate_vision,
    )
    from data_modules.tasks import PromptTemplates
    from groundlight.methods.base import OptimizerConfig
    from groundlight.methods.vision_warmup import warm_up_vision

    stream = VisionStream(backbone.processor, StreamOptions(seed=recipe.seed + 1), PromptTemplates(state_duration=False),
                          recipe.batch_size, (recipe.frame_size,) * 2, 1.0, 40)
    loader = DataLoader(stream, batch_size=recipe.batch_size, collate_fn=partial(collate_vision, processor=backbone.processor))
    optimizer = OptimizerConfig(lr=recipe.vision_warmup_lr, warmup_steps=recipe.warmup_steps, schedule="cosine")
    return window_means(warm_up_vision(backbone, loader, recipe.vision_warmup_steps, optimizer, OBJECT_KINDS,
                                       recipe.vision_warmup_head))


def pretrain(recipe: TinyBaseRecipe, data_dir: Path, out_dir: Path):
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    L.seed_everything(recipe.seed, workers=True)
    module, datamodule = build_module(recipe), build_datamodule(recipe, data_dir)
    last = out_dir / "checkpoints" / "last.ckpt"
    if recipe.vision_warmup_steps and not last.exists():  # a resumed run's checkpoint holds the warmed tower
        warm_up(module.backbone, recipe)
    checkpoints = ModelCheckpoint(dirpath=out_dir / "checkpoints", save_last=True, every_n_train_steps=250)
    trainer = L.Trainer(
        accelerator="auto", devices=1, max_steps=recipe.steps, limit_val_batches=0, num_sanity_val_steps=0,
        logger=CSVLogger(out_dir, name="logs"), callbacks=[checkpoints], log_every_n_steps=25,
        enable_progress_bar=False, deterministic=False,
    )
    trainer.fit(module, datamodule, ckpt_path=str(last) if last.exists() else None)
    return trainer, module, datamodule


def predictions(trainer, module, datamodule, samples) -> list[dict]:
    batches = trainer.predict(module, dataloaders=datamodule.eval_loader(samples))
    return [record for batch in batches for record in batch]


def evaluate(trainer, module, datamodule, data_dir: Path, limit: int | None) -> tuple[dict[str, Any], list[dict]]:
    """The summary's metrics (each with its interval) and the prediction records."""
    from data_modules.readers import read_task_split
    from data_modules.synthetic import load_meta, query_swap_samples
    from groundlight.analysis.controls import fit_constant_window, majority_answer

    meta = load_meta(data_dir)
    moments, questions = (read_task_split(data_dir, task, "test")[:limit] for task in ("charades_sta", "mcq"))
    swaps = query_swap_samples(data_dir, "test")[:limit]
    records = predictions(trainer, module, datamodule, [*moments, *questions, *swaps])
    parsed = {r["sample_id"]: r["parsed"] for r in records}
    vid = {s.sample_id: s.meta["vid"] for s in [*moments, *swaps]}
    ious = np.array([window_iou(parsed[s.sample_id], s.windows[0]) for s in moments])
    named, other = query_grounding(meta, {vid[s.sample_id]: parsed[s.sample_id] for s in moments},
                                   {vid[s.sample_id]: parsed[s.sample_id] for s in swaps})
    correct = np.array([parsed[s.sample_id] == s.answer_index for s in questions], dtype=float)

    train_moments = read_task_split(data_dir, "charades_sta", "train")
    duration = {s.sample_id: float(meta["videos"][s.meta["vid"]]["duration"]) for s in [*train_moments, *moments]}
    constant = fit_constant_window(train_moments, [duration[s.sample_id] for s in train_moments])
    constant_ious = np.array([window_iou(constant.predict(duration[s.sample_id]), s.windows[0]) for s in moments])
    majority = majority_answer([s.answer_index for s in read_task_split(data_dir, "mcq", "train")])
    majority_correct = np.array([s.answer_index == majority for s in questions], dtype=float)

    metrics = {
        "mIoU": bootstrap(ious), "R1@0.5": bootstrap(ious >= 0.5),
        "named_mIoU": bootstrap(np.array(named)), "other_mIoU": bootstrap(np.array(other)),
        "named_minus_other": bootstrap(np.array(named) - np.array(other)),
        "mcq_accuracy": bootstrap(correct), "majority_answer": bootstrap(majority_correct),
        "mcq_over_majority": bootstrap(correct - majority_correct),
        "constant_window": {"mIoU": bootstrap(constant_ious), "R1@0.5": bootstrap(constant_ious >= 0.5),
                            "window": dataclasses.asdict(constant)},
        "mr_parse_failed": int(sum(parsed[s.sample_id] is None for s in moments)),
    }
    return metrics, records


def targets_met(metrics: dict[str, Any]) -> dict[str, bool]:
    return {name: bool(metrics[name]["mean"] >= bar) for name, bar in TARGETS.items()}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _row(name: str, value: dict[str, float]) -> str:
    return f"| {name} | {value['mean']:.3f} | [{value['ci_low']:.3f}, {value['ci_high']:.3f}] | {value['n']} |"


def model_card(recipe: TinyBaseRecipe, summary: dict[str, Any], digest: str, command: str) -> str:
    m = summary["metrics"]
    rows = [_row(k, m[k]) for k in ("mIoU", "R1@0.5", "named_mIoU", "other_mIoU", "named_minus_other",
                                    "mcq_accuracy", "majority_answer", "mcq_over_majority")]
    rows += [_row(f"constant_window {k}", m["constant_window"][k]) for k in ("mIoU", "R1@0.5")]
    met = ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in summary["targets_met"].items())
    name, hf_class, backbone = FAMILIES[recipe.family]
    layout = f', query_position="{recipe.query_position}"' if recipe.family == "qwen2_5_vl" else ", total_pixels=None"
    return "\n".join([
        "# groundlight-tiny",
        "",
        f"A small {name} (`{hf_class}`, random init) pretrained on CPU on the",
        "embedded benchmark's unbounded synthetic stream (`data_modules/stream.py`). It loads through the code",
        "that loads a 7B checkpoint:",
        "",
        "```python",
        f'{backbone}(pretrained="groundlight/assets/tiny_base", local_files_only=True,',
        f'    min_pixels={recipe.frame_size ** 2}, max_pixels={recipe.frame_size ** 2}{layout})',
        "```",
        "",
        "or `backbone: ../base/backbones/tiny_base.yaml` in a config.",
        f"Frames are {recipe.frame_size}x{recipe.frame_size} at 1 fps (max 40); prompts leave the video's length unstated.",
        "",
        "## Recipe",
        "",
        f"`{command}`: {summary['wall_seconds'] / 60:.1f} min here ({summary['threads']} torch thread, {summary['cpus']} cores,",
        f"1-min load average {summary['load_average']} at the end: time on a shared machine, not a benchmark).",
        "",
        "```json",
        json.dumps(dataclasses.asdict(recipe), indent=1),
        "```",
        "",
        "## Metrics (synth test split, seed-0 benchmark; mean and 95 % bootstrap interval over questions)",
        "",
        "| metric | mean | 95 % CI | n |",
        "|---|---|---|---|",
        *rows,
        "",
        "`named_mIoU` / `other_mIoU`: on test clips with a distractor, each clip scored twice (the target's query and",
        "the first distractor's), the prediction against the named object's window and against the other's.",
        "",
        f"Targets (issue 11) met: {met}.",
        "",
        "## Weights",
        "",
        f"`{WEIGHTS}` sha256: `{digest}`",
        "",
    ])


def ensure_benchmark(data_dir: Path) -> None:
    if not (data_dir / "meta.json").exists():
        from data_modules.synthetic import generate

        print(f"synthesising the embedded benchmark into {data_dir} ...", flush=True)
        generate(data_dir, seed=0)


def run(recipe: TinyBaseRecipe, data_dir: Path, out_dir: Path, asset_dir: Path | None, command: str) -> dict[str, Any]:
    import torch

    from groundlight.io import write_json_atomic, write_jsonl_atomic, write_text_atomic

    began = time.time()
    ensure_benchmark(data_dir)
    trainer, module, datamodule = pretrain(recipe, data_dir, out_dir)
    trained = time.time() - began
    metrics, records = evaluate(trainer, module, datamodule, data_dir, recipe.max_eval_samples)
    summary = {"metrics": metrics, "targets_met": targets_met(metrics), "recipe": dataclasses.asdict(recipe),
               "train_seconds": round(trained, 1), "wall_seconds": round(time.time() - began, 1),
               "threads": torch.get_num_threads(), "cpus": os.cpu_count(), "load_average": round(os.getloadavg()[0], 1),
               "data_dir": str(data_dir)}
    flat = {k: v for k, v in metrics.items() if isinstance(v, dict) and "mean" in v}
    summary |= {k: v["mean"] for k, v in flat.items()}
    write_json_atomic(out_dir / "summary.json", summary)
    write_jsonl_atomic(out_dir / "predictions.jsonl", records)
    if asset_dir is not None:
        module.backbone.save_pretrained(asset_dir)
        write_text_atomic(asset_dir / "MODEL_CARD.md", model_card(recipe, summary, sha256(asset_dir / WEIGHTS), command))
    print(json.dumps({k: summary[k] for k in flat} | {"targets_met": summary["targets_met"],
                                                     "wall_seconds": summary["wall_seconds"]}, indent=1))
    return summary


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="groundlight recipe tiny-base", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/synth"))
    parser.add_argument("--out", type=Path, default=Path("runs/tiny_base"))
    parser.add_argument("--asset", default=str(ASSET), help="save_pretrained directory ('' to skip)")
    for field in dataclasses.fields(TinyBaseRecipe):
        default = field.default
        if isinstance(default, tuple):
            parser.add_argument(f"--{field.name.replace('_', '-')}", type=type(default[0]), nargs=len(default), default=default)
        elif default is None:
            parser.add_argument(f"--{field.name.replace('_', '-')}", type=int, default=None)
        else:
            parser.add_argument(f"--{field.name.replace('_', '-')}", type=type(default), default=default)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    recipe = TinyBaseRecipe(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TinyBaseRecipe)})
    recipe = dataclasses.replace(recipe, weights=tuple(recipe.weights), mrope_section=tuple(recipe.mrope_section))
    asset = Path(args.asset) if args.asset else None
    command = "groundlight recipe tiny-base" + ("" if argv is None else " " + " ".join(argv))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    run(recipe, args.data, args.out, asset, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``groundlight recipe tiny-probe``: what a tiny Qwen2.5-VL can learn from the pretraining stream, one skill at a time.

A diagnostic for issue 11's base: each probe asks one kind of question about the stream's single-object clips,
answered in free text (``open_qa``), so a failure points at one missing skill:

* ``colour``: "What colour is the object?" → ``red``: one hop from the video to the answer.
* ``caption``: "What object appears in the video?" → ``the red circle``: colour and shape.
* ``presence``: "A red circle appears in the video. True or false?", true for the clip's object and false for
  another (colour, shape) in equal measure: the query must be matched against the video (binding).
* ``detect``: the same statement, always naming the clip's object, false when the object is taken out of the
  clip (an empty video): "is anything there?", with no matching needed.

Phases run in order on one model (``--phases caption=500 presence=1000``), each a fresh optimizer with warmup
and cosine decay. After each phase the model answers ``--eval-items`` held-out stream clips of that phase's
probe; the summary holds each phase's exact-match accuracy (mean, 95 % bootstrap interval) beside the no-model
control (the most frequent answer of the phase's own training draws, scored on the same questions), and the
training loss every 25 steps. Writes ``runs/tiny_probe/<name>/summary.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

PROBES = ("colour", "caption", "presence", "detect")
EVAL_OFFSET = 10**8
"""Held-out clips are stream items from this index on; training never reaches it."""


def probe_question(probe: str, scene: Any, index: int) -> tuple[Any, str, str]:
    """The clip to show, the question and the answer of stream item ``index`` for ``probe`` (seeded by the index)."""
    from data_modules.synthetic import COLOURS, SHAPES

    obj = scene.objects[0]
    if probe == "detect":
        shown = random.Random(index).random() < 0.5
        question = f"A {obj.colour} {obj.shape} appears in the video. True or false?"
        return (scene if shown else dataclasses.replace(scene, objects=())), question, "true" if shown else "false"
    if probe == "colour":
        return scene, "What colour is the object?", obj.colour
    if probe == "caption":
        return scene, "What object appears in the video?", f"the {obj.colour} {obj.shape}"
    if probe == "presence":
        rng = random.Random(index)
        kinds = [(c, s) for c in COLOURS for s in SHAPES if (c, s) != (obj.colour, obj.shape)]
        shown, answer = ((obj.colour, obj.shape), "true") if rng.random() < 0.5 else (rng.choice(kinds), "false")
        return scene, f"A {shown[0]} {shown[1]} appears in the video. True or false?", answer
    raise ValueError(f"unknown probe {probe!r}: one of {PROBES}")


@dataclass
class ProbeRecipe:
    """Every choice of a probe run (the summary records them all)."""

    seed: int = 0
    batch_size: int = 16
    lr: float = 3e-3
    warmup_steps: int = 50
    hidden_size: int = 64
    intermediate_size: int = 128
    num_layers: int = 2
    frame_size: int = 56
    query_position: str = "after"
    eval_items: int = 256


def probe_stream(processor: Any, probe: str, recipe: ProbeRecipe, start: int = 0):
    """The pretraining stream's single-object clips, each asked ``probe``'s question (see :mod:`data_modules.stream`)."""
    from data_modules.samples import VideoSample
    from data_modules.stream import (
        STREAM_DIR,
        StreamOptions,
        SyntheticStream,
        render_frames,
        stream_scene,
    )
    from data_modules.tasks import PromptTemplates
    from groundlight.metrics.tasks import build_example

    class ProbeStream(SyntheticStream):
        def item(self, index: int) -> dict[str, Any]:
            scene, question, answer = probe_question(probe, stream_scene(self.options, index), index)
            sample = VideoSample(sample_id=f"{scene.vid}:{probe}", video_path=str(STREAM_DIR / f"{scene.vid}.mp4"),
                                 task="open_qa", query=question, duration=float(scene.duration), answer_text=answer)
            frames, times = render_frames(scene, self.fps, self.max_frames, self.frame_size)
            example = build_example(sample, self.prompts, sample.duration)
            return {**example, "visual": self.processor.prepare_video(frames, times), "sample": sample,
                    "duration": sample.duration}

    options = StreamOptions(seed=recipe.seed, single_object_items=2**62)
    return ProbeStream(processor, options, PromptTemplates(state_duration=False), recipe.batch_size,
                       (recipe.frame_size,) * 2, 1.0, 40, start)


def build_backbone(recipe: ProbeRecipe):
    from groundlight.backbones.qwen2_5_vl import Qwen25VLBackbone, TinyQwenConfig

    tiny = TinyQwenConfig(hidden_size=recipe.hidden_size, intermediate_size=recipe.intermediate_size,
                          num_layers=recipe.num_layers)
    pixels = recipe.frame_size**2
    return Qwen25VLBackbone(tiny=tiny, min_pixels=pixels, max_pixels=pixels, query_position=recipe.query_position)


def train_phase(module: Any, probe: str, steps: int, first_item: int, recipe: ProbeRecipe, log_dir: Path) -> list[float]:
    """``steps`` optimizer steps on ``probe`` from stream item ``first_item``; the mean loss of every 25 steps."""
    from functools import partial

    import lightning as L
    from lightning.pytorch.loggers import CSVLogger
    from torch.utils.data import DataLoader

    from data_modules.datamodule import collate_items
    from groundlight.methods.base import OptimizerConfig

    class LossTrace(L.Callback):
        def __init__(self) -> None:
            self.losses: list[float] = []

        def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
            self.losses.append(float(outputs["loss"]))

    stream = probe_stream(module.backbone.processor, probe, recipe, first_item)
    loader = DataLoader(stream, batch_size=recipe.batch_size,
                        collate_fn=partial(collate_items, processor=module.backbone.processor, with_answer=True))
    module.optimizer_config = OptimizerConfig(lr=recipe.lr, warmup_steps=recipe.warmup_steps, schedule="cosine")
    trace = LossTrace()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=steps, logger=CSVLogger(log_dir, name=probe),
                        log_every_n_steps=25, callbacks=[trace], enable_progress_bar=False, enable_checkpointing=False,
                        enable_model_summary=False)
    trainer.fit(module, loader)
    return [round(float(np.mean(trace.losses[at : at + 25])), 4) for at in range(0, len(trace.losses), 25)]


def evaluate_phase(module: Any, probe: str, recipe: ProbeRecipe, majority: str) -> dict[str, Any]:
    """Exact-match accuracy on held-out clips, and the majority answer's, on the same questions."""
    import torch

    from data_modules.datamodule import collate_items
    from groundlight.recipes.tiny_base import bootstrap

    stream = probe_stream(module.backbone.processor, probe, recipe, EVAL_OFFSET)
    items = [stream.item(EVAL_OFFSET + i) for i in range(recipe.eval_items)]
    module.eval()
    answers: list[str] = []
    with torch.no_grad():
        for at in range(0, len(items), 64):
            batch = collate_items(items[at : at + 64], module.backbone.processor, with_answer=False)
            answers += module.backbone.generate(batch, max_new_tokens=8)
    module.train()
    truth = [item["answer"] for item in items]
    correct = np.array([a.strip().lower() == t for a, t in zip(answers, truth)], dtype=float)
    control = np.array([t == majority for t in truth], dtype=float)
    return {"accuracy": bootstrap(correct), "majority_answer": bootstrap(control),
            "accuracy_minus_majority": bootstrap(correct - control), "majority": majority,
            "distinct_answers": len(set(answers))}


def majority_answer(probe: str, recipe: ProbeRecipe, first_item: int, count: int) -> str:
    """The most frequent answer among the phase's own training questions (no video needed)."""
    from data_modules.stream import StreamOptions, stream_scene

    options = StreamOptions(seed=recipe.seed, single_object_items=2**62)
    answers = Counter(probe_question(probe, stream_scene(options, i), i)[2] for i in range(first_item, first_item + count))
    return answers.most_common(1)[0][0]


def run(recipe: ProbeRecipe, phases: list[tuple[str, int]], out_dir: Path) -> dict[str, Any]:
    import lightning as L
    import torch

    from groundlight.io import write_json_atomic
    from groundlight.methods.sft import SFTModule

    began = time.time()
    L.seed_everything(recipe.seed, workers=True)
    module = SFTModule(build_backbone(recipe), max_new_tokens=8)
    results, first_item = [], 0
    for probe, steps in phases:
        losses = train_phase(module, probe, steps, first_item, recipe, out_dir / "logs")
        majority = majority_answer(probe, recipe, first_item, min(steps * recipe.batch_size, 4096))
        results.append({"probe": probe, "steps": steps, "first_item": first_item, "loss_every_25_steps": losses}
                       | evaluate_phase(module, probe, recipe, majority))
        first_item += steps * recipe.batch_size
    summary = {"phases": results, "recipe": dataclasses.asdict(recipe), "wall_seconds": round(time.time() - began, 1),
               "threads": torch.get_num_threads()}
    write_json_atomic(out_dir / "summary.json", summary)
    print(json.dumps([{k: r[k] for k in ("probe", "steps", "accuracy", "majority_answer", "distinct_answers")}
                      for r in results], indent=1))
    return summary


def parse_phase(text: str) -> tuple[str, int]:
    probe, _, steps = text.partition("=")
    if probe not in PROBES or not steps.isdigit() or int(steps) < 1:
        raise argparse.ArgumentTypeError(f"a phase is PROBE=STEPS with PROBE in {PROBES}, got {text!r}")
    return probe, int(steps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="groundlight recipe tiny-probe", description=__doc__.splitlines()[0])
    parser.add_argument("--phases", type=parse_phase, nargs="+", default=[("presence", 1000)])
    parser.add_argument("--name", default=None, help="run directory under --out (default: the phases)")
    parser.add_argument("--out", type=Path, default=Path("runs/tiny_probe"))
    for field in dataclasses.fields(ProbeRecipe):
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default)
    args = parser.parse_args(argv)
    recipe = ProbeRecipe(**{f.name: getattr(args, f.name) for f in dataclasses.fields(ProbeRecipe)})
    name = args.name or "_".join(f"{p}{s}" for p, s in args.phases)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    run(recipe, args.phases, args.out / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``groundlight recipe tiny-probe``: what a tiny Qwen-VL can learn from the pretraining stream, one skill at a time.

A diagnostic for issue 11's base: each probe asks one kind of question about the stream's single-object clips,
answered in free text (``open_qa``), so a failure points at one missing skill:

* ``colour``: "What colour is the object?" → ``red``: one hop from the video to the answer.
* ``caption``: "What object appears in the video?" → ``the red circle``: colour and shape.
* ``presence``: "A red circle appears in the video. True or false?", true for the clip's object and false for
  another (colour, shape) in equal measure: the query must be matched against the video (binding).
* ``presence_text``: ``presence`` with the clip's object also written in the prompt ("The video shows a blue
  square."): the same comparison with both sides in text. A diagnostic: it tells a language model that cannot
  compare two names from one that cannot read the name off the video.
* ``detect``: the same statement, always naming the clip's object, false when the object is taken out of the
  clip (an empty video): "is anything there?", with no matching needed.
* ``when``: the benchmark's moment-retrieval question about the clip's only object ("from 3s to 8s"): reading
  *when* frames are, with nothing to match. Scored by IoU against the best constant window (fitted on the
  phase's training draws) instead of exact match against the majority answer.

Phases run in order on one model (``--phases caption=500 presence=1000``), each a fresh optimizer with warmup
and cosine decay. After each phase the model answers ``--eval-items`` held-out stream clips of that phase's
probe; the summary holds each phase's score (exact match, or IoU for ``when``; mean and 95 % bootstrap interval)
beside the no-model control scored on the same questions (the most frequent answer of the phase's own training
draws, or their best constant window), and the mean training loss of every 25 steps. Writes
``runs/tiny_probe/<name>/summary.json``. ``--family qwen3_vl`` runs the same probes on the tiny Qwen3-VL.
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

PROBES = ("colour", "caption", "presence", "presence_text", "detect", "when")
EVAL_OFFSET = 10**8
"""Held-out clips are stream items from this index on; training never reaches it."""


def probe_question(probe: str, scene: Any, index: int) -> tuple[Any, str, str]:
    """The clip to show, the question and the answer of stream item ``index`` for ``probe`` (seeded by the index)."""
    from data_modules.synthetic import COLOURS, MOMENT_QUERY, SHAPES

    obj = scene.objects[0]
    if probe == "when":
        return scene, MOMENT_QUERY.format(**obj.words), f"{obj.start} {obj.end}"
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
    if probe == "presence_text":
        scene, question, answer = probe_question("presence", scene, index)
        return scene, f"The video shows a {obj.colour} {obj.shape}. {question}", answer
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
    vision_warmup_steps: int = 0
    vision_warmup_lr: float = 3e-3
    vision_warmup_head: str = "linear"
    family: str = "qwen2_5_vl"


def probe_stream(processor: Any, probe: str, recipe: ProbeRecipe, start: int = 0):
    """The pretraining stream's single-object clips, each asked ``probe``'s question (see :mod:`data_modules.stream`)."""
    from data_modules.stream import StreamOptions, SyntheticStream, stream_scene
    from data_modules.tasks import PromptTemplates

    class ProbeStream(SyntheticStream):
        def item(self, index: int) -> dict[str, Any]:
            scene, question, answer = probe_question(probe, stream_scene(self.options, index), index)
            return self.question_item(scene, probe_sample(probe, scene, question, answer))

    options = StreamOptions(seed=recipe.seed, single_object_items=2**62)
    return ProbeStream(processor, options, PromptTemplates(state_duration=False), recipe.batch_size,
                       (recipe.frame_size,) * 2, 1.0, 40, start)


def probe_sample(probe: str, scene: Any, question: str, answer: str) -> Any:
    """``open_qa`` with the answer as its reference; ``when`` as the benchmark's moment-retrieval sample."""
    from data_modules.samples import VideoSample
    from data_modules.stream import STREAM_DIR

    common = {"sample_id": f"{scene.vid}:{probe}", "video_path": str(STREAM_DIR / f"{scene.vid}.mp4"),
              "query": question, "duration": float(scene.duration)}
    if probe == "when":
        start, end = (float(t) for t in answer.split())
        return VideoSample(task="moment_retrieval", windows=[(start, end)], **common)
    return VideoSample(task="open_qa", answer_text=answer, **common)


def build_backbone(recipe: ProbeRecipe):
    """The tiny Qwen2.5-VL (time in the rotary positions), or with ``family: qwen3_vl`` the tiny Qwen3-VL of the
    same width and depth (time written as text before each frame group; ``frame_size`` then rounds to 32 px)."""
    from groundlight.backbones.qwen2_5_vl import Qwen25VLBackbone, TinyQwenConfig
    from groundlight.backbones.qwen3_vl import Qwen3VLBackbone, TinyQwen3Config

    if recipe.family == "qwen3_vl":
        if recipe.query_position != "after":
            raise ValueError("family qwen3_vl states the query after the video only: --query-position after")
        tiny3 = TinyQwen3Config(hidden_size=recipe.hidden_size, intermediate_size=recipe.intermediate_size,
                                num_layers=recipe.num_layers)
        pixels = (32 * round(recipe.frame_size / 32)) ** 2
        return Qwen3VLBackbone(tiny=tiny3, min_pixels=pixels, max_pixels=pixels, total_pixels=None)
    if recipe.family != "qwen2_5_vl":
        raise ValueError(f"family: qwen2_5_vl or qwen3_vl, got {recipe.family!r}")
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
    from groundlight.recipes.tiny_base import window_means

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
    return window_means(trace.losses)


def score(sample: Any, text: str) -> float:
    """IoU of a parsed moment (0 when unparseable) for ``when``; exact match of the answer text otherwise."""
    from groundlight.metrics.tasks import parse_prediction
    from groundlight.analysis.grounding import window_iou

    if sample.task == "moment_retrieval":
        return window_iou(parse_prediction(sample, text), sample.windows[0])
    return float(text.strip().lower() == sample.answer_text)


def control(probe: str, recipe: ProbeRecipe, first_item: int, count: int) -> Any:
    """The no-model answer, from the phase's own first ``count`` training questions: the best constant window
    for ``when``, the most frequent answer otherwise."""
    from data_modules.stream import StreamOptions, stream_scene
    from groundlight.analysis.controls import fit_constant_window

    options = StreamOptions(seed=recipe.seed, single_object_items=2**62)
    drawn = [probe_question(probe, stream_scene(options, i), i) for i in range(first_item, first_item + count)]
    samples = [probe_sample(probe, *question) for question in drawn]
    if probe == "when":
        return fit_constant_window(samples, [s.duration for s in samples])
    return Counter(s.answer_text for s in samples).most_common(1)[0][0]


def control_score(answer: Any, sample: Any) -> float:
    if sample.task == "moment_retrieval":
        from groundlight.analysis.grounding import window_iou

        return window_iou(answer.predict(sample.duration), sample.windows[0])
    return float(answer == sample.answer_text)


def evaluate_phase(module: Any, probe: str, recipe: ProbeRecipe, no_model: Any) -> dict[str, Any]:
    """The model's scores on held-out clips, and the no-model control's, on the same questions."""
    import torch

    from data_modules.datamodule import collate_items
    from groundlight.analysis.grounding import bootstrap

    stream = probe_stream(module.backbone.processor, probe, recipe, EVAL_OFFSET)
    items = [stream.item(EVAL_OFFSET + i) for i in range(recipe.eval_items)]
    module.eval()
    answers: list[str] = []
    with torch.no_grad():
        for at in range(0, len(items), 64):
            batch = collate_items(items[at : at + 64], module.backbone.processor, with_answer=False)
            answers += module.backbone.generate(batch, max_new_tokens=16)
    module.train()
    scores = np.array([score(item["sample"], text) for item, text in zip(items, answers)])
    controls = np.array([control_score(no_model, item["sample"]) for item in items])
    shown = dataclasses.asdict(no_model) if dataclasses.is_dataclass(no_model) else no_model
    return {"metric": "IoU" if probe == "when" else "exact_match", "score": bootstrap(scores),
            "control": bootstrap(controls), "score_minus_control": bootstrap(scores - controls),
            "control_answer": shown, "distinct_answers": len(set(answers)), "examples": answers[:5]}


def run(recipe: ProbeRecipe, phases: list[tuple[str, int]], out_dir: Path) -> dict[str, Any]:
    import lightning as L
    import torch

    from groundlight.io import write_json_atomic
    from groundlight.methods.sft import SFTModule
    from groundlight.recipes.tiny_base import warm_up

    began = time.time()
    L.seed_everything(recipe.seed, workers=True)
    module = SFTModule(build_backbone(recipe), max_new_tokens=16)
    warmup = warm_up(module.backbone, recipe) if recipe.vision_warmup_steps else []
    results, first_item = [], 0
    for probe, steps in phases:
        losses = train_phase(module, probe, steps, first_item, recipe, out_dir / "logs")
        no_model = control(probe, recipe, first_item, min(steps * recipe.batch_size, 4096))
        results.append({"probe": probe, "steps": steps, "first_item": first_item, "loss_every_25_steps": losses}
                       | evaluate_phase(module, probe, recipe, no_model))
        first_item += steps * recipe.batch_size
    summary = {"phases": results, "vision_warmup_loss_every_25_steps": warmup, "recipe": dataclasses.asdict(recipe),
               "wall_seconds": round(time.time() - began, 1), "threads": torch.get_num_threads()}
    write_json_atomic(out_dir / "summary.json", summary)
    print(json.dumps([{k: r[k] for k in ("probe", "steps", "metric", "score", "control", "distinct_answers")}
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

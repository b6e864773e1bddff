"""An unbounded stream of fresh synthetic clips for pretraining, rendered straight to frame tensors.

Each item is drawn by the embedded benchmark's own scene and question code
(:mod:`data_modules.synthetic`) and rendered without the mp4 round trip, then goes through
the same task builder and backbone processor as a benchmark item, so
:func:`~data_modules.datamodule.collate_items` and the methods see the same dicts.

Item ``i`` is a pure function of ``(seed, i)``. Its random numbers come from
``default_rng([seed, STREAM_TAG, i, purpose])``; the benchmark's come from
``default_rng([seed, split in {0, 1, 2}, index, purpose])``, so the stream never replays a
benchmark clip. Workers shard the stream by whole batches, so any worker count yields the
same batches in the same order, and a run resumed at step ``k`` restarts at item
``k * batch_size``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from data_modules.datamodule import GroundingDataModule, collate_items
from data_modules.samples import VideoSample
from data_modules.synthetic import (
    COLOURS,
    HIGHLIGHT_QUERY,
    INTERVAL_STATEMENT,
    MOMENT_QUERY,
    SHAPES,
    GeneratorConfig,
    Scene,
    draw_frames,
    question_samples,
    scene_from_rng,
    verify_samples,
)
from data_modules.tasks import PromptTemplates
from data_modules.video import sample_timestamps
from groundlight.metrics.tasks import build_example

STREAM_TAG = 1000
"""Second entropy word of every stream draw; the benchmark's splits use 0, 1 and 2 there."""
STREAM_DIR = Path("stream")
"""Placeholder directory in the stream samples' ``video_path`` (no file is ever written)."""
TASKS = ("moment", "highlight", "mcq", "verify")


@dataclass
class StreamOptions:
    """What the pretraining stream draws.

    Attributes:
        seed: stream seed (items are a function of ``(seed, index)``).
        weights: relative frequency of ``moment`` (Charades-STA query), ``highlight`` (QVHighlights query,
            read as moment retrieval like the benchmark's), ``mcq`` (the benchmark's four question kinds)
            and ``verify`` (true/false statements).
        any_object: probability that a moment/highlight query names a random object of the clip rather
            than its target: the benchmark only ever asks about the target, so naming others forces binding.
        swapped_statements: probability that a verify item states one object with another object's
            interval (false) or its own (true), on clips with distractors.
        single_object_items: the first items of the stream are single-object clips (easy-first curriculum).
        min_duration / max_duration / size / fps_choices: the benchmark generator's clip settings.
    """

    seed: int = 0
    weights: tuple[float, float, float, float] = (0.4, 0.1, 0.3, 0.2)
    any_object: float = 0.5
    swapped_statements: float = 0.5
    single_object_items: int = 0
    min_duration: int = 6
    max_duration: int = 40
    size: int = 96
    fps_choices: tuple[int, ...] = (5, 8, 10, 12)

    def __post_init__(self) -> None:
        if len(self.weights) != len(TASKS) or min(self.weights) < 0 or sum(self.weights) <= 0:
            raise ValueError(f"weights: {len(TASKS)} non-negative numbers for {TASKS}, got {self.weights}")
        for name in ("any_object", "swapped_statements"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} is a probability, got {getattr(self, name)}")

    @property
    def generator(self) -> GeneratorConfig:
        return GeneratorConfig(self.seed, 0, 0, 0, self.min_duration, self.max_duration, self.size, tuple(self.fps_choices), 1)


def stream_rng(seed: int, index: int, purpose: int) -> np.random.Generator:
    return np.random.default_rng([seed, STREAM_TAG, index, purpose])


def stream_scene(options: StreamOptions, index: int) -> Scene:
    """The clip of stream item ``index`` (single-object while the curriculum lasts)."""
    n_distractors = 0 if index < options.single_object_items else None
    return scene_from_rng(stream_rng(options.seed, index, 0), options.generator, f"stream_{index:09d}", "stream", n_distractors)


_YUV_TO_RGB = torch.tensor([[1.164, 0.0, 1.596], [1.164, -0.392, -0.813], [1.164, 2.017, 0.0]], dtype=torch.float32)
"""BT.601 limited range to RGB, what the benchmark's decoder assumes for its untagged yuv420p."""


def _to_rgb(planes: np.ndarray, side: int, size: tuple[int, int]) -> torch.Tensor:
    """yuv420p buffers ``(T, side * 3 / 2, side)`` → RGB uint8 ``(T, H, W, 3)``: each plane resized to ``size``
    (antialiased bilinear), then BT.601 to RGB: a close, vectorised stand-in for the decoder's swscale."""
    planes = torch.from_numpy(planes).float()
    resize = partial(torch.nn.functional.interpolate, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)
    luma = resize(planes[:, None, :side])
    chroma = resize(planes[:, side:].reshape(len(planes), 2, side // 2, side // 2))
    yuv = torch.cat([luma - 16, chroma - 128], dim=1)
    rgb = torch.einsum("ij,tjhw->thwi", _YUV_TO_RGB, yuv)
    return rgb.round_().clamp_(0, 255).to(torch.uint8)


def render_frames(scene: Scene, sampling_fps: float, max_frames: int | None, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """RGB frames ``(T, H, W, 3)`` and their times, at the frames and times ``read_video`` decodes from the
    clip's mp4 (no H.264 coding noise; colours within a few levels of the decoder's)."""
    times = sample_timestamps(float(scene.duration), fps=sampling_fps, max_frames=max_frames)
    last = scene.duration * scene.fps - 1
    indices = [min(int(t * scene.fps + 1e-6), last) for t in times]
    planes = np.stack([buffer.copy() for buffer in draw_frames(scene, indices)])
    return _to_rgb(planes, scene.side, size), torch.tensor([i / scene.fps for i in indices], dtype=torch.float64)


def _moment(scene: Scene, rng: np.random.Generator, options: StreamOptions, template: str) -> VideoSample:
    named = scene.target
    if rng.random() < options.any_object:
        named = scene.objects[int(rng.integers(len(scene.objects)))]
    return VideoSample(
        sample_id=f"{scene.vid}:{'moment' if template == MOMENT_QUERY else 'highlight'}",
        video_path=str(STREAM_DIR / f"{scene.vid}.mp4"),
        task="moment_retrieval",
        query=template.format(**named.words),
        duration=float(scene.duration),
        windows=[(float(named.start), float(named.end))],
        meta={"vid": scene.vid, "role": named.role},
    )


def _verify(scene: Scene, rng: np.random.Generator, options: StreamOptions) -> VideoSample:
    if scene.distractors and rng.random() < options.swapped_statements:
        first, second = (scene.objects[int(i)] for i in rng.choice(len(scene.objects), size=2, replace=False))
        label = bool(rng.integers(2))
        shown = first if label else second
        text = INTERVAL_STATEMENT.format(**first.words, start=shown.start, end=shown.end)
        return VideoSample(
            sample_id=f"{scene.vid}_swapped", video_path=str(STREAM_DIR / f"{scene.vid}.mp4"), task="verify",
            query=text, duration=float(scene.duration), windows=[(float(first.start), float(first.end))], label=label,
            meta={"vid": scene.vid, "statement_type": "swapped"},
        )
    statements = verify_samples(scene, STREAM_DIR, rng)
    return statements[int(rng.integers(len(statements)))]


def stream_sample(options: StreamOptions, scene: Scene, index: int) -> VideoSample:
    """The question of stream item ``index`` about ``scene``."""
    rng = stream_rng(options.seed, index, 1)
    weights = np.asarray(options.weights, dtype=float)
    task = TASKS[int(rng.choice(len(TASKS), p=weights / weights.sum()))]
    if task in ("moment", "highlight"):
        return _moment(scene, rng, options, MOMENT_QUERY if task == "moment" else HIGHLIGHT_QUERY)
    if task == "verify":
        return _verify(scene, rng, options)
    questions = question_samples(scene, STREAM_DIR, rng)
    return questions[int(rng.integers(len(questions)))]


class SyntheticStream(IterableDataset):
    """Endless ``{visual, prompt, answer, query, sample, duration}`` items from item ``start`` on.

    Args:
        processor: the backbone's processor (``prepare_video``).
        options: what the stream draws.
        prompts: task prompt templates (those the benchmark is evaluated with).
        batch_size: the loader's batch size: workers take whole batches in turn.
        frame_size: ``(height, width)`` frames are resized to, like ``FrameSampling.decode_size``.
        fps / max_frames: frame sampling, like ``FrameSampling``.
        start: first item (``global step * batch size`` when resuming).
    """

    def __init__(
        self,
        processor: Any,
        options: StreamOptions,
        prompts: PromptTemplates,
        batch_size: int,
        frame_size: tuple[int, int] = (56, 56),
        fps: float = 1.0,
        max_frames: int | None = 40,
        start: int = 0,
    ) -> None:
        super().__init__()
        if batch_size < 1 or start < 0:
            raise ValueError(f"need batch_size >= 1 and start >= 0, got {batch_size}, {start}")
        self.processor, self.options, self.prompts = processor, options, prompts
        self.batch_size, self.frame_size, self.fps, self.max_frames, self.start = batch_size, frame_size, fps, max_frames, start

    def item(self, index: int) -> dict[str, Any]:
        scene = stream_scene(self.options, index)
        return self.question_item(scene, stream_sample(self.options, scene, index))

    def question_item(self, scene: Scene, sample: VideoSample) -> dict[str, Any]:
        """``sample`` asked about ``scene``, rendered and prepared as a benchmark item would be."""
        frames, times = render_frames(scene, self.fps, self.max_frames, self.frame_size)
        example = build_example(sample, self.prompts, sample.duration)
        visual = self.processor.prepare_video(frames, times)
        return {**example, "visual": visual, "sample": sample, "duration": sample.duration}

    def indices(self, worker: int = 0, workers: int = 1):
        """Item indices of one worker: batches ``worker, worker + workers, ...`` counted from ``start``."""
        batch = worker
        while True:
            first = self.start + batch * self.batch_size
            yield from range(first, first + self.batch_size)
            batch += workers

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        return (self.item(index) for index in self.indices(worker, workers))


class StreamDataModule(GroundingDataModule):
    """Trains on :class:`SyntheticStream`; validates, tests and predicts on the benchmark files like
    :class:`~data_modules.datamodule.GroundingDataModule` (whose arguments it takes, plus ``stream``).

    The training loader starts at item ``global_step * batch_size * accumulate_grad_batches``, so a
    resumed run continues the stream where the checkpoint left it.
    """

    def __init__(self, *args: Any, stream: StreamOptions = StreamOptions(), **kwargs: Any) -> None:  # noqa: B008
        super().__init__(*args, **kwargs)
        if self.sampling.fps is None:
            raise ValueError("the stream samples frames by fps: set sampling.fps, not num_frames")
        if self.sampling.decode_size is None:
            raise ValueError("the stream renders at sampling.decode_size: set it, e.g. [56, 56]")
        self.stream = stream

    def setup(self, stage: str) -> None:
        if self.processor is None:
            self.processor = self.trainer.lightning_module.backbone.processor
        wanted = {"fit": ["validate"], "validate": ["validate"], "test": ["test"], "predict": ["predict"]}[stage]
        for name in wanted:
            if name not in self.datasets:
                self.datasets[name] = self.dataset(self.read(self.splits[name], self.max_eval_samples, self.eval_tasks))

    def stream_dataset(self, start: int = 0) -> SyntheticStream:
        s = self.sampling
        return SyntheticStream(self.processor, self.stream, self.prompts, self.batch_size, tuple(s.decode_size), s.fps, s.max_frames, start)

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        start = trainer.global_step * self.batch_size * trainer.accumulate_grad_batches if trainer is not None else 0
        return DataLoader(
            self.stream_dataset(start),
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=partial(collate_items, processor=self.processor, with_answer=True),
        )


OBJECT_KINDS = tuple(f"{colour} {shape}" for colour in COLOURS for shape in SHAPES)
"""Every (colour, shape) a clip can show, in a fixed order: the classes of the vision warm-up."""


def visible_objects(scene: Scene, times: torch.Tensor) -> torch.Tensor:
    """``(T, len(OBJECT_KINDS))`` bool: which kinds are on screen at each of ``times`` (seconds)."""
    shown = torch.zeros(len(times), len(OBJECT_KINDS), dtype=torch.bool)
    for obj in scene.objects:
        column = OBJECT_KINDS.index(f"{obj.colour} {obj.shape}")
        shown[:, column] = torch.tensor([obj.visible(float(t)) for t in times])
    return shown


class VisionStream(SyntheticStream):
    """The stream's clips without questions, each with the kinds on screen in every sampled frame
    (``visible_objects``): what :class:`~groundlight.methods.vision_warmup.VisionWarmupModule` learns from.
    Items carry a fixed one-line prompt so the backbone's processor can collate them."""

    PROMPT = "Describe the video."

    def item(self, index: int) -> dict[str, Any]:
        scene = stream_scene(self.options, index)
        frames, times = render_frames(scene, self.fps, self.max_frames, self.frame_size)
        return {"visual": self.processor.prepare_video(frames, times), "prompt": self.PROMPT, "answer": "",
                "objects": visible_objects(scene, times)}


def collate_vision(items: list[dict[str, Any]], processor: Any) -> dict[str, Any]:
    """The processor's batch (no answer) plus ``objects``: one ``(T, K)`` table per row."""
    return processor.collate(items, with_answer=False) | {"objects": [item["objects"] for item in items]}

"""The embedded benchmark: coloured shapes that come and go, with exactly known intervals.

Each clip is a real H.264 mp4 (yuv420p, x264 ultrafast, GOP = 2 s): a dark background
with its own tint and smooth shading, one *target* object and 0-2 *distractors*. An
object has a colour and a shape, is visible during ``[start, end)`` (integer seconds,
so 1-fps sampling sees sharp boundaries) and drifts, bouncing off the borders, while
visible. Every object in a clip has a different (colour, shape), so naming both picks
out exactly one. Durations and frame rates vary per clip; intervals, colours and
shapes are uniform at random, and distractors' intervals are drawn like the target's,
so no query or question can be answered from text alone.

Layout written by ``generate``::

    out_dir/
      meta.json                     generator args + per video: duration, fps, size, objects
      videos/{vid}.mp4              vid = "{split}_{index:05d}"
      charades_sta/{split}.txt      target moment, Charades-STA lines
      qvhighlights/{split}.jsonl    target moment + 2-s clip saliency (3 annotators)
      mcq/{split}.json              4-option questions (ExAct-shaped)
      keyframes/{split}.json        the same questions + evidence frames (VidDiffBench-style)
      verify/{split}.jsonl          true/false statements, balanced per video

Everything is a pure function of ``(seed, split, index)``: the same seed gives
byte-identical annotations and identical frames, whatever ``workers`` is.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import multiprocessing
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import numpy as np

from data_modules.formats import write_charades_sta, write_keyframes, write_mcq, write_qvhighlights, write_verify
from data_modules.formats.qvhighlights import CLIP_SECONDS, clip_ids_of, num_clips
from data_modules.samples import VideoSample
from groundlight.metrics.parse import format_window

GENERATOR_VERSION = 1
SPLITS = ("train", "val", "test")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (225, 35, 35),
    "green": (40, 190, 60),
    "blue": (50, 90, 240),
    "yellow": (240, 220, 40),
    "white": (245, 245, 245),
    "purple": (160, 60, 210),
    "orange": (250, 140, 20),
    "cyan": (40, 215, 225),
}
SHAPES = ("circle", "square", "triangle", "diamond")
DIFFICULTY = ("single", "one_distractor", "two_distractors")

MOMENT_QUERY = "the {colour} {shape} appears."
"""Charades-STA query; ``query_swap_samples`` uses it too, so only the object changes."""
HIGHLIGHT_QUERY = "The {colour} {shape} moves across the screen."
INTERVAL_STATEMENT = "The {colour} {shape} is visible from {start} s to {end} s."
PRESENCE_STATEMENT = "A {colour} {shape} appears in the video."
QUESTIONS = {
    "which_object": "Which object appears in the video?",
    "first_colour": "What colour is the object that appears first?",
    "when": "When is the {colour} {shape} visible?",
    "count": "How many objects appear in the video?",
}

_OBJECT_SCALE = (0.18, 0.30)
"""Object side as a fraction of the frame side."""
_SPEED_SCALE = (0.05, 0.20)
"""Object speed in frame sides per second: visible drift, no jumps at 1 fps."""
_TARGET_SPAN = (0.10, 0.40)
"""Target interval length as a fraction of the video. Charades-STA moments average about
a quarter of their video; with this span the best constant window scores mIoU ~0.28,
close to that benchmark's prior (15–60 % gave a constant-window mIoU of ~0.45)."""


@dataclass(frozen=True)
class GeneratorConfig:
    """Arguments of one benchmark build (all but ``workers`` go into ``meta.json``)."""

    seed: int = 0
    n_train: int = 1200
    n_val: int = 150
    n_test: int = 150
    min_duration: int = 6
    max_duration: int = 40
    size: int = 96
    fps_choices: tuple[int, ...] = (5, 8, 10, 12)
    workers: int = 2

    def __post_init__(self) -> None:
        if not 6 <= self.min_duration <= self.max_duration:
            raise ValueError(f"need 6 <= min_duration <= max_duration, got {self.min_duration}, {self.max_duration}")
        if self.size < 32 or self.size % 2:
            raise ValueError(f"size must be an even number >= 32 (yuv420p), got {self.size}")
        if not self.fps_choices or min(self.fps_choices) < 1:
            raise ValueError(f"fps_choices must be positive integers, got {self.fps_choices}")
        if min(self.n_train, self.n_val, self.n_test) < 0 or self.workers < 1:
            raise ValueError("split sizes must be >= 0 and workers >= 1")

    def count(self, split: str) -> int:
        return {"train": self.n_train, "val": self.n_val, "test": self.n_test}[split]


@dataclass(frozen=True)
class SceneObject:
    """One drawn object: what it is, when it is visible, and how it moves."""

    colour: str
    shape: str
    role: str
    start: int
    end: int
    side: int
    x0: float
    y0: float
    vx: float
    vy: float
    rgb: tuple[int, int, int]

    @property
    def words(self) -> dict[str, str]:
        return {"colour": self.colour, "shape": self.shape}

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"

    def visible(self, seconds: float) -> bool:
        return self.start <= seconds < self.end

    def position(self, seconds: float, frame_side: int) -> tuple[int, int]:
        """Top-left corner at ``seconds``, bouncing inside the frame."""
        travel = frame_side - self.side
        moved = seconds - self.start
        return _bounce(self.x0 + self.vx * moved, travel), _bounce(self.y0 + self.vy * moved, travel)


def _bounce(position: float, travel: int) -> int:
    """Reflect ``position`` into ``[0, travel]`` (a triangle wave)."""
    if travel <= 0:
        return 0
    folded = position % (2 * travel)
    return round(folded if folded <= travel else 2 * travel - folded)


@dataclass(frozen=True)
class Scene:
    """One clip: its id, timing, background and objects (the target first)."""

    vid: str
    split: str
    duration: int
    fps: int
    side: int
    background: tuple[int, int, int]
    noise_seed: int
    objects: tuple[SceneObject, ...]

    @property
    def target(self) -> SceneObject:
        return self.objects[0]

    @property
    def distractors(self) -> tuple[SceneObject, ...]:
        return self.objects[1:]


def _rng(config: GeneratorConfig, split: str, index: int, stream: int) -> np.random.Generator:
    """Independent generator per (seed, split, clip, purpose): clips never shift each other."""
    return np.random.default_rng([config.seed, SPLITS.index(split), index, stream])


def _length_bounds(duration: int) -> tuple[int, int]:
    """Allowed interval lengths: 10% to 40% of the video, at least 1 s."""
    low = max(1, math.ceil(_TARGET_SPAN[0] * duration))
    return low, max(low, math.floor(_TARGET_SPAN[1] * duration))


def _random_interval(rng: np.random.Generator, duration: int) -> tuple[int, int]:
    """Uniform length within ``_length_bounds``, then uniform start."""
    low, high = _length_bounds(duration)
    length = int(rng.integers(low, high + 1))
    start = int(rng.integers(0, duration - length + 1))
    return start, start + length


def _interval_iou(a: tuple[int, int], b: tuple[int, int]) -> float:
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    return inter / (a[1] - a[0] + b[1] - b[0] - inter)


def _windows_unlike(
    rng: np.random.Generator, duration: int, truth: tuple[int, int], max_iou: float, count: int
) -> list[tuple[int, int]]:
    """``count`` distinct integer windows with IoU < ``max_iou`` to ``truth``.

    Their lengths obey ``_length_bounds`` like true intervals, so a wrong option or a
    false statement cannot be told from a true one by its length.
    """
    low, high = _length_bounds(duration)
    pool = [
        (start, start + length)
        for length in range(low, high + 1)
        for start in range(duration - length + 1)
        if _interval_iou((start, start + length), truth) < max_iou
    ]
    picks = rng.choice(len(pool), size=min(count, len(pool)), replace=False)
    return [pool[int(i)] for i in picks]


def _distractor_intervals(
    rng: np.random.Generator, duration: int, target: tuple[int, int], count: int
) -> list[tuple[int, int]]:
    """Drawn like the target's (so length does not reveal the role), IoU < 0.5 with it, distinct."""
    intervals: list[tuple[int, int]] = []
    for _ in range(50 * count):
        if len(intervals) == count:
            break
        candidate = _random_interval(rng, duration)
        if _interval_iou(candidate, target) < 0.5 and candidate not in intervals:
            intervals.append(candidate)
    fallback = [w for w in _windows_unlike(rng, duration, target, 0.5, count) if w not in intervals]
    return intervals + fallback[: count - len(intervals)]


def _sample_object(
    rng: np.random.Generator, kind: tuple[str, str], interval: tuple[int, int], role: str, side: int
) -> SceneObject:
    object_side = max(6, int(rng.uniform(*_OBJECT_SCALE) * side))
    speed = rng.uniform(*_SPEED_SCALE) * side
    angle = rng.uniform(0, 2 * math.pi)
    jitter = rng.integers(-12, 13, size=3)
    rgb = tuple(int(v) for v in np.clip(np.array(COLOURS[kind[0]]) + jitter, 0, 255))
    x0, y0 = rng.uniform(0, side - object_side, size=2)
    return SceneObject(
        kind[0],
        kind[1],
        role,
        *interval,
        object_side,
        float(x0),
        float(y0),
        speed * math.cos(angle),
        speed * math.sin(angle),
        rgb,
    )


def sample_scene(config: GeneratorConfig, split: str, index: int) -> Scene:
    """The clip ``index`` of ``split``: a pure function of the config's seed."""
    return scene_from_rng(_rng(config, split, index, 0), config, f"{split}_{index:05d}", split)


def scene_from_rng(
    rng: np.random.Generator, config: GeneratorConfig, vid: str, split: str, n_distractors: int | None = None
) -> Scene:
    """A clip drawn from ``rng`` exactly as the benchmark draws its own (the pretraining stream reuses it).

    ``n_distractors`` overrides the drawn count (a curriculum); the draw is still made, so the rest of
    the scene comes from the same random numbers.
    """
    duration = int(rng.integers(config.min_duration, config.max_duration + 1))
    fps = int(rng.choice(config.fps_choices))
    drawn = int(rng.integers(0, len(DIFFICULTY)))
    n_distractors = drawn if n_distractors is None else n_distractors
    kinds = list(itertools.product(COLOURS, SHAPES))
    chosen = [kinds[int(i)] for i in rng.choice(len(kinds), size=1 + n_distractors, replace=False)]
    target = _random_interval(rng, duration)
    intervals = [target, *_distractor_intervals(rng, duration, target, n_distractors)]
    roles = ["target"] + ["distractor"] * n_distractors
    objects = tuple(
        _sample_object(rng, kind, span, role, config.size)
        for kind, span, role in zip(chosen, intervals, roles, strict=True)
    )
    background = tuple(int(v) for v in rng.integers(15, 80, size=3))
    return Scene(vid, split, duration, fps, config.size, background, int(rng.integers(2**31)), objects)


def _sprite(shape: str, side: int) -> np.ndarray:
    """Boolean ``(side, side)`` mask of a shape filling its box."""
    y, x = np.mgrid[0:side, 0:side] + 0.5
    centre = side / 2
    if shape == "circle":
        return (x - centre) ** 2 + (y - centre) ** 2 <= centre**2
    if shape == "square":
        return np.ones((side, side), bool)
    if shape == "triangle":
        return np.abs(x - centre) <= y / 2
    return np.abs(x - centre) + np.abs(y - centre) <= centre


_RGB_TO_YUV = np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]) / 255
"""BT.601 limited range, what decoders assume for untagged yuv420p."""
_YUV_OFFSET = np.array([16.0, 128.0, 128.0])


def to_yuv(rgb: np.ndarray) -> np.ndarray:
    """BT.601 limited-range YUV of RGB values (any leading shape, last axis 3)."""
    return np.asarray(rgb, dtype=np.float64) @ _RGB_TO_YUV.T + _YUV_OFFSET


def _background_rgb(scene: Scene) -> np.ndarray:
    """The clip's tint plus a smooth random shading (+-12): clips differ, frames code cheaply."""
    coarse = np.random.default_rng(scene.noise_seed).uniform(-12, 12, size=(4, 4, 3))
    axis = np.linspace(0, 3, scene.side)
    low = np.minimum(axis.astype(int), 2)
    frac = axis - low
    rows = coarse[low] * (1 - frac)[:, None, None] + coarse[low + 1] * frac[:, None, None]
    shading = rows[:, low] * (1 - frac)[None, :, None] + rows[:, low + 1] * frac[None, :, None]
    return np.clip(np.array(scene.background) + shading, 0, 255)


class _I420:
    """A yuv420p frame buffer with writable Y, U, V plane views (drawn directly, no swscale)."""

    def __init__(self, side: int) -> None:
        self.buffer = np.empty(side * side * 3 // 2, np.uint8)
        luma, chroma = side * side, side * side // 4
        self.y = self.buffer[:luma].reshape(side, side)
        self.u = self.buffer[luma : luma + chroma].reshape(side // 2, side // 2)
        self.v = self.buffer[luma + chroma :].reshape(side // 2, side // 2)

    def fill(self, rgb: np.ndarray) -> None:
        """Set every plane from an ``(side, side, 3)`` RGB image (chroma averaged over 2x2)."""
        yuv = to_yuv(rgb)
        half = yuv.reshape(self.u.shape[0], 2, self.u.shape[1], 2, 3).mean(axis=(1, 3))
        self.y[:], self.u[:], self.v[:] = (
            np.clip(np.rint(p), 0, 255) for p in (yuv[..., 0], half[..., 1], half[..., 2])
        )

    def stamp(self, mask: np.ndarray, half_mask: np.ndarray, x: int, y: int, yuv: tuple[int, int, int]) -> None:
        """Paint a shape with its top-left corner at ``(x, y)``."""
        self.y[y : y + mask.shape[0], x : x + mask.shape[1]][mask] = yuv[0]
        rows, cols = slice(y // 2, y // 2 + half_mask.shape[0]), slice(x // 2, x // 2 + half_mask.shape[1])
        self.u[rows, cols][half_mask] = yuv[1]
        self.v[rows, cols][half_mask] = yuv[2]


def draw_frames(scene: Scene, indices: Sequence[int] | None = None) -> Iterator[np.ndarray]:
    """yuv420p buffers ``(side * 3 / 2, side)`` at ``k / fps`` for each frame ``k`` of ``indices`` (default:
    every frame); bigger objects under smaller. The buffer is reused: copy it to keep it."""
    background, canvas = _I420(scene.side), _I420(scene.side)
    background.fill(_background_rgb(scene))
    layers = sorted(scene.objects, key=lambda o: -o.side)
    masks = {id(o): _sprite(o.shape, o.side) for o in layers}
    colours = {id(o): tuple(int(v) for v in np.clip(np.rint(to_yuv(o.rgb)), 0, 255)) for o in layers}
    for index in range(scene.duration * scene.fps) if indices is None else indices:
        seconds = index / scene.fps
        canvas.buffer[:] = background.buffer
        for obj in layers:
            if obj.visible(seconds):
                mask = masks[id(obj)]
                canvas.stamp(mask, mask[::2, ::2], *obj.position(seconds, scene.side), colours[id(obj)])
        yield canvas.buffer.reshape(-1, scene.side)


def render_scene(scene: Scene, path: Path) -> Path:
    """Encode ``scene`` as H.264 mp4; single-threaded x264 so the output is reproducible."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=scene.fps)
        stream.width = stream.height = scene.side
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = 2 * scene.fps
        stream.options = {"preset": "ultrafast", "tune": "zerolatency", "threads": "1"}
        for frame in draw_frames(scene):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="yuv420p")))
        container.mux(stream.encode())
    return path


def _render_job(job: tuple[Scene, Path]) -> str:
    return str(render_scene(*job))


def _video(scene: Scene, out_dir: Path) -> str:
    return str(out_dir / "videos" / f"{scene.vid}.mp4")


def _seconds(obj: SceneObject) -> list[float]:
    """Integer seconds at which ``obj`` is on screen (its evidence at 1 fps)."""
    return [float(t) for t in range(obj.start, obj.end)]


def moment_sample(scene: Scene, out_dir: Path) -> VideoSample:
    """The target's Charades-STA moment."""
    return VideoSample(
        sample_id=f"{scene.vid}:moment",
        video_path=_video(scene, out_dir),
        task="moment_retrieval",
        query=MOMENT_QUERY.format(**scene.target.words),
        duration=float(scene.duration),
        windows=[(float(scene.target.start), float(scene.target.end))],
        meta={"vid": scene.vid},
    )


def _clip_saliency(scene: Scene, obj: SceneObject, rng: np.random.Generator) -> list[list[int]]:
    """Three annotators' 0-4 scores per 2-s clip: visible fraction and size, +-1 noise."""
    size_score = (obj.side / scene.side - _OBJECT_SCALE[0]) / (_OBJECT_SCALE[1] - _OBJECT_SCALE[0])
    rows = []
    for clip in range(num_clips(scene.duration)):
        clip_start, clip_end = clip * CLIP_SECONDS, min((clip + 1) * CLIP_SECONDS, scene.duration)
        overlap = max(0.0, min(obj.end, clip_end) - max(obj.start, clip_start)) / (clip_end - clip_start)
        if overlap == 0:
            rows.append([0, 0, 0])
            continue
        noise = rng.choice([-1, 0, 1], p=[0.2, 0.6, 0.2], size=3)
        rows.append([int(v) for v in np.clip(round(1 + 2 * overlap + min(max(size_score, 0), 1)) + noise, 1, 4)])
    return rows


def highlight_sample(scene: Scene, out_dir: Path, qid: int, rng: np.random.Generator) -> VideoSample:
    """The target's QVHighlights query with dense clip saliency."""
    window = (float(scene.target.start), float(scene.target.end))
    return VideoSample(
        sample_id=f"{scene.vid}:highlight",
        video_path=_video(scene, out_dir),
        task="moment_retrieval",
        query=HIGHLIGHT_QUERY.format(**scene.target.words),
        duration=float(scene.duration),
        windows=[window],
        saliency=_clip_saliency(scene, scene.target, rng),
        meta={"qid": qid, "vid": scene.vid, "relevant_clip_ids": clip_ids_of([window], scene.duration)},
    )


def _absent_kinds(scene: Scene, rng: np.random.Generator, count: int) -> list[tuple[str, str]]:
    present = {(o.colour, o.shape) for o in scene.objects}
    pool = [kind for kind in itertools.product(COLOURS, SHAPES) if kind not in present]
    return [pool[int(i)] for i in rng.choice(len(pool), size=count, replace=False)]


@dataclass(frozen=True)
class _Question:
    """A question before option ordering: the answer, three wrong options, the evidence times."""

    kind: str
    text: str
    answer: str
    wrong: list[str]
    evidence: list[float]
    shuffle: bool = True


def _which_object(scene: Scene, rng: np.random.Generator) -> _Question:
    shown = scene.objects[int(rng.integers(len(scene.objects)))]
    wrong = [f"{c} {s}" for c, s in _absent_kinds(scene, rng, 3)]
    return _Question("which_object", QUESTIONS["which_object"], shown.name, wrong, _seconds(shown))


def _first_colour(scene: Scene, rng: np.random.Generator) -> _Question | None:
    """Colours of the later objects are the first wrong options; ``None`` on a tie."""
    first, *later = sorted(scene.objects, key=lambda o: o.start)
    if later and later[0].start == first.start:
        return None
    others = list(dict.fromkeys(o.colour for o in later if o.colour != first.colour))
    absent = [c for c in COLOURS if c != first.colour and c not in others]
    wrong = (others + [absent[int(i)] for i in rng.permutation(len(absent))])[:3]
    onsets = sorted(float(o.start) for o in scene.objects)
    return _Question("first_colour", QUESTIONS["first_colour"], first.colour, wrong, onsets)


def _when(scene: Scene, rng: np.random.Generator) -> _Question:
    """Distractors' windows are the first wrong options, then windows with IoU < 0.3."""
    target = scene.target
    truth = (target.start, target.end)
    windows = [(o.start, o.end) for o in scene.distractors if (o.start, o.end) != truth]
    windows += _windows_unlike(rng, scene.duration, truth, max_iou=0.3, count=3)
    wrong = list(dict.fromkeys(format_window(s, e, decimals=0) for s, e in windows))[:3]
    text = QUESTIONS["when"].format(**target.words)
    return _Question("when", text, format_window(*truth, decimals=0), wrong, _seconds(target))


def _count(scene: Scene) -> _Question:
    """Options 1-4 in natural order; the answer's prior is uniform over 1-3."""
    answer = str(len(scene.objects))
    wrong = [str(n) for n in range(1, 5) if str(n) != answer]
    onsets = sorted(float(o.start) for o in scene.objects)
    return _Question("count", QUESTIONS["count"], answer, wrong, onsets, shuffle=False)


def _question_sample(scene: Scene, out_dir: Path, question: _Question, rng: np.random.Generator) -> VideoSample:
    options = [question.answer, *question.wrong]
    if len(options) != 4:
        raise RuntimeError(f"{scene.vid}: {question.kind} question has {len(options)} options, expected 4")
    options = [options[int(i)] for i in rng.permutation(4)] if question.shuffle else sorted(options)
    key = f"{scene.vid}_{question.kind}"
    return VideoSample(
        sample_id=key,
        video_path=_video(scene, out_dir),
        task="mcq",
        query=question.text,
        duration=float(scene.duration),
        options=options,
        answer_index=options.index(question.answer),
        keyframes=question.evidence,
        meta={"id": key, "vid": scene.vid, "question_type": question.kind, "fps": scene.fps, "domain": "synthetic"},
    )


def question_samples(scene: Scene, out_dir: Path, rng: np.random.Generator) -> list[VideoSample]:
    """Up to four 4-option questions; each needs the video (uniform priors over answers)."""
    questions = [_which_object(scene, rng), _first_colour(scene, rng), _when(scene, rng), _count(scene)]
    return [_question_sample(scene, out_dir, q, rng) for q in questions if q is not None]


def _statement(
    scene: Scene, out_dir: Path, kind: str, text: str, label: bool, windows: list[tuple[float, float]]
) -> VideoSample:
    return VideoSample(
        sample_id=f"{scene.vid}_{kind}",
        video_path=_video(scene, out_dir),
        task="verify",
        query=text,
        duration=float(scene.duration),
        windows=windows,
        label=label,
        meta={"id": f"{scene.vid}_{kind}", "vid": scene.vid, "statement_type": kind},
    )


def verify_samples(scene: Scene, out_dir: Path, rng: np.random.Generator) -> list[VideoSample]:
    """One interval and one presence statement per video, exactly one of them true."""
    interval_true = bool(rng.integers(2))
    named = scene.objects[int(rng.integers(len(scene.objects)))]
    truth = (named.start, named.end)
    start, end = truth if interval_true else _windows_unlike(rng, scene.duration, truth, max_iou=0.3, count=1)[0]
    interval = INTERVAL_STATEMENT.format(**named.words, start=start, end=end)
    shown = scene.objects[int(rng.integers(len(scene.objects)))]
    colour, shape = (shown.colour, shown.shape) if not interval_true else _absent_kinds(scene, rng, 1)[0]
    presence_windows = [(float(shown.start), float(shown.end))] if not interval_true else []
    return [
        _statement(scene, out_dir, "interval", interval, interval_true, [(float(named.start), float(named.end))]),
        _statement(
            scene,
            out_dir,
            "presence",
            PRESENCE_STATEMENT.format(colour=colour, shape=shape),
            not interval_true,
            presence_windows,
        ),
    ]


def scene_meta(scene: Scene) -> dict:
    """What ``meta.json`` records about one video."""
    return {
        "split": scene.split,
        "path": f"videos/{scene.vid}.mp4",
        "duration": scene.duration,
        "fps": scene.fps,
        "size": [scene.side, scene.side],
        "n_distractors": len(scene.distractors),
        "difficulty": DIFFICULTY[len(scene.distractors)],
        "background": list(scene.background),
        "objects": [
            {
                "colour": o.colour,
                "shape": o.shape,
                "role": o.role,
                "interval": [o.start, o.end],
                "side": o.side,
                "rgb": list(o.rgb),
            }
            for o in scene.objects
        ],
    }


def write_annotations(out_dir: Path, config: GeneratorConfig, scenes: dict[str, list[Scene]]) -> None:
    """Every annotation file of every split, plus ``meta.json``."""
    qids = itertools.count()
    for split, split_scenes in scenes.items():
        moments, highlights, questions, statements = [], [], [], []
        for index, scene in enumerate(split_scenes):
            rng = _rng(config, split, index, 1)
            moments.append(moment_sample(scene, out_dir))
            highlights.append(highlight_sample(scene, out_dir, next(qids), rng))
            questions += question_samples(scene, out_dir, rng)
            statements += verify_samples(scene, out_dir, rng)
        write_charades_sta(out_dir / "charades_sta" / f"{split}.txt", moments)
        write_qvhighlights(out_dir / "qvhighlights" / f"{split}.jsonl", highlights)
        write_mcq(out_dir / "mcq" / f"{split}.json", questions)
        write_keyframes(out_dir / "keyframes" / f"{split}.json", questions)
        write_verify(out_dir / "verify" / f"{split}.jsonl", statements)
    args = {k: v for k, v in asdict(config).items() if k != "workers"} | {"fps_choices": list(config.fps_choices)}
    videos = {scene.vid: scene_meta(scene) for split_scenes in scenes.values() for scene in split_scenes}
    meta = {
        "generator": "groundlight.synthetic",
        "version": GENERATOR_VERSION,
        "seed": config.seed,
        "args": args,
        "videos": videos,
    }
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")


def _render_all(out_dir: Path, scenes: list[Scene], workers: int) -> None:
    jobs = [(scene, out_dir / "videos" / f"{scene.vid}.mp4") for scene in scenes]
    if workers == 1:
        for job in jobs:
            _render_job(job)
        return
    # fork: workers start at once and need no import guard in the caller's script; they only
    # run numpy and x264, so threads the parent may hold (torch) are never touched.
    method = "fork" if sys.platform == "linux" else "spawn"
    with multiprocessing.get_context(method).Pool(workers) as pool:
        for _ in pool.imap_unordered(_render_job, jobs, chunksize=8):
            pass


def generate(
    out_dir: str | Path,
    seed: int = 0,
    n_train: int = 1200,
    n_val: int = 150,
    n_test: int = 150,
    min_duration: int = 6,
    max_duration: int = 40,
    size: int = 96,
    fps_choices: Sequence[int] = (5, 8, 10, 12),
    workers: int = 2,
) -> Path:
    """Build the benchmark under ``out_dir`` (see the module docstring) and return it."""
    config = GeneratorConfig(
        seed, n_train, n_val, n_test, min_duration, max_duration, size, tuple(fps_choices), workers
    )
    out_dir = Path(out_dir)
    (out_dir / "videos").mkdir(parents=True, exist_ok=True)
    scenes = {split: [sample_scene(config, split, i) for i in range(config.count(split))] for split in SPLITS}
    write_annotations(out_dir, config, scenes)
    _render_all(out_dir, [scene for split_scenes in scenes.values() for scene in split_scenes], workers)
    return out_dir


def load_meta(data_dir: str | Path) -> dict:
    """The parsed ``meta.json`` of a generated benchmark."""
    return json.loads((Path(data_dir) / "meta.json").read_text(encoding="utf-8"))


def query_swap_samples(data_dir: str | Path, split: str) -> list[VideoSample]:
    """Moment-retrieval samples that ask about a clip's first distractor instead of its target.

    Same ``MOMENT_QUERY`` template as the target's Charades-STA line, windows = the
    distractor's interval. A model that localises *an* object regardless of the query
    scores the same here as on the targets; one that reads the query does not.
    """
    data_dir = Path(data_dir)
    samples = []
    for vid, video in load_meta(data_dir)["videos"].items():
        distractors = [o for o in video["objects"] if o["role"] == "distractor"]
        if video["split"] != split or not distractors:
            continue
        start, end = distractors[0]["interval"]
        samples.append(
            VideoSample(
                sample_id=f"query_swap/{split}:{vid}",
                video_path=str(data_dir / video["path"]),
                task="moment_retrieval",
                query=MOMENT_QUERY.format(colour=distractors[0]["colour"], shape=distractors[0]["shape"]),
                duration=float(video["duration"]),
                windows=[(float(start), float(end))],
                source=f"{data_dir / 'meta.json'}:{vid}",
                meta={"vid": vid, "role": "distractor", "n_distractors": video["n_distractors"]},
            )
        )
    return samples


def annotate_difficulty(samples: list[VideoSample], data_dir: str | Path) -> list[VideoSample]:
    """Copy ``n_distractors`` and ``difficulty`` from ``meta.json`` into each sample's meta (for curricula)."""
    videos = load_meta(data_dir)["videos"]
    for sample in samples:
        video = videos[sample.meta.get("vid") or Path(sample.video_path).stem]
        sample.meta |= {"n_distractors": video["n_distractors"], "difficulty": video["difficulty"]}
    return samples


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="groundlight data synth", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-train", type=int, default=1200)
    parser.add_argument("--n-val", type=int, default=150)
    parser.add_argument("--n-test", type=int, default=150)
    parser.add_argument("--min-duration", type=int, default=6, help="seconds (integer)")
    parser.add_argument("--max-duration", type=int, default=40, help="seconds (integer)")
    parser.add_argument("--size", type=int, default=96, help="frame side in pixels (even)")
    parser.add_argument("--workers", type=int, default=2, help="encoding processes")
    parser.add_argument("--fps-choices", type=int, nargs="+", default=[5, 8, 10, 12])
    return parser


def main(argv: list[str] | None = None) -> int:
    """CLI: build the benchmark and print where it went and how long it took."""
    args = _parser().parse_args(argv)
    began = time.perf_counter()
    out = generate(
        args.out,
        args.seed,
        args.n_train,
        args.n_val,
        args.n_test,
        args.min_duration,
        args.max_duration,
        args.size,
        args.fps_choices,
        args.workers,
    )
    total = args.n_train + args.n_val + args.n_test
    print(f"wrote {total} clips and their annotations to {out} in {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""FineVidBench-style questions on the embedded benchmark, with exact answers from its scenes.

SF2T's benchmark (FineVidBench) asks scene-level questions (action, effect, speed) about a
whole clip and fragment-level ones (frame count, meaning of order, frame comparison,
adjust-or-not, rearrangement) about a few frames. The embedded benchmark knows every
object's interval, start point and velocity, so each answer here is computed, not
annotated:

- ``action``: which way an object is moving when it appears (its velocity's signs; only
  objects moving clearly diagonally are asked about);
- ``effect``: how many objects are on screen right after one disappears;
- ``speed``: which object moves fastest (the fastest at least 1.5x the next), or, alone,
  whether it moves slowly or quickly (below 0.09 or above 0.16 frame sides per second);
- ``frame_count``: how many frames a fragment shows (3-6);
- ``meaning_of_order``: four frames around an object's appearance or disappearance, in
  order or reversed: does it appear or disappear?
- ``frame_comparison``: two frames 2 s apart: which way did an object move (a dominant
  direction of at least 6 px)?
- ``adjust_or_not``: four consecutive seconds, shuffled for half the questions: do they
  need reordering?
- ``rearrangement``: three shuffled seconds: which order restores them (4 options)?

Scene-level questions use the clip itself; a fragment-level question gets its own 1-fps
video of exactly the frames it shows (``videos/finevid/<id>.mp4``), so its frame count
and order are what any 1-fps reader sees. Everything is written as multiple choice in the
benchmark's mcq format to ``finevid/{split}.json``; no existing file of the benchmark is
touched. Scenes are re-drawn from ``meta.json``'s arguments (``sample_scene`` is a pure
function of them) and the questions use their own random stream, so they are a pure
function of the seed too.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from data_modules.formats.mcq import write_mcq
from data_modules.samples import VideoSample
from data_modules.synthetic import (
    SPLITS,
    GeneratorConfig,
    Scene,
    SceneObject,
    draw_frames,
    load_meta,
    sample_scene,
)
from data_modules.tasks.fragments import inverse, shuffled

FINEVID_STREAM = 2
"""Random stream of the questions (the benchmark's scenes use 0, its annotations 1)."""

LEVELS = {
    "action": "scene", "effect": "scene", "speed": "scene",
    "frame_count": "fragment", "meaning_of_order": "fragment", "frame_comparison": "fragment",
    "adjust_or_not": "fragment", "rearrangement": "fragment",
}
QUESTIONS = {
    "action": "Which way is the {colour} {shape} moving when it appears?",
    "effect": "How many objects are on screen right after the {colour} {shape} disappears?",
    "speed": "Which object moves fastest?",
    "speed_alone": "Does the {colour} {shape} move slowly or quickly?",
    "frame_count": "How many frames does the video show?",
    "meaning_of_order": "Does the {colour} {shape} appear or disappear in this video?",
    "frame_comparison": "From the first frame to the second, which way does the {colour} {shape} move?",
    "adjust_or_not": "Do these frames need to be reordered to play in the order in which they happened?",
    "rearrangement": "The frames are shuffled. Which order of the shown frames restores the order in which they happened?",
}
"""Question texts (snapshotted in tests/data_modules/test_finevid.py)."""

DIAGONALS = ("up and to the left", "up and to the right", "down and to the left", "down and to the right")
DIRECTIONS = ("left", "right", "up", "down")
SLOW, FAST = 0.09, 0.16
"""Speed thresholds in frame sides per second (the benchmark draws 0.05-0.20)."""


@dataclass(frozen=True)
class Question:
    """One question before it is written: options in their final order, and its frames.

    Attributes:
        kind: a key of ``LEVELS``.
        text: the question.
        options: the options, in the order shown.
        answer: the correct option.
        times: for a fragment-level question, the seconds of the scene its video shows, in order
            shown; ``None`` for the whole clip.
    """

    kind: str
    text: str
    options: list[str]
    answer: str
    times: list[float] | None = None


def diagonal(obj: SceneObject) -> str:
    """The quadrant of the object's velocity (image coordinates: y grows downwards)."""
    return DIAGONALS[2 * (obj.vy > 0) + (obj.vx > 0)]


def _speed(obj: SceneObject) -> float:
    return math.hypot(obj.vx, obj.vy)


def _action(scene: Scene, rng: np.random.Generator) -> Question | None:
    clear = [o for o in scene.objects if min(abs(o.vx), abs(o.vy)) >= 0.3 * _speed(o)]
    if not clear:
        return None
    obj = clear[int(rng.integers(len(clear)))]
    answer = diagonal(obj)
    return Question("action", QUESTIONS["action"].format(**obj.words), list(DIAGONALS), answer)


def _effect(scene: Scene, rng: np.random.Generator) -> Question | None:
    leaving = [o for o in scene.objects if o.end < scene.duration]
    if not leaving:
        return None
    obj = leaving[int(rng.integers(len(leaving)))]
    remaining = sum(other.visible(obj.end) for other in scene.objects)
    return Question("effect", QUESTIONS["effect"].format(**obj.words), ["0", "1", "2", "3"], str(remaining))


def _speed_question(scene: Scene, rng: np.random.Generator) -> Question | None:
    ranked = sorted(scene.objects, key=_speed, reverse=True)
    if len(ranked) == 1:
        relative = _speed(ranked[0]) / scene.side
        if SLOW <= relative <= FAST:
            return None
        answer = "slowly" if relative < SLOW else "quickly"
        return Question("speed", QUESTIONS["speed_alone"].format(**ranked[0].words), ["slowly", "quickly"], answer)
    if _speed(ranked[0]) < 1.5 * _speed(ranked[1]):
        return None
    names = [scene.objects[int(i)].name for i in rng.permutation(len(scene.objects))]
    return Question("speed", QUESTIONS["speed"], names, ranked[0].name)


def _frame_count(scene: Scene, rng: np.random.Generator) -> Question:
    count = int(rng.integers(3, 7))
    times = [(k + 0.5) * scene.duration / count for k in range(count)]
    return Question("frame_count", QUESTIONS["frame_count"], ["3", "4", "5", "6"], str(count), times)


def _events(scene: Scene) -> Iterator[tuple[SceneObject, str, int]]:
    """Appearances and disappearances with two seconds on screen and two off around them."""
    for obj in scene.objects:
        if obj.end - obj.start >= 2 and obj.start >= 2:
            yield obj, "appears", obj.start
        if obj.end - obj.start >= 2 and obj.end + 2 <= scene.duration:
            yield obj, "disappears", obj.end


def _meaning_of_order(scene: Scene, rng: np.random.Generator) -> Question | None:
    events = list(_events(scene))
    if not events:
        return None
    obj, event, moment = events[int(rng.integers(len(events)))]
    times, forward = [float(moment + k) for k in (-2, -1, 0, 1)], bool(rng.integers(2))
    shown = event if forward else {"appears": "disappears", "disappears": "appears"}[event]
    return Question("meaning_of_order", QUESTIONS["meaning_of_order"].format(**obj.words),
                    ["it appears", "it disappears"], f"it {shown}", times if forward else times[::-1])


def _moves(scene: Scene, obj: SceneObject, first: float, second: float) -> str | None:
    """The dominant direction of ``obj`` between two times (6 px, twice the other axis), else ``None``."""
    (x1, y1), (x2, y2) = obj.position(first, scene.side), obj.position(second, scene.side)
    dx, dy = x2 - x1, y2 - y1
    if max(abs(dx), abs(dy)) < 6 or max(abs(dx), abs(dy)) < 2 * min(abs(dx), abs(dy)):
        return None
    return ("left" if dx < 0 else "right") if abs(dx) > abs(dy) else ("up" if dy < 0 else "down")


def _frame_comparison(scene: Scene, rng: np.random.Generator) -> Question | None:
    pairs = [(o, float(t), direction) for o in scene.objects for t in range(o.start, o.end - 2)
             if (direction := _moves(scene, o, t, t + 2)) is not None]
    if not pairs:
        return None
    obj, first, direction = pairs[int(rng.integers(len(pairs)))]
    return Question("frame_comparison", QUESTIONS["frame_comparison"].format(**obj.words), list(DIRECTIONS),
                    direction, [first, first + 2])


def _visible_run(scene: Scene, rng: np.random.Generator, length: int) -> list[float] | None:
    """``length`` consecutive seconds during which one object is on screen."""
    starts = sorted({t for o in scene.objects for t in range(o.start, o.end - length + 1)})
    if not starts:
        return None
    first = starts[int(rng.integers(len(starts)))]
    return [float(first + k) for k in range(length)]


def _adjust_or_not(scene: Scene, rng: np.random.Generator) -> Question | None:
    times = _visible_run(scene, rng, 4)
    if times is None:
        return None
    reorder = bool(rng.integers(2))
    shown = [times[i] for i in shuffled(4, rng)] if reorder else times
    return Question("adjust_or_not", QUESTIONS["adjust_or_not"], ["yes", "no"], "yes" if reorder else "no", shown)


def _order_text(order: list[int]) -> str:
    return ", ".join(str(n) for n in order)


def _rearrangement(scene: Scene, rng: np.random.Generator) -> Question | None:
    times = _visible_run(scene, rng, 3)
    if times is None:
        return None
    permutation = shuffled(3, rng)  # shown[i] = times[permutation[i]]
    answer = _order_text([p + 1 for p in inverse(permutation)])
    every = [_order_text([p + 1 for p in perm]) for perm in itertools.permutations(range(3))]
    others = [order for order in every if order != answer]
    options = [answer] + [others[int(i)] for i in rng.choice(len(others), size=3, replace=False)]
    options = [options[int(i)] for i in rng.permutation(4)]
    return Question("rearrangement", QUESTIONS["rearrangement"], options, answer, [times[i] for i in permutation])


BUILDERS: tuple[Callable[[Scene, np.random.Generator], Question | None], ...] = (
    _action, _effect, _speed_question, _frame_count, _meaning_of_order, _frame_comparison, _adjust_or_not, _rearrangement,
)


def scene_questions(config: GeneratorConfig, split: str, index: int) -> tuple[Scene, list[Question]]:
    """The scene ``index`` of ``split`` and its questions (a builder with nothing exact to ask is left out)."""
    scene = sample_scene(config, split, index)
    rng = np.random.default_rng([config.seed, SPLITS.index(split), index, FINEVID_STREAM])
    return scene, [q for build in BUILDERS if (q := build(scene, rng)) is not None]


def _fragment_id(scene: Scene, question: Question) -> str:
    return f"finevid/{scene.vid}_{question.kind}"


def render_fragments(scene: Scene, questions: list[Question], video_dir: Path) -> None:
    """One 1-fps mp4 per fragment-level question, of exactly its frames in the order shown."""
    wanted = {round(t * scene.fps) for q in questions if q.times for t in q.times}
    frames = {k: buffer.copy() for k, buffer in enumerate(draw_frames(scene)) if k in wanted}
    for question in questions:
        if question.times is None:
            continue
        path = video_dir / f"{_fragment_id(scene, question)}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=1)
            stream.width = stream.height = scene.side
            stream.pix_fmt = "yuv420p"
            stream.options = {"preset": "ultrafast", "threads": "1"}
            for t in question.times:
                image = frames[round(t * scene.fps)]
                container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="yuv420p")))
            container.mux(stream.encode())


def question_sample(scene: Scene, question: Question, video_dir: Path) -> VideoSample:
    """The mcq record of one question."""
    key = f"{scene.vid}_{question.kind}"
    vid = scene.vid if question.times is None else _fragment_id(scene, question)
    duration = scene.duration if question.times is None else len(question.times)
    return VideoSample(
        sample_id=key,
        video_path=str(video_dir / f"{vid}.mp4"),
        task="mcq",
        query=question.text,
        duration=float(duration),
        options=question.options,
        answer_index=question.options.index(question.answer),
        meta={"id": key, "vid": vid, "question_type": question.kind, "domain": f"finevid_{LEVELS[question.kind]}"},
    )


def generate_finevid(data_dir: str | Path) -> dict[str, Path]:
    """Add ``finevid/{split}.json`` and ``videos/finevid/`` to a generated benchmark; returns the files."""
    data_dir = Path(data_dir)
    args = load_meta(data_dir)["args"]
    config = GeneratorConfig(**{**args, "fps_choices": tuple(args["fps_choices"]), "workers": 1})
    written = {}
    for split in SPLITS:
        samples = []
        for index in range(config.count(split)):
            scene, questions = scene_questions(config, split, index)
            render_fragments(scene, questions, data_dir / "videos")
            samples += [question_sample(scene, q, data_dir / "videos") for q in questions]
        written[split] = write_mcq(data_dir / "finevid" / f"{split}.json", samples)
    return written

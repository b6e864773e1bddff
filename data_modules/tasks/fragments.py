"""SF2T's fragment tasks: questions whose exact answers come from a video's own structure.

From any set of unlabeled videos, each video gives one sample per task:

- ``fragment_counting``: one fragment of M frames; how many frames (options M_min..M_max).
- ``fragment_consistency``: N fragments; do they all come from the same video? A negative
  swaps one fragment for the same-place fragment of another video.
- ``fragment_localization``: N fragments in time order, then a probe (one fragment or one
  of its frames); which fragment is the probe from?
- ``fragment_disorder``: N fragments, half of the samples shuffled; are they in order?
- ``fragment_rearrangement``: N shuffled fragments; list them in time order.

Each video gets one strategy draw of N*M frames (motion-salient by default,
``data_modules.video``), cut into N consecutive fragments; all its questions use that draw,
as the paper draws N sets of M frames per video and asks the five tasks about them, so a
worker that caches draws (``FragmentDataset(cache_draws=True)``) decodes each video once. Generation only probes frame counts; frames are decoded when a sample is loaded
(``fragment_clip``). Everything is a function of ``FragmentConfig.seed``, the split, the
video's position in the list and the task.

How the model sees several frame sets. The backbone contract takes one video per prompt,
so the sets are shown as one video, concatenated in the order shown, and the prompt names
each set by its frame numbers ("fragment 1 is frames 1-4, ..."). The timestamps are
presentation times (frame k at ``k / PRESENTATION_FPS``), never the source times: a
backbone that writes timestamps as text (Qwen3-VL) or in positions (Qwen2.5-VL's MRoPE)
would otherwise reveal the true order of shuffled fragments or which set came from
another video. Separate short videos in one prompt would be better: a family that merges
frames in pairs (Qwen's 2-frame temporal patches) then never mixes two fragments in one
token, and each set restarts its own positions. That needs the contract to accept a list
of visuals per item and one video placeholder per set; ``FrameSet`` already says which
frames each set holds.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from data_modules.formats.moments_in_time import read_moments_in_time
from data_modules.formats.ssv2 import read_ssv2
from data_modules.samples import FRAGMENT_TASKS, FrameSet, VideoSample
from data_modules.tasks.prompts import PromptTemplates, mcq_prompt
from data_modules.video import (
    MAX_CANDIDATES,
    MotionIndex,
    Strategy,
    VideoError,
    probe,
    read_video,
)

log = logging.getLogger(__name__)

PRESENTATION_FPS = 1.0
"""Frames per second of the concatenated presentation video."""

QUESTIONS = {
    "fragment_counting": "How many frames does the video show?",
    "fragment_consistency": "Do all fragments come from the same clip?",
    "fragment_localization": "Which fragment of the clip {probe} from?",
    "fragment_disorder": "Are the fragments shown in the order in which they happened?",
    "fragment_rearrangement": "The fragments are shown out of order. In which order did they happen?",
}
"""The question of each task (snapshotted in tests/data_modules/test_fragments.py)."""

YES_NO = " Answer yes or no."
ORDER_FORMAT = " Answer with the fragment numbers in that order, separated by commas."


@dataclass
class FragmentConfig:
    """How fragment samples are drawn.

    Attributes:
        num_fragments: N, fragments per multi-fragment question (the paper's 3).
        min_frames / max_frames: M, frames per fragment, drawn per video (the paper's 3-5).
        tasks: which of ``FRAGMENT_TASKS`` to build.
        jitter: draw frames within the strategy's quantile bins (training); ``False`` takes bin
            centres (evaluation).
        on_short: a video with fewer frames than N*M: ``fewer`` shrinks M, then N (down to one
            fragment of ``min_frames``, which only counting can use), logged; ``skip`` drops it.
            Either way a question a video is too short for is skipped and counted.
        seed: the generator's seed.
    """

    num_fragments: int = 3
    min_frames: int = 3
    max_frames: int = 5
    tasks: tuple[str, ...] = FRAGMENT_TASKS
    jitter: bool = True
    on_short: Literal["fewer", "skip"] = "fewer"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_fragments < 2:
            raise ValueError(f"num_fragments must be >= 2 (the order tasks need two), got {self.num_fragments}")
        if not 1 <= self.min_frames <= self.max_frames:
            raise ValueError(f"need 1 <= min_frames <= max_frames, got {self.min_frames}, {self.max_frames}")
        if unknown := set(self.tasks) - set(FRAGMENT_TASKS):
            raise ValueError(f"unknown fragment tasks {sorted(unknown)}; expected some of {FRAGMENT_TASKS}")
        if self.on_short not in ("fewer", "skip"):
            raise ValueError(f"on_short must be 'fewer' or 'skip', got {self.on_short!r}")


@dataclass
class FragmentBuild:
    """Generated samples and what was left out.

    Attributes:
        samples: the fragment samples, video by video, task by task.
        skipped: ``"<video>: <task>"`` for each question a video was too short for.
        reduced: ``"<video>: <task>"`` for each question built with fewer or shorter fragments.
    """

    samples: list[VideoSample] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    reduced: list[str] = field(default_factory=list)


def inverse(permutation: Sequence[int]) -> list[int]:
    """``inverse[permutation[i]] = i``."""
    out = [0] * len(permutation)
    for position, value in enumerate(permutation):
        out[value] = position
    return out


def shuffled(count: int, rng: np.random.Generator) -> list[int]:
    """A permutation of ``range(count)`` that is not the identity (``count >= 2``)."""
    while True:
        permutation = rng.permutation(count).tolist()
        if permutation != list(range(count)):
            return permutation


def frame_counts(videos: Sequence[str]) -> dict[str, int]:
    """Frames a strategy can draw from each video (container count, capped at ``MAX_CANDIDATES``).

    An unreadable video counts 0 frames (logged), so its questions are skipped and counted.
    """
    counts = {}
    for video in videos:
        try:
            counts[video] = min(probe(video).num_frames, MAX_CANDIDATES)
        except VideoError as error:
            log.warning("no fragments from %s", error)
            counts[video] = 0
    return counts


@dataclass(frozen=True)
class VideoDraw:
    """One strategy draw of a video, cut into N fragments of M frames, that all its questions share.

    Attributes:
        video: the video.
        fragments: N.
        frames: M.
        seed: the within-bin draw's seed; ``None`` for bin centres.
        reduced: fewer or shorter fragments than configured (a short video).
    """

    video: str
    fragments: int
    frames: int
    seed: int | None
    reduced: bool = False

    def sets(self) -> list[FrameSet]:
        """The N consecutive blocks of the N*M-frame draw, in time order."""
        size, m = self.fragments * self.frames, self.frames
        return [FrameSet(self.video, size, tuple(range(j * m, (j + 1) * m)), self.seed) for j in range(self.fragments)]


def plan_draw(video: str, available: int, config: FragmentConfig, rng: np.random.Generator) -> VideoDraw | None:
    """N*M frames that fit ``available``: M drawn in ``[min_frames, max_frames]``; a short video shrinks
    M, then N (``on_short="fewer"``), or gets ``None`` (``"skip"``, or too short for one fragment)."""
    frames = int(rng.integers(config.min_frames, config.max_frames + 1))
    seed = int(rng.integers(2**31)) if config.jitter else None
    if config.num_fragments * frames <= available:
        return VideoDraw(video, config.num_fragments, frames, seed)
    if config.on_short == "skip":
        return None
    for fragments in range(config.num_fragments, 0, -1):
        if (m := min(frames, available // fragments)) >= config.min_frames:
            return VideoDraw(video, fragments, m, seed, reduced=True)
    return None


def build_fragment_samples(
    videos: Sequence[str], config: FragmentConfig, split: str, counts: Mapping[str, int] | None = None
) -> FragmentBuild:
    """One sample per video and task, all of a video's from one draw (the paper's N sets of M frames).

    ``counts`` (frames per video) defaults to probing each file.
    """
    counts = dict(counts) if counts is not None else frame_counts(videos)
    base = [config.seed, zlib.crc32(split.encode())]
    draws = {v: plan_draw(v, counts[v], config, np.random.default_rng([*base, i])) for i, v in enumerate(videos)}
    build = FragmentBuild()
    for index, video in enumerate(videos):
        for task in config.tasks:
            name, draw = f"{video}: {task}", draws[video]
            rng = np.random.default_rng([*base, index, FRAGMENT_TASKS.index(task)])
            sample = None if draw is None else BUILDERS[task](_Question(draw, draws, rng, config, counts))
            if sample is None:
                build.skipped.append(name)
                continue
            if draw.reduced:
                build.reduced.append(name)
            build.samples.append(replace(sample, sample_id=f"fragments/{split}:{index:05d}_{task}", source=name))
    if build.skipped or build.reduced:
        log.warning("fragments (%s): %d questions skipped, %d with fewer or shorter fragments (videos too short)",
                    split, len(build.skipped), len(build.reduced))
    return build


@dataclass
class _Question:
    """What one question is built from: its video's draw, every video's draw (for negatives), its rng."""

    draw: VideoDraw
    draws: Mapping[str, VideoDraw | None]
    rng: np.random.Generator
    config: FragmentConfig
    counts: Mapping[str, int]

    def multi(self) -> bool:
        return self.draw.fragments >= 2

    def foreign(self, position: int) -> FrameSet | None:
        """Fragment ``position`` of another video, of M frames (so its length tells nothing).

        Another video's own draw is preferred (a worker caching draws decodes nothing new);
        a video whose draw has shorter fragments gets a draw of this one's shape.
        """
        video, m = self.draw.video, self.draw.frames
        shared = [d for v, d in self.draws.items() if v != video and d is not None
                  and d.frames >= m and d.fragments > position]
        if shared:
            chosen = shared[int(self.rng.integers(len(shared)))].sets()[position]
            return replace(chosen, picks=chosen.picks[:m])
        size = self.draw.fragments * m
        others = [v for v, count in self.counts.items() if v != video and count >= size]
        if not others:
            return None
        seed = int(self.rng.integers(2**31)) if self.config.jitter else None
        return FrameSet(others[int(self.rng.integers(len(others)))], size, tuple(range(position * m, (position + 1) * m)), seed)

    def sample(self, task: str, query: str, sets: list[FrameSet], **fields: Any) -> VideoSample:
        return VideoSample(sample_id="", video_path=self.draw.video, task=task, query=query, frame_sets=sets, **fields)


def _counting(q: _Question) -> VideoSample | None:
    shown = q.draw.sets()[int(q.rng.integers(q.draw.fragments))]
    options = [str(m) for m in range(q.config.min_frames, q.config.max_frames + 1)]
    return q.sample("fragment_counting", QUESTIONS["fragment_counting"], [shown], options=options,
                    answer_index=options.index(str(q.draw.frames)))


def _consistency(q: _Question) -> VideoSample | None:
    if not q.multi():
        return None
    sets, same = q.draw.sets(), bool(q.rng.integers(2))
    if not same:
        swapped = int(q.rng.integers(len(sets)))
        foreign = q.foreign(swapped)
        if foreign is None:
            return None
        sets[swapped] = foreign
    return q.sample("fragment_consistency", QUESTIONS["fragment_consistency"], sets, label=same)


def _localization(q: _Question) -> VideoSample | None:
    if not q.multi():
        return None
    sets, m = q.draw.sets(), q.draw.frames
    source = int(q.rng.integers(len(sets)))
    whole_fragment = bool(q.rng.integers(2))
    probe_set = sets[source] if whole_fragment else replace(sets[source], picks=(int(q.rng.choice(sets[source].picks)),))
    first = len(sets) * m + 1
    probe = f"do frames {first}-{first + m - 1} come" if whole_fragment else f"does frame {first} come"
    options = [f"fragment {k}" for k in range(1, len(sets) + 1)]
    return q.sample("fragment_localization", QUESTIONS["fragment_localization"].format(probe=probe),
                    [*sets, probe_set], options=options, answer_index=source)


def _disorder(q: _Question) -> VideoSample | None:
    if not q.multi():
        return None
    sets, in_order = q.draw.sets(), bool(q.rng.integers(2))
    order = list(range(len(sets))) if in_order else shuffled(len(sets), q.rng)
    return q.sample("fragment_disorder", QUESTIONS["fragment_disorder"], [sets[i] for i in order], label=in_order)


def _rearrangement(q: _Question) -> VideoSample | None:
    if not q.multi():
        return None
    sets = q.draw.sets()
    permutation = shuffled(len(sets), q.rng)  # shown[i] = sets[permutation[i]]
    order = [position + 1 for position in inverse(permutation)]
    return q.sample("fragment_rearrangement", QUESTIONS["fragment_rearrangement"],
                    [sets[i] for i in permutation], order=order)


BUILDERS: dict[str, Callable[[_Question], VideoSample | None]] = {
    "fragment_counting": _counting,
    "fragment_consistency": _consistency,
    "fragment_localization": _localization,
    "fragment_disorder": _disorder,
    "fragment_rearrangement": _rearrangement,
}


# Readers: official video lists → fragment samples (registered in data_modules/readers.py).


def fragments_of(samples: Sequence[VideoSample], split: str, config: FragmentConfig | None = None) -> list[VideoSample]:
    """Fragment samples of the distinct videos of ``samples``; a training list draws within bins."""
    config = config or FragmentConfig(jitter="train" in split)
    videos = list(dict.fromkeys(sample.video_path for sample in samples))
    return build_fragment_samples(videos, config, split).samples


def read_ssv2_fragments(path: str | Path, video_dir: str | Path) -> list[VideoSample]:
    """SF2T samples of a Something-Something V2 list (``something-something-v2-train.json``, ...)."""
    return fragments_of(read_ssv2(path, video_dir), Path(path).stem)


def read_mit_fragments(path: str | Path, video_dir: str | Path) -> list[VideoSample]:
    """SF2T samples of a Moments in Time list (``trainingSet.csv``, ``validationSet.csv``)."""
    return fragments_of(read_moments_in_time(path, video_dir), Path(path).stem)


# Prompt builders (the task registry, groundlight.metrics.tasks, names them).


def _frames(first: int, count: int) -> str:
    return f"frame {first}" if count == 1 else f"frames {first}-{first + count - 1}"


def presentation(sets: Sequence[FrameSet]) -> str:
    """How the concatenated video splits into fragments: ``""`` for one set."""
    if len(sets) < 2:
        return ""
    parts, first = [], 1
    for number, frame_set in enumerate(sets, start=1):
        parts.append(f"fragment {number} is {_frames(first, len(frame_set.picks))}")
        first += len(frame_set.picks)
    listed = ", ".join(parts[:-1]) + f" and {parts[-1]}"
    return f"The video shows {len(sets)} fragments one after another: {listed}. "


def _sets(sample: VideoSample) -> list[FrameSet]:
    if not sample.frame_sets:
        raise ValueError(f"{sample.source or sample.sample_id}: a fragment sample needs frame_sets")
    return sample.frame_sets


def choice_prompt(sample: VideoSample, templates: PromptTemplates) -> dict[str, str]:
    """Counting: the mcq template over the one set."""
    body = mcq_prompt(sample, templates)
    return body | {"prompt": presentation(_sets(sample)) + body["prompt"]}


def localization_prompt(sample: VideoSample, templates: PromptTemplates) -> dict[str, str]:
    """The fragments, then the probe (the last set) named by its frame numbers."""
    sets = _sets(sample)
    body = mcq_prompt(sample, templates)
    first = sum(len(s.picks) for s in sets[:-1]) + 1
    count = len(sets[-1].picks)
    probe = f"Then {_frames(first, count)} {'repeats' if count == 1 else 'repeat'} part of that clip. "
    return body | {"prompt": presentation(sets[:-1]) + probe + body["prompt"]}


def yes_no_prompt(sample: VideoSample, templates: PromptTemplates) -> dict[str, str]:
    """Consistency and disorder: a yes/no question about the shown fragments."""
    question = sample.query.strip()
    return {"prompt": presentation(_sets(sample)) + question + YES_NO, "answer": "yes" if sample.label else "no",
            "query": question}


def rearrangement_prompt(sample: VideoSample, templates: PromptTemplates) -> dict[str, str]:
    """The shown fragments' numbers in time order, e.g. ``"3, 1, 2"``."""
    if not sample.order:
        raise ValueError(f"{sample.source or sample.sample_id}: a rearrangement sample needs its order")
    question = sample.query.strip()
    return {"prompt": presentation(_sets(sample)) + question + ORDER_FORMAT,
            "answer": ", ".join(str(n) for n in sample.order), "query": question}


# Frames at load time.


def fragment_clip(
    sample: VideoSample,
    strategy: Strategy = "motion",
    size: tuple[int, int] | None = None,
    cache: dict[tuple, torch.Tensor] | None = None,
    motion_index: MotionIndex | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The frame sets concatenated in the order shown, with presentation timestamps.

    Each distinct ``(video, sample_size, seed)`` is decoded once, and kept in ``cache`` when
    one is given (for the next sample of the same video). Sets from videos of another size
    are resized to the first set's size when ``size`` is ``None``. ``motion_index`` keeps each
    video's motion pass across draws (``data_modules.video.MotionIndex``).

    Raises:
        VideoError: names the frame set (number, sample, video) that could not be decoded.
    """
    draws = cache if cache is not None else {}
    pieces: list[torch.Tensor] = []
    for number, frame_set in enumerate(_sets(sample), start=1):
        shape = size or (tuple(pieces[0].shape[1:3]) if pieces else None)
        key = (frame_set.video_path, frame_set.sample_size, frame_set.seed, strategy, shape)
        if key not in draws:
            draws[key] = _draw(sample, number, frame_set, strategy, shape, motion_index)
            draws[(*key[:-1], tuple(draws[key].shape[1:3]))] = draws[key]  # the same draw, named by its size
        pieces.append(draws[key][list(frame_set.picks)])
    frames = torch.cat(pieces)
    return frames, torch.arange(len(frames), dtype=torch.float64) / PRESENTATION_FPS


def _draw(sample: VideoSample, number: int, frame_set: FrameSet, strategy: Strategy,
          size: tuple[int, int] | None, motion_index: MotionIndex | None = None) -> torch.Tensor:
    rng = None if frame_set.seed is None else np.random.default_rng(frame_set.seed)
    try:
        clip = read_video(frame_set.video_path, num_frames=frame_set.sample_size, size=size, strategy=strategy,
                          rng=rng, on_short="raise", motion_index=motion_index)
    except VideoError as error:
        problem = str(error).removeprefix(f"{error.path}: ")
        raise VideoError(error.path, f"frame set {number} of {sample.sample_id} "
                                     f"({frame_set.sample_size}-frame draw): {problem}", error.kind) from error
    return clip.frames


class FragmentDataset(Dataset):
    """Fragment samples → the items ``collate_items`` batches (``visual``, ``prompt``, ``answer``, ...).

    The duration prefix is never stated: at one frame per presentation second it would give
    the frame count away.

    Args:
        samples: fragment samples.
        processor: the backbone's processor.
        strategy: the frame strategy (the SF2T ablation: ``motion``, ``random``, ``uniform``).
        decode_size: ``(height, width)`` to decode at.
        templates: prompt templates.
        on_bad_video: ``raise`` names the frame set; ``skip`` drops the sample and counts it.
        cache_draws: keep each video's decoded draw for its other questions (memory: one
            draw per video per worker, N*M frames at ``decode_size``).
        motion_index: a directory keeping each video's motion pass across epochs, runs and workers
            (``data_modules.video.MotionIndex``): a video scored once is not scored again.
    """

    def __init__(self, samples: Sequence[VideoSample], processor: Any, strategy: Strategy = "motion",
                 decode_size: tuple[int, int] | None = None, templates: PromptTemplates | None = None,
                 on_bad_video: Literal["raise", "skip"] = "raise", cache_draws: bool = False,
                 motion_index: str | Path | None = None) -> None:
        self.samples, self.processor, self.strategy, self.decode_size = list(samples), processor, strategy, decode_size
        self.templates = replace(templates or PromptTemplates(), state_duration=False)
        self.on_bad_video = on_bad_video
        self._draws: dict[tuple, torch.Tensor] | None = {} if cache_draws else None
        self.motion_index = None if motion_index is None else MotionIndex(motion_index)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        # the registry imports this module's prompt builders, so it is imported here, not at the top
        from groundlight.metrics.tasks import build_example

        sample = self.samples[index]
        try:
            frames, times = fragment_clip(sample, self.strategy, self.decode_size, self._draws, self.motion_index)
        except VideoError as error:
            if self.on_bad_video == "raise":
                raise
            log.warning("skipping sample %s: %s", sample.sample_id, error)
            return {"skipped": sample.video_path, "fault": error.kind}
        duration = len(times) / PRESENTATION_FPS
        example = build_example(sample, self.templates, duration)
        return {**example, "visual": self.processor.prepare_video(frames, times), "sample": sample, "duration": duration}

"""SF2T's fragment tasks: questions whose exact answers come from a video's own structure.

From any set of unlabeled videos, each video gives one sample per task:

- ``fragment_counting``: one fragment of M frames; how many frames (options M_min..M_max).
- ``fragment_consistency``: N fragments; do they all come from the same video? A negative
  swaps one fragment for the same-place fragment of another video.
- ``fragment_localization``: N fragments in time order, then a probe (one fragment or one
  of its frames); which fragment is the probe from?
- ``fragment_disorder``: N fragments, half of the samples shuffled; are they in order?
- ``fragment_rearrangement``: N shuffled fragments; list them in time order.

Fragments are N consecutive blocks of one strategy draw of N*M frames from the video
(motion-salient by default, ``data_modules.video``), so every fragment of one video shares
one decode. Generation only probes frame counts; frames are decoded when a sample is loaded
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
from collections.abc import Mapping, Sequence
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
from data_modules.video import MAX_CANDIDATES, Strategy, VideoError, probe, read_video

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
        min_frames / max_frames: M, frames per fragment, drawn per sample (the paper's 3-5).
        tasks: which of ``FRAGMENT_TASKS`` to build.
        jitter: draw frames within the strategy's quantile bins (training); ``False`` takes bin
            centres (evaluation).
        on_short: a video with fewer frames than N*M: ``fewer`` shrinks M, then N (down to 2
            fragments of ``min_frames``), logged; ``skip`` drops it. Either way a video too
            short for the smallest question is skipped and counted.
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


def build_fragment_samples(
    videos: Sequence[str], config: FragmentConfig, split: str, counts: Mapping[str, int] | None = None
) -> FragmentBuild:
    """One sample per video and task; ``counts`` (frames per video) defaults to probing each file."""
    counts = dict(counts) if counts is not None else frame_counts(videos)
    build = FragmentBuild()
    for index, video in enumerate(videos):
        for task in config.tasks:
            rng = np.random.default_rng([config.seed, zlib.crc32(split.encode()), index, FRAGMENT_TASKS.index(task)])
            draft = _Draft(video, counts, videos, config, rng, f"{video}: {task}")
            sample = BUILDERS[task](draft)
            if sample is None:
                build.skipped.append(draft.name)
                continue
            if draft.reduced:
                build.reduced.append(draft.name)
            build.samples.append(replace(sample, sample_id=f"fragments/{split}:{index:05d}_{task}", source=draft.name))
    if build.skipped or build.reduced:
        log.warning("fragments (%s): %d questions skipped, %d with fewer or shorter fragments (videos too short)",
                    split, len(build.skipped), len(build.reduced))
    return build


class _Draft:
    """One video's draws for one question: its shape, fragments and a negative."""

    def __init__(self, video: str, counts: Mapping[str, int], videos: Sequence[str], config: FragmentConfig,
                 rng: np.random.Generator, name: str) -> None:
        self.video, self.counts, self.videos, self.config, self.rng, self.name = video, counts, videos, config, rng, name
        self.frames = int(rng.integers(config.min_frames, config.max_frames + 1))
        self.reduced = False

    def shape(self, fragments: int, least: int) -> tuple[int, int] | None:
        """``(N, M)`` that fits the video, shrinking M then N down to ``least`` fragments, or ``None``."""
        available = self.counts[self.video]
        if fragments * self.frames <= available:
            return fragments, self.frames
        if self.config.on_short == "skip":
            return None
        for n in range(fragments, least - 1, -1):
            if (m := min(self.frames, available // n)) >= self.config.min_frames:
                self.reduced = True
                return n, m
        return None

    def seed(self) -> int | None:
        return int(self.rng.integers(2**31)) if self.config.jitter else None

    def fragments(self, video: str, fragments: int, frames: int) -> list[FrameSet]:
        """N consecutive blocks of one N*M-frame draw of ``video``."""
        seed, size = self.seed(), fragments * frames
        return [FrameSet(video, size, tuple(range(j * frames, (j + 1) * frames)), seed) for j in range(fragments)]

    def other_video(self, needed: int) -> str | None:
        """Another video with at least ``needed`` frames, drawn at random."""
        others = [v for v in self.videos if v != self.video and self.counts[v] >= needed]
        return others[int(self.rng.integers(len(others)))] if others else None

    def sample(self, task: str, query: str, sets: list[FrameSet], **fields: Any) -> VideoSample:
        return VideoSample(sample_id="", video_path=self.video, task=task, query=query, frame_sets=sets, **fields)


def _counting(draft: _Draft) -> VideoSample | None:
    shape = draft.shape(1, 1)
    if shape is None:
        return None
    config, frames = draft.config, shape[1]
    options = [str(m) for m in range(config.min_frames, config.max_frames + 1)]
    return draft.sample("fragment_counting", QUESTIONS["fragment_counting"], draft.fragments(draft.video, 1, frames),
                        options=options, answer_index=options.index(str(frames)))


def _consistency(draft: _Draft) -> VideoSample | None:
    shape = draft.shape(draft.config.num_fragments, 2)
    if shape is None:
        return None
    n, m = shape
    sets, same = draft.fragments(draft.video, n, m), bool(draft.rng.integers(2))
    if not same:
        other = draft.other_video(n * m)
        if other is None:
            return None
        swapped = int(draft.rng.integers(n))
        sets[swapped] = draft.fragments(other, n, m)[swapped]
    return draft.sample("fragment_consistency", QUESTIONS["fragment_consistency"], sets, label=same)


def _localization(draft: _Draft) -> VideoSample | None:
    shape = draft.shape(draft.config.num_fragments, 2)
    if shape is None:
        return None
    n, m = shape
    sets = draft.fragments(draft.video, n, m)
    source = int(draft.rng.integers(n))
    whole_fragment = bool(draft.rng.integers(2))
    probe_set = sets[source] if whole_fragment else replace(sets[source], picks=(int(draft.rng.choice(sets[source].picks)),))
    first = n * m + 1
    probe = f"do frames {first}-{first + m - 1} come" if whole_fragment else f"does frame {first} come"
    options = [f"fragment {k}" for k in range(1, n + 1)]
    return draft.sample("fragment_localization", QUESTIONS["fragment_localization"].format(probe=probe),
                        [*sets, probe_set], options=options, answer_index=source)


def _disorder(draft: _Draft) -> VideoSample | None:
    shape = draft.shape(draft.config.num_fragments, 2)
    if shape is None:
        return None
    sets, in_order = draft.fragments(draft.video, *shape), bool(draft.rng.integers(2))
    order = list(range(len(sets))) if in_order else shuffled(len(sets), draft.rng)
    return draft.sample("fragment_disorder", QUESTIONS["fragment_disorder"], [sets[i] for i in order], label=in_order)


def _rearrangement(draft: _Draft) -> VideoSample | None:
    shape = draft.shape(draft.config.num_fragments, 2)
    if shape is None:
        return None
    sets = draft.fragments(draft.video, *shape)
    permutation = shuffled(len(sets), draft.rng)  # shown[i] = sets[permutation[i]]
    order = [position + 1 for position in inverse(permutation)]
    return draft.sample("fragment_rearrangement", QUESTIONS["fragment_rearrangement"],
                        [sets[i] for i in permutation], order=order)


BUILDERS = {
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
    sample: VideoSample, strategy: Strategy = "motion", size: tuple[int, int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The frame sets concatenated in the order shown, with presentation timestamps.

    Each distinct ``(video, sample_size, seed)`` is decoded once. Sets from videos of
    another size are resized to the first set's size when ``size`` is ``None``.

    Raises:
        VideoError: names the frame set (number, sample, video) that could not be decoded.
    """
    draws: dict[tuple[str, int, int | None], torch.Tensor] = {}
    pieces: list[torch.Tensor] = []
    for number, frame_set in enumerate(_sets(sample), start=1):
        key = (frame_set.video_path, frame_set.sample_size, frame_set.seed)
        if key not in draws:
            shape = size or (tuple(pieces[0].shape[1:3]) if pieces else None)
            draws[key] = _draw(sample, number, frame_set, strategy, shape)
        pieces.append(draws[key][list(frame_set.picks)])
    frames = torch.cat(pieces)
    return frames, torch.arange(len(frames), dtype=torch.float64) / PRESENTATION_FPS


def _draw(sample: VideoSample, number: int, frame_set: FrameSet, strategy: Strategy,
          size: tuple[int, int] | None) -> torch.Tensor:
    rng = None if frame_set.seed is None else np.random.default_rng(frame_set.seed)
    try:
        clip = read_video(frame_set.video_path, num_frames=frame_set.sample_size, size=size, strategy=strategy,
                          rng=rng, on_short="raise")
    except VideoError as error:
        problem = str(error).removeprefix(f"{error.path}: ")
        raise VideoError(error.path, f"frame set {number} of {sample.sample_id} "
                                     f"({frame_set.sample_size}-frame draw): {problem}") from error
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
    """

    def __init__(self, samples: Sequence[VideoSample], processor: Any, strategy: Strategy = "motion",
                 decode_size: tuple[int, int] | None = None, templates: PromptTemplates | None = None,
                 on_bad_video: Literal["raise", "skip"] = "raise") -> None:
        self.samples, self.processor, self.strategy, self.decode_size = list(samples), processor, strategy, decode_size
        self.templates = replace(templates or PromptTemplates(), state_duration=False)
        self.on_bad_video = on_bad_video

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        # the registry imports this module's prompt builders, so it is imported here, not at the top
        from groundlight.metrics.tasks import build_example

        sample = self.samples[index]
        try:
            frames, times = fragment_clip(sample, self.strategy, self.decode_size)
        except VideoError as error:
            if self.on_bad_video == "raise":
                raise
            log.warning("skipping sample %s: %s", sample.sample_id, error)
            return {"skipped": sample.video_path}
        duration = len(times) / PRESENTATION_FPS
        example = build_example(sample, self.templates, duration)
        return {**example, "visual": self.processor.prepare_video(frames, times), "sample": sample, "duration": duration}

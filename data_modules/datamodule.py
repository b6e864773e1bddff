"""GroundingDataModule: official annotation files → prepared, collated backbone batches.

Data flows one way: reader (official format) → ``VideoSample`` → prompt builder →
the backbone's processor (taken from the LightningModule at ``setup``) → batch.
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, DistributedSampler, Sampler, get_worker_info

from data_modules.formats._records import AnnotationSkips
from data_modules.handoff import one_storage
from data_modules.readers import read_task_split
from data_modules.samples import FRAGMENT_TASKS, VideoSample
from data_modules.tasks import PromptTemplates
from data_modules.tasks.fragments import FragmentConfig, FragmentDataset, build_fragment_samples
from data_modules.video import STRATEGIES, DurationMismatchError, Strategy, VideoError, read_video
from groundlight.metrics.tasks import build_example

log = logging.getLogger(__name__)


@dataclass
class FrameSampling:
    """How frames are taken from each video.

    Attributes:
        fps: frames per second to sample (exclusive with ``num_frames``).
        num_frames: a fixed frame count spread over the video.
        max_frames: cap for fps sampling on long videos (then spread evenly).
        decode_size: ``(height, width)`` to resize to while decoding; the backbone's own
            resize still follows. Saves memory on large videos; ``None`` keeps native size.
        strategy: which frames: ``uniform`` times (the default), ``motion``-salient frames
            (MGSampler, bin centres) or ``random`` ones, as many as ``fps``/``num_frames`` ask
            (see ``data_modules.video``); the SF2T sampling ablation switches it.
    """

    fps: float | None = 1.0
    num_frames: int | None = None
    max_frames: int | None = 64
    decode_size: tuple[int, int] | None = None
    strategy: Strategy = "uniform"

    def __post_init__(self) -> None:
        if (self.fps is None) == (self.num_frames is None):
            raise ValueError("frame sampling: set exactly one of `fps` or `num_frames`")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"frame sampling: `strategy` must be one of {STRATEGIES}, got {self.strategy!r}")


FRAGMENTS = "fragments"
"""The task name that asks for SF2T fragment questions built from ``FragmentOptions.sources``' videos."""


@dataclass
class FragmentOptions:
    """SF2T's fragment questions (``data_modules.tasks.fragments``) and how they mix with other training samples.

    Listing the task ``fragments`` in ``tasks`` / ``eval_tasks`` reads each split of ``sources`` and turns its
    distinct videos into fragment questions; readers that already give fragment samples (``ssv2_fragments``,
    ``moments_in_time_fragments``) are routed the same way.

    Attributes:
        sources: tasks whose videos become fragment questions (their labels are not used), e.g.
            ``[charades_sta]`` for the embedded benchmark's clips, ``[ssv2]`` for Something-Something V2.
        questions: N, M, which of the five tasks, short-video handling and the generator's seed. Its
            ``tasks`` are what the training split builds (the per-task ablation); validation and test always ask
            all five, so every run is tested on the same questions. Its ``jitter`` is set per split: the training
            split draws within bins, the others take bin centres.
        strategy: the frames of each draw (SF2T's ablation): ``motion``-salient (the paper's), ``random``, ``uniform``.
        ratio: the fragment questions' share of each training epoch when they are mixed with other samples:
            every other sample is seen once per epoch, and ``ratio / (1 - ratio)`` times as many fragment questions
            are drawn (cycling through all of them over the epochs). ``None``: every sample once per epoch.
        motion_index: a directory keeping each video's motion pass (``data_modules.video.MotionIndex``), shared by
            epochs, runs and workers: the draws are the same, a video is only scored once. ``None``: score every
            draw afresh.
    """

    sources: list[str] = field(default_factory=list)
    questions: FragmentConfig = field(default_factory=FragmentConfig)
    strategy: Strategy = "motion"
    ratio: float | None = None
    motion_index: str | None = None

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"fragments: `strategy` must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.ratio is not None and not 0 < self.ratio < 1:
            raise ValueError(f"fragments: `ratio` must lie strictly between 0 and 1 (or be null), got {self.ratio}")
        if FRAGMENTS in self.sources:
            raise ValueError(f"fragments: `sources` are tasks with videos; {FRAGMENTS!r} cannot be its own source")

    def config(self, train: bool) -> FragmentConfig:
        return replace(self.questions, jitter=train) if train else replace(self.questions, jitter=False, tasks=FRAGMENT_TASKS)


DURATION_TOLERANCE = (2.0, 0.05)
"""An annotated duration may differ from the probed one by up to ``max(2 s, 5 %)`` (real annotations round, and
containers count the last frame's display time); beyond that the sample is an error, or a counted skip."""


def check_duration(sample: VideoSample, probed: float) -> None:
    """Raise :class:`DurationMismatchError`, naming the sample, when its annotated duration disagrees with the
    video's probed length by more than :data:`DURATION_TOLERANCE`."""
    if sample.duration is None:
        return
    seconds, fraction = DURATION_TOLERANCE
    if abs(sample.duration - probed) > max(seconds, fraction * probed):
        raise DurationMismatchError(
            sample.video_path, f"{sample.source or sample.sample_id} annotates {sample.duration:.2f} s, the video "
                               f"lasts {probed:.2f} s (tolerance {seconds:g} s or {fraction:.0%})")


class VideoTaskDataset(Dataset):
    """Samples → ``{visual, prompt, answer, sample, duration}`` items, or ``None`` for a skipped video."""

    def __init__(
        self,
        samples: Sequence[VideoSample],
        processor: Any,
        sampling: FrameSampling,
        prompts: PromptTemplates,
        on_bad_video: Literal["raise", "skip"] = "raise",
        cache: bool = False,
        blank_frames: bool = False,
    ) -> None:
        self.samples = list(samples)
        self.processor, self.sampling, self.prompts = processor, sampling, prompts
        self.on_bad_video, self.blank_frames = on_bad_video, blank_frames
        self._cache: dict[str, Any] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        sample = self.samples[index]
        if sample.frame_sets:  # its prompt names frame sets this dataset would never cut out of the video
            raise ValueError(f"{sample.source or sample.sample_id}: a fragment (SF2T) sample shows frame sets, not the "
                             "whole video; load it with data_modules.tasks.fragments.FragmentDataset")
        try:
            visual, duration = self._visual(sample.video_path)
            check_duration(sample, duration)
        except VideoError as error:
            if self.on_bad_video == "raise":
                raise
            log.warning("skipping sample %s: %s", sample.sample_id, error)
            return {"skipped": sample.video_path, "fault": error.kind}
        example = build_example(sample, self.prompts, sample.duration or duration)
        return {**example, "visual": visual, "sample": sample, "duration": sample.duration or duration}

    def _visual(self, path: str) -> tuple[Any, float]:
        if self._cache is not None and path in self._cache:
            return self._cache[path]
        s = self.sampling
        clip = read_video(path, fps=s.fps, num_frames=s.num_frames, max_frames=s.max_frames, size=s.decode_size,
                          strategy=s.strategy)
        frames = torch.zeros_like(clip.frames) if self.blank_frames else clip.frames
        result = (self.processor.prepare_video(frames, clip.timestamps), clip.duration)
        if self._cache is not None:
            self._cache[path] = result
        return result


def collate_items(items: list[dict[str, Any] | None], processor: Any, with_answer: bool) -> dict[str, Any] | None:
    """Collate through the backbone's processor; skipped videos are counted in ``skipped_videos``, and by kind
    (:class:`~data_modules.faults.Fault` names) in ``skipped_faults``. In a DataLoader worker, the batch's tensors
    are views of one shared-memory block (:func:`~data_modules.handoff.one_storage`): one handoff per batch."""
    kept = [item for item in items if "skipped" not in item]
    skipped = len(items) - len(kept)
    faults = dict(Counter(str(item["fault"]) for item in items if "skipped" in item))
    if not kept:
        return {"skipped_videos": skipped, "skipped_faults": faults, "samples": []}
    batch = processor.collate(kept, with_answer=with_answer)
    batch["samples"] = [item["sample"] for item in kept]
    batch["durations"] = [item["duration"] for item in kept]
    batch["answers"] = [item["answer"] for item in kept]
    batch["prompts"] = [item["prompt"] for item in kept]  # with the visuals: what a re-collation needs
    batch["queries"] = [item.get("query", "") for item in kept]
    batch["visuals"] = [item["visual"] for item in kept]  # a method may re-collate the videos with other prompts
    batch["skipped_videos"] = skipped
    batch["skipped_faults"] = faults
    return one_storage(batch) if get_worker_info() is not None else batch


class EpochShuffleSampler(Sampler[int]):
    """A permutation fixed by ``(seed, epoch)``, so a resumed run sees the same order.

    With ``easy`` indices and ``easy_epochs``, the first epochs draw only from the easy
    samples (reshuffled as often as needed), keeping the epoch length unchanged.
    """

    def __init__(self, length: int, seed: int, easy: Sequence[int] = (), easy_epochs: int = 0) -> None:
        self.length, self.seed, self.epoch = length, seed, 0
        self.easy, self.easy_epochs = torch.tensor(list(easy), dtype=torch.long), easy_epochs

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        if self.epoch >= self.easy_epochs or len(self.easy) == 0:
            return iter(torch.randperm(self.length, generator=generator).tolist())
        rounds = -(-self.length // len(self.easy))
        order = torch.cat([self.easy[torch.randperm(len(self.easy), generator=generator)] for _ in range(rounds)])
        return iter(order[: self.length].tolist())

    def __len__(self) -> int:
        return self.length


class ResumableLoader(DataLoader):
    """The training loader. Restored from a checkpoint written mid-epoch, the epoch it resumes skips the batches that
    were already trained on, dropping their indices before any sample is read, so the run goes on with exactly the
    batches an uninterrupted run would have seen next (the order is fixed by seed and epoch). Under a distributed
    strategy each rank skips its own first batches of its shard.

    Args:
        resume: ``(epoch, batches)`` trained when the checkpoint was written (``GroundingDataModule.state_dict``), or
            ``None``; applied to that epoch only.
    """

    def __init__(self, *args: Any, resume: tuple[int, int] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.resume = resume

    @property
    def _index_sampler(self) -> Any:
        return _SkipFirst(self, super()._index_sampler)

    def take_skip(self) -> int:
        """Batches to skip in the epoch starting now (``resume``'s count in its epoch, else 0), once."""
        if self.resume is None:
            return 0
        (epoch, batches), self.resume = self.resume, None
        return batches if getattr(self.sampler, "epoch", epoch) == epoch else 0


class _SkipFirst:
    """A loader's index sampler whose next pass starts after the batches the loader says to skip. The skip is read at
    the first batch, not when the iterator is made: Lightning sets the sampler's epoch in between."""

    def __init__(self, loader: ResumableLoader, inner: Any) -> None:
        self.loader, self.inner = loader, inner

    def __len__(self) -> int:
        return len(self.inner)

    def __iter__(self) -> Iterator[Any]:
        return self._batches()

    def _batches(self) -> Iterator[Any]:
        skip = self.loader.take_skip()
        yield from itertools.islice(iter(self.inner), skip, None)


class EvalShardSampler(DistributedSampler):
    """Evaluation under a distributed strategy: rank ``r`` of ``n`` takes indices ``r, r + n, ...``, each sample
    exactly once. ``DistributedSampler`` pads every rank to the same length with repeated samples, which the
    metrics then count twice (7 questions on 2 ranks scored as 8); torchmetrics syncs uneven ranks fine.
    Lightning leaves a ``DistributedSampler`` it is given in place."""

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, len(self.dataset), self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, len(self.dataset), self.num_replicas))


class TrainShardSampler(DistributedSampler):
    """Training under a distributed strategy: the single-process order (seeded per epoch, curriculum included) dealt
    out rank ``r`` of ``n`` taking positions ``r, r + n, ...``, padded with its first indices to a multiple of ``n`` as
    ``DistributedSampler`` pads (every rank must run as many steps). So with ``b`` per rank, the ranks' k-th batches
    together are the single process's k-th batch of ``n·b``. Lightning leaves a ``DistributedSampler`` in place; it
    wrapped a custom sampler in its own shuffle instead, with its own seed, and never passed the epoch to it."""

    def __init__(self, order: EpochShuffleSampler | MixedEpochSampler, dataset: Dataset, num_replicas: int,
                 rank: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        self.order, self.epoch = order, order.epoch
        self.num_samples = -(-len(order) // num_replicas)
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.order.set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        order = list(self.order)
        order += order[: self.total_size - len(order)]
        return iter(order[self.rank : self.total_size : self.num_replicas])

    def __len__(self) -> int:
        return self.num_samples


def _process_group() -> tuple[int, int]:
    """``(world size, rank)`` of the running process group, ``(1, 0)`` without one."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return 1, 0
    return torch.distributed.get_world_size(), torch.distributed.get_rank()


def eval_sampler(data: Dataset) -> Sampler[int] | None:
    """An :class:`EvalShardSampler` when a process group of more than one rank is running, else ``None``."""
    world, rank = _process_group()
    return EvalShardSampler(data, world, rank) if world > 1 else None


class TaskMix(ConcatDataset):
    """Ordinary samples (``VideoTaskDataset``) then fragment questions (``FragmentDataset``), indexed as one."""

    def __init__(self, ordinary: VideoTaskDataset, fragments: FragmentDataset) -> None:
        super().__init__([ordinary, fragments])
        self.ordinary, self.fragments = ordinary, fragments
        self.samples = ordinary.samples + fragments.samples


class MixedEpochSampler(Sampler[int]):
    """Each epoch: every ordinary index once (curriculum as in ``EpochShuffleSampler``) and ``per_epoch``
    fragment indices (``ordinary`` onwards), the next slice of a seeded cycle through all of them, shuffled
    together by ``(seed, epoch)``."""

    def __init__(self, ordinary: int, fragments: int, per_epoch: int, seed: int, easy: Sequence[int] = (),
                 easy_epochs: int = 0) -> None:
        self.ordinary = EpochShuffleSampler(ordinary, seed, easy, easy_epochs)
        self.fragments, self.per_epoch, self.seed, self.epoch = fragments, per_epoch, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.ordinary.set_epoch(epoch)

    def _fragment_indices(self) -> list[int]:
        first, last = self.epoch * self.per_epoch, (self.epoch + 1) * self.per_epoch
        rounds = range(first // self.fragments, -(-last // self.fragments))
        # pass r through all fragments has its own seed, apart from the (seed + epoch) shuffles
        cycle = torch.cat([torch.randperm(self.fragments, generator=torch.Generator().manual_seed(self.seed + 7919 * (r + 1)))
                           for r in rounds])
        start = first - rounds.start * self.fragments
        return (cycle[start: start + self.per_epoch] + self.ordinary.length).tolist()

    def __iter__(self) -> Iterator[int]:
        indices = torch.tensor(list(self.ordinary) + self._fragment_indices(), dtype=torch.long)
        order = torch.randperm(len(indices), generator=torch.Generator().manual_seed(self.seed + self.epoch))
        return iter(indices[order].tolist())

    def __len__(self) -> int:
        return self.ordinary.length + self.per_epoch


class GroundingDataModule(L.LightningDataModule):
    """Reads one or more tasks from a data directory in their official formats.

    Args:
        data_dir: directory holding ``<format>/<split>.*`` annotation files and videos.
        tasks: annotation formats to read (``charades_sta``, ``qvhighlights``, ``mcq``, ``verify``, ...);
            ``fragments`` adds SF2T's fragment questions (``fragments.sources``).
        train_split / val_split / test_split / predict_split: split names.
        sampling: frame sampling.
        prompts: prompt templates.
        batch_size / eval_batch_size: training and generation batch sizes.
        num_workers: DataLoader workers.
        on_bad_video: ``raise`` names the file; ``skip`` drops the sample and counts it by kind.
        on_bad_annotation: ``raise`` names the file and line of the first bad record; ``skip`` drops each bad
            record and counts it by kind (:meth:`skipped_annotations`): a non-finite number, a video path leaving
            the data root, bytes that are not UTF-8, too many options, any other malformed record.
        cache_visual: keep preprocessed videos in memory (small datasets, ``num_workers: 0``).
        max_eval_samples: cap on val/test/predict samples per task (quick checks); ``None`` = all.
        eval_tasks: tasks read for val/test/predict; ``None`` = ``tasks`` (e.g. train on
            instruction tasks, evaluate on ``charades_sta``).
        train_limits: cap on training samples per task (first N in file order), to balance a
            task mix, e.g. ``{mcq: 1000}``.
        curriculum_epochs: train the first N epochs on clips without distractors only
            (embedded benchmark), then on everything; fragment questions count as easy.
        seed: shuffling seed.
        fragments: SF2T's fragment questions: their sources, frame strategy and share of an epoch.
            Fragment samples are loaded by ``FragmentDataset``, the others by ``VideoTaskDataset``.
    """

    def __init__(
        self,
        data_dir: str = "data/synth",
        tasks: list[str] = ["charades_sta"],  # noqa: B006 (jsonargparse reads the default)
        train_split: str = "train",
        val_split: str = "val",
        test_split: str = "test",
        predict_split: str = "test",
        sampling: FrameSampling = FrameSampling(),  # noqa: B008
        prompts: PromptTemplates = PromptTemplates(),  # noqa: B008
        batch_size: int = 8,
        eval_batch_size: int = 16,
        num_workers: int = 0,
        on_bad_video: Literal["raise", "skip"] = "raise",
        on_bad_annotation: Literal["raise", "skip"] = "raise",
        cache_visual: bool = False,
        max_eval_samples: int | None = None,
        seed: int = 0,
        eval_tasks: list[str] | None = None,
        train_limits: dict[str, int] | None = None,
        curriculum_epochs: int = 0,
        fragments: FragmentOptions = FragmentOptions(),  # noqa: B008
    ) -> None:
        super().__init__()
        for name, value in (("on_bad_video", on_bad_video), ("on_bad_annotation", on_bad_annotation)):
            if value not in ("raise", "skip"):
                raise ValueError(f"{name} must be 'raise' or 'skip', got {value!r}")
        self.data_dir, self.tasks = Path(data_dir), list(tasks)
        self.splits = {"fit": train_split, "validate": val_split, "test": test_split, "predict": predict_split}
        self.sampling, self.prompts = sampling, prompts
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self._resume: tuple[int, int] | None = None  # (epoch, batches) of a restored mid-epoch checkpoint
        self.on_bad_video, self.on_bad_annotation, self.cache_visual = on_bad_video, on_bad_annotation, cache_visual
        self.annotation_skips: dict[str, AnnotationSkips] = {}  # per split, when on_bad_annotation is skip
        self.max_eval_samples, self.seed = max_eval_samples, seed
        self.eval_tasks = list(eval_tasks) if eval_tasks is not None else None
        self.train_limits = dict(train_limits or {})
        self.curriculum_epochs = curriculum_epochs
        self.fragments = fragments
        named = set(self.tasks) | set(self.eval_tasks or ())
        if FRAGMENTS in named and not fragments.sources:
            raise ValueError("task `fragments` needs `fragments.sources`: the tasks whose videos become fragment questions")
        self.processor: Any = None
        self.datasets: dict[str, Dataset] = {}

    def read(self, split: str, limit: int | None = None, tasks: list[str] | None = None) -> list[VideoSample]:
        """All samples of ``split`` across the configured tasks."""
        if not self.data_dir.is_dir():
            raise FileNotFoundError(
                f"data directory {self.data_dir} does not exist. Make the embedded benchmark with "
                f"`groundlight data synth --out {self.data_dir}` (or `make data`), or point `data.data_dir` at your data."
            )
        samples, skips = [], AnnotationSkips() if self.on_bad_annotation == "skip" else None
        for task in tasks or self.tasks:
            cap = limit if limit is not None else (self.train_limits.get(task) if split == self.splits["fit"] else None)
            read = self._fragment_questions(split, skips) if task == FRAGMENTS else \
                read_task_split(self.data_dir, task, split, skips=skips)
            samples += read[:cap]
        if skips is not None:
            self.annotation_skips[split] = skips
            for error in skips.errors.values():
                log.warning("skipping a bad annotation record (%s): %s", error.kind, error)
        return samples

    def skipped_annotations(self, stage: str) -> dict[str, int]:
        """Bad records dropped from ``stage``'s split (``fit``, ``validate``, ``test``, ``predict``) by kind, as
        last read; every rank reads the whole split, so this is the count of the run, not of one rank."""
        skips = self.annotation_skips.get(self.splits[stage])
        return skips.counts() if skips is not None else {}

    def _fragment_questions(self, split: str, skips: AnnotationSkips | None) -> list[VideoSample]:
        """Fragment questions of the distinct videos of every source's ``split``, in file order."""
        videos = [s.video_path for task in self.fragments.sources
                  for s in read_task_split(self.data_dir, task, split, skips=skips)]
        config = self.fragments.config(train=split == self.splits["fit"])
        return build_fragment_samples(list(dict.fromkeys(videos)), config, split).samples

    def dataset(self, samples: Sequence[VideoSample], **overrides: Any) -> Dataset:
        """``VideoTaskDataset`` over ordinary samples, ``FragmentDataset`` over fragment ones, a ``TaskMix`` of both."""
        ordinary = [s for s in samples if not s.frame_sets]
        fragments = [s for s in samples if s.frame_sets]
        options = dict(on_bad_video=self.on_bad_video, cache=self.cache_visual) | overrides
        if not fragments:
            return VideoTaskDataset(samples, self.processor, self.sampling, self.prompts, **options)
        if unsupported := set(options) - {"on_bad_video", "cache"}:
            raise ValueError(f"{sorted(unsupported)} cannot be applied to fragment samples; leave the fragment tasks out")
        questions = FragmentDataset(fragments, self.processor, self.fragments.strategy, self.sampling.decode_size,
                                    self.prompts, options["on_bad_video"], cache_draws=options["cache"],
                                    motion_index=self.fragments.motion_index)
        if not ordinary:
            return questions
        return TaskMix(VideoTaskDataset(ordinary, self.processor, self.sampling, self.prompts, **options), questions)

    def setup(self, stage: str) -> None:
        if self.processor is None:
            self.processor = self.trainer.lightning_module.backbone.processor
        wanted = {"fit": ["fit", "validate"], "validate": ["validate"], "test": ["test"], "predict": ["predict"]}[stage]
        for name in wanted:
            if name not in self.datasets:
                limit, tasks = (None, self.tasks) if name == "fit" else (self.max_eval_samples, self.eval_tasks)
                self.datasets[name] = self.dataset(self.read(self.splits[name], limit, tasks))

    def _loader(self, name: str, with_answer: bool, shuffle: bool) -> DataLoader:
        data = self.datasets[name]
        options = dict(
            batch_size=self.batch_size if with_answer else self.eval_batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=partial(collate_items, processor=self.processor, with_answer=with_answer),
        )
        if not shuffle:
            return DataLoader(data, sampler=eval_sampler(data), **options)
        sampler = self._sampler(data)
        trainer = self.trainer
        if trainer is not None:  # the epoch it starts in (workers draw indices before Lightning sets it)
            sampler.set_epoch(trainer.current_epoch)
        world, rank = _process_group()
        if world > 1:
            sampler = TrainShardSampler(sampler, data, world, rank)
        resume, self._resume = self._resume, None
        return ResumableLoader(data, sampler=sampler, resume=resume, **options)

    def state_dict(self) -> dict[str, Any]:
        """Saved in every checkpoint: the epoch and the batches of it trained so far (a mid-epoch resume skips them)."""
        trainer = self.trainer
        if trainer is None or trainer.state.fn != "fit":
            return {}
        return {"epoch": trainer.current_epoch, "batches": trainer.fit_loop.epoch_loop.batch_progress.current.processed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resume = (int(state_dict["epoch"]), int(state_dict["batches"])) if state_dict else None

    def _sampler(self, data: Dataset) -> Sampler[int]:
        """The training order: seeded per epoch; with a fragment ratio, the mix of ``MixedEpochSampler``."""
        if isinstance(data, TaskMix) and self.fragments.ratio is not None:
            ordinary, ratio = len(data.ordinary), self.fragments.ratio
            per_epoch = max(1, round(ordinary * ratio / (1 - ratio)))
            return MixedEpochSampler(ordinary, len(data.fragments), per_epoch, self.seed,
                                     self._easy_indices(data.ordinary), self.curriculum_epochs)
        return EpochShuffleSampler(len(data), self.seed, self._easy_indices(data), self.curriculum_epochs)

    def _easy_indices(self, data: Dataset) -> list[int]:
        """Samples without distractors, for the curriculum (the embedded benchmark records them); fragment
        questions carry no distractor labels and count as easy."""
        if not self.curriculum_epochs:
            return []
        if not (self.data_dir / "meta.json").exists():
            raise ValueError("curriculum_epochs needs difficulty labels: only the embedded benchmark (meta.json) has them")
        from data_modules.synthetic import annotate_difficulty

        ordinary = [s for s in data.samples if not s.frame_sets]
        annotate_difficulty(ordinary, self.data_dir)
        return [i for i, s in enumerate(data.samples) if s.frame_sets or s.meta["n_distractors"] == 0]

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        """Everything but the samples, which hold no tensors (and whose frozen ``FrameSet`` fields Lightning's
        default would try to rebuild)."""
        if not isinstance(batch, dict) or "samples" not in batch:
            return super().transfer_batch_to_device(batch, device, dataloader_idx)
        rest = super().transfer_batch_to_device({k: v for k, v in batch.items() if k != "samples"}, device, dataloader_idx)
        return rest | {"samples": batch["samples"]}

    def train_dataloader(self) -> DataLoader:
        return self._loader("fit", with_answer=True, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("validate", with_answer=False, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", with_answer=False, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict", with_answer=False, shuffle=False)

    def eval_loader(self, samples: Sequence[VideoSample], **overrides: Any) -> DataLoader:
        """A generation loader over arbitrary samples (controls: shuffled video, blank frames, swaps)."""
        data = self.dataset(samples, **overrides)
        return DataLoader(
            data,
            sampler=eval_sampler(data),
            batch_size=self.eval_batch_size,
            num_workers=self.num_workers,
            collate_fn=partial(collate_items, processor=self.processor, with_answer=False),
        )


"""GroundingDataModule routes SF2T fragment questions to FragmentDataset and mixes them with ordinary samples."""

import pytest
import torch

from data_modules.datamodule import (
    EpochShuffleSampler,
    FragmentOptions,
    FrameSampling,
    GroundingDataModule,
    MixedEpochSampler,
    TaskMix,
    VideoTaskDataset,
    collate_items,
)
from data_modules.samples import FRAGMENT_TASKS
from data_modules.tasks.fragments import FragmentConfig, FragmentDataset


def datamodule(data_dir, backbone, **kwargs):
    dm = GroundingDataModule(str(data_dir), sampling=FrameSampling(fps=1.0, decode_size=(56, 56)), **kwargs)
    dm.processor = backbone.processor
    return dm


def test_mixed_sampler_sees_every_ordinary_sample_once_and_cycles_through_the_fragments():
    sampler = MixedEpochSampler(ordinary=6, fragments=5, per_epoch=3, seed=1)
    epochs, drawn = [], []
    for epoch in range(5):
        sampler.set_epoch(epoch)
        order = list(sampler)
        assert len(order) == len(sampler) == 9
        assert sorted(i for i in order if i < 6) == list(range(6))
        epochs.append(order)
        drawn += sampler._fragment_indices()
        assert sorted(i for i in order if i >= 6) == sorted(drawn[-3:])
    # 15 fragment draws over 5 epochs = three passes, each through all 5 fragment questions
    assert [sorted(drawn[k:k + 5]) for k in (0, 5, 10)] == [list(range(6, 11))] * 3
    assert drawn[:5] != drawn[5:10]  # each pass reshuffled
    sampler.set_epoch(2)
    assert list(sampler) == epochs[2]  # a resumed epoch sees the same order


def test_mixed_sampler_keeps_the_curriculum_on_ordinary_samples():
    sampler = MixedEpochSampler(ordinary=6, fragments=4, per_epoch=2, seed=0, easy=[0, 3], easy_epochs=1)
    first = list(sampler)
    assert {i for i in first if i < 6} == {0, 3} and len([i for i in first if i < 6]) == 6
    sampler.set_epoch(1)
    assert sorted(i for i in sampler if i < 6) == list(range(6))


def test_fragment_options_are_checked():
    with pytest.raises(ValueError, match="ratio"):
        FragmentOptions(sources=["charades_sta"], ratio=1.0)
    with pytest.raises(ValueError, match="strategy"):
        FragmentOptions(strategy="every")
    with pytest.raises(ValueError, match="fragments.sources"):
        GroundingDataModule(tasks=["fragments"])


def test_fragment_questions_of_the_source_videos_are_routed_and_collate_with_ordinary_samples(synth_dir, tiny_backbone):
    dm = datamodule(synth_dir, tiny_backbone, tasks=["charades_sta", "fragments"],
                    fragments=FragmentOptions(sources=["charades_sta"], questions=FragmentConfig(max_frames=4)))
    train = dm.read("train")
    ordinary = [s for s in train if not s.frame_sets]
    questions = [s for s in train if s.frame_sets]
    assert len(ordinary) == len(dm.read("train", tasks=["charades_sta"]))
    videos = {s.video_path for s in ordinary}
    assert {s.task for s in questions} == set(FRAGMENT_TASKS)
    assert {s.video_path for s in questions} == videos
    assert all(f.seed is not None for s in questions for f in s.frame_sets)  # training draws within bins
    assert all(f.seed is None for s in dm.read("test", tasks=["fragments"]) for f in s.frame_sets)  # bin centres
    data = dm.dataset(train)
    assert isinstance(data, TaskMix) and isinstance(data.fragments, FragmentDataset)
    assert data.fragments.strategy == "motion"
    mixed = [data[0], data[len(ordinary)]]
    assert mixed[0]["sample"].task == "moment_retrieval" and mixed[1]["sample"].frame_sets
    batch = collate_items(mixed, tiny_backbone.processor, with_answer=True)
    assert [s.sample_id for s in batch["samples"]] == [ordinary[0].sample_id, questions[0].sample_id]
    assert (batch["labels"] != -100).any(dim=1).all()


def test_without_fragment_tasks_the_datasets_and_order_are_unchanged(synth_dir, tiny_backbone):
    dm = datamodule(synth_dir, tiny_backbone, seed=3)
    data = dm.dataset(dm.read("train"))
    assert type(data) is VideoTaskDataset
    sampler = dm._sampler(data)
    assert type(sampler) is EpochShuffleSampler and list(sampler) == list(EpochShuffleSampler(len(data), 3))


def test_only_fragments_gives_a_fragment_dataset_and_the_ratio_sets_the_epoch(synth_dir, tiny_backbone):
    options = FragmentOptions(sources=["charades_sta"], strategy="uniform", ratio=0.25)
    alone = datamodule(synth_dir, tiny_backbone, tasks=["fragments"], fragments=options)
    data = alone.dataset(alone.read("train"))
    assert type(data) is FragmentDataset and data.strategy == "uniform"
    mixed = datamodule(synth_dir, tiny_backbone, tasks=["charades_sta", "fragments"], fragments=options)
    data = mixed.dataset(mixed.read("train"))
    sampler = mixed._sampler(data)
    ordinary = len(data.ordinary)
    assert isinstance(sampler, MixedEpochSampler) and len(sampler) == ordinary + round(ordinary / 3)
    assert max(sampler) < len(data) and torch.tensor(list(sampler)).unique().numel() == len(sampler)


def test_controls_that_alter_the_video_refuse_fragment_samples(synth_dir, tiny_backbone):
    dm = datamodule(synth_dir, tiny_backbone, tasks=["fragments"], fragments=FragmentOptions(sources=["charades_sta"]))
    with pytest.raises(ValueError, match="blank_frames"):
        dm.dataset(dm.read("test"), blank_frames=True)


def test_a_fragment_batch_moves_to_the_device_with_its_samples_untouched(synth_dir, tiny_backbone):
    """Lightning's default transfer rebuilds dataclasses field by field, which a frozen ``FrameSet`` refuses."""
    dm = datamodule(synth_dir, tiny_backbone, tasks=["fragments"], fragments=FragmentOptions(sources=["charades_sta"]))
    data = dm.dataset(dm.read("test"))
    batch = collate_items([data[0], data[1]], tiny_backbone.processor, with_answer=False)
    moved = dm.transfer_batch_to_device(batch, torch.device("cpu"), 0)
    assert moved["samples"] is batch["samples"] and torch.equal(moved["input_ids"], batch["input_ids"])


def test_one_training_task_still_tests_on_all_five_and_on_the_same_questions(synth_dir, tiny_backbone):
    one = FragmentOptions(sources=["charades_sta"], questions=FragmentConfig(tasks=("fragment_disorder",)))
    dm = datamodule(synth_dir, tiny_backbone, tasks=["fragments"], fragments=one)
    assert {s.task for s in dm.read("train")} == {"fragment_disorder"}
    every = datamodule(synth_dir, tiny_backbone, tasks=["fragments"], fragments=FragmentOptions(sources=["charades_sta"]))
    assert dm.read("test") == every.read("test") and {s.task for s in dm.read("test")} == set(FRAGMENT_TASKS)
    disorder = [s for s in every.read("train") if s.task == "fragment_disorder"]
    assert dm.read("train") == disorder


def test_a_worker_hands_over_the_same_batch_in_one_shared_block(synth_dir, tiny_backbone):
    def first_batch(workers: int) -> dict:
        dm = datamodule(synth_dir, tiny_backbone, tasks=["fragments"], eval_tasks=["fragments"], max_eval_samples=3,
                        eval_batch_size=3, fragments=FragmentOptions(sources=["charades_sta"]), num_workers=workers)
        dm.setup("test")
        return next(iter(dm.test_dataloader()))

    inline, handed = first_batch(0), first_batch(1)
    tensors = {k: v for k, v in handed.items() if isinstance(v, torch.Tensor)}
    assert len(tensors) >= 5 and all(torch.equal(v, inline[k]) for k, v in tensors.items())
    pixels = [v.pixel_values for v in handed["visuals"]]
    assert all(torch.equal(a, b.pixel_values) for a, b in zip(pixels, inline["visuals"]))
    assert len({t.untyped_storage().data_ptr() for t in [*tensors.values(), *pixels]}) == 1
    assert [s.sample_id for s in handed["samples"]] == [s.sample_id for s in inline["samples"]]

"""GroundingDataModule on bad input: missing dir, corrupt video (raise or counted skip), malformed line."""

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from data_modules.datamodule import FrameSampling, GroundingDataModule, collate_items
from data_modules.samples import AnnotationError
from data_modules.video import VideoError


@pytest.fixture
def broken_copy(synth_dir, tmp_path):
    data = tmp_path / "synth"
    shutil.copytree(synth_dir, data)
    victim = sorted((data / "videos").glob("test_*.mp4"))[0]
    victim.write_bytes(b"not an mp4 at all")
    return data, victim


def datamodule(data_dir, backbone, **kwargs):
    dm = GroundingDataModule(str(data_dir), sampling=FrameSampling(fps=1.0, decode_size=(56, 56)), **kwargs)
    dm.processor = backbone.processor
    return dm


def test_missing_data_dir_says_how_to_make_it(tiny_backbone, tmp_path):
    with pytest.raises(FileNotFoundError, match="groundlight data synth --out"):
        datamodule(tmp_path / "nope", tiny_backbone).read("train")


def test_corrupt_video_error_names_the_file(broken_copy, tiny_backbone):
    data, victim = broken_copy
    dm = datamodule(data, tiny_backbone)
    samples = [s for s in dm.read("test") if s.video_path.endswith(victim.name)]
    with pytest.raises(VideoError, match=victim.name):
        dm.dataset(samples)[0]


def test_corrupt_video_skipped_and_counted(broken_copy, tiny_backbone):
    data, victim = broken_copy
    dm = datamodule(data, tiny_backbone, on_bad_video="skip")
    dataset = dm.dataset(dm.read("test"))
    batch = collate_items([dataset[i] for i in range(len(dataset))], tiny_backbone.processor, with_answer=False)
    assert batch["skipped_videos"] == 1 and batch["skipped_faults"] == {"corrupt": 1}
    assert len(batch["samples"]) == len(dataset) - 1
    assert all(not s.video_path.endswith(victim.name) for s in batch["samples"])


def _edited_copy(synth_dir: Path, tmp_path: Path, edits: dict[int, Callable[[str], str]]) -> Path:
    """The benchmark's annotations (no videos) with lines of ``charades_sta/test.txt`` rewritten by ``edits``."""
    data = tmp_path / "synth"
    shutil.copytree(synth_dir, data, ignore=shutil.ignore_patterns("*.mp4"))
    path = data / "charades_sta" / "test.txt"
    lines = path.read_text().splitlines()
    for index, edit in edits.items():
        lines[index] = edit(lines[index])
    path.write_text("\n".join(lines) + "\n")
    return data


def test_malformed_annotation_names_file_and_line(synth_dir, tmp_path, tiny_backbone):
    data = _edited_copy(synth_dir, tmp_path, {1: lambda line: line.replace("##", " ")})
    with pytest.raises(AnnotationError, match=r"test\.txt:2"):
        datamodule(data, tiny_backbone).read("test")


def test_bad_annotation_records_skipped_and_counted_by_kind(synth_dir, tmp_path, tiny_backbone):
    """``on_bad_annotation: skip`` reads past the bad lines of every task file; the count is per split."""
    data = _edited_copy(synth_dir, tmp_path, {0: lambda line: line.replace("##", " "), 1: lambda line: "../" + line})
    dm = datamodule(data, tiny_backbone, on_bad_annotation="skip", tasks=["charades_sta", "mcq"])
    lines = (data / "charades_sta" / "test.txt").read_text().splitlines()
    assert len(dm.read("test", tasks=["charades_sta"])) == len(lines) - 2
    assert dm.skipped_annotations("test") == {"malformed": 1, "path_escape": 1}
    assert dm.skipped_annotations("fit") == {}  # the train split was not read
    with pytest.raises(ValueError, match="on_bad_annotation must be 'raise' or 'skip'"):
        datamodule(data, tiny_backbone, on_bad_annotation="ignore")


def test_bad_on_bad_video_value_rejected():
    with pytest.raises(ValueError, match="on_bad_video"):
        GroundingDataModule(on_bad_video="ignore")


def test_epoch_sampler_is_seeded_per_epoch_and_curriculum_draws_easy_first():
    from data_modules.datamodule import EpochShuffleSampler

    sampler = EpochShuffleSampler(10, seed=3, easy=[1, 4], easy_epochs=2)
    first = list(sampler)
    assert len(first) == 10 and set(first) == {1, 4}
    assert list(sampler) == first  # same epoch, same order (resume)
    sampler.set_epoch(2)
    assert sorted(sampler) == list(range(10))
    assert list(EpochShuffleSampler(10, seed=3)) != list(EpochShuffleSampler(10, seed=4))


def test_a_fragment_sample_is_refused_rather_than_shown_as_the_whole_video():
    from data_modules.datamodule import FrameSampling, VideoTaskDataset
    from data_modules.samples import FrameSet, VideoSample
    from data_modules.tasks import PromptTemplates

    sample = VideoSample("f0", "v.mp4", "mcq", "Which fragment?", options=["1", "2"], answer_index=0,
                         frame_sets=[FrameSet("v.mp4", 4, (0, 1))])
    dataset = VideoTaskDataset([sample], processor=None, sampling=FrameSampling(), prompts=PromptTemplates())
    with pytest.raises(ValueError, match="FragmentDataset"):
        dataset[0]


def test_an_annotated_duration_the_video_does_not_have_is_an_error_or_a_counted_skip(index_video, tiny_backbone):
    """A 4 s clip annotated as 30 s would get "lasts 30.0 seconds" and targets past its end."""
    from data_modules.datamodule import VideoTaskDataset
    from data_modules.samples import VideoSample
    from data_modules.tasks import PromptTemplates
    from data_modules.video import DurationMismatchError

    def dataset(duration, on_bad_video="raise"):
        sample = VideoSample("q7", str(index_video), "moment_retrieval", "the red circle appears.", duration=duration,
                             windows=[(1.0, 2.0)], source="qvh.jsonl:7")
        return VideoTaskDataset([sample], tiny_backbone.processor, FrameSampling(fps=1.0), PromptTemplates(),
                                on_bad_video=on_bad_video)

    assert dataset(4.0)[0]["duration"] == 4.0 and dataset(5.9)[0]["duration"] == 5.9  # within 2 s: the annotation's
    with pytest.raises(DurationMismatchError, match=r"qvh\.jsonl:7 annotates 30\.00 s, the video lasts 4\.00 s"):
        dataset(30.0)[0]
    skipped = dataset(30.0, on_bad_video="skip")[0]
    batch = collate_items([skipped], tiny_backbone.processor, with_answer=False)
    assert batch["skipped_videos"] == 1 and batch["samples"] == []
    assert batch["skipped_faults"] == {"duration_mismatch": 1}

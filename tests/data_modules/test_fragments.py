"""SF2T fragment tasks: exact answers, permutation inverses, determinism, short videos, snapshotted prompts."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from data_modules import video
from data_modules.samples import FRAGMENT_TASKS, FrameSet, VideoSample
from data_modules.tasks import fragments
from data_modules.tasks.fragments import (
    FragmentConfig,
    FragmentDataset,
    build_fragment_samples,
    fragment_clip,
    inverse,
    shuffled,
)
from data_modules.tasks.prompts import PromptTemplates
from data_modules.video import VideoError
from groundlight.metrics.tasks import build_example

VIDEOS = [f"v{k}.mp4" for k in range(6)]
COUNTS = dict.fromkeys(VIDEOS, 40)


def _build(**overrides) -> fragments.FragmentBuild:
    counts = overrides.pop("counts", COUNTS)
    return build_fragment_samples(VIDEOS, FragmentConfig(**overrides), "train", counts)


def _by_task(samples: list[VideoSample], task: str) -> list[VideoSample]:
    return [s for s in samples if s.task == task]


def _time_key(frame_set: FrameSet) -> int:
    return frame_set.picks[0]


@pytest.mark.parametrize("count", [2, 3, 4, 5])
def test_inverse_undoes_every_permutation(count: int) -> None:
    for permutation in itertools.permutations(range(count)):
        back = inverse(permutation)
        assert [back[p] for p in permutation] == list(range(count))
        assert [permutation[b] for b in back] == list(range(count))


def test_shuffled_is_never_the_identity() -> None:
    rng = np.random.default_rng(0)
    draws = [tuple(shuffled(3, rng)) for _ in range(200)]
    assert (0, 1, 2) not in draws
    assert len(set(draws)) == 5


def test_generation_is_seeded_and_deterministic() -> None:
    first, again, other = _build().samples, _build().samples, _build(seed=1).samples
    assert first == again
    assert first != other
    assert len(first) == len(VIDEOS) * len(FRAGMENT_TASKS)
    assert len({s.sample_id for s in first}) == len(first)


def test_counting_answer_is_the_number_of_frames_shown() -> None:
    samples = _by_task(_build(seed=3).samples, "fragment_counting")
    for sample in samples:
        (frame_set,) = sample.frame_sets
        assert sample.options[sample.answer_index] == str(len(frame_set.picks))
    assert len({s.answer_index for s in samples}) > 1


def test_consistency_negatives_come_from_another_video() -> None:
    samples = _by_task(_build().samples + _build(seed=2).samples, "fragment_consistency")
    for sample in samples:
        sources = {s.video_path for s in sample.frame_sets}
        assert (sources == {sample.video_path}) is sample.label
        assert len(sources) <= 2
        assert len({len(f.picks) for f in sample.frame_sets}) == 1
    assert {s.label for s in samples} == {True, False}


def test_localization_probe_lies_in_the_answered_fragment() -> None:
    for sample in _by_task(_build().samples + _build(seed=5).samples, "fragment_localization"):
        *shown, probe = sample.frame_sets
        assert sorted(shown, key=_time_key) == shown
        assert set(probe.picks) <= set(shown[sample.answer_index].picks)


def test_disorder_label_says_whether_the_fragments_are_in_time_order() -> None:
    samples = _by_task(_build().samples + _build(seed=4).samples, "fragment_disorder")
    for sample in samples:
        assert (sorted(sample.frame_sets, key=_time_key) == sample.frame_sets) is sample.label
    assert {s.label for s in samples} == {True, False}


def test_rearrangement_order_restores_time_order() -> None:
    for sample in _by_task(_build().samples, "fragment_rearrangement"):
        restored = [sample.frame_sets[number - 1] for number in sample.order]
        assert restored == sorted(sample.frame_sets, key=_time_key)
        assert restored != sample.frame_sets


def test_short_videos_get_fewer_fragments_or_are_skipped() -> None:
    counts = {**COUNTS, "v0.mp4": 7, "v1.mp4": 2}
    fewer = _build(counts=counts, max_frames=3)
    assert [s for s in fewer.skipped if s.startswith("v1.mp4")] == [f"v1.mp4: {task}" for task in FRAGMENT_TASKS]
    shrunk = [s for s in fewer.samples if s.video_path == "v0.mp4" and s.task != "fragment_counting"]
    assert shrunk and all(len(s.frame_sets[0].picks) == 3 and s.frame_sets[0].sample_size <= 7 for s in shrunk)
    assert "v0.mp4: fragment_rearrangement" in fewer.reduced
    skipping = _build(counts=counts, max_frames=3, on_short="skip")
    assert "v0.mp4: fragment_rearrangement" in skipping.skipped
    assert not skipping.reduced


def test_bad_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="num_fragments"):
        FragmentConfig(num_fragments=1)
    with pytest.raises(ValueError, match="unknown fragment tasks"):
        FragmentConfig(tasks=("fragment_sorting",))


SNAPSHOT = {
    "fragment_counting": (
        "How many frames does the video show?\n(A) 3\n(B) 4\n(C) 5\nAnswer with the option's letter.",
        "B",
    ),
    "fragment_consistency": (
        ("The video shows 3 fragments one after another: fragment 1 is frames 1-4, fragment 2 is frames 5-8 "
        "and fragment 3 is frames 9-12. Do all fragments come from the same clip? Answer yes or no."),
        "no",
    ),
    "fragment_localization": (
        ("The video shows 3 fragments one after another: fragment 1 is frames 1-4, fragment 2 is frames 5-8 "
        "and fragment 3 is frames 9-12. Then frames 13-16 repeat part of that clip. Which fragment of the clip "
        "do frames 13-16 come from?\n(A) fragment 1\n(B) fragment 2\n(C) fragment 3\nAnswer with the option's letter."),
        "B",
    ),
    "fragment_disorder": (
        ("The video shows 3 fragments one after another: fragment 1 is frames 1-4, fragment 2 is frames 5-8 "
        "and fragment 3 is frames 9-12. Are the fragments shown in the order in which they happened? "
        "Answer yes or no."),
        "no",
    ),
    "fragment_rearrangement": (
        ("The video shows 3 fragments one after another: fragment 1 is frames 1-4, fragment 2 is frames 5-8 "
        "and fragment 3 is frames 9-12. The fragments are shown out of order. In which order did they happen? "
        "Answer with the fragment numbers in that order, separated by commas."),
        "3, 1, 2",
    ),
}


def test_prompts_are_snapshotted() -> None:
    samples = build_fragment_samples(["a.mp4", "b.mp4", "c.mp4"], FragmentConfig(), "train",
                                     dict.fromkeys(["a.mp4", "b.mp4", "c.mp4"], 40)).samples
    templates = PromptTemplates(state_duration=False)
    got = {s.task: (build_example(s, templates, 0.0)["prompt"], build_example(s, templates, 0.0)["answer"])
           for s in samples if s.video_path == "a.mp4"}
    assert got == SNAPSHOT


def test_probe_of_one_frame_is_named_by_its_number() -> None:
    shown = [FrameSet("a.mp4", 6, (0, 1, 2)), FrameSet("a.mp4", 6, (3, 4, 5))]
    sample = VideoSample("x", "a.mp4", "fragment_localization", "Which fragment of the clip does frame 7 come from?",
                         frame_sets=[*shown, FrameSet("a.mp4", 6, (4,))], options=["fragment 1", "fragment 2"],
                         answer_index=1)
    prompt = build_example(sample, PromptTemplates(state_duration=False), 0.0)["prompt"]
    assert prompt.startswith("The video shows 2 fragments one after another: fragment 1 is frames 1-3 and "
                             "fragment 2 is frames 4-6. Then frame 7 repeats part of that clip.")


def test_questions_of_a_video_share_its_draw() -> None:
    samples = [s for s in _build().samples if s.video_path == "v0.mp4"]
    own = {(f.sample_size, f.seed) for s in samples for f in s.frame_sets if f.video_path == "v0.mp4"}
    assert len(own) == 1


# Frames at load time, on real clips whose frames say their index (tests/data_modules/conftest.py).


@pytest.fixture(scope="module")
def two_videos(tmp_path_factory: pytest.TempPathFactory, write_video) -> list[str]:
    folder = tmp_path_factory.mktemp("fragments")
    return [str(write_video(folder / f"{name}.mp4", num_frames=30, fps=10, gop=10)) for name in ("a", "b")]


def test_fragment_clip_concatenates_sets_with_presentation_times(two_videos, decode_index, monkeypatch) -> None:
    calls = []
    original = fragments.read_video
    monkeypatch.setattr(fragments, "read_video", lambda *a, **k: calls.append(a[0]) or original(*a, **k))
    a, b = two_videos
    sets = [FrameSet(a, 6, (3, 4, 5)), FrameSet(b, 6, (0, 1, 2)), FrameSet(a, 6, (0, 1, 2))]
    sample = VideoSample("s", a, "fragment_consistency", "q", frame_sets=sets, label=False)
    frames, times = fragment_clip(sample, strategy="uniform")
    uniform_six = [2, 7, 12, 17, 22, 27]  # bin centres of 6 bins over 30 frames
    expected = [uniform_six[p] for p in (3, 4, 5, 0, 1, 2, 0, 1, 2)]
    assert [decode_index(f.numpy()) for f in frames] == expected
    assert times.tolist() == [float(k) for k in range(9)]
    assert calls == [a, b]


def test_undecodable_frame_set_is_named(two_videos, tmp_path: Path) -> None:
    missing = str(tmp_path / "gone.mp4")
    sample = VideoSample("fragments/train:00007_fragment_consistency", two_videos[0], "fragment_consistency", "q",
                         frame_sets=[FrameSet(two_videos[0], 6, (0, 1, 2)), FrameSet(missing, 6, (3, 4, 5))])
    with pytest.raises(VideoError, match=r"gone.mp4: frame set 2 of fragments/train:00007_fragment_consistency "
                                         r"\(6-frame draw\): no such video file"):
        fragment_clip(sample)


class _Processor:
    def prepare_video(self, frames: torch.Tensor, timestamps: torch.Tensor) -> tuple[int, list[float]]:
        return frames.shape[0], timestamps.tolist()


def test_dataset_items_hide_the_duration(two_videos) -> None:
    build = build_fragment_samples(two_videos, FragmentConfig(max_frames=4), "val", frame_counts_of(two_videos))
    data = FragmentDataset(build.samples, _Processor(), strategy="motion")
    item = data[0]
    assert item["sample"].task == "fragment_counting"
    assert item["visual"][0] == len(item["sample"].frame_sets[0].picks)
    assert not item["prompt"].startswith("The video lasts")
    bad = FragmentDataset([VideoSample("s", "x.mp4", "fragment_counting", "q", options=["3"], answer_index=0,
                                       frame_sets=[FrameSet("x.mp4", 3, (0, 1, 2))])], _Processor(),
                          on_bad_video="skip")
    assert bad[0] == {"skipped": "x.mp4", "fault": "missing"}


def frame_counts_of(videos: list[str]) -> dict[str, int]:
    return fragments.frame_counts(videos)


@pytest.mark.parametrize("picks", [(), (2, 1), (1, 1), (0, 6)])
def test_frame_set_rejects_picks_outside_its_draw(picks: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="must ascend within"):
        FrameSet("v.mp4", 6, picks)


def test_cached_draws_decode_each_video_once(two_videos, monkeypatch) -> None:
    calls = []
    original = fragments.read_video
    monkeypatch.setattr(fragments, "read_video", lambda *a, **k: calls.append(a[0]) or original(*a, **k))
    build = build_fragment_samples(two_videos, FragmentConfig(max_frames=4), "val", frame_counts_of(two_videos))
    data = FragmentDataset(build.samples, _Processor(), decode_size=(16, 16), cache_draws=True)
    items = [data[i] for i in range(len(data))]
    assert len(items) == 10
    assert sorted(calls) == sorted(two_videos)


class _KeepFrames:
    def prepare_video(self, frames: torch.Tensor, timestamps: torch.Tensor) -> torch.Tensor:
        return frames


def test_a_motion_index_leaves_the_training_items_unchanged_and_scores_each_video_once(two_videos, tmp_path,
                                                                                        monkeypatch) -> None:
    """Training draws (within bins, seeded per frame set) through a motion index: the same frames as without it,
    and a second dataset over the same index (the next epoch, run or worker) scores no video again."""
    build = build_fragment_samples(two_videos, FragmentConfig(max_frames=4), "train", frame_counts_of(two_videos))
    plain = FragmentDataset(build.samples, _KeepFrames(), decode_size=(16, 16), cache_draws=True)
    indexed = FragmentDataset(build.samples, _KeepFrames(), decode_size=(16, 16), cache_draws=True,
                              motion_index=tmp_path / "index")
    expected = torch.cat([plain[i]["visual"] for i in range(len(plain))])
    scored = []
    original = video.motion_scores
    monkeypatch.setattr(video, "motion_scores", lambda grey, *a: scored.append(len(grey)) or original(grey, *a))
    assert torch.equal(torch.cat([indexed[i]["visual"] for i in range(len(indexed))]), expected)
    assert len(scored) == len(two_videos) == len(list((tmp_path / "index").glob("*.npz")))
    again = FragmentDataset(build.samples, _KeepFrames(), decode_size=(16, 16), motion_index=tmp_path / "index")
    assert torch.equal(torch.cat([again[i]["visual"] for i in range(len(again))]), expected)
    assert len(scored) == len(two_videos)

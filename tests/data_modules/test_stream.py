"""The pretraining stream: deterministic per (seed, index), sharded by whole batches, resumable, never a
benchmark clip, rendered like the decoded mp4s; and sharing the generator's code left the benchmark unchanged."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from data_modules.stream import (
    STREAM_TAG,
    StreamOptions,
    SyntheticStream,
    render_frames,
    stream_sample,
    stream_scene,
)
from data_modules.synthetic import (
    SPLITS,
    GeneratorConfig,
    draw_frames,
    generate,
    sample_scene,
)
from data_modules.tasks import PromptTemplates
from data_modules.video import read_video

TINY = {"seed": 7, "n_train": 6, "n_val": 2, "n_test": 2, "min_duration": 6, "max_duration": 9, "size": 48, "fps_choices": (5, 6)}
SHORT = StreamOptions(min_duration=6, max_duration=10)


class FramesOnly:
    """A processor stand-in: the 'visual' is the frames themselves (the stream's own output)."""

    def prepare_video(self, frames: torch.Tensor, timestamps: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"frames": frames, "timestamps": timestamps}


def stream(options: StreamOptions = SHORT, batch_size: int = 3, start: int = 0) -> SyntheticStream:
    return SyntheticStream(FramesOnly(), options, PromptTemplates(state_duration=False), batch_size, start=start)


def same_item(a: dict, b: dict) -> bool:
    return (a["sample"] == b["sample"] and a["prompt"] == b["prompt"] and a["answer"] == b["answer"]
            and torch.equal(a["visual"]["frames"], b["visual"]["frames"])
            and torch.equal(a["visual"]["timestamps"], b["visual"]["timestamps"]))


def test_same_seed_and_index_give_identical_frames_and_answers():
    first, again = stream(), stream()
    for index in (0, 5, 123456):
        assert same_item(first.item(index), again.item(index))


def test_other_index_or_seed_gives_another_item():
    items = [stream().item(i) for i in range(4)]
    other_seed = stream(StreamOptions(seed=1, min_duration=6, max_duration=10)).item(0)
    assert not same_item(items[0], other_seed)
    assert len({(i["sample"].query, i["answer"], i["visual"]["frames"].sum().item()) for i in items}) == 4


def loader_items(workers: int, batches: int, start: int = 0) -> list[dict]:
    loader = DataLoader(stream(start=start), batch_size=3, num_workers=workers, collate_fn=list)
    out = []
    for batch, items in zip(range(batches), loader):
        out += items
    return out


def test_two_workers_give_the_batches_of_one():
    one, two = loader_items(0, 4), loader_items(2, 4)
    assert [i["sample"].sample_id for i in one] == [i["sample"].sample_id for i in two]
    assert all(same_item(a, b) for a, b in zip(one, two))
    assert [i["sample"].meta["vid"] for i in one[:4]] == [f"stream_{k:09d}" for k in range(4)]


def test_a_resumed_stream_continues_where_it_stopped():
    """Starting at item ``step * batch_size`` replays the uninterrupted stream from that step on."""
    whole, resumed = loader_items(0, 3), loader_items(0, 1, start=2 * 3)
    assert all(same_item(a, b) for a, b in zip(whole[6:], resumed))


def test_the_stream_never_draws_a_benchmark_clip():
    assert STREAM_TAG not in range(len(SPLITS))
    config = GeneratorConfig()
    benchmark = {sample_scene(config, split, i).objects for split in SPLITS for i in range(300)}
    drawn = {stream_scene(StreamOptions(), i).objects for i in range(300)}
    assert not benchmark & drawn


def test_curriculum_items_are_single_object_then_the_benchmark_mix():
    options = StreamOptions(single_object_items=50)
    assert all(not stream_scene(options, i).distractors for i in range(50))
    counts = {len(stream_scene(options, i).distractors) for i in range(50, 120)}
    assert counts == {0, 1, 2}


def test_any_object_queries_name_an_object_of_the_clip_with_its_window():
    options = StreamOptions(weights=(1, 0, 0, 0), any_object=1.0)
    roles = set()
    for index in range(60):
        scene, sample = stream_scene(options, index), stream_sample(options, stream_scene(options, index), index)
        named = next(o for o in scene.objects if f"the {o.name} appears." == sample.query)
        assert sample.windows == [(float(named.start), float(named.end))]
        roles.add(named.role)
    assert roles == {"target", "distractor"}


def test_swapped_statements_are_true_only_with_the_named_objects_own_interval():
    options = StreamOptions(weights=(0, 0, 0, 1), swapped_statements=1.0)
    labels = []
    for index in range(80):
        scene = stream_scene(options, index)
        sample = stream_sample(options, scene, index)
        if sample.meta["statement_type"] != "swapped":
            assert not scene.distractors
            continue
        named = next(o for o in scene.objects if sample.query.startswith(f"The {o.name} is visible"))
        own = f"from {named.start} s to {named.end} s." in sample.query
        assert sample.label == own
        labels.append(sample.label)
    assert 0.3 < np.mean(labels) < 0.7


def test_rendered_frames_match_the_decoded_mp4(tmp_path: Path):
    """Same sampled times; pixels within the H.264 noise of the benchmark's own decode (mean |diff| < 3 levels)."""
    out = generate(tmp_path / "bench", workers=1, **{**TINY, "n_train": 2, "n_val": 0, "n_test": 0})
    config = GeneratorConfig(**{k: v for k, v in TINY.items()})
    for index in range(2):
        frames, times = render_frames(sample_scene(config, "train", index), 1.0, 40, (56, 56))
        clip = read_video(out / "videos" / f"train_{index:05d}.mp4", fps=1.0, max_frames=40, size=(56, 56))
        assert torch.equal(times, clip.timestamps)
        assert (frames.float() - clip.frames.float()).abs().mean() < 3


def test_the_benchmark_is_byte_identical_after_sharing_its_code(tmp_path: Path):
    """Digests taken from the generator before ``scene_from_rng``/``draw_frames(indices)`` were split out:
    every annotation file and meta.json, and every drawn frame (x264's bytes are left out: they depend on
    the codec build, not on this code)."""
    out = generate(tmp_path / "bench", workers=1, **TINY)
    annotations = hashlib.sha256()
    for path in sorted(out.rglob("*")):
        if path.is_file() and path.suffix != ".mp4":
            annotations.update(str(path.relative_to(out)).encode())
            annotations.update(path.read_bytes())
    frames = hashlib.sha256()
    config = GeneratorConfig(**TINY)
    for split in SPLITS:
        for index in range(config.count(split)):
            for frame in draw_frames(sample_scene(config, split, index)):
                frames.update(frame.tobytes())
    assert annotations.hexdigest() == "3dbc5f9dfe3a7dc0adc3df9ff3e9af6450666ffb1647b183efe4eb17eee08ffd"
    assert frames.hexdigest() == "06ec314177a873ca87293bb8f0e54cd2f8bc6bd3ebbcc4e3e6523fb669bd71d3"


def test_options_are_validated():
    with pytest.raises(ValueError, match="weights"):
        StreamOptions(weights=(1, 0, 0))
    with pytest.raises(ValueError, match="any_object"):
        StreamOptions(any_object=1.5)
    with pytest.raises(ValueError, match="batch_size"):
        stream(batch_size=0)

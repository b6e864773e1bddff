"""The synthetic benchmark: deterministic, decodable, and its annotations tell the truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from data_modules.formats import read_charades_sta, read_keyframes, read_mcq, read_qvhighlights, read_verify
from data_modules.synthetic import MOMENT_QUERY, annotate_difficulty, generate, main, query_swap_samples
from data_modules.video import probe, read_video
from groundlight.metrics.parse import format_window

TINY = {
    "seed": 7,
    "n_train": 6,
    "n_val": 2,
    "n_test": 2,
    "min_duration": 6,
    "max_duration": 9,
    "size": 48,
    "fps_choices": (5, 6),
}


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("synthetic") / "a", workers=2, **TINY)


@pytest.fixture(scope="module")
def videos(bench: Path) -> dict:
    return json.loads((bench / "meta.json").read_text())["videos"]


def objects_by_name(video: dict) -> dict[str, dict]:
    return {f"{o['colour']} {o['shape']}": o for o in video["objects"]}


def test_same_seed_gives_identical_files_whatever_the_workers(bench: Path, tmp_path: Path) -> None:
    again = generate(tmp_path / "b", workers=1, **TINY)
    files = sorted(p.relative_to(bench) for p in bench.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert len(files) == 1 + 10 + 5 * 3
    for name in files:
        assert (bench / name).read_bytes() == (again / name).read_bytes(), name


def test_another_seed_gives_other_clips(bench: Path, tmp_path: Path) -> None:
    other = generate(tmp_path / "c", workers=1, **{**TINY, "seed": 8, "n_train": 2, "n_val": 0, "n_test": 0})
    assert (other / "charades_sta" / "train.txt").read_text() != (bench / "charades_sta" / "train.txt").read_text()


def test_meta_records_the_generator_args(bench: Path) -> None:
    meta = json.loads((bench / "meta.json").read_text())
    assert meta["seed"] == 7 and meta["args"]["fps_choices"] == [5, 6] and "workers" not in meta["args"]
    assert [v["split"] for v in meta["videos"].values()] == ["train"] * 6 + ["val"] * 2 + ["test"] * 2


def test_videos_decode_with_the_recorded_timing(bench: Path, videos: dict) -> None:
    for vid, video in videos.items():
        info = probe(bench / video["path"])
        assert (info.duration, info.fps, info.num_frames) == (
            video["duration"],
            video["fps"],
            video["duration"] * video["fps"],
        ), vid
        assert [info.height, info.width] == video["size"] == [48, 48]


def test_objects_are_on_screen_exactly_during_their_intervals(bench: Path, videos: dict) -> None:
    """At 1 fps, a frame has bright object pixels iff some object's interval covers it."""
    for vid, video in videos.items():
        clip = read_video(bench / video["path"], fps=1.0)
        background = np.array(video["background"], dtype=np.int16)
        for second, frame in zip(clip.timestamps.tolist(), clip.frames.numpy().astype(np.int16), strict=True):
            object_pixels = int((np.abs(frame - background).max(axis=-1) > 60).sum())
            visible = any(o["interval"][0] <= second < o["interval"][1] for o in video["objects"])
            assert (object_pixels >= 10) == visible, (vid, second, object_pixels)


def test_intervals_and_distractor_rules(videos: dict) -> None:
    for vid, video in videos.items():
        duration, (target, *distractors) = video["duration"], video["objects"]
        assert target["role"] == "target" and all(d["role"] == "distractor" for d in distractors)
        assert video["n_distractors"] == len(distractors) <= 2
        kinds = [(o["colour"], o["shape"]) for o in video["objects"]]
        assert len(set(kinds)) == len(kinds), vid
        for obj in video["objects"]:
            start, end = obj["interval"]
            assert 0 <= start < end <= duration and isinstance(start, int) and isinstance(end, int)
        length = target["interval"][1] - target["interval"][0]
        assert np.ceil(0.1 * duration) <= length <= max(np.ceil(0.1 * duration), np.floor(0.4 * duration)), vid
        for d in distractors:
            (a, b), (s, e) = target["interval"], d["interval"]
            overlap = max(0, min(b, e) - max(a, s))
            assert overlap / (b - a + e - s - overlap) < 0.5, vid


def test_charades_and_qvhighlights_agree_with_meta(bench: Path, videos: dict) -> None:
    for split, count in (("train", 6), ("val", 2), ("test", 2)):
        moments = read_charades_sta(bench / "charades_sta" / f"{split}.txt", bench / "videos")
        highlights = read_qvhighlights(bench / "qvhighlights" / f"{split}.jsonl", bench / "videos")
        assert len(moments) == len(highlights) == count
        for moment, highlight in zip(moments, highlights, strict=True):
            video = videos[Path(moment.video_path).stem]
            target = video["objects"][0]
            assert moment.query == MOMENT_QUERY.format(colour=target["colour"], shape=target["shape"])
            assert moment.windows == highlight.windows == [tuple(float(t) for t in target["interval"])]
            assert Path(moment.video_path).is_file() and highlight.duration == video["duration"]
            relevant = [i for i, scores in enumerate(highlight.saliency) if any(scores)]
            assert relevant == highlight.meta["relevant_clip_ids"]
            assert relevant == [
                i
                for i in range(len(highlight.saliency))
                if 2 * i < target["interval"][1] and 2 * i + 2 > target["interval"][0]
            ]


def check_answer(question_type: str, answer: str, video: dict, keyframes: list[float]) -> None:
    """The marked option is true of the clip, and the keyframes show the evidence."""
    objects = objects_by_name(video)
    first = min(video["objects"], key=lambda o: o["interval"][0])
    target = video["objects"][0]
    if question_type == "which_object":
        shown = objects[answer]
        assert all(shown["interval"][0] <= t < shown["interval"][1] for t in keyframes)
    elif question_type == "first_colour":
        assert answer == first["colour"] and keyframes[0] == first["interval"][0]
    elif question_type == "when":
        assert answer == format_window(*target["interval"], decimals=0)
        assert keyframes == [float(t) for t in range(*target["interval"])]
    else:
        assert answer == str(len(video["objects"]))


def test_questions_and_keyframes_agree_with_meta(bench: Path, videos: dict) -> None:
    questions = read_mcq(bench / "mcq" / "train.json", bench / "videos")
    keyframed = read_keyframes(bench / "keyframes" / "train.json", bench / "videos")
    assert [q.query for q in questions] == [k.query for k in keyframed] and len(questions) >= 3 * 6
    for question, keyed in zip(questions, keyframed, strict=True):
        assert len(question.options) == len(set(question.options)) == 4
        assert (question.options, question.answer_index) == (keyed.options, keyed.answer_index)
        video = videos[question.meta["vid"]]
        check_answer(question.meta["question_type"], question.options[question.answer_index], video, keyed.keyframes)


def test_verify_statements_are_balanced_and_true_to_meta(bench: Path, videos: dict) -> None:
    statements = read_verify(bench / "verify" / "train.jsonl", bench / "videos")
    assert sum(s.label for s in statements) == len(statements) // 2 == 6
    for statement in statements:
        objects = objects_by_name(videos[statement.meta["vid"]])
        words = statement.query.split()
        named = objects.get(f"{words[1]} {words[2]}")
        if statement.meta["statement_type"] == "presence":
            assert statement.label == (named is not None)
        else:
            stated = [int(w) for w in words if w.isdigit()]
            assert statement.label == (stated == named["interval"])
            assert statement.windows == [tuple(float(t) for t in named["interval"])]


def test_query_swap_names_the_distractor(bench: Path, videos: dict) -> None:
    swapped = query_swap_samples(bench, "train")
    with_distractors = [vid for vid, v in videos.items() if v["split"] == "train" and v["n_distractors"]]
    assert [s.meta["vid"] for s in swapped] == with_distractors
    for sample in swapped:
        distractor = videos[sample.meta["vid"]]["objects"][1]
        assert sample.query == MOMENT_QUERY.format(colour=distractor["colour"], shape=distractor["shape"])
        assert sample.windows == [tuple(float(t) for t in distractor["interval"])]
        assert Path(sample.video_path).is_file()


def test_annotate_difficulty_copies_distractor_counts(bench: Path, videos: dict) -> None:
    samples = annotate_difficulty(read_charades_sta(bench / "charades_sta" / "val.txt", bench / "videos"), bench)
    assert [s.meta["n_distractors"] for s in samples] == [videos[s.meta["vid"]]["n_distractors"] for s in samples]


def test_cli_writes_a_benchmark(tmp_path: Path) -> None:
    argv = ["--out", str(tmp_path / "cli"), "--seed", "1", "--n-train", "1", "--n-val", "1", "--n-test", "0"]
    assert (
        main(
            [
                *argv,
                "--min-duration",
                "6",
                "--max-duration",
                "6",
                "--size",
                "32",
                "--workers",
                "1",
                "--fps-choices",
                "4",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "cli" / "videos").iterdir()) == ["train_00000.mp4", "val_00000.mp4"]
    assert probe(tmp_path / "cli" / "videos" / "val_00000.mp4").fps == 4.0

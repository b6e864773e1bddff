"""FineVidBench-style questions on the embedded benchmark: exact answers, 1-fps fragment videos, old files untouched."""

from __future__ import annotations

import hashlib
from pathlib import Path

import av
import pytest

from data_modules.finevid import LEVELS, QUESTIONS, generate_finevid, scene_questions
from data_modules.readers import read_task_split
from data_modules.synthetic import SPLITS, GeneratorConfig, generate

TINY = {"seed": 0, "n_train": 3, "n_val": 1, "n_test": 1, "min_duration": 6, "max_duration": 10, "size": 48}

# sha256 of the benchmark's own files for TINY, before FineVid existed (and after: it must not touch them)
PINNED = {
    "charades_sta/test.txt": "3ce4b8fb53bb00cfa5699bc9d3f6e65e1bd11e867b40dee6c2d4d6e4203037b3",
    "charades_sta/train.txt": "e19d1ba8495a119b1edd2499ac8d259b2f189a526c6da06780373b2ccae7eb9c",
    "charades_sta/val.txt": "10de8ca3309410abd584af9c0ebde541a7c5db06cfcf3fea376653ee32e132d7",
    "keyframes/test.json": "65f73d1ac2c2b33f9e852297045c8c868ac490c133d1fb7f5ed4e0fd00a7e98e",
    "keyframes/train.json": "d4b2dc65cd582a0e478eecd0b52dc527de4c1ac4a4680071d7d3c81d428bcf93",
    "keyframes/val.json": "1c655ca0fe06dc479e8508264c2f7c56f7614d41837d8c7caff4364e6df94849",
    "mcq/test.json": "0a7e4800545a54b2a0e189e29e2fd0f62b6b3edd36e2c069d78848b3bb6caeb8",
    "mcq/train.json": "3db395a5e3efb57f393ef990baf24ebb68859c14dadcda57b11678a61e080078",
    "mcq/val.json": "766a471e5384b110fded852955027cc86ac6b4d1d5d27cfb551717ad62d3f797",
    "meta.json": "bab8b8bae9e4e980eef8b6116989b6a6934fe7e2cd5ea23b23fb9a9d2a3bebc7",
    "qvhighlights/test.jsonl": "c9d650656621169390a5e96a80936fbcd0f0ce5a3d16b4c176ad44deedf99954",
    "qvhighlights/train.jsonl": "21bf926599a94db45bc16619d142347539106bc38fc0a54e3ea9d958b35ab9a9",
    "qvhighlights/val.jsonl": "e22f82bbcbe4e704428646f7fc592a8abe432287a5624c8d7de40e9846d92f2f",
    "verify/test.jsonl": "c3eae2d27605e63c1320dcb95a16477ce389eda85a8de8efc7fd767fbc9983a0",
    "verify/train.jsonl": "3ce2a028ef9de7f879c5ceb69648baced81fd19afbfb681273840d88bf0147e5",
    "verify/val.jsonl": "2cdcc2436d2dd576340c3db385b0509069c034e9f97ab779591c7546c88de8f5",
}


def _hashes(root: Path) -> dict[str, str]:
    return {name: hashlib.sha256((root / name).read_bytes()).hexdigest() for name in PINNED}


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = generate(tmp_path_factory.mktemp("finevid") / "bench", workers=1, **TINY)
    before = _hashes(root)
    generate_finevid(root)
    return root, before


def test_benchmark_files_are_pinned_and_untouched(bench) -> None:
    root, before = bench
    assert before == PINNED
    assert _hashes(root) == PINNED


def _frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_questions_are_mcq_records_with_fragment_videos(bench) -> None:
    root, _ = bench
    samples = [s for split in SPLITS for s in read_task_split(root, "finevid", split)]
    kinds = {s.meta["question_type"] for s in samples}
    assert kinds == set(LEVELS)
    for sample in samples:
        fragment = LEVELS[sample.meta["question_type"]] == "fragment"
        assert sample.meta["domain"] == f"finevid_{LEVELS[sample.meta['question_type']]}"
        assert Path(sample.video_path).exists()
        assert ("/finevid/" in sample.video_path) is fragment
        if fragment:
            assert _frames(Path(sample.video_path)) == sample.duration
        if sample.meta["question_type"] == "frame_count":
            assert sample.options[sample.answer_index] == str(_frames(Path(sample.video_path)))


CONFIG = GeneratorConfig(**TINY, workers=1)


def _questions():
    for split in SPLITS:
        for index in range(CONFIG.count(split)):
            scene, questions = scene_questions(CONFIG, split, index)
            for question in questions:
                yield scene, question


def _named(scene, text: str):
    (obj,) = [o for o in scene.objects if f" {o.name} " in f" {text} "]
    return obj


def test_order_answers_restore_time_order() -> None:
    seen = set()
    for _, q in _questions():
        if q.kind == "rearrangement":
            restored = [q.times[int(n) - 1] for n in q.answer.split(", ")]
            assert restored == sorted(q.times) != q.times
        elif q.kind == "adjust_or_not":
            assert (q.answer == "yes") is (q.times != sorted(q.times))
        seen.add(q.kind)
    assert {"rearrangement", "adjust_or_not"} <= seen


def test_scene_answers_agree_with_the_objects() -> None:
    for scene, q in _questions():
        if q.kind == "effect":
            gone = _named(scene, q.text)
            assert int(q.answer) == sum(o.visible(gone.end) for o in scene.objects)
        elif q.kind == "meaning_of_order":
            obj = _named(scene, q.text)
            first, last = obj.visible(q.times[0]), obj.visible(q.times[-1])
            assert first != last
            assert q.answer == ("it disappears" if first else "it appears")
        elif q.kind == "frame_comparison":
            obj = _named(scene, q.text)
            (x1, y1), (x2, y2) = (obj.position(t, scene.side) for t in q.times)
            moved = {"left": x1 - x2, "right": x2 - x1, "up": y1 - y2, "down": y2 - y1}
            assert max(moved, key=moved.get) == q.answer
        elif q.kind == "speed" and len(q.options) > 2:
            fastest = max(scene.objects, key=lambda o: o.vx**2 + o.vy**2)
            assert q.answer == fastest.name


def test_generation_is_deterministic(bench) -> None:
    root, _ = bench
    first = (root / "finevid" / "train.json").read_bytes()
    generate_finevid(root)
    assert (root / "finevid" / "train.json").read_bytes() == first


def test_question_texts_are_snapshotted() -> None:
    assert QUESTIONS == {
        "action": "Which way is the {colour} {shape} moving when it appears?",
        "effect": "How many objects are on screen right after the {colour} {shape} disappears?",
        "speed": "Which object moves fastest?",
        "speed_alone": "Does the {colour} {shape} move slowly or quickly?",
        "frame_count": "How many frames does the video show?",
        "meaning_of_order": "Does the {colour} {shape} appear or disappear in this video?",
        "frame_comparison": "From the first frame to the second, which way does the {colour} {shape} move?",
        "adjust_or_not": "Do these frames need to be reordered to play in the order in which they happened?",
        "rearrangement": "The frames are shuffled. Which order of the shown frames restores the order in which "
        "they happened?",
    }

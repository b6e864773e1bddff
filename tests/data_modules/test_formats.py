"""Official-format readers: what they return, and how they fail on malformed lines."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from data_modules.formats import (
    read_charades_sta,
    read_keyframes,
    read_mcq,
    read_qvhighlights,
    read_verify,
    write_charades_sta,
    write_keyframes,
    write_mcq,
    write_qvhighlights,
    write_verify,
)
from data_modules.samples import AnnotationError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def jsonl(path: Path, rows: list[dict]) -> Path:
    return write(path, "".join(json.dumps(row) + "\n" for row in rows))


def assert_fails_at(reader, path: Path, line: int, problem: str) -> None:
    """The error names the file, the line, and the problem."""
    with pytest.raises(AnnotationError, match=rf"{re.escape(path.name)}:{line}: .*{problem}") as caught:
        reader(path, "/videos")
    assert caught.value.line == line


# ---- Charades-STA ---------------------------------------------------------------------------

CHARADES = (
    "AB12C 0.0 6.9##person opens the door.\n\nAB12C 24.3 30.4##person sits down.\nZZ9QX 1.5 3##a person laughs.\n"
)


def test_charades_reads_windows_queries_and_paths(tmp_path: Path) -> None:
    samples = read_charades_sta(write(tmp_path / "charades_sta" / "test.txt", CHARADES), tmp_path / "videos")
    assert [s.windows for s in samples] == [[(0.0, 6.9)], [(24.3, 30.4)], [(1.5, 3.0)]]
    assert [s.query for s in samples] == ["person opens the door.", "person sits down.", "a person laughs."]
    assert samples[2].video_path == str(tmp_path / "videos" / "ZZ9QX.mp4")
    assert [s.sample_id for s in samples] == [
        "charades_sta/test.txt:1",
        "charades_sta/test.txt:3",
        "charades_sta/test.txt:4",
    ]
    assert {s.task for s in samples} == {"moment_retrieval"} and samples[1].source.endswith("test.txt:3")


def test_charades_round_trip(tmp_path: Path) -> None:
    first = read_charades_sta(write(tmp_path / "a" / "x.txt", CHARADES), "/v")
    again = read_charades_sta(write_charades_sta(tmp_path / "b" / "x.txt", first), "/v")
    assert (tmp_path / "b" / "x.txt").read_text() == CHARADES.replace("\n\n", "\n").replace(" 3##", " 3.0##")
    assert [(s.video_path, s.windows, s.query) for s in again] == [(s.video_path, s.windows, s.query) for s in first]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("AB12C 0.0 6.9 person opens the door.", "missing '##'"),
        ("AB12C 0.0 x6.9##person opens the door.", "end is not a number: 'x6.9'"),
        ("AB12C 7.0 6.9##person opens the door.", "reversed window: start 7 > end 6.9"),
        ("AB12C 0.0##person opens the door.", "expected '<vid> <start> <end>'"),
        ("AB12C -1 6.9##person opens the door.", r"outside the video \[0, inf\)"),
        ("AB12C 0.0 6.9##   ", "empty query"),
    ],
)
def test_charades_malformed_line_is_located(tmp_path: Path, line: str, problem: str) -> None:
    path = write(tmp_path / "bad.txt", f"AB12C 0.0 6.9##fine.\nAB12C 1.0 2.0##fine too.\n{line}\n")
    assert_fails_at(read_charades_sta, path, 3, problem)


# ---- QVHighlights ---------------------------------------------------------------------------

QVH_ROW = {
    "qid": 41,
    "query": "A dog runs along the beach.",
    "duration": 9,
    "vid": "dogbeach_0.0_9.0",
    "relevant_clip_ids": [1, 2, 4],
    "saliency_scores": [[1, 2, 3], [4, 4, 3], [0, 1, 2]],
    "relevant_windows": [[2, 6], [8, 9]],
}


def test_qvhighlights_dense_saliency(tmp_path: Path) -> None:
    """9 s = 5 clips; clips 1, 2, 4 carry scores, clips 0 and 3 get zeros."""
    (sample,) = read_qvhighlights(jsonl(tmp_path / "qvh" / "val.jsonl", [QVH_ROW]), tmp_path)
    assert sample.windows == [(2.0, 6.0), (8.0, 9.0)]
    assert sample.saliency == [[0, 0, 0], [1, 2, 3], [4, 4, 3], [0, 0, 0], [0, 1, 2]]
    assert (sample.duration, sample.meta["qid"], sample.sample_id) == (9.0, 41, "qvh/val.jsonl:qid41")
    assert sample.video_path == str(tmp_path / "dogbeach_0.0_9.0.mp4")


def test_qvhighlights_test_release_has_no_labels(tmp_path: Path) -> None:
    row = {k: QVH_ROW[k] for k in ("qid", "query", "duration", "vid")}
    (sample,) = read_qvhighlights(jsonl(tmp_path / "test.jsonl", [row]), tmp_path)
    assert sample.windows == [] and sample.saliency is None


def test_qvhighlights_round_trip(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "a.jsonl", [QVH_ROW])
    written = write_qvhighlights(tmp_path / "b.jsonl", read_qvhighlights(path, tmp_path))
    assert json.loads(written.read_text()) == QVH_ROW


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"query": None}, "missing field 'query'"),
        ({"duration": "long"}, "field 'duration' is not a number"),
        ({"relevant_windows": [[6, 2]]}, "reversed window: start 6 > end 2"),
        ({"relevant_windows": [[2, 12]]}, r"window \[2, 12\] is outside the video \[0, 9\]"),
        ({"relevant_windows": [[2]]}, "not a \\[start, end\\] pair"),
        ({"saliency_scores": [[1, 2, 3]]}, "one score list per relevant clip"),
        ({"relevant_clip_ids": [1, 2, 7]}, "clip id 7 is outside the video's 5 clips"),
        ({"saliency_scores": [[1, 2, 3], [4, 9, 3], [0, 1, 2]]}, "3 integers in 0..4"),
    ],
)
def test_qvhighlights_malformed_line_is_located(tmp_path: Path, change: dict, problem: str) -> None:
    path = jsonl(tmp_path / "bad.jsonl", [QVH_ROW, {**QVH_ROW, "qid": 42, **change}])
    assert_fails_at(read_qvhighlights, path, 2, problem)


def test_qvhighlights_invalid_json_is_located(tmp_path: Path) -> None:
    path = write(tmp_path / "broken.jsonl", json.dumps(QVH_ROW) + '\n{"qid": 1, "query": \n')
    assert_fails_at(read_qvhighlights, path, 2, "invalid JSON")


def test_duplicate_ids_are_rejected(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "dup.jsonl", [QVH_ROW, QVH_ROW])
    with pytest.raises(AnnotationError, match=r"dup\.jsonl: duplicate sample id"):
        read_qvhighlights(path, tmp_path)


# ---- multiple choice and keyframes ----------------------------------------------------------

MCQ_ROW = {
    "id": "v1_q0",
    "video_id": "v1",
    "question": "What colour is the ball?",
    "options": ["red", "green", "blue", "white"],
    "answer_index": 2,
    "duration": 12,
}


def json_list(path: Path, rows: list[dict]) -> Path:
    """Pretty-printed, so records span several lines, as hand-made files do."""
    return write(path, json.dumps(rows, indent=2))


def test_mcq_reads_options_and_answer(tmp_path: Path) -> None:
    (sample,) = read_mcq(json_list(tmp_path / "mcq" / "val.json", [MCQ_ROW]), tmp_path)
    assert (sample.task, sample.query, sample.answer_index) == ("mcq", "What colour is the ball?", 2)
    assert sample.options[sample.answer_index] == "blue" and sample.video_path == str(tmp_path / "v1.mp4")


def test_mcq_exact_fields_get_a_stable_shuffle(tmp_path: Path) -> None:
    """ExAct records name the truth and the negatives; the id seeds the option order."""
    rows = [
        {"id": f"clip{i}", "groundTruth": "Keep the back straight.", "negative_comments": ["a", "b", "c", "d"]}
        for i in range(8)
    ]
    samples = read_mcq(write(tmp_path / "exact.json", json.dumps(rows)), tmp_path)
    assert all(s.options[s.answer_index] == "Keep the back straight." and len(s.options) == 5 for s in samples)
    assert len({s.answer_index for s in samples}) > 1
    assert [s.options for s in read_mcq(tmp_path / "exact.json", tmp_path)] == [s.options for s in samples]
    assert samples[3].video_path == str(tmp_path / "clip3.mp4")


def test_mcq_round_trip(tmp_path: Path) -> None:
    first = read_mcq(json_list(tmp_path / "a.json", [MCQ_ROW]), tmp_path)
    again = read_mcq(write_mcq(tmp_path / "b.json", first), tmp_path)
    assert [(s.query, s.options, s.answer_index, s.duration) for s in again] == [
        (s.query, s.options, s.answer_index, s.duration) for s in first
    ]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"answer_index": 4}, "answer_index 4 is outside the 4 options"),
        ({"answer_index": "2"}, "'answer_index' must be an integer"),
        ({"options": None, "groundTruth": "red"}, "missing field 'negative_comments'"),
        ({"options": ["only one"], "answer_index": 0}, "at least 2 options"),
    ],
)
def test_mcq_malformed_record_names_its_line(tmp_path: Path, change: dict, problem: str) -> None:
    """In an indent-2 list the error points at the line where the bad record opens."""
    path = json_list(tmp_path / "bad.json", [MCQ_ROW, {**MCQ_ROW, "id": "v1_q1", **change}])
    opening = [n for n, line in enumerate(path.read_text().splitlines(), start=1) if line.strip() == "{"]
    assert opening[1] == 15
    assert_fails_at(read_mcq, path, opening[1], problem)


KEYFRAME_ROW = {**MCQ_ROW, "sample_key": "v1_q0", "fps": 8, "retrieval_frames": [0, 12, 40]}


def test_keyframes_become_seconds(tmp_path: Path) -> None:
    (sample,) = read_keyframes(jsonl(tmp_path / "k.jsonl", [KEYFRAME_ROW]), tmp_path)
    assert sample.keyframes == [0.0, 1.5, 5.0] and sample.meta["fps"] == 8.0


def test_keyframes_round_trip(tmp_path: Path) -> None:
    first = read_keyframes(json_list(tmp_path / "a.json", [KEYFRAME_ROW]), tmp_path)
    again = read_keyframes(write_keyframes(tmp_path / "b.json", first), tmp_path)
    assert again[0].keyframes == first[0].keyframes and again[0].options == first[0].options


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"retrieval_frames": [0, 200]}, r"retrieval frame 200 \(25 s\) is outside the video \[0, 12\]"),
        ({"retrieval_frames": [0, 1.5]}, "must be a list of frame indices"),
        ({"fps": 0}, "fps must be positive"),
        ({"sample_key": None}, "missing field 'sample_key'"),
    ],
)
def test_keyframes_malformed_line_is_located(tmp_path: Path, change: dict, problem: str) -> None:
    path = jsonl(tmp_path / "bad.jsonl", [KEYFRAME_ROW, {**KEYFRAME_ROW, "sample_key": "v1_q1"} | change])
    assert_fails_at(read_keyframes, path, 2, problem)


# ---- verification ---------------------------------------------------------------------------

VERIFY_ROW = {
    "id": "v1_s0",
    "vid": "v1",
    "duration": 10,
    "statement": "The red circle is visible from 2 s to 5 s.",
    "label": True,
    "relevant_windows": [[2, 5]],
}


def test_verify_reads_label_and_evidence(tmp_path: Path) -> None:
    false_row = {
        **VERIFY_ROW,
        "id": "v1_s1",
        "statement": "A blue square appears in the video.",
        "label": False,
        "relevant_windows": [],
    }
    samples = read_verify(jsonl(tmp_path / "verify.jsonl", [VERIFY_ROW, false_row]), tmp_path)
    assert [(s.task, s.label, s.windows) for s in samples] == [("verify", True, [(2.0, 5.0)]), ("verify", False, [])]
    again = read_verify(write_verify(tmp_path / "again.jsonl", samples), tmp_path)
    assert [(s.query, s.label, s.windows) for s in again] == [(s.query, s.label, s.windows) for s in samples]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"label": "true"}, "'label' must be true or false"),
        ({"relevant_windows": [[2, 11]]}, "outside the video"),
        ({"statement": None}, "missing field 'statement'"),
    ],
)
def test_verify_malformed_line_is_located(tmp_path: Path, change: dict, problem: str) -> None:
    path = jsonl(tmp_path / "bad.jsonl", [VERIFY_ROW, {**VERIFY_ROW, "id": "v1_s1", **change}])
    assert_fails_at(read_verify, path, 2, problem)


@pytest.mark.parametrize("line, problem", [("v1 nan 3.0##a person sits.", "start is not a finite number"),
                                           ("v1 1.0 inf##a person sits.", "end is not a finite number")])
def test_charades_non_finite_times_name_the_line(tmp_path, line, problem):
    from data_modules.formats.charades_sta import read_charades_sta

    path = tmp_path / "test.txt"
    path.write_text("v1 0.0 2.0##a person stands.\n" + line + "\n")
    with pytest.raises(ValueError, match=rf"test.txt:2: {problem}"):
        read_charades_sta(path, tmp_path)


def test_qvhighlights_nan_duration_names_the_line(tmp_path):
    from data_modules.formats.qvhighlights import read_qvhighlights

    path = tmp_path / "val.jsonl"
    path.write_text('{"qid": 1, "query": "a dog", "vid": "v_0_10", "duration": NaN, "relevant_windows": [[0, 2]]}\n')
    with pytest.raises(ValueError, match=r"val.jsonl:1: field 'duration' is not a finite number"):
        read_qvhighlights(path, tmp_path)


@pytest.mark.parametrize("vid", ["../outside", "/etc/passwd", "a/../../b"])
def test_a_video_path_leaving_the_data_root_names_the_line(tmp_path, vid):
    from data_modules.formats.mcq import read_mcq

    path = tmp_path / "test.json"
    record = {"id": "q1", "video_id": vid, "question": "Which?", "options": ["a", "b"], "answer_index": 0}
    path.write_text(json.dumps([record]))
    with pytest.raises(ValueError, match=r"test.json:\d+: video path .* leaves the data root"):
        read_mcq(path, tmp_path / "videos")


def test_more_options_than_letters_is_refused_by_the_reader(tmp_path):
    from data_modules.formats.mcq import read_mcq

    path = tmp_path / "test.json"
    record = {"id": "q1", "question": "Which?", "options": [str(i) for i in range(11)], "answer_index": 0}
    path.write_text(json.dumps([record]))
    with pytest.raises(ValueError, match=r"test.json:\d+: 11 options: the prompt letters them A-J, at most 10"):
        read_mcq(path, tmp_path)


@pytest.mark.parametrize("name", ["test.txt", "test.jsonl", "test.json"])
def test_non_utf8_bytes_name_the_file_and_line(tmp_path, name):
    from data_modules.formats._records import numbered_lines, records

    path = tmp_path / name
    path.write_bytes(b'[\n{"id": 1},\n{"id": "caf\xe9"}\n]\n' if name.endswith(".json") else b'{"id": 1}\n{"id": "caf\xe9"}\n')
    with pytest.raises(ValueError, match=rf"{name}:\d: not UTF-8 text \(byte 0xe9"):
        list(numbered_lines(path)) if name.endswith(".txt") else records(path)


# ---- skipping bad records ---------------------------------------------------------------------

def test_each_error_names_its_kind(tmp_path):
    from data_modules.formats.llava_video import read_instructions
    from data_modules.formats.moments_in_time import read_moments_in_time

    cases = [
        (read_charades_sta, "a.txt", b"v1 nan 2.0##q\n", "non_finite"),
        (read_charades_sta, "b.txt", b"../v1 0.0 2.0##q\n", "path_escape"),
        (read_charades_sta, "c.txt", b"v1 0.0 2.0##caf\xe9\n", "bad_encoding"),
        (read_charades_sta, "d.txt", b"v1 0.0 2.0 q\n", "malformed"),
        (read_mcq, "e.json", json.dumps([{"id": "q", "question": "?", "options": list("abcdefghijk"),
                                          "answer_index": 0}]).encode(), "too_many_options"),
        # these two joined the path to the data root without the check
        (read_moments_in_time, "validationSet.csv", b"../../etc/x.mp4,label\n", "path_escape"),
        (read_instructions, "f.json", json.dumps([{"videos": ["/etc/x.mp4"], "messages": [
            {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}]).encode(), "path_escape"),
    ]
    for reader, name, content, kind in cases:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(AnnotationError, match=rf"{re.escape(name)}:1: ") as caught:
            reader(tmp_path / name, tmp_path / "videos")
        assert caught.value.kind == kind, name


def test_skipping_drops_each_bad_record_and_files_it_by_kind(tmp_path):
    """Within ``skipping_bad_records`` a reader reads past its bad records: the good ones come back, each bad one is
    filed once with its file and line (a JSON list's undecodable line reads as blank, a jsonl's broken line too)."""
    from data_modules.formats._records import AnnotationSkips
    from data_modules.readers import read_task_split

    write(tmp_path / "charades_sta" / "test.txt", "")
    (tmp_path / "charades_sta" / "test.txt").write_bytes(
        b"v1 0.0 2.0##good\nv1 nan 2.0##q\n../v1 0.0 2.0##q\nv1 0.0 2.0##caf\xe9\nv1 3.0 1.0##reversed\nv2 1 2##good\n")
    options = {"question": "?", "options": ["a", "b"], "answer_index": 0}
    (tmp_path / "mcq").mkdir()
    (tmp_path / "mcq" / "test.json").write_bytes(b"[\n" + b",\n".join([
        json.dumps({"id": "q1", **options}).encode(),
        json.dumps({"id": "q2", **options, "question": "caf\xe9"}, ensure_ascii=False).encode("latin-1"),
        json.dumps({"id": "q3", **options, "options": list("abcdefghijk")}).encode(),
        json.dumps({"id": "q4", **options, "duration": float("inf")}).encode(),
        json.dumps({"id": "q5", **options}).encode()]) + b"\n]\n")
    write(tmp_path / "verify" / "test.jsonl", '{"oops\n')

    skips = AnnotationSkips()
    moments = read_task_split(tmp_path, "charades_sta", "test", skips=skips)
    questions = read_task_split(tmp_path, "mcq", "test", skips=skips)
    assert read_task_split(tmp_path, "verify", "test", skips=skips) == []
    assert [s.query for s in moments] == ["good", "good"] and [s.meta["id"] for s in questions] == ["q1", "q5"]
    assert skips.counts() == {"non_finite": 2, "path_escape": 1, "bad_encoding": 2, "malformed": 2,
                              "too_many_options": 1}
    where = sorted(f"{Path(e.path).parent.name}:{e.line}" for e in skips.errors.values())
    assert where == ["charades_sta:2", "charades_sta:3", "charades_sta:4", "charades_sta:5", "mcq:3", "mcq:4",
                     "mcq:5", "verify:1"]
    read_task_split(tmp_path, "charades_sta", "test", skips=skips)  # read again: nothing is filed twice
    assert sum(skips.counts().values()) == 8
    with pytest.raises(AnnotationError, match=r"test.txt:4: not UTF-8 text"):  # without skips: the first error
        read_task_split(tmp_path, "charades_sta", "test")

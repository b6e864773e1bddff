"""``groundlight data check``: each fault of a data directory lands in the report by kind, naming what is wrong."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import pytest

from groundlight.tools.data_check import check, main
from tests.data_modules.conftest import index_frame, write_index_video


def _video(path: Path, frames: int, rotation: int = 0, faststart: bool = False) -> Path:
    with av.open(str(path), "w", options={"movflags": "faststart"} if faststart else {}) as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        stream.options = {"preset": "ultrafast", "threads": "1"}
        if rotation:
            stream.set_display_rotation(rotation)
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(index_frame(index), format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, 10)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


@pytest.fixture
def faulty(tmp_path: Path) -> Path:
    videos = tmp_path / "videos"
    videos.mkdir()
    write_index_video(videos / "good.mp4", num_frames=40, fps=10, gop=12)  # 4 s
    (videos / "corrupt.mp4").write_bytes(b"not a video")
    whole = _video(tmp_path / "whole.mp4", 100, faststart=True)  # 10 s, index first
    (videos / "cut.mp4").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    _video(videos / "phone.mp4", 40, rotation=90)
    (tmp_path / "charades_sta").mkdir()
    (tmp_path / "charades_sta" / "test.txt").write_text("\n".join([
        "good 0.5 2.0##the red circle appears.",
        "gone 0.0 1.0##the red circle appears.",
        "corrupt 0.0 1.0##the red circle appears.",
        "cut 0.0 1.0##the red circle appears.",
        "phone 0.0 1.0##the red circle appears.",
        "good 10.0 50.0##the blue square appears.",  # a window past the 4 s clip
    ]) + "\n")
    (tmp_path / "charades_sta" / "val.txt").write_text("good 0.5 2.0##fine\ngood nan 2.0##a NaN start\n")
    (tmp_path / "qvhighlights").mkdir()
    (tmp_path / "qvhighlights" / "test.jsonl").write_text(json.dumps({
        "qid": 7, "query": "the red circle appears.", "duration": 30, "vid": "good", "relevant_clip_ids": [0],
        "saliency_scores": [[1, 1, 1]], "relevant_windows": [[0, 2]]}) + "\n")
    return tmp_path


@pytest.mark.parametrize("workers", [0, 2])
def test_every_fault_is_reported_by_kind(faulty: Path, workers: int) -> None:
    report = check(faulty, workers=workers, progress=False)
    assert report["error_counts"] == {"non_finite": 1, "missing": 1, "corrupt": 1, "truncated": 1, "window_outside": 1,
                                      "duration_mismatch": 1}
    assert report["warning_counts"] == {"rotated": 1}
    by_kind = {e["kind"]: e for e in report["errors"]}
    assert "val.txt:2" in by_kind["non_finite"]["error"]
    assert by_kind["missing"]["video"].endswith("gone.mp4") and by_kind["corrupt"]["video"].endswith("corrupt.mp4")
    assert "cut short" in by_kind["truncated"]["error"]
    assert by_kind["window_outside"]["sample"].endswith("test.txt:6") and "[10.0, 50.0]" in by_kind["window_outside"]["error"]
    assert by_kind["duration_mismatch"]["sample"].endswith("test.jsonl:1")
    assert "annotates 30.00 s" in by_kind["duration_mismatch"]["error"]
    assert report["videos"] == 5 and report["samples"] == 8  # val.txt's good line is read past its bad one


def test_the_command_writes_its_report_and_exits_non_zero_on_errors(faulty: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "report.json"
    assert main([str(faulty), "--workers", "0", "--out", str(out)]) == 1
    assert json.loads(out.read_text())["error_counts"]["truncated"] == 1
    assert "errors" in capsys.readouterr().out
    clean = tmp_path / "clean"
    (clean / "charades_sta").mkdir(parents=True)
    (clean / "videos").mkdir()
    write_index_video(clean / "videos" / "good.mp4", num_frames=40, fps=10, gop=12)
    (clean / "charades_sta" / "test.txt").write_text("good 0.5 2.0##the red circle appears.\n")
    assert main([str(clean), "--workers", "0"]) == 0
    assert json.loads((clean / "data_check.json").read_text())["errors"] == []


def test_a_file_two_layouts_match_belongs_to_the_more_specific_one(tmp_path: Path) -> None:
    from groundlight.tools.data_check import annotation_files

    (tmp_path / "d2vlm").mkdir()
    for name in ("train.json", "train_pairs.json"):
        (tmp_path / "d2vlm" / name).write_text("[]")
    found = {(task, split, path.name) for task, split, path in annotation_files(tmp_path, None)}
    assert ("d2vlm_preferences", "train", "train_pairs.json") in found
    assert not any(split == "train_pairs" for _, split, _ in found)
    assert ("et_instruct_d2vlm", "train", "train.json") in found

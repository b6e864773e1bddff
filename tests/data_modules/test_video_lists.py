"""Something-Something V2 and Moments in Time video lists, in their released formats, and their SF2T samples."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from data_modules.formats.moments_in_time import read_moments_in_time
from data_modules.formats.ssv2 import ACTION_QUESTION, read_ssv2
from data_modules.readers import read_task_split
from data_modules.samples import FRAGMENT_TASKS, AnnotationError

SSV2 = [
    {"id": "78687", "label": "holding potato next to vicks vaporub bottle",
     "template": "Holding [something] next to [something]", "placeholders": ["potato", "vicks vaporub bottle"]},
    {"id": "42326", "label": "spreading margarine onto bread",
     "template": "Spreading [something] onto [something]", "placeholders": ["margarine", "bread"]},
]
MIT = "blocking/getty-karate-video-id635808620_4.mp4,blocking,3,1\ndancing/yt-5of6ffo6-Bw_205.mp4,dancing,3,0\n"


def test_ssv2_records_become_action_questions(tmp_path: Path) -> None:
    path = tmp_path / "something-something-v2-train.json"
    path.write_text(json.dumps(SSV2, indent=1))
    first, second = read_ssv2(path, tmp_path / "videos")
    assert first.video_path == str(tmp_path / "videos" / "78687.webm")
    assert (first.task, first.query, first.answer_text) == ("open_qa", ACTION_QUESTION,
                                                            "holding potato next to vicks vaporub bottle")
    assert first.meta == {"vid": "78687", "template": "Holding [something] next to [something]",
                          "placeholders": ["potato", "vicks vaporub bottle"]}
    assert second.sample_id == f"{tmp_path.name}/something-something-v2-train.json:42326"


def test_ssv2_test_list_has_ids_only(tmp_path: Path) -> None:
    path = tmp_path / "something-something-v2-test.json"
    path.write_text('[{"id": "1420"}, {"id": "10"}]')
    assert [(s.meta["vid"], s.answer_text) for s in read_ssv2(path, tmp_path)] == [("1420", None), ("10", None)]


def test_ssv2_errors_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "something-something-v2-train.json"
    path.write_text('[\n{"id": "1", "label": "x"},\n{"label": "no id"}\n]')
    with pytest.raises(AnnotationError, match=r"something-something-v2-train.json:3: missing field 'id'"):
        read_ssv2(path, tmp_path)
    path.write_text('[\n{"id": "1", "label": "x", "template": "T", "placeholders": "potato"}\n]')
    with pytest.raises(AnnotationError, match=r":2: field 'placeholders' must be a list of strings"):
        read_ssv2(path, tmp_path)


def test_mit_rows_become_action_questions(tmp_path: Path) -> None:
    path = tmp_path / "trainingSet.csv"
    path.write_text(MIT)
    first, second = read_moments_in_time(path, tmp_path / "videos")
    assert first.video_path == str(tmp_path / "videos" / "training" / "blocking" / "getty-karate-video-id635808620_4.mp4")
    assert (first.answer_text, first.meta["votes"]) == ("blocking", [3, 1])
    assert second.source == f"{path}:2"
    path.write_text("filename,label,positive,negative\n" + MIT)
    assert len(read_moments_in_time(path, tmp_path)) == 2


def test_mit_errors_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "validationSet.csv"
    path.write_text(MIT + "lonely.mp4\n")
    with pytest.raises(AnnotationError, match=r"validationSet.csv:3: expected 'filename,label"):
        read_moments_in_time(path, tmp_path)
    path.write_text("a/b.mp4,a,three,0\n")
    with pytest.raises(AnnotationError, match=r"validationSet.csv:1: annotation responses must be counts"):
        read_moments_in_time(path, tmp_path)


def _webm(path: Path, frames: int) -> None:
    """A VP9 webm like SSv2's, a bright bar sweeping across."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libvpx-vp9", rate=12)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        stream.options = {"deadline": "realtime", "cpu-used": "8"}
        for k in range(frames):
            image = np.full((32, 48, 3), 40, np.uint8)
            image[:, 2 * k % 44 : 2 * k % 44 + 4] = 230
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


def test_registered_fragment_readers_build_every_task(tmp_path: Path) -> None:
    (tmp_path / "ssv2").mkdir()
    (tmp_path / "videos").mkdir()
    (tmp_path / "ssv2" / "something-something-v2-train.json").write_text(json.dumps(SSV2))
    for record in SSV2:
        _webm(tmp_path / "videos" / f"{record['id']}.webm", frames=24)
    samples = read_task_split(tmp_path, "ssv2_fragments", "train")
    assert sorted(s.task for s in samples) == sorted(FRAGMENT_TASKS * 2)
    assert all(s.frame_sets[0].seed is not None for s in samples)
    assert len(read_task_split(tmp_path, "ssv2", "train")) == 2


def test_unreadable_videos_are_skipped_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "moments_in_time").mkdir()
    (tmp_path / "moments_in_time" / "validationSet.csv").write_text(MIT)
    assert read_task_split(tmp_path, "moments_in_time_fragments", "validation") == []

"""Grounding-FT conversion from official-format files, the LLaVA-Video reader and the paper's prompts."""

import json

import pytest

from data_modules.formats.activitynet_captions import read_activitynet_captions
from data_modules.formats.llava_video import read_instructions, read_llava_video
from data_modules.samples import AnnotationError
from data_modules.tasks import PromptTemplates
from groundlight.metrics.tasks import build_example
from data_modules.tasks.grounding_templates import (
    EVAL_PROMPT,
    HD_TEMPLATES,
    MR_TEMPLATES,
    hd_answer,
    read_charades_sta_ft,
    read_qvhighlights_ft,
)
from groundlight.metrics import parse_window
from groundlight.tools.grounding_ft import main

QVH_LINE = {  # the supplement's Sec. 13.3 example, with the released fields it abbreviates
    "qid": 10016, "query": "Man in baseball cap eats before doing his interview.", "duration": 150,
    "vid": "j7rJstUseKg_210.0_360.0", "relevant_clip_ids": list(range(48, 57)),
    "saliency_scores": [[2, 3, 3], [4, 3, 2], [2, 3, 1], [2, 3, 0], [2, 3, 3], [2, 3, 2], [2, 3, 1], [2, 3, 0], [1, 3, 3]],
    "relevant_windows": [[96, 114]],
}
ANET = {"v_nwznKOuZM7w": {"duration": 31.65, "timestamps": [[0, 15.51], [11.39, 31.65]], "sentences": [
    "Two people are seen moving around a kitchen quickly performing various tasks and sitting down.",
    " They then wax down a ski in the kitchen while continuing to move around."]}}


@pytest.fixture
def official(tmp_path):
    (tmp_path / "charades.txt").write_text("Y6R7T 20.8 30.0##person start playing on their phone.\n")
    (tmp_path / "anet.json").write_text(json.dumps(ANET, indent=1))
    (tmp_path / "qvh.jsonl").write_text(json.dumps(QVH_LINE) + "\n")
    return tmp_path


def test_template_pools_are_the_papers():
    assert len(MR_TEMPLATES) == 13 and len(HD_TEMPLATES) == 7
    assert all("{query}" in t for t in MR_TEMPLATES + HD_TEMPLATES)
    assert MR_TEMPLATES[1] == "What is the location of the moment: {query}?"
    assert HD_TEMPLATES[0] == "Please highlight the most exciting parts related to: {query}."


def test_highlight_answer_matches_the_supplement_example():
    answer = hd_answer(QVH_LINE["relevant_clip_ids"], QVH_LINE["saliency_scores"])
    assert answer == (
        "The highlights are: important from 96.0s to 98.0s, 98.0s to 100.0s, 104.0s to 106.0s; "
        "less important from 100.0s to 102.0s, 102.0s to 104.0s, 106.0s to 108.0s, 108.0s to 110.0s, "
        "110.0s to 112.0s, 112.0s to 114.0s"
    )
    assert hd_answer([0], [[4, 4, 3]]) == "The highlights are: very important from 0.0s to 2.0s"


def test_converter_writes_instructions_from_all_three_official_formats(official):
    out = official / "ft" / "train.json"
    assert main(["--charades-sta", str(official / "charades.txt"), "--activitynet", str(official / "anet.json"),
                 "--qvhighlights", str(official / "qvh.jsonl"), "--out", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert len(rows) == 1 + 2 + 2  # Charades MR, two ActivityNet MR, QVHighlights MR + HD
    answers = [r["messages"][1]["content"] for r in rows]
    assert answers[:3] == ["from 20.8s to 30.0s", "from 0.0s to 15.51s", "from 11.39s to 31.65s"]
    assert answers[3] == "from 96.0s to 114.0s" and answers[4].startswith("The highlights are: important from 96.0s")
    for row in rows:
        user = row["messages"][0]["content"]
        assert user.startswith("<video>") and row["messages"][0]["role"] == "user"
        assert not any(ch.isdigit() for ch in user)  # no timestamps in prompts
    assert rows[0]["videos"] == ["Y6R7T.mp4"]
    assert "person start playing on their phone" in rows[0]["messages"][0]["content"]
    # the same file reads back as instruction samples; the MR answers parse with the one parser
    samples = read_instructions(out, official / "videos")
    assert [s.answer_text for s in samples] == answers
    assert parse_window(samples[1].answer_text) == (0.0, 15.51)
    # deterministic: same seed, same templates
    again = official / "again.json"
    main(["--charades-sta", str(official / "charades.txt"), "--activitynet", str(official / "anet.json"),
          "--qvhighlights", str(official / "qvh.jsonl"), "--out", str(again)])
    assert again.read_text() == out.read_text()


def test_on_the_fly_readers_match_the_converter(official):
    charades = read_charades_sta_ft(official / "charades.txt", official / "videos")
    qvh = read_qvhighlights_ft(official / "qvh.jsonl", official / "videos")
    assert [s.task for s in charades + qvh] == ["open_qa"] * 3
    example = build_example(charades[0], PromptTemplates(state_duration=False), 30.0)
    assert example == {"prompt": charades[0].query, "answer": "from 20.8s to 30.0s", "query": charades[0].query}


def test_activitynet_reader_checks_its_fields(tmp_path):
    good = read_activitynet_captions(_write(tmp_path / "a.json", ANET), tmp_path)
    assert [s.windows for s in good] == [[(0.0, 15.51)], [(11.39, 31.65)]]
    bad = {"v_x": {"duration": 10, "timestamps": [[1, 2]], "sentences": []}}
    with pytest.raises(AnnotationError, match="1 timestamps but 0 sentences"):
        read_activitynet_captions(_write(tmp_path / "b.json", bad), tmp_path)


def test_llava_video_reader_pairs_turns(tmp_path):
    data = [{"id": "q1", "data_source": "academic", "video": "academic/v1.mp4", "conversations": [
        {"from": "human", "value": "<image>\nWhat happens?"}, {"from": "gpt", "value": "A dog runs."},
        {"from": "human", "value": "Where?"}, {"from": "gpt", "value": "In a park."}]}]
    samples = read_llava_video(_write(tmp_path / "l.json", data), tmp_path / "videos")
    assert [(s.query, s.answer_text) for s in samples] == [("What happens?", "A dog runs."), ("Where?", "In a park.")]
    assert samples[0].video_path == str(tmp_path / "videos" / "academic/v1.mp4")
    data[0]["conversations"] = data[0]["conversations"][:1]
    with pytest.raises(AnnotationError, match="alternate"):
        read_llava_video(_write(tmp_path / "m.json", data), tmp_path)


def test_evaluation_prompt_is_the_papers():
    prompt = EVAL_PROMPT.format(query="A person takes a book off a shelf.")
    assert prompt == (
        "Based on the video, please provide the start and end timestamps (in seconds) for the moment described by: "
        "'A person takes a book off a shelf.'. Respond in the format 'from {start} to {end} seconds'. "
        "If unsure, make your best guess."
    )


def _write(path, data):
    path.write_text(json.dumps(data))
    return path

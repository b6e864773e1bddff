"""The tiny-probe diagnostic: its questions, its phase syntax, and one short run end to end."""

from __future__ import annotations

import argparse
import json
from collections import Counter

import pytest

from data_modules.stream import StreamOptions, stream_scene
from groundlight.recipes import tiny_probe
from groundlight.recipes.tiny_probe import parse_phase, probe_question

SINGLE = StreamOptions(single_object_items=2**62)


def test_probe_questions_name_the_clip_object_and_presence_is_balanced():
    truths = Counter()
    for index in range(400):
        scene = stream_scene(SINGLE, index)
        obj = scene.objects[0]
        assert probe_question("colour", scene, index) == (scene, "What colour is the object?", obj.colour)
        assert probe_question("caption", scene, index)[2] == f"the {obj.colour} {obj.shape}"
        shown, question, answer = probe_question("presence", scene, index)
        assert shown is scene
        named = f"A {obj.colour} {obj.shape} appears"
        assert (answer == "true") == question.startswith(named), (index, question, answer)
        assert probe_question("presence", scene, index) == (scene, question, answer)  # seeded by the index
        truths[answer] += 1
        shown, question, answer = probe_question("detect", scene, index)
        assert question.startswith(named) and shown.objects == (() if answer == "false" else scene.objects)
    assert 170 <= truths["true"] <= 230, truths


def test_phase_syntax_names_the_probe_and_its_steps():
    assert parse_phase("caption=500") == ("caption", 500)
    for bad in ("caption", "shape=5", "presence=0", "presence=-3"):
        with pytest.raises(argparse.ArgumentTypeError, match="PROBE=STEPS"):
            parse_phase(bad)
    with pytest.raises(ValueError, match="unknown probe"):
        probe_question("shape", stream_scene(SINGLE, 0), 0)


@pytest.mark.slow
def test_two_phases_train_one_model_and_score_held_out_clips(tmp_path):
    assert tiny_probe.main(["--phases", "colour=3", "presence=2", "--eval-items", "6", "--batch-size", "2",
                            "--out", str(tmp_path), "--name", "run"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    colour, presence = summary["phases"]
    assert (colour["probe"], colour["first_item"], presence["first_item"]) == ("colour", 0, 6)
    assert presence["majority"] in ("true", "false") and presence["accuracy"]["n"] == 6
    assert len(colour["loss_every_25_steps"]) == 1
    for phase in (colour, presence):
        diff = phase["accuracy_minus_majority"]["mean"]
        assert diff == pytest.approx(phase["accuracy"]["mean"] - phase["majority_answer"]["mean"])

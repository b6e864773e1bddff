"""The tiny-probe diagnostic: its questions, its phase syntax, and one short run end to end."""

from __future__ import annotations

import argparse
import json
from collections import Counter

import pytest

from data_modules.stream import StreamOptions, stream_scene
from data_modules.synthetic import COLOURS
from groundlight.analysis.grounding import window_iou
from groundlight.recipes import tiny_probe
from groundlight.recipes.tiny_probe import (
    control,
    control_score,
    parse_phase,
    probe_question,
    probe_sample,
    score,
)

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
        written = probe_question("presence_text", scene, index)
        assert written == (scene, f"The video shows a {obj.colour} {obj.shape}. {question}", answer)
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


def test_when_is_scored_by_iou_and_its_control_is_a_constant_window():
    scene = stream_scene(SINGLE, 3)
    obj = scene.objects[0]
    sample = probe_sample("when", *probe_question("when", scene, 3))
    assert (sample.task, sample.windows) == ("moment_retrieval", [(float(obj.start), float(obj.end))])
    assert score(sample, f"from {obj.start}s to {obj.end}s") == 1.0
    assert score(sample, "no idea") == 0.0
    window = control("when", tiny_probe.ProbeRecipe(), 0, 64)
    assert control_score(window, sample) == window_iou(window.predict(sample.duration), sample.windows[0])
    assert control("colour", tiny_probe.ProbeRecipe(), 0, 64) in COLOURS


@pytest.mark.slow
def test_two_phases_train_one_model_and_score_held_out_clips(tmp_path):
    assert tiny_probe.main(["--phases", "colour=3", "presence=2", "--eval-items", "6", "--batch-size", "2",
                            "--out", str(tmp_path), "--name", "run"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    colour, presence = summary["phases"]
    assert (colour["probe"], colour["first_item"], presence["first_item"]) == ("colour", 0, 6)
    assert presence["control_answer"] in ("true", "false") and presence["score"]["n"] == 6
    assert len(colour["loss_every_25_steps"]) == 1
    for phase in (colour, presence):
        diff = phase["score_minus_control"]["mean"]
        assert diff == pytest.approx(phase["score"]["mean"] - phase["control"]["mean"])


def test_family_picks_the_backbone_class():
    from groundlight.backbones.qwen3_vl import Qwen3VLBackbone

    recipe = tiny_probe.ProbeRecipe(family="qwen3_vl", frame_size=56)
    backbone = tiny_probe.build_backbone(recipe)
    assert isinstance(backbone, Qwen3VLBackbone) and backbone.processor.max_pixels == 64 * 64
    with pytest.raises(ValueError, match="family"):
        tiny_probe.build_backbone(tiny_probe.ProbeRecipe(family="qwen2"))
    with pytest.raises(ValueError, match="query-position after"):
        tiny_probe.build_backbone(tiny_probe.ProbeRecipe(family="qwen3_vl", query_position="both"))

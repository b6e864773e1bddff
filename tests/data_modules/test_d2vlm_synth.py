"""D²VLM's tasks on the embedded benchmark: written in E.T. Instruct's format, read back by the project's readers."""

from __future__ import annotations

import json

import pytest

from data_modules.d2vlm_synth import scene_records
from data_modules.finevid import diagonal
from data_modules.formats.d2vlm import read_preference_pairs
from data_modules.readers import read_task_split
from data_modules.synthetic import GeneratorConfig, load_meta, sample_scene
from data_modules.tasks import PromptTemplates
from data_modules.tasks.evidence import EvidenceResponse
from groundlight.metrics.tasks import build_example, parse_prediction


def _config(synth_dir):
    args = load_meta(synth_dir)["args"]
    return GeneratorConfig(**{**args, "fps_choices": tuple(args["fps_choices"]), "workers": 1})


def test_every_object_is_an_event_in_order_of_appearance(synth_dir):
    scene = sample_scene(_config(synth_dir), "test", 0)
    dense, qa = scene_records(scene)
    ordered = sorted(scene.objects, key=lambda o: (o.start, o.end))
    assert dense["time_gt"]["evidence_grounding"] == [[float(o.start), float(o.end)] for o in ordered]
    assert qa["time_gt"]["evidence_grounding"] == [[float(scene.target.start), float(scene.target.end)]]
    assert qa["conversations"][1]["value"] == f"<evi> </evi> <evi>, it moves {diagonal(scene.target)}."
    assert scene.target.colour in qa["conversations"][0]["value"]


def test_readers_give_evidence_samples_and_the_text_baseline_the_same_questions(synth_dir):
    evidence = read_task_split(synth_dir, "et_instruct_d2vlm", "test")
    text = read_task_split(synth_dir, "et_instruct_d2vlm_text", "test")
    assert [s.sample_id for s in evidence] == [s.sample_id for s in text] and len(evidence) == 2 * 4
    sample = evidence[0]
    assert sample.task == "evidence" and not sample.query.startswith("<image>") and sample.video_path.endswith(".mp4")
    templates = PromptTemplates(state_duration=False)
    with_tokens = build_example(sample, templates, sample.duration)
    as_text = build_example(text[0], templates, sample.duration)
    assert with_tokens["answer"].startswith("<evi>") and "</evi>" in with_tokens["answer"]
    assert "<evi>" not in as_text["answer"] and as_text["answer"].startswith("Evidence: ")
    # the baseline's reference answer scores perfectly, through the one parser
    assert parse_prediction(text[0], as_text["answer"]) == sample.windows


def test_preference_pairs_differ_in_one_factor_and_identical_ones_are_refused(synth_dir, tmp_path):
    pairs = read_task_split(synth_dir, "d2vlm_preferences", "train")
    assert pairs and all(p.meta["factor"].split("/")[0] in ("grounding", "text") for p in pairs)
    for pair in pairs:
        rejected = EvidenceResponse.parse(pair.meta["rejected"]["response"], pair.meta["rejected"]["windows"], "x")
        chosen = EvidenceResponse.parse(pair.answer_text, pair.windows, "x")
        assert rejected != chosen
        if pair.meta["factor"].startswith("text/"):
            assert rejected.spans == chosen.spans
    rows = json.loads((synth_dir / "d2vlm" / "train_pairs.json").read_text())
    rows[1]["rejected"] = rows[1]["chosen"]
    (tmp_path / "pairs.json").write_text("[\n" + ",\n".join(json.dumps(r) for r in rows) + "\n]\n")
    with pytest.raises(ValueError, match=r"pairs.json:3: .*identical"):
        read_preference_pairs(tmp_path / "pairs.json", tmp_path)


def test_a_span_outside_the_video_names_the_sample(synth_dir, tmp_path):
    rows = json.loads((synth_dir / "d2vlm" / "val.json").read_text())
    rows[0]["time_gt"]["evidence_grounding"][0][1] = rows[0]["duration"] + 5
    rows[0]["time_gt"]["interleaved_response"][0][1] = rows[0]["duration"] + 5
    (tmp_path / "d2vlm").mkdir()
    (tmp_path / "d2vlm" / "val.json").write_text("[\n" + ",\n".join(json.dumps(r) for r in rows) + "\n]\n")
    with pytest.raises(ValueError, match=r"val.json:2"):
        read_task_split(tmp_path, "et_instruct_d2vlm", "val")

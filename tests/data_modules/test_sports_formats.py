"""FitnessQA and ExpertAF readers (documented shapes), their TASK_FILES entries, and the ExpertAF config."""

import json
from pathlib import Path

import pytest

from data_modules.readers import read_task_split
from data_modules.samples import AnnotationError
from data_modules.tasks.verification import VerificationPrompts, verification_prompt

ROOT = Path(__file__).resolve().parents[2]


def write(path: Path, records) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records))
    return path


def test_fitnessqa_reader(tmp_path):
    write(tmp_path / "fitnessqa" / "test.json", [
        {"id": "q1", "video_id": "squat_3", "exercise": "squats", "question": "Is the stance wide enough?",
         "answer": "No, the stance is too narrow."},
        {"id": "q2", "question": "Are the knees over the toes?", "answer": "Yes."},
    ])
    first, second = read_task_split(tmp_path, "fitnessqa", "test")
    assert (first.task, first.query, first.answer_text) == ("open_qa", "Is the stance wide enough?", "No, the stance is too narrow.")
    assert first.video_path == str(tmp_path / "videos" / "squat_3.mp4") and first.meta["exercise"] == "squats"
    assert second.video_path.endswith("q2.mp4") and second.meta["exercise"] is None
    write(tmp_path / "fitnessqa" / "val.json", [{"id": "q3", "question": "Depth?"}])
    with pytest.raises(AnnotationError, match="val.json:1: missing field 'answer'"):
        read_task_split(tmp_path, "fitnessqa", "val")


def test_expertaf_reader_and_feedback_verification_prompt(tmp_path):
    write(tmp_path / "expertaf" / "train.json", [
        {"id": "e1", "video_id": "bball_17", "domain": "basketball", "feedback": "Keep the elbow under the ball.",
         "start": 12.0, "end": 19.5},
    ])
    (sample,) = read_task_split(tmp_path, "expertaf", "train")
    assert sample.task == "open_qa" and sample.answer_text == "Keep the elbow under the ball."
    assert sample.query == "What feedback would you give this athlete to improve their technique?"
    assert sample.meta | {} == {"id": "e1", "vid": "bball_17", "feedback": True, "domain": "basketball", "start": 12.0, "end": 19.5}
    assert verification_prompt(sample, "", 7.5, VerificationPrompts(state_duration=False)).startswith(
        "Please verify if the following feedback statement is correct for the given video: Keep the elbow under the ball.")
    write(tmp_path / "expertaf" / "val.json", [{"id": "e2", "feedback": "x", "start": 5, "end": 3}])
    with pytest.raises(AnnotationError, match="val.json:1: clip end 3 is not after its start 5"):
        read_task_split(tmp_path, "expertaf", "val")


def test_expertaf_config_instantiates_with_a_tiny_backbone(monkeypatch):
    """The GPU config with the tiny build in place of its hub weights: everything else (options, data, trainer)
    must parse and build."""
    from groundlight.cli import lightning_main

    monkeypatch.chdir(ROOT)
    config = "experiments/self_consistency/gpu/expertaf.yaml"
    cli = lightning_main(["--config", config, "--model.init_args.backbone", "experiments/base/backbones/tiny_qwen2_5_vl.yaml",
                          "--model.init_args.backbone.init_args.tiny.num_layers", "10", "--trainer.precision", "32-true"],
                         run=False)
    assert cli.datamodule.tasks == ["expertaf"] and cli.trainer.accumulate_grad_batches == 4
    consistency = cli.model.consistency
    assert (consistency.layer, consistency.top_k, consistency.temperature) == (8, 5, 0.03)
    assert len(cli.model.backbone.decoder_layers()) == 10

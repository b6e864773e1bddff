"""`make self-consistency-synth`'s collector, and the SFT/SC configs starting from identical weights."""

import json
from pathlib import Path

import torch

from groundlight.methods.self_consistency.report import main

ROOT = Path(__file__).resolve().parents[2]


def test_report_averages_seeds_and_leaves_missing_runs_null(tmp_path):
    def put(relative, data):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(json.dumps(data))

    for seed, (acc, auroc) in {0: (0.25, 0.55), 3: (0.35, 0.65)}.items():
        put(f"seed{seed}/sft/summary.json", {"mcq_accuracy": acc, "mIoU": 0.4, "mcq_parse_failed": 0.0})
        put(f"seed{seed}/sc/summary.json", {"mcq_accuracy": 0.5, "mIoU": 0.45})
        put(f"seed{seed}/sft/attention/attention.json", {"layers": {"keyframe_auroc": [0.9, auroc]}})
        put(f"seed{seed}/sc/attention/attention.json", {"layers": {"keyframe_auroc": [0.8, 0.7]}})
        put(f"seed{seed}/sft/attention_mr/attention.json", {"layers": {"keyframe_auroc": [0.1, 0.7]}})
    put("seed0/steer_proportional/summary.json", {"mcq_accuracy": 0.75, "mIoU": 0.5})
    put("seed3/steer_proportional/summary.json", {"mcq_accuracy": 0.25, "mIoU": 0.3})
    put("seed3/steer_uniform/summary.json", {"mcq_accuracy": 0.5})
    assert main(["--root", str(tmp_path), "--layer", "1", "--seeds", "0", "3"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["sft"] == {"accuracy": 0.3, "mIoU": 0.4, "keyframe_auroc": 0.6, "mr_window_auroc": 0.7,
                              "vision_centricity": None, "mcq_parse_failed": 0.0}
    assert summary["sc"]["accuracy"] == 0.5 and summary["sc"]["keyframe_auroc"] == 0.7
    # seed 0 has no uniform run: the mean is null, not seed 3's value
    assert summary["steer"] == {"none": {"accuracy": None, "mIoU": None}, "uniform": {"accuracy": None, "mIoU": None},
                                "proportional": {"accuracy": 0.5, "mIoU": 0.4}}
    assert summary["seeds"] == [0, 3] and summary["per_seed"]["3"]["steer"]["uniform"]["accuracy"] == 0.5


def test_report_compares_runs_question_by_question(tmp_path):
    """SC answers every question SFT answers plus q1 (accuracy +0.25 on 4 questions, in both seeds): the
    paired difference is 0.25; the steering runs are identical, so steering shows no effect."""
    def records(correct):
        return "".join(json.dumps({"sample_id": f"q{i}", "scores": {"mcq_accuracy": float(c)}}) + "\n"
                       for i, c in enumerate(correct))

    for seed in (0, 1):
        for run, correct in {"sft": [1, 0, 0, 1], "sc": [1, 1, 0, 1], "steer_none": [1, 0, 0, 1],
                             "steer_uniform": [1, 0, 0, 1], "steer_proportional": [1, 0, 0, 1]}.items():
            (tmp_path / f"seed{seed}" / run).mkdir(parents=True)
            (tmp_path / f"seed{seed}" / run / "test_records.jsonl").write_text(records(correct))
    assert main(["--root", str(tmp_path), "--seeds", "0", "1"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    difference = summary["training"]["differences"]["sc - sft"]["mcq_accuracy"]
    assert difference["mean"] == 0.25 and difference["ci_low"] >= 0 and difference["seeds"] == 2
    assert summary["training"]["intervals"]["sft"]["mcq_accuracy"]["mean"] == 0.5
    assert summary["steering"]["differences"]["uniform - none"]["mcq_accuracy"]["verdict"] == "no effect detected"


def test_sft_and_self_consistency_configs_start_from_the_same_weights(synth_dir):
    from groundlight.cli import lightning_main

    def weights(config):
        cli = lightning_main(["--config", str(ROOT / "experiments/self_consistency" / config),
                              "--data.init_args.data_dir", str(synth_dir)], run=False)
        return cli.model.backbone.state_dict()

    sft, sc = weights("synth_sft.yaml"), weights("synth.yaml")
    assert sft.keys() == sc.keys()
    assert all(torch.equal(sft[k], sc[k]) for k in sft)


def test_report_scores_the_no_model_controls_on_the_same_test_cap(tmp_path, synth_dir):
    from groundlight.analysis.controls import split_controls

    assert main(["--root", str(tmp_path), "--seeds", "0", "--data-dir", str(synth_dir), "--max-eval-samples", "3"]) == 0
    controls = json.loads((tmp_path / "summary.json").read_text())["controls"]
    expected = split_controls(synth_dir, ["charades_sta", "keyframes"], 3)
    assert controls["constant_window"]["mIoU"] == expected["mIoU"] and 0 < expected["mIoU"] < 1
    assert controls["majority_answer"]["accuracy"] == expected["mcq_accuracy"]
    assert expected != split_controls(synth_dir, ["charades_sta", "keyframes"], None)  # the cap is applied

"""The demo fine-tunes the shipped base and writes every row, the query-grounding pair and the intervals."""

from __future__ import annotations

import json
from pathlib import Path

from groundlight.analysis.demo import DEMO_CONFIG, run


def test_demo_fine_tunes_the_base_and_scores_every_row(synth_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # the base's path in the config is relative to the repository
    out = tmp_path / "demo"
    summary = run(DEMO_CONFIG, synth_dir, out, seed=0, sizes=(8, 4, 4), max_duration=10,
                  extra=["--trainer.max_steps", "2", "--data.init_args.max_eval_samples", "4",
                         "--runs_dir", str(tmp_path / "runs"), "--trainer.logger", "false"])
    written = json.loads((out / "summary.json").read_text())
    assert {"fine_tuned", "base", "constant_window", "text_only", "shuffled_video", "query_swap"} <= set(written)
    assert set(written["query_grounding"]) == {"base", "fine_tuned"}
    for model in ("base", "fine_tuned"):
        pair = written["query_grounding"][model]
        assert set(pair) == {"named_mIoU", "other_mIoU", "named_minus_other"}
        assert set(written["intervals"][model]) == {"mIoU", "R1@0.5", "mcq_accuracy"}
        for value in written["intervals"][model].values():
            assert value["ci_low"] <= value["mean"] <= value["ci_high"]
    difference = written["intervals"]["fine_tuned - base"]["mIoU"]
    fine_tuned, base = written["intervals"]["fine_tuned"]["mIoU"], written["intervals"]["base"]["mIoU"]
    assert abs(difference["mean"] - (fine_tuned["mean"] - base["mean"])) < 1e-3 and "verdict" in difference
    assert written["base"]["mIoU"] == summary["base"]["mIoU"]
    assert "mIoU" in written["shuffled_video"]  # another clip's video, the question's own windows
    assert (out / "demo.png").stat().st_size > 0 and (out / "predictions.jsonl").exists()

"""`groundlight analyze {attention,sink-dims}` end to end on the synthetic benchmark with the tiny model."""

import json
from pathlib import Path

import pytest

from groundlight.analysis.attention import merge_dimension_stats, suggest_sink_dims
from groundlight.analysis.cli import main

CONFIG = str(Path(__file__).resolve().parents[2] / "experiments/self_consistency/synth.yaml")


def test_suggest_sink_dims_by_layer_fraction():
    """Dim 7 exceeds tau=20 in 3 of 4 layers, dim 2 in 1 of 4: with fraction 0.5 only dim 7 is a sink dim."""
    layers = {0: [{"dim": 7, "peak": 5.0}], 1: [{"dim": 7, "peak": 40.0}, {"dim": 2, "peak": 25.0}],
              2: [{"dim": 7, "peak": 30.0}], 3: [{"dim": 7, "peak": 21.0}]}
    assert suggest_sink_dims(layers, 20.0, 0.5) == [7]
    assert suggest_sink_dims(layers, 20.0, 0.25) == [7, 2]


def test_merge_dimension_stats_weights_by_tokens():
    """Batch A (10 tokens): peak 3, fraction .5; batch B (30 tokens): peak 9, fraction .1 → peak 9, fraction .2."""
    merged = merge_dimension_stats([[{"dim": 1, "peak": 3.0, "median": 1.0, "fraction_over_tau": 0.5}],
                                    [{"dim": 1, "peak": 9.0, "median": 2.0, "fraction_over_tau": 0.1}]], [10, 30])
    assert merged == [{"dim": 1, "peak": 9.0, "median": pytest.approx(1.75), "fraction_over_tau": pytest.approx(0.2)}]


def test_analyze_attention_writes_json_and_heatmaps(synth_dir, tmp_path):
    out = tmp_path / "attention"
    assert main(["attention", "--config", CONFIG, "--data.init_args.data_dir", str(synth_dir),
                 "--split", "test", "--max-samples", "3", "--layer", "1", "--out", str(out)]) == 0
    report = json.loads((out / "attention.json").read_text())
    # synth.yaml fine-tunes groundlight-tiny: 3 layers of 4 heads
    assert report["samples"] == 3 and report["head_layer"] == 1 and report["best_layer"] in (0, 1, 2)
    for key in ("sharpness", "vision_centricity", "keyframe_auroc", "quality"):
        assert len(report["layers"][key]) == 3 and len(report["heads"][key]) == 4
        assert all(0.0 <= v <= 1.0 for v in report["layers"][key] + report["heads"][key])
    assert 0.05 < max(report["layers"]["vision_centricity"]) < 1.0  # some layer gives the visual tokens attention
    for name in ("layers.png", "heads_layer1.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"


def test_analyze_sink_dims_writes_candidates(synth_dir, tmp_path):
    """groundlight-tiny (width 64) has no |RMSNorm(h)| near 20 (its peaks stay under 8): no sink dims.

    With tau 2.5 random dimensions exceed it, so candidates appear, all inside the hidden size."""
    out = tmp_path / "sinks.json"
    args = ["sink-dims", "--config", CONFIG, "--data.init_args.data_dir", str(synth_dir), "--tasks", "keyframes",
            "--max-samples", "2", "--out", str(out)]
    assert main(args) == 0
    report = json.loads(out.read_text())
    assert report["sink_dims"] == [] and report["samples"] == 2 and set(report["layers"]) == {"0", "1", "2"}
    assert all(entry["peak"] <= 8.0 + 1e-3 for stats in report["layers"].values() for entry in stats)
    assert main([*args, "--tau", "2.5"]) == 0
    assert all(0 <= d < 64 for d in json.loads(out.read_text())["sink_dims"])

"""Kept-token density: overlap with the GT window by hand, the Fig. 5 PNG, the sweep YAML."""

import json
from pathlib import Path

import yaml

from groundlight.methods.groundvts.report import main
from groundlight.viz.vts import density_overlap, relevance_peak_overlap

ROOT = Path(__file__).resolve().parents[3]
RECORD = {  # 4 groups of 4 tokens at 0, 2, 4, 6 s (centres 1, 3, 5, 7); GT [2, 6] holds groups 2 and 3
    "sample_id": "charades_sta/test.txt:1", "query": "the red circle appears.", "windows": [[2.0, 6.0]],
    "parsed": [2.0, 5.0], "vts_seconds": [0.0, 2.0, 4.0, 6.0], "vts_tokens": [4, 4, 4, 4], "vts_kept": [0, 4, 3, 1],
}


def test_density_overlap_by_hand():
    """kept in GT = (4 + 3) / 8 kept = 0.875; tokens in GT = 8 / 16 = 0.5."""
    assert density_overlap([RECORD]) == {"kept_in_gt_fraction": 0.875, "gt_fraction": 0.5}


def test_relevance_peak_overlap_by_hand():
    """Peaks at group 2 (centre 5, inside [2, 6]) and group 0 (centre 1, outside); 2 of 4 groups inside each time."""
    inside = {**RECORD, "vts_relevance": [0.1, 0.2, 0.6, 0.1]}
    outside = {**RECORD, "vts_relevance": [0.7, 0.1, 0.1, 0.1]}
    assert relevance_peak_overlap([inside, outside, RECORD]) == {"peak_relevance_in_gt_fraction": 0.5,
                                                                "peak_relevance_chance": 0.5}
    assert relevance_peak_overlap([RECORD]) == {}


def test_analyze_vts_writes_pngs_and_the_summary(tmp_path):
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text(json.dumps(RECORD) + "\n" + json.dumps({**RECORD, "sample_id": "b"}) + "\n")
    assert main([str(predictions), "--out", str(tmp_path / "density")]) == 0
    pngs = sorted((tmp_path / "density").glob("*.png"))
    assert len(pngs) == 2 and all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)
    summary = json.loads((tmp_path / "density" / "density.json").read_text())
    assert summary["kept_in_gt_fraction"] == 0.875 and summary["records"] == 2


def test_density_sweep_is_a_grid_over_fps_and_rho_with_a_block_command():
    sweep = yaml.safe_load((ROOT / "experiments/sweeps/groundvts_density.yaml").read_text())
    assert set(sweep["parameters"]) == {"data.init_args.sampling.fps", "model.init_args.vts.keep_ratio"}
    assert isinstance(sweep["command"], list) and "${args}" in sweep["command"]


def test_science_summary_gathers_the_variants_and_leaves_missing_ones_out(tmp_path):
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text(json.dumps(RECORD) + "\n")
    for variant, miou in (("token_level", 0.41), ("uniform", 0.3)):
        (tmp_path / variant).mkdir()
        (tmp_path / variant / "summary.json").write_text(json.dumps({"mIoU": miou, "R1@0.5": 0.2, "config": "c.yaml", "configs": ["c.yaml", "o.yaml"]}))
    assert main([str(predictions), "--out", str(tmp_path / "density"), "--science", str(tmp_path), "--seed", "3"]) == 0
    science = json.loads((tmp_path / "summary.json").read_text())
    assert science["token_level"]["mIoU"] == 0.41 and science["uniform"]["mIoU"] == 0.3
    assert "frame_level" not in science and science["seed"] == 3 and science["uniform"]["configs"] == ["c.yaml", "o.yaml"]
    assert science["kept_in_gt_fraction"] == 0.875 and science["gt_fraction"] == 0.5


def test_vts_seeds_averages_the_science_summaries(tmp_path):
    from groundlight.methods.groundvts.report import seeds_main

    for seed, (miou, kept) in {0: (0.2, 0.3), 1: (0.4, 0.5)}.items():
        (tmp_path / f"seed{seed}").mkdir()
        summary = {"seed": seed, "kept_in_gt_fraction": kept, "gt_fraction": 0.3,
                   "token_level": {"mIoU": miou, "configs": ["a.yaml"]}, "uniform": {"mIoU": 0.1 if seed else None}}
        (tmp_path / f"seed{seed}" / "summary.json").write_text(json.dumps(summary))
    assert seeds_main(["--root", str(tmp_path), "--seeds", "0", "1"]) == 0
    combined = json.loads((tmp_path / "summary.json").read_text())
    assert combined["token_level"] == {"mIoU": 0.3, "configs": ["a.yaml"]}
    assert combined["kept_in_gt_fraction"] == 0.4 and combined["gt_fraction"] == 0.3
    assert combined["uniform"]["mIoU"] is None  # missing in seed 0: not the other seed's value
    assert combined["seeds"] == [0, 1] and combined["per_seed"]["1"]["token_level"]["mIoU"] == 0.4


def test_figures_are_written_atomically_and_closed(tmp_path):
    import matplotlib.pyplot as plt

    from groundlight.viz import save_figure

    figure, axis = plt.subplots()
    axis.plot([0, 1], [1, 0])
    path = save_figure(figure, tmp_path / "nested" / "plot.png")
    assert path.read_bytes()[:4] == b"\x89PNG" and not plt.fignum_exists(figure.number)
    assert [p.name for p in path.parent.iterdir()] == ["plot.png"]  # no temporary file left behind

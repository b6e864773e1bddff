"""``groundlight recipe gpu-smoke``: its command lines and summary (a fake runner), and the chain run for real on CPU
with a tiny build (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from groundlight.recipes import gpu_smoke
from groundlight.recipes._chain import Chain, Step


class RecordingRunner:
    """Records commands; a fit writes the step record the callback would (two steps, 20 GiB peak)."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, step: Step) -> dict:
        self.calls.append(step.argv)
        if step.argv[0] != "fit":
            return {}
        run = Path(step.argv[step.argv.index("--experiment") + 1])
        run.mkdir(parents=True, exist_ok=True)
        steps = [{"seconds": s, "loss": 2.0, "peak_bytes": 20 * 1024**3, "sequence": 5300} for s in (9.0, 1.5, 1.7)]
        (run / gpu_smoke.RECORD).write_text(json.dumps({"steps": steps}))
        (run / "last.ckpt").write_bytes(b"")
        return {"last_model_path": str(run / "last.ckpt")}


def test_every_method_fits_the_7b_shaped_build_at_bf16_and_the_summary_sets_the_estimate_beside_the_peak(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "experiments").symlink_to(Path(__file__).resolve().parents[2] / "experiments")
    (tmp_path / "data" / "synth" / "d2vlm").mkdir(parents=True)
    (tmp_path / "data" / "synth" / "finevid").mkdir(parents=True)
    args = gpu_smoke.parser().parse_args(["--methods", "sft", "d2vlm"])
    runner = RecordingRunner()
    gpu_smoke.run(Chain(args.root, runner), args)
    assert [call[:3] for call in runner.calls] == [["fit", "--config", gpu_smoke.METHODS[m]] for m in ("sft", "d2vlm")]
    for call in runner.calls:
        text = " ".join(call)
        assert f"--model.init_args.backbone {gpu_smoke.BUILD}" in text
        assert "--trainer.precision bf16-true" in text and "--trainer.accelerator gpu" in text
        assert "--data.init_args.batch_size 1" in text and "--trainer.max_steps 3" in text
        assert "--trainer.callbacks+=groundlight.recipes.gpu_smoke.StepRecorder" in text
    assert "[<evi>, </evi>]" in " ".join(runner.calls[1])
    summary = json.loads((tmp_path / "runs" / "gpu_smoke" / "summary.json").read_text())
    row = summary["methods"]["sft"]
    assert row["step_seconds_median"] == 1.6 and row["peak_gib"] == 20.0 and row["losses_finite"]
    # the 7B-shaped build: 15.5 GiB of bf16 weights, plus LoRA states and checkpointed activations
    assert 15.5 < row["estimate_gib"] < 25 and row["estimate_over_peak"] == pytest.approx(row["estimate_gib"] / 20, abs=1e-3)


@pytest.mark.slow
def test_the_chain_runs_for_real_on_cpu_with_a_tiny_build(synth_dir, tmp_path):
    """Every method's fit through the real CLI in its own process, the step records, and the summary."""
    root = tmp_path / "smoke"
    args = gpu_smoke.parser().parse_args([
        "--data-dir", str(synth_dir), "--root", str(root), "--accelerator", "cpu", "--precision", "32-true",
        "--build", "experiments/base/backbones/tiny_qwen2_5_vl_lora8.yaml", "--frame-size", "56", "--steps", "2"])
    gpu_smoke.run(Chain(args.root), args)
    summary = json.loads((root / "summary.json").read_text())
    assert sorted(summary["methods"]) == sorted(gpu_smoke.METHODS)
    for method, row in summary["methods"].items():
        assert row["steps"] == 2 and row["losses_finite"], method
        assert row["peak_gib"] is None and row["estimate_gib"] > 0  # no allocator peak on CPU

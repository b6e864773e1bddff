"""The experiment-chain recipes: their exact command lines, skipping finished steps, resuming after a failure.

The steps run through a fake runner (nothing trains): it records each command, writes the files the step
declares and, for a fit, an empty checkpoint whose path it reports as Lightning's ``last_model_path``.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from groundlight.methods.groundvts.report import VARIANTS
from groundlight.methods.self_consistency.report import STEER_MODES
from groundlight.methods.sf2t.report import SAMPLING
from groundlight.recipes import (
    d2vlm_synth,
    groundvts_qwen,
    groundvts_synth,
    main,
    recipe_names,
    self_consistency_synth,
    sf2t_synth,
)
from groundlight.recipes._chain import Chain, Step, StepFailed

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOTS = Path(__file__).parent / "snapshots"
RECIPES = {"groundvts-synth": groundvts_synth, "groundvts-qwen": groundvts_qwen, "self-consistency-synth": self_consistency_synth,
           "sf2t-synth": sf2t_synth, "d2vlm-synth": d2vlm_synth}


class FakeRunner:
    """Records every command; fails at call ``fail_at`` (0-based) when given."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.calls: list[list[str]] = []
        self.fail_at = fail_at

    def __call__(self, step: Step) -> dict:
        self.calls.append(step.argv)
        if len(self.calls) - 1 == self.fail_at:
            raise StepFailed(f"{step.name} failed")
        for path in step.outputs:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("{}")
        if step.argv[0] != "fit":
            return {}
        checkpoint = Path(step.argv[step.argv.index("--experiment") + 1]) / "checkpoints" / "last.ckpt"
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        checkpoint.write_bytes(b"")
        return {"last_model_path": str(checkpoint)}


def cook(recipe: str, argv: list[str], runner: FakeRunner) -> list[list[str]]:
    """Run a recipe with the fake runner (in the current folder) and return the commands it ran."""
    module = RECIPES[recipe]
    args = module.parser().parse_args(argv)
    module.run(Chain(args.root, runner), args)
    return runner.calls


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "synth").mkdir(parents=True)
    (tmp_path / "data" / "real").mkdir(parents=True)
    return tmp_path


def markers(root: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((root / "steps").glob("*.json"))}


SNAPSHOT_RUNS = {
    "groundvts-synth": ["--seeds", "0"],
    "groundvts-qwen": [],
    "self-consistency-synth": ["--seeds", "0"],
    "sf2t-synth": ["--seeds", "0"],
    "d2vlm-synth": ["--seeds", "0"],
}


@pytest.mark.parametrize("recipe", SNAPSHOT_RUNS)
def test_command_lines_are_the_snapshot(recipe, workdir):
    """One seed's commands, word for word: the same configs, overrides, run folders and order the Makefile used.
    (A changed snapshot is a changed experiment: update the file only on purpose.)"""
    calls = cook(recipe, SNAPSHOT_RUNS[recipe], FakeRunner())
    expected = (SNAPSHOTS / f"{recipe}.txt").read_text().splitlines()
    assert [shlex.join(call) for call in calls] == expected


def test_snapshot_configs_exist():
    for snapshot in SNAPSHOTS.glob("*.txt"):
        for line in snapshot.read_text().splitlines():
            words = shlex.split(line)
            for config in (words[i + 1] for i, w in enumerate(words) if w == "--config"):
                assert (ROOT / config).is_file(), f"{snapshot.name}: {config}"


def test_variant_and_steering_lists_come_from_the_reports(workdir):
    gvts = cook("groundvts-synth", ["--seeds", "0", "--no-report"], FakeRunner())
    fitted = [c[c.index("--experiment") + 1].rsplit("/", 1)[1] for c in gvts if c[0] == "fit"]
    assert fitted == ["stage1", "stage2", *VARIANTS]
    assert all((ROOT / groundvts_synth.variant_config(v)).is_file() for v in VARIANTS)
    sc = cook("self-consistency-synth", ["--seeds", "0", "--no-report"], FakeRunner())
    steered = [c[c.index("--experiment") + 1].rsplit("/", 1)[1] for c in sc if any(w.endswith("AttentionSteering") for w in c)]
    assert steered == [f"steer_{mode}" for mode in STEER_MODES]


def test_each_fit_hands_on_the_checkpoint_lightning_reported(workdir):
    calls = cook("groundvts-synth", ["--seeds", "0", "--no-report"], FakeRunner())
    stage2 = next(c for c in calls if "runs/groundvts/synth/seed0/stage2" in c)
    assert stage2[stage2.index("--model.init_args.init_from") + 1] == "runs/groundvts/synth/seed0/stage1/checkpoints/last.ckpt"
    frame_test = next(c for c in calls if c[0] == "test" and "runs/groundvts/synth/seed0/frame_level" in c)
    assert frame_test[frame_test.index("--ckpt_path") + 1] == "runs/groundvts/synth/seed0/frame_level/checkpoints/last.ckpt"


@pytest.mark.parametrize("recipe,argv", [("groundvts-synth", ["--seeds", "0", "1"]),
                                         ("self-consistency-synth", ["--seeds", "0", "1"]),
                                         ("sf2t-synth", ["--seeds", "0", "1"]),
                                         ("d2vlm-synth", ["--seeds", "0", "1"]),
                                         ("groundvts-qwen", [])])
def test_rerun_after_a_failure_runs_only_the_failed_step_and_after(recipe, argv, tmp_path, monkeypatch):
    """For every step k: fail there, re-run; the re-run runs steps k, k+1, ... only, and the two runs together made
    exactly the calls (and step markers) of an uninterrupted run."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "synth").mkdir(parents=True)
    straight = cook(recipe, argv, FakeRunner())
    root = Path(RECIPES[recipe].parser().parse_args(argv).root)
    expected_markers = {name: record["argv"] for name, record in markers(root).items()}
    for k in range(len(straight)):
        work = tmp_path / f"k{k}"
        work.mkdir()
        monkeypatch.chdir(work)
        (work / "data" / "synth").mkdir(parents=True)
        with pytest.raises(StepFailed):
            cook(recipe, argv, FakeRunner(fail_at=k))
        again = cook(recipe, argv, FakeRunner())
        assert again == straight[k:], f"failed at step {k}"
        assert {name: record["argv"] for name, record in markers(root).items()} == expected_markers


def test_sf2t_then_sft_starts_from_sf2t_and_every_run_is_tested_on_the_same_questions(workdir):
    calls = cook("sf2t-synth", ["--seeds", "0", "--no-report"], FakeRunner())
    assert calls[0] == ["data", "finevid", "--data", "data/synth"]
    then = next(c for c in calls if c[0] == "fit" and "runs/sf2t/synth/seed0/sf2t_then_sft" in c)
    assert then[then.index("--model.init_args.init_from") + 1] == "runs/sf2t/synth/seed0/sf2t/checkpoints/last.ckpt"
    tested = {c[c.index("--experiment") + 1].rsplit("/", 1)[1]: c for c in calls if c[0] == "test"}
    assert set(tested) == {"base", "sft", "sf2t_then_sft", *SAMPLING.values()}
    assert "--ckpt_path" not in tested["base"]
    assert not any("--data.init_args.fragments.strategy" in c for c in tested.values())  # the same test frames for all
    strategies = [c[c.index("--data.init_args.fragments.strategy") + 1] for c in calls
                  if c[0] == "fit" and "--data.init_args.fragments.strategy" in c]
    assert strategies == [s for s, run in SAMPLING.items() if run != "sf2t"]


def test_a_finished_recipe_runs_nothing_again(workdir):
    cook("self-consistency-synth", ["--seeds", "0"], FakeRunner())
    assert cook("self-consistency-synth", ["--seeds", "0"], FakeRunner()) == []


def test_changed_arguments_rerun_that_step_and_the_steps_that_read_it(workdir):
    """New eval arguments: every test and analysis runs again, with them; the fits are kept."""
    cook("self-consistency-synth", ["--seeds", "0"], FakeRunner())
    again = cook("self-consistency-synth", ["--seeds", "0", "--eval-args", "--data.init_args.max_eval_samples 4"], FakeRunner())
    assert again and not any(c[0] == "fit" for c in again)
    assert all(c[-2:] == ["--data.init_args.max_eval_samples", "4"] for c in again[:-1])
    assert again[-1][:2] == ["analyze", "self-consistency"]  # the report reads the re-run tests, so it runs again


def test_a_refitted_stage_reruns_everything_after_it(workdir):
    straight = cook("groundvts-synth", ["--seeds", "0"], FakeRunner())
    again = cook("groundvts-synth", ["--seeds", "0", "--stage2-steps", "5"], FakeRunner())
    assert again[0][again[0].index("--trainer.max_steps") + 1] == "5"
    assert [c[:2] for c in again] == [c[:2] for c in straight[1:]]  # stage 1 kept, all of stage 2's descendants re-run


def test_a_deleted_output_reruns_its_step(workdir):
    cook("groundvts-synth", ["--seeds", "0"], FakeRunner())
    Path("runs/groundvts/synth/seed0/uniform/summary.json").unlink()
    again = cook("groundvts-synth", ["--seeds", "0"], FakeRunner())
    assert [c[0] for c in again] == ["test", "analyze", "analyze"]  # the uniform test, the seed's summary, the report
    assert "runs/groundvts/synth/seed0/uniform" in again[0]


def test_a_missing_data_folder_is_made_first(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    calls = cook("self-consistency-synth", ["--seeds", "0", "--no-report"], FakeRunner())
    assert calls[0] == ["data", "synth", "--out", "data/synth", "--seed", "0"]


def test_steer_only_runs_the_sft_fit_and_its_steering(workdir):
    calls = cook("self-consistency-synth", ["--seeds", "3", "--steer-only"], FakeRunner())
    assert [c[c.index("--experiment") + 1] for c in calls] == [
        "runs/self_consistency/synth/seed3/sft", *(f"runs/self_consistency/synth/seed3/steer_{m}" for m in STEER_MODES)]


def test_dry_run_prints_the_steps_and_writes_nothing(workdir, capsys):
    assert main(["groundvts-qwen", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("[recipe] ") == 4 and "<stage2.fit last.ckpt>" in out
    assert not Path("runs").exists()


def test_recipes_are_listed_and_unknown_ones_refused(capsys):
    assert {"groundvts-synth", "groundvts-qwen", "self-consistency-synth"} <= set(recipe_names())
    assert main(["no-such-recipe"]) == 2
    assert "unknown recipe 'no-such-recipe'" in capsys.readouterr().err


def test_step_process_reports_lightnings_checkpoint(synth_dir, tmp_path, monkeypatch):
    """The child a step runs in: a real one-step fit, whose result names the checkpoint Lightning saved last."""
    from groundlight.recipes._step import main as step_main

    monkeypatch.chdir(ROOT)
    result = tmp_path / "result.json"
    assert step_main(["--result", str(result), "--", "fit", "--config", "experiments/sft/synth.yaml", "--data.init_args.data_dir",
                      str(synth_dir), "--runs_dir", str(tmp_path), "--experiment", "one", "--trainer.max_steps", "1",
                      "--trainer.limit_val_batches", "0", "--trainer.logger", "false", "--data.init_args.batch_size", "4"]) == 0
    checkpoint = Path(json.loads(result.read_text())["last_model_path"])
    assert checkpoint == tmp_path / "one" / "checkpoints" / "last.ckpt" and checkpoint.is_file()


def test_d2vlm_fpo_starts_from_the_evidence_sft_stage_and_every_run_is_tested(workdir):
    calls = cook("d2vlm-synth", ["--seeds", "0", "--no-report"], FakeRunner())
    fpo = next(c for c in calls if c[0] == "fit" and "runs/d2vlm/synth/seed0/evi_fpo" in c)
    assert fpo[fpo.index("--model.init_args.init_from") + 1] == "runs/d2vlm/synth/seed0/evi/checkpoints/last.ckpt"
    tested = [c[c.index("--experiment") + 1].rsplit("/", 1)[1] for c in calls if c[0] == "test"]
    assert tested == ["text_timestamps", "evi", "evi_fpo", "evi_fpo_reference"]

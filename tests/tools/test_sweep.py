"""The offline sweep runner expands a wandb sweep YAML into CLI runs."""

from pathlib import Path

import pytest
import yaml

from groundlight.tools.sweep import commands, grid_points, main

ROOT = Path(__file__).resolve().parents[2]


def test_grid_is_the_cartesian_product():
    points = grid_points({"a": {"values": [1, 2]}, "b": {"values": ["x", "y", "z"]}, "c": {"value": True}})
    assert len(points) == 6
    assert points[0] == {"a": 1, "b": "x", "c": True} and points[-1] == {"a": 2, "b": "z", "c": True}


def test_commands_substitute_program_and_args():
    sweep = {"program": "groundlight", "method": "grid", "parameters": {"model.init_args.k": {"values": [1, 2]}},
             "command": ["${program}", "fit", "--config", "x.yaml", "${args}"]}
    runs = commands(sweep, "demo", max_runs=None, seed=0)
    assert runs[1] == ["groundlight", "fit", "--config", "x.yaml", "--model.init_args.k=2", "--experiment", "sweeps/demo/001"]


def test_unsupported_parameter_spec_is_rejected():
    with pytest.raises(ValueError, match="values"):
        grid_points({"lr": {"distribution": "log_uniform", "min": 1e-5, "max": 1e-3}})


def test_every_sweep_file_expands(capsys):
    files = sorted((ROOT / "experiments" / "sweeps").glob("*.yaml"))
    assert files
    for path in files:
        sweep = yaml.safe_load(path.read_text())
        assert isinstance(sweep["command"], list), f"{path.name}: `command:` must be a block list"
        assert main([str(path), "--dry-run", "--max-runs", "2"]) == 0
    assert "--experiment sweeps/" in capsys.readouterr().out

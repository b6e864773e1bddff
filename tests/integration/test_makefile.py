"""The Makefile's experiment chains expand to well-formed CLI commands (``make -n``: nothing runs)."""

import re
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def planned_commands(target: str, *variables: str) -> list[list[str]]:
    out = subprocess.run(["make", "-n", target, *variables], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    lines = out.replace("\\\n", " ").splitlines()
    lines = [re.sub(r"\$\(ls [^)]*\)", "CKPT", line) for line in lines]  # the newest-checkpoint lookups
    return [shlex.split(line) for line in lines if line.lstrip().startswith(".venv/bin/groundlight")]


def test_groundvts_qwen_chain_keeps_its_data_dir_and_task_list():
    commands = planned_commands("groundvts-qwen", "GVTS_REAL=/data/real")
    assert len(commands) == 4
    for command in commands:
        assert command[command.index("--data.init_args.data_dir") + 1] == "/data/real"
    stage3 = commands[2]
    assert stage3[stage3.index("--data.init_args.tasks") + 1] == "[charades_sta_ft,qvhighlights_ft,activitynet_captions_ft]"


@pytest.mark.parametrize("target", ["groundvts-synth-seed", "self-consistency-seed"])
def test_synth_chains_pass_the_seed_to_model_and_data(target):
    commands = planned_commands(target, "GVTS_SEED=3", "SEED=3")
    fits = [c for c in commands if c[1] == "fit"]
    assert fits and all(c[c.index("--seed_everything") + 1] == "3" and c[c.index("--data.init_args.seed") + 1] == "3"
                        for c in fits)

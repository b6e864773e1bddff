"""The Makefile holds no experiment logic: each chain target is one recipe call (``make -n``: nothing runs).

What the chains do is tested on the recipes themselves (``tests/recipes/``).
"""

import re
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHAINS = {"groundvts-synth": "groundvts-synth", "groundvts-synth-seed": "groundvts-synth", "groundvts-qwen": "groundvts-qwen",
          "self-consistency-synth": "self-consistency-synth", "self-consistency-seed": "self-consistency-synth",
          "sf2t-synth": "sf2t-synth"}


def test_the_makefile_has_no_shell_loops_and_no_modification_time_lookups():
    commands = [line for line in (ROOT / "Makefile").read_text().splitlines() if line.startswith("\t")]
    assert commands and not [line for line in commands if re.search(r"\bfor \w+ in\b|\bwhile\b|ls -t|\$\$\(ls", line)]


@pytest.mark.parametrize("target", sorted(CHAINS))
def test_each_chain_target_is_one_recipe_call(target):
    out = subprocess.run(["make", "-n", target, "GVTS_SEED=3", "SEED=3"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    commands = [shlex.split(line) for line in out.replace("\\\n", " ").splitlines() if "groundlight" in line]
    assert len(commands) == 1, commands
    words = commands[0]
    assert words[1:3] == ["recipe", CHAINS[target]]
    if target.endswith("-seed"):
        assert words[words.index("--seeds") + 1] == "3"

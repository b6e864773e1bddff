"""A writer killed midway (SIGKILL, nothing flushed or renamed after it) leaves the previous summary, predictions
and checkpoint intact: results and checkpoints go to a temporary file first and are renamed over the old one."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

DIE_MIDWAY = """
import os, signal, tempfile

class Dying:
    def __init__(self, handle):
        self.handle, self.name = handle, handle.name
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        self.handle.close()
    def write(self, text):
        self.handle.write(text[: len(text) // 2])
        self.handle.flush()
        os.kill(os.getpid(), signal.SIGKILL)

real = tempfile.NamedTemporaryFile
tempfile.NamedTemporaryFile = lambda *a, **k: Dying(real(*a, **k))
"""


def _run(code: str, cwd: Path) -> int:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env={"PYTHONPATH": str(ROOT)},
                          capture_output=True, timeout=120).returncode


@pytest.mark.parametrize("writer", ["write_json_atomic", "write_jsonl_atomic"])
def test_a_results_writer_killed_midway_leaves_the_previous_file(tmp_path: Path, writer: str) -> None:
    from groundlight import io

    path = tmp_path / "runs" / "summary.json"
    rows = [{"sample_id": f"q{i}", "prediction": "from 1 to 2"} for i in range(200)]
    getattr(io, writer)(path, rows[:3])
    before = path.read_bytes()
    code = DIE_MIDWAY + f"from groundlight import io\nio.{writer}({str(path)!r}, {rows!r})\n"
    assert _run(code, tmp_path) == -signal.SIGKILL
    assert path.read_bytes() == before
    assert len(json.loads(before) if writer == "write_json_atomic" else before.splitlines()) == 3


def test_a_checkpoint_writer_killed_midway_leaves_the_previous_checkpoint(tmp_path: Path) -> None:
    last = tmp_path / "last.ckpt"
    last.write_bytes(b"the previous checkpoint")
    code = f"""
    import os, signal
    from types import SimpleNamespace
    from groundlight.callbacks import AtomicModelCheckpoint

    def save_checkpoint(path, weights_only=False):
        with open(path, "wb") as handle:
            handle.write(b"half of a new checkpoint")
            handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    trainer = SimpleNamespace(save_checkpoint=save_checkpoint, is_global_zero=True, global_step=7, loggers=[],
                              strategy=SimpleNamespace(barrier=lambda name: None))
    AtomicModelCheckpoint(dirpath={str(tmp_path)!r})._save_checkpoint(trainer, {str(last)!r})
    """
    assert _run(code, tmp_path) == -signal.SIGKILL
    assert last.read_bytes() == b"the previous checkpoint"

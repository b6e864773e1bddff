"""The SF2T data bench writes its numbers (slow: it times real decoding)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from groundlight.bench.sf2t import run


@pytest.mark.slow
def test_bench_writes_its_numbers(tmp_path: Path) -> None:
    result = run(tmp_path, repeats=1, videos_per_kind=2)
    written = json.loads((tmp_path / "sf2t.json").read_text())
    assert written["samples"] == result["samples"] == 2 * 2 * 5
    assert written["motion_seconds_per_video"] > 0
    assert written["fragments_per_second_per_worker"] > 0
    assert set(written["clips"]) == {"ssv2_like", "mit_like"}
    assert all(clip["two_pass_over_one"] > 0 for clip in written["clips"].values())
    assert 0 < written["data_time_fraction"] < 1 and written["num_workers"] == 0

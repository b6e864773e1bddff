"""The D²VLM bench writes its ratios (slow: it times real steps)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from groundlight.bench.d2vlm import run


@pytest.mark.slow
def test_bench_writes_its_ratios(tmp_path: Path) -> None:
    result = run(tmp_path, repeats=1, frames=8, side=56)
    written = json.loads((tmp_path / "d2vlm.json").read_text())
    assert written["sft_step_time_ratio_d2vlm_over_sft"] == result["sft_step_time_ratio_d2vlm_over_sft"] > 0
    assert written["evi_overhead_fraction"] > 0 and written["decode_step_seconds"] > 0
    assert set(written["peak_rss_growth_bytes"]) == {"sft", "fpo_adapter_disabled", "fpo_full_copy"}

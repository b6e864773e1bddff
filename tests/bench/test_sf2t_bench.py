"""The SF2T data bench writes its numbers (slow: it times real decoding)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from groundlight.bench.sf2t import config_workers, run


@pytest.mark.slow
def test_bench_writes_its_numbers(tmp_path: Path) -> None:
    result = run(tmp_path, repeats=1, videos_per_kind=2)
    written = json.loads((tmp_path / "sf2t.json").read_text())
    assert written["samples"] == result["samples"] == 2 * 2 * 5
    assert written["motion_seconds_per_video"] > 0
    assert written["fragments_per_second_per_worker"] > 0
    assert set(written["clips"]) == {"ssv2_like", "mit_like"}
    assert all(clip["two_pass_over_one"] > 0 for clip in written["clips"].values())
    assert 0 < written["data_time_fraction"] < 1 and written["num_workers"] == config_workers() == 1
    assert 0 < written["data_time_fraction_in_process"] < 1


def test_the_benchmarked_worker_count_is_the_sf2t_configs(tmp_path: Path) -> None:
    assert config_workers() == 1  # experiments/sf2t/synth_sft.yaml
    (tmp_path / "nested.yaml").write_text("data:\n  init_args:\n    num_workers: 3\n")
    (tmp_path / "unset.yaml").write_text("data.init_args.batch_size: 4\n")
    assert config_workers(tmp_path / "nested.yaml") == 3 and config_workers(tmp_path / "unset.yaml") == 0

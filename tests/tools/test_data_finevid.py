"""``groundlight data finevid`` adds the FineVidBench-style questions to a generated benchmark."""

import pytest

from data_modules.readers import read_task_split
from data_modules.synthetic import generate
from groundlight.cli import main


def test_data_finevid_writes_every_split_as_generate_finevid_does(tmp_path, capsys):
    data = tmp_path / "synth"
    generate(data, seed=0, n_train=3, n_val=2, n_test=2, min_duration=6, max_duration=8)
    before = sorted(p.relative_to(data) for p in data.rglob("*") if p.is_file())
    assert main(["data", "finevid", "--data", str(data)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in printed] == ["train", "val", "test"]
    test = read_task_split(data, "finevid", "test")
    assert test and all(s.task == "mcq" and s.meta["domain"].startswith("finevid_") for s in test)
    after = {p.relative_to(data) for p in data.rglob("*") if p.is_file()}
    assert set(before) <= after  # the benchmark's own files are kept
    assert {p.parts[0] for p in after - set(before)} == {"finevid", "videos"}


def test_data_finevid_on_a_folder_without_a_benchmark_fails(tmp_path):
    with pytest.raises(FileNotFoundError):
        main(["data", "finevid", "--data", str(tmp_path / "none")])

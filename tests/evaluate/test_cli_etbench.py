"""``groundlight eval etbench``: the official nesting from files, folders and jsonl; input errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from groundlight.evaluate import etbench

FIX = Path(__file__).parents[1] / "fixtures" / "eval" / "etbench"
GROUNDING = [
    {"idx": 0, "task": "tvg", "source": "qvh", "tgt": [0, 10], "a": "It happens at 0 - 5 seconds."},
    {"idx": 1, "task": "tvg", "source": "qvh", "tgt": [0, 10], "a": "no idea"},
    {"idx": 2, "task": "vhd", "source": "qvh", "tgt": [[0, 10]], "a": "at 4.5"},
    {"idx": 3, "task": "rvq", "source": "star", "o": ["w", "x", "y", "z"], "p": 1, "a": "something else"},
]


def run(*argv: str) -> dict:
    parser = argparse.ArgumentParser()
    etbench.add_arguments(parser)
    return etbench.evaluate(parser.parse_args(["--no-meteor", *argv]))


def test_nesting_overall_and_notices(tmp_path, capsys):
    """TVG: IoU 1/2 and a failure → F1@0.1..0.5 = 1/2, F1@0.7 = 0, F1 = 0.375; VHD 4.5 in
    [0, 10] → 1. The RVQ answer needs the similarity fallback: scored wrong, reported."""
    path = tmp_path / "submission.json"
    path.write_text(json.dumps(GROUNDING))
    result = run("--pred", str(path))
    assert result["tvg"]["qvh"] == {"Total": 2, "Failed": 1, "mIoU": 0.25, "F1@0.1": 0.5, "F1@0.3": 0.5,
                                    "F1@0.5": 0.5, "F1@0.7": 0.0, "F1": 0.375}
    assert result["vhd"]["qvh"]["F1"] == 1.0
    assert result["rvq"]["star"] == {"Total": 1, "Failed": 1, "Acc": 0.0, "Unscored": 1}
    assert result["Overall"] == {"RVQ (Acc)": 0.0, "TVG (F1)": 37.5, "VHD (F1)": 100.0}
    assert "needed E.T. Bench's sentence-similarity fallback" in capsys.readouterr().err
    assert "Grounding" in etbench.table(result)


def test_folder_and_jsonl_are_read_like_the_official_script(tmp_path):
    """A folder: every .json/.jsonl except names containing "metrics", in sorted order."""
    (tmp_path / "a.json").write_text(json.dumps(GROUNDING[:1]))
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps(s) for s in GROUNDING[1:3]))
    (tmp_path / "metrics.json").write_text(json.dumps({"not": "a submission"}))
    result = run("--pred", str(tmp_path))
    assert result["tvg"]["qvh"]["Total"] == 2 and result["vhd"]["qvh"]["Total"] == 1


def test_subset_keeps_listed_samples(tmp_path):
    path, subset = tmp_path / "s.json", tmp_path / "subset.json"
    path.write_text(json.dumps(GROUNDING))
    subset.write_text(json.dumps({"tvg": {"qvh": [0]}}))
    result = run("--pred", str(path), "--subset", str(subset))
    assert list(result) == ["tvg", "Overall", "Merged"] and result["tvg"]["qvh"]["Total"] == 1


def test_malformed_entry_names_file_and_entry(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([GROUNDING[0], {"idx": 7, "task": "tal", "source": "s", "a": "1 - 2"}]))
    with pytest.raises(ValueError, match=r"bad.json: entry 1 \(idx 7\): missing field 'tgt'"):
        run("--pred", str(path))


def test_through_cli_main_matches_official(tmp_path):
    """The whole CLI on the held-out file: groups that need no sentence model equal the
    official metrics.json (METEOR off)."""
    cli = pytest.importorskip("groundlight.evaluate.cli")
    out = tmp_path / "out.json"
    assert cli.main(["etbench", "--pred", str(FIX / "nasty.json"), "--no-meteor", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    official = json.loads((FIX / "nasty.official.json").read_text())["metrics"]
    for task in ("tvg", "epm", "tem", "tal", "evs", "vhd"):
        assert result[task] == official[task], task
    for source, metrics in official["dvc"].items():
        assert {k: v for k, v in result["dvc"][source].items()} == {
            k: v for k, v in metrics.items() if k not in ("METEOR", "SentSim")}

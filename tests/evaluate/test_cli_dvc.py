"""``groundlight eval dense_captioning``: TimeChat's printed numbers; input errors name the entry."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from groundlight.evaluate import dense_captioning

FIX = Path(__file__).parents[1] / "fixtures" / "eval" / "dvc"


def run(*argv: str) -> dict:
    parser = argparse.ArgumentParser()
    dense_captioning.add_arguments(parser)
    return dense_captioning.evaluate(parser.parse_args(["--no-meteor", *argv]))


def test_results_wrapper_and_notice(tmp_path, capsys):
    """The prediction file may be wrapped in {"results": ...}; METEOR/SODA_c skipped with a notice."""
    wrapped = tmp_path / "pred.json"
    wrapped.write_text(json.dumps({"version": "1.0", "results": json.loads((FIX / "punct" / "pred.json").read_text())}))
    result = run("--gt", str(FIX / "punct" / "val.json"), "--pred", str(wrapped))
    official = json.loads((FIX / "punct" / "official.json").read_text())["printed"]
    assert result["CIDER"] == official["CIDER"] == 184.3
    assert result["F1_Score"] == official["F1_Score"] and "METEOR" not in result
    assert "METEOR and SODA_c skipped" in capsys.readouterr().err


def test_caption_count_mismatch_names_the_video(tmp_path):
    gt = tmp_path / "val.json"
    gt.write_text(json.dumps({"annotations": [{"image_id": "a/v1.mp4", "segments": [[0, 1], [1, 2]],
                                                "caption": "only one sentence here."}]}))
    with pytest.raises(ValueError, match=r"annotations\[0\] \(a/v1.mp4\): 2 segments but 1 captions"):
        run("--gt", str(gt), "--pred", str(FIX / "punct" / "pred.json"))


def test_bad_timestamp_names_video_and_event(tmp_path):
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps({"p1.mp4": [{"timestamp": [0, 1], "caption": "x"}, {"timestamp": [3], "caption": "y"}]}))
    with pytest.raises(ValueError, match=r"video 'p1.mp4' \[1\] timestamp"):
        run("--gt", str(FIX / "punct" / "val.json"), "--pred", str(pred))


@pytest.mark.parametrize("case", ["yc1", "an1"])
def test_through_cli_main(tmp_path, case):
    cli = pytest.importorskip("groundlight.evaluate.cli")
    out = tmp_path / "out.json"
    argv = ["dense_captioning", "--gt", str(FIX / case / "val.json"), "--pred", str(FIX / case / "pred.json"),
            "--no-meteor", "--json", str(out)]
    assert cli.main(argv) == 0
    result = json.loads(out.read_text())
    official = json.loads((FIX / case / "official.json").read_text())["printed"]
    assert {k: result[k] for k in official if not k.startswith(("METEOR", "SODA"))} == {
        k: v for k, v in official.items() if not k.startswith(("METEOR", "SODA"))}

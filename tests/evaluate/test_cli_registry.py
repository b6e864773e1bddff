"""The ``groundlight eval`` dispatcher: lazy registry, errors, atomic JSON."""

from __future__ import annotations

import json
import sys
import types

import pytest

from groundlight.evaluate import cli


def test_help_lists_every_benchmark(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.BENCHMARKS:
        assert f"  {name} " in out


def test_no_arguments_is_a_usage_error(capsys):
    assert cli.main([]) == 2
    assert "usage: groundlight eval" in capsys.readouterr().err


def test_unknown_benchmark(capsys):
    assert cli.main(["charades"]) == 2
    assert "unknown benchmark 'charades'" in capsys.readouterr().err


def test_a_missing_module_fails_alone(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(cli.BENCHMARKS, "broken", "groundlight.evaluate.no_such_module")
    assert cli.main(["broken", "--pred", "x"]) == 2
    assert "benchmark 'broken' is unavailable" in capsys.readouterr().err
    pred = tmp_path / "p.json"
    pred.write_text('[{"span": [0, 2], "pred": [0, 1]}]')
    assert cli.main(["charades_sta", "--pred", str(pred)]) == 0


def fake_module(result: dict) -> types.ModuleType:
    """A benchmark that redefines --pred (allowed) and returns ``result``, or raises if it is an exception."""
    module = types.ModuleType("fake_bench")
    module.NAME, module.HELP = "fake", "a fake benchmark"

    def add_arguments(parser):
        parser.add_argument("--pred", required=False, default="none")

    def evaluate(args):
        if isinstance(result, Exception):
            raise result
        return {**result, "pred": args.pred}

    module.add_arguments, module.evaluate, module.table = add_arguments, evaluate, lambda r: f"table {r}"
    return module


def test_json_is_written_atomically(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "fake_bench", fake_module({"score": 1.5}))
    monkeypatch.setitem(cli.BENCHMARKS, "fake", "fake_bench")
    out = tmp_path / "deep" / "result.json"
    assert cli.main(["fake", "--json", str(out)]) == 0
    assert json.loads(out.read_text()) == {"score": 1.5, "pred": "none"}
    assert sorted(p.name for p in out.parent.iterdir()) == ["result.json"]
    assert "table" in capsys.readouterr().out


def test_a_failed_evaluation_leaves_the_old_json(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "fake_bench", fake_module(ValueError("f.json: entry 3 is bad")))
    monkeypatch.setitem(cli.BENCHMARKS, "fake", "fake_bench")
    out = tmp_path / "result.json"
    out.write_text("{}")
    assert cli.main(["fake", "--json", str(out)]) == 1
    assert "groundlight eval fake: error: f.json: entry 3 is bad" in capsys.readouterr().err
    assert out.read_text() == "{}"


def test_argparse_errors_return_their_status(capsys):
    assert cli.main(["qvhighlights", "--pred", "p.jsonl"]) == 2
    assert "--gt" in capsys.readouterr().err
    assert cli.main(["nextgqa", "-h"]) == 0


def test_missing_file_is_reported(capsys, tmp_path):
    assert cli.main(["charades_sta", "--pred", str(tmp_path / "absent.json")]) == 1
    assert "absent.json" in capsys.readouterr().err

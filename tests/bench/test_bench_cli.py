"""``groundlight bench``'s command line: the no-argument default runs every suite, an unknown suite is refused."""

import importlib

import pytest

from groundlight.bench import SUITES, main


@pytest.fixture
def ran(monkeypatch):
    """Every suite function replaced by a stub that records its name and output folder."""
    calls = []
    for name, target in SUITES.items():
        module, function = target.split(":")
        monkeypatch.setattr(importlib.import_module(module), function,
                            lambda out, name=name: calls.append((name, out)) or {"seconds": 1.0})
    return calls


def test_no_arguments_runs_every_suite_in_order(ran, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main([]) == 0
    assert [name for name, _ in ran] == list(SUITES) and "video" in SUITES
    assert all(str(out) == "runs/bench" for _, out in ran)
    assert "[self_consistency] seconds=1.0" in capsys.readouterr().out


def test_named_suites_run_alone_into_the_given_folder(ran, tmp_path):
    assert main(["sft", "video", "--out", str(tmp_path)]) == 0
    assert ran == [("sft", tmp_path), ("video", tmp_path)]


def test_unknown_suite_is_refused_with_the_choices(ran, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["videos"])
    assert exit_info.value.code == 2 and not ran
    error = capsys.readouterr().err
    assert f"unknown suite 'videos' (choose from {', '.join(SUITES)})" in error

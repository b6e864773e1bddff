"""The one atomic writer: whole files only, and readable like any file the user writes."""

import json
import os
import stat

from groundlight.io import write_json_atomic, write_jsonl_atomic


def test_results_get_the_users_usual_permissions_not_the_temporary_files(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_json_atomic(tmp_path / "summary.json", {"b": 1, "a": 2.5})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert path.read_text() == '{\n  "a": 2.5,\n  "b": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temporary file left behind


def test_jsonl_rows(tmp_path):
    path = write_jsonl_atomic(tmp_path / "rows.jsonl", [{"x": 1}, {"x": 2}])
    assert [json.loads(line) for line in path.read_text().splitlines()] == [{"x": 1}, {"x": 2}]

"""``groundlight data d2vlm-preferences`` on D²VLM-format annotations: pairs, factors, counts and bad input."""

import json

import pytest

from data_modules.samples import AnnotationError
from groundlight.tools.d2vlm_preferences import main

RECORD = {
    "id": "v1", "video": "how_to_step/v1.mp4", "duration": 128.4,
    "time_gt": {"evidence_grounding": [[75, 83], [120, 128]], "interleaved_response": [[75, 83], [120, 128]]},
    "conversations": [{"from": "human", "value": "<image>\nLocalize the steps."},
                      {"from": "gpt", "value": "<evi> <evi> </evi> <evi>, peel the 3 mangoes. <evi>, enjoy them."}],
}


def write(path, rows):
    path.write_text(json.dumps(rows))
    return path


def test_pairs_in_the_annotation_format(tmp_path, capsys):
    source = write(tmp_path / "train.json", [RECORD, RECORD | {"id": "v2"}])
    assert main(["--in", str(source), "--out", str(tmp_path / "pairs.json"), "--per-sample", "3", "--seed", "0"]) == 0
    pairs = json.loads((tmp_path / "pairs.json").read_text())
    assert len(pairs) == 6 and {p["id"] for p in pairs} == {"v1", "v2"}
    for pair in pairs:
        assert pair["chosen"]["value"] == RECORD["conversations"][1]["value"]
        assert pair["rejected"] != pair["chosen"] and pair["factor"].split("/")[0] in ("grounding", "text")
        assert pair["prompt"] == "<image>\nLocalize the steps."
    assert len({p["factor"] for p in pairs if p["id"] == "v1"}) == 3  # distinct factors per sample
    report = json.loads(capsys.readouterr().out)
    assert report["pairs"] == 6 and sum(report["factors"].values()) == 6


@pytest.mark.parametrize("change, problem", [
    ({"time_gt": {"evidence_grounding": [[75, 83], [120, 140]], "interleaved_response": [[75, 83], [120, 140]]}},
     "outside|after|beyond|exceeds"),
    ({"time_gt": {"evidence_grounding": [[75, 83], [120, 128]], "interleaved_response": [[75, 83]]}}, "differ"),
    ({"conversations": [{"from": "human", "value": "x"}, {"from": "gpt", "value": "<evi> </evi> <evi>, a."}]},
     "must agree"),
])
def test_bad_records_name_the_file_and_line(tmp_path, change, problem):
    source = write(tmp_path / "train.json", [RECORD, RECORD | change])
    with pytest.raises(AnnotationError, match=f"train.json:\\d+: .*({problem})"):
        main(["--in", str(source), "--out", str(tmp_path / "pairs.json")])

"""SF2T's science report: FineVid scores filed by kind and level, per-seed means, differences vs SFT and base."""

import json

from groundlight.methods.sf2t.report import finevid_kind, main, majority_records, with_finevid_scores


def record(sample_id, **scores):
    return {"sample_id": sample_id, "scores": scores}


def test_finevid_questions_are_filed_under_their_kind_and_level():
    assert finevid_kind("finevid/test.json:test_00003_frame_count") == "frame_count"
    assert finevid_kind("finevid/test.json:test_00003_rearrangement") == "rearrangement"
    assert finevid_kind("fragments/test:00001_fragment_rearrangement") is None
    filed = with_finevid_scores(record("finevid/test.json:test_00001_speed", mcq_accuracy=1.0, mcq_parse_failed=0.0))
    assert filed["scores"] == {"mcq_accuracy": 1.0, "mcq_parse_failed": 0.0, "finevid_speed": 1.0,
                               "finevid_scene": 1.0, "finevid_all": 1.0}
    fragment = record("fragments/test:00001_fragment_counting", counting_accuracy=0.0)
    assert with_finevid_scores(fragment) == fragment


def write_run(root, seed, run, records):
    folder = root / f"seed{seed}" / run
    folder.mkdir(parents=True)
    (folder / "test_records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_report_means_and_differences(tmp_path):
    """Two seeds, four questions (two counting, two FineVid speed). SF2T right on all four in both seeds, SFT on
    the FineVid ones only, base on none: counting means 1 / 0 / 0, speed 1 / 1 / 0; SF2T − SFT on counting = 1,
    an interval that excludes 0 (every resample gives 1), on speed exactly 0 ("no effect detected")."""
    ids = ["fragments/test:00000_fragment_counting", "fragments/test:00001_fragment_counting",
           "finevid/test.json:test_00000_speed", "finevid/test.json:test_00001_speed"]

    def records(counting, finevid):
        return [record(i, counting_accuracy=counting) for i in ids[:2]] + [record(i, mcq_accuracy=finevid) for i in ids[2:]]

    for seed in (0, 1):
        write_run(tmp_path, seed, "sf2t", records(1.0, 1.0))
        write_run(tmp_path, seed, "sft", records(0.0, 1.0))
        write_run(tmp_path, seed, "base", records(0.0, 0.0))
    assert main(["--root", str(tmp_path), "--seeds", "0", "1"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    means = summary["means"]["training"]
    assert means["sf2t"]["counting_accuracy"] == [1.0, 1.0] and means["sft"]["counting_accuracy"] == [0.0, 0.0]
    assert means["base"]["finevid_speed"] == [0.0, 0.0] and means["sft"]["finevid_scene"] == [1.0, 1.0]
    vs_sft = summary["training"]["vs_sft"]["sf2t - sft"]
    assert vs_sft["counting_accuracy"]["mean"] == 1.0 and vs_sft["counting_accuracy"]["verdict"] == "higher"
    assert vs_sft["finevid_speed"]["mean"] == 0.0 and vs_sft["finevid_speed"]["verdict"] == "no effect detected"
    assert summary["training"]["vs_base"]["sft - base"]["finevid_all"]["verdict"] == "higher"
    assert summary["training"]["intervals"]["sf2t"]["counting_accuracy"]["questions"] == 2
    assert summary["sampling"] == {}  # no sampling runs: nothing is compared, nothing filled in
    assert "sf2t_then_sft" not in means


def test_the_majority_control_answers_each_task_with_its_most_frequent_true_answer():
    """Counting answers 0, 0, 2 → always 0: right, right, wrong. Disorder labels true, false → a tie, broken by the
    smaller ("False" < "True"): wrong, right. Rearrangement orders (1, 3, 2) twice and (2, 1, 3) → (1, 3, 2): exact
    on two, on the third no position is right, and on (3, 1, 2) one of three. FineVid speed answers 1, 1 → right twice."""
    records = [
        {"sample_id": "fragments/test:0_fragment_counting", "task": "fragment_counting", "answer": 0,
         "scores": {"counting_accuracy": 0.0, "counting_parse_failed": 1.0}},
        {"sample_id": "fragments/test:1_fragment_counting", "task": "fragment_counting", "answer": 0,
         "scores": {"counting_accuracy": 1.0, "counting_parse_failed": 0.0}},
        {"sample_id": "fragments/test:2_fragment_counting", "task": "fragment_counting", "answer": 2,
         "scores": {"counting_accuracy": 1.0, "counting_parse_failed": 0.0}},
        {"sample_id": "fragments/test:0_fragment_disorder", "task": "fragment_disorder", "label": True,
         "scores": {"disorder_accuracy": 1.0}},
        {"sample_id": "fragments/test:1_fragment_disorder", "task": "fragment_disorder", "label": False,
         "scores": {"disorder_accuracy": 0.0}},
        *[{"sample_id": f"fragments/test:{i}_fragment_rearrangement", "task": "fragment_rearrangement", "order": order,
           "scores": {"rearrangement_exact": 0.0, "rearrangement_position_accuracy": 0.0}}
          for i, order in enumerate([[1, 3, 2], [2, 1, 3], [1, 3, 2]])],
        {"sample_id": "fragments/test:3_fragment_rearrangement", "task": "fragment_rearrangement", "order": [3, 1, 2],
         "scores": {"rearrangement_exact": 1.0, "rearrangement_position_accuracy": 1.0}},
        *[{"sample_id": f"finevid/test.json:test_0000{i}_speed", "task": "mcq", "answer": 1,
           "scores": {"mcq_accuracy": 0.0}} for i in range(2)],
    ]
    control = majority_records(records)
    assert [r["scores"]["counting_accuracy"] for r in control[:3]] == [1.0, 1.0, 0.0]
    assert [r["scores"]["counting_parse_failed"] for r in control[:3]] == [0.0, 0.0, 0.0]
    assert [r["scores"]["disorder_accuracy"] for r in control[3:5]] == [0.0, 1.0]
    assert [r["scores"]["rearrangement_exact"] for r in control[5:9]] == [1.0, 0.0, 1.0, 0.0]
    assert [r["scores"]["rearrangement_position_accuracy"] for r in control[5:9]] == [1.0, 0.0, 1.0, 1 / 3]
    assert [r["scores"]["finevid_speed"] for r in control[9:]] == [1.0, 1.0]
    assert majority_records([{"sample_id": "x", "scores": {}}]) is None  # no true answer recorded: no control

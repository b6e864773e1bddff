"""Bootstrap intervals and paired differences, with cases worked out by hand."""

import numpy as np
import pytest

from groundlight.analysis.stats import NO_EFFECT, compare_runs, interval, paired_difference, score_matrix


def test_a_constant_score_has_a_zero_width_interval():
    assert interval(np.full((3, 40), 0.25)) == {"mean": 0.25, "ci_low": 0.25, "ci_high": 0.25,
                                                     "seeds": 3, "questions": 40}


def test_two_questions_by_hand():
    """One seed, scores 0 and 1: a resample of two questions has mean 0 (p 1/4), 0.5 (p 1/2) or 1 (p 1/4),
    so the 95 % interval runs from 0 to 1 around the mean 0.5."""
    result = interval(np.array([[0.0, 1.0]]), draws=4000)
    assert (result["mean"], result["ci_low"], result["ci_high"]) == (0.5, 0.0, 1.0)


def test_pairing_removes_the_spread_the_two_runs_share():
    """Question difficulty varies from 0 to 1 and the treatment adds 0.05 to every question: paired, the
    difference is exactly 0.05 in every resample; unpaired intervals of the two runs overlap widely."""
    control = np.tile(np.linspace(0, 1, 50), (2, 1))
    treatment = control + 0.05
    difference = paired_difference(treatment, control)
    assert (difference["mean"], difference["ci_low"], difference["ci_high"]) == (0.05, 0.05, 0.05)
    assert difference["verdict"] == "higher"
    assert interval(treatment)["ci_low"] < interval(control)["ci_high"]


def test_an_interval_holding_zero_is_no_effect():
    generator = np.random.default_rng(0)
    control = generator.random((3, 60))
    treatment = control + generator.normal(0, 0.2, control.shape)  # noise, no shift
    difference = paired_difference(treatment, control)
    assert difference["ci_low"] < 0 < difference["ci_high"] and difference["verdict"] == NO_EFFECT
    assert paired_difference(control - 0.3, control)["verdict"] == "lower"


def test_score_matrix_lines_questions_up_and_keeps_only_shared_ones():
    seed0 = [{"sample_id": "b", "scores": {"mIoU": 0.2}}, {"sample_id": "a", "scores": {"mIoU": 0.4}},
             {"sample_id": "c", "scores": {"mcq_accuracy": 1.0}}]
    seed1 = [{"sample_id": "a", "scores": {"mIoU": 0.6}}, {"sample_id": "b", "scores": {"mIoU": 0.0}},
             {"sample_id": "d", "scores": {"mIoU": 1.0}}]
    matrix, questions = score_matrix([seed0, seed1], "mIoU")
    assert questions == ["a", "b"] and matrix.tolist() == [[0.4, 0.2], [0.6, 0.0]]
    with pytest.raises(ValueError, match="no question"):
        score_matrix([seed0], "R1@0.5")


def test_compare_runs_reports_intervals_differences_and_controls():
    def records(values):
        return [{"sample_id": f"q{i}", "scores": {"mIoU": v}} for i, v in enumerate(values)]

    runs = {"sft": [records([0.1, 0.2, 0.3]), records([0.2, 0.2, 0.2])],
            "sc": [records([0.3, 0.4, 0.5]), records([0.4, 0.4, 0.4])]}
    out = compare_runs(runs, ["mIoU", "mcq_accuracy"], baseline="sft", controls={"constant_window": records([0.3] * 3)})
    assert set(out["intervals"]) == {"sft", "sc", "constant_window"}
    assert out["intervals"]["sft"]["mIoU"]["mean"] == 0.2 and out["intervals"]["constant_window"]["mIoU"]["ci_low"] == 0.3
    assert out["differences"]["sc - sft"]["mIoU"]["mean"] == 0.2
    assert out["differences"]["sc - sft"]["mIoU"]["verdict"] == "higher"
    assert "mcq_accuracy" not in out["intervals"]["sft"]  # no run scored it

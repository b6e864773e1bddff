"""Multiple choice: the one letter parser on tricky answers, and accuracy by hand."""

from __future__ import annotations

import pytest
import torch

from groundlight.metrics.choice import ChoiceAccuracy
from groundlight.metrics.parse import parse_choice

OPTIONS = ["red circle", "green square", "blue star", "blue"]
ANSWERS = {
    "(B)": 1, "B.": 1, "b": 1, "[C]": 2, "b)": 1,
    "(B) green square": 1, "B) green": 1, "C: blue star": 2,
    "Answer: C": 2, "Answer:B": 1, "answer: b": 1, "The answer is (D) blue": 3,
    "The answer is B because it is green.": 1, "The answer is: d.": 3, "The answer is option b.": 1,
    "Best option: (c": 2, "Option C is correct": 2,
    "red circle": 0, '"green square"': 1, "The blue star.": 2,  # option text; the longer named option wins
    "I think it is blue.": 3,
    "the answer is a dog": None,  # a lower-case article after "answer" is not option A
    "E": None,  # beyond the four options: unparseable, not a wrong letter
    "the blue star or the red circle": None,  # two options named
    "maybe": None, "": None,
}


@pytest.mark.parametrize("text, expected", ANSWERS.items())
def test_parse_choice_snapshot(text, expected):
    assert parse_choice(text, OPTIONS) == expected


@pytest.mark.parametrize("text, expected", [("Yes, it does.", 0), ("No.", 1), ("I do not know", None)])
def test_parse_choice_yes_no_needs_whole_words(text, expected):
    """"not" contains "no" but does not name it."""
    assert parse_choice(text, ["yes", "no"]) == expected


def test_choice_accuracy_by_hand():
    """Predictions [1, None, 2, 0] against [1, 3, 2, 1]: two right; the None is wrong and
    counted as a parse failure → accuracy 2/4, parse_failed 1."""
    metric = ChoiceAccuracy()
    metric.update([1, None], [1, 3])
    metric.update([2, 0], [2, 1])
    out = metric.compute()
    assert out["accuracy"] == torch.tensor(0.5, dtype=torch.float64)
    assert out["parse_failed"] == 1


def test_choice_accuracy_rejects_misaligned_batches():
    with pytest.raises(ValueError, match="2 predictions for 1 targets"):
        ChoiceAccuracy().update([0, 1], [0])

"""Caption scores by hand, the pure-Python PTB tokenizer, and TimeChat's dense-captioning numbers."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest

from groundlight.evaluate import dense_captioning
from groundlight.metrics.captioning import (
    DenseCaptioning,
    TimedCaptions,
    bleu,
    cider,
    densevid_iou,
    detection_precision_recall,
    find_meteor_jar,
    java_available,
    matched_pairs,
    ptb_tokenize,
    rouge_l,
    soda_f_measure,
)

FIX = Path(__file__).parents[1] / "fixtures" / "eval" / "dvc"
CASES = ("yc1", "an1", "yc2", "punct")
needs_meteor = pytest.mark.skipif(not (java_available() and find_meteor_jar()), reason="needs java + meteor-1.5.jar")

# Outputs of Stanford CoreNLP 3.4.1 PTBTokenizer -preserveLines -lowerCase, punctuation tokens dropped.
PTB = {
    "He didn't add 1,000 (large) eggs... to the U.S. bowl.":
        "he did n't add 1,000 -lrb- large -rrb- eggs to the u.s. bowl",
    "A man's hands knead the dough, then he rolls it out!": "a man 's hands knead the dough then he rolls it out",
    'She said "stir well" and waits.; then bakes': "she said stir well and waits. then bakes",
    "Cut 2.5 cups at 3:45pm -- quickly [slowly] {x}":
        "cut 2.5 cups at 3:45 pm quickly -lsb- slowly -rsb- -lcb- x -rcb-",
    "I'm gonna cut it; you can't, y'all.": "i 'm gon na cut it you ca n't y' all",
    "add \u00bd tsp. salt & pepper at:5": "add 1/2 tsp salt & pepper at :5",
    "": "",
}


@pytest.mark.parametrize("text, tokens", PTB.items())
def test_ptb_tokenize_matches_corenlp(text, tokens):
    assert ptb_tokenize(text) == tokens


def test_bleu_by_hand():
    """hyp "a b c d" vs ref "a b c e": clipped matches 3/4, 2/3, 1/2, 0/1, no brevity penalty.

    BLEU-2 = sqrt(3/4 * 2/3) = sqrt(1/2); BLEU-3 = (1/4)^(1/3); BLEU-4 keeps the 1e-15
    numerator: (1/4 * 1e-15)^(1/4) = 1.2574e-4. "a b" vs "a b c d": ratio 1/2, BP e^(1-2).
    """
    scores = bleu([["a b c e"]], ["a b c d"])
    assert scores[:3] == pytest.approx([0.75, math.sqrt(0.5), 0.25 ** (1 / 3)], rel=1e-8)
    assert scores[3] == pytest.approx((0.25e-15) ** 0.25, rel=1e-6)
    assert bleu([["a b c d"]], ["a b"])[0] == pytest.approx(math.exp(-1), rel=1e-8)


def test_rouge_l_by_hand():
    """"a b c d" vs "a c d e f": LCS 3, P 3/4, R 3/5; F = 2.44*0.45/(0.6+1.44*0.75) = 0.653571."""
    assert rouge_l([["a c d e f"]], ["a b c d"]) == pytest.approx(2.44 * 0.45 / 1.68)
    assert rouge_l([[""]], [""]) == 1.0  # split(" ") gives one empty token on both sides, as the toolkit


def test_cider_by_hand():
    """Two pairs: ("a b" | "a b") and ("c d" | "e f"); log(#docs) = log 2, every df is 1.

    Pair 1: 1- and 2-gram cosines are 1, 3- and 4-grams 0, equal lengths: mean 0.5, x10 = 5.
    Pair 2 shares nothing: 0. CIDEr = 2.5. A single pair has idf log1 - log1 = 0: CIDEr 0.
    """
    assert cider([["a b"], ["e f"]], ["a b", "c d"]) == pytest.approx(2.5)
    assert cider([["a b"]], ["a b"]) == 0.0


def test_densevid_iou_epsilon_and_sorting():
    """[0,10] vs [0,20] is 10/(20+1e-8): just under 0.5. Reversed windows are sorted; points give 0."""
    iou = densevid_iou([[0, 10], [10, 0], [5, 5]], [[0, 20], [5, 5]])
    assert iou[0, 0] < 0.5 and iou[0, 0] == pytest.approx(0.5)
    assert iou[1, 0] == iou[0, 0]
    assert iou[2, 1] == 0.0


def test_detection_is_strict_and_matching_inclusive():
    """IoU (P=2, G=2) [[0.5, 0.2], [0.1, 0.0]]: at t=0.3 one prediction and one truth covered."""
    iou = np.array([[0.5, 0.2], [0.1, 0.0]])
    assert detection_precision_recall(iou, 0.3) == (0.5, 0.5)
    assert detection_precision_recall(iou, 0.5) == (0.0, 0.0)  # strict >
    refs, hyps = matched_pairs(iou, ["p0", "p1"], ["g0", "g1"], 0.5)  # inclusive >=
    assert hyps == ["p0", "p1"] and refs[0] == ["g0"] and refs[1][0] not in ("g0", "g1")


def test_soda_by_hand():
    """Weights iou*score [[0.5, 0], [0, 0.4]] → best 0.9, P = R = 0.9/2. A crossing pair
    [[0, 1], [1, 0]] allows one match only (order kept): 1/2 and 1/2."""
    assert soda_f_measure(np.array([[1, 0], [0, 0.5]]), np.array([[0.5, 0.2], [0.1, 0.8]])) == pytest.approx(0.45)
    assert soda_f_measure(np.array([[0, 1], [1, 0]]), np.ones((2, 2))) == pytest.approx(0.5)


def test_dense_captioning_by_hand():
    """Video 1: one prediction on the first of two truths (IoU 10/(10+1e-8) > 0.9): P@t 1,
    R@t 1/2, F1 2*1*0.5/1.5 = 2/3; its only caption pair gives CIDEr 0. Video 2 has no
    prediction: all 0. Means: F1 1/3, Recall_Mean 1/4, n_preds 1/2."""
    truth = [TimedCaptions([[0, 10], [10, 20]], ["a man walks", "he sits"]), TimedCaptions([[0, 5]], ["x y"])]
    metric = DenseCaptioning(meteor=False)
    metric.update([TimedCaptions([[0, 10]], ["a man walks"]), None], truth)
    out = {k: float(v) for k, v in metric.compute().items()}
    assert out["F1_Score"] == pytest.approx(1 / 3) and out["Recall_Mean"] == 0.25
    assert out["Precision@0.9"] == 0.5 and out["CIDER"] == 0.0 and out["n_preds"] == 0.5
    assert "METEOR" not in out and "SODA_c" not in out


def evaluate_case(case: str, meteor: bool) -> tuple[dict, dict]:
    parser = argparse.ArgumentParser()
    dense_captioning.add_arguments(parser)
    flags = [] if meteor else ["--no-meteor"]
    args = parser.parse_args(["--gt", str(FIX / case / "val.json"), "--pred", str(FIX / case / "pred.json"), *flags])
    return dense_captioning.evaluate(args), json.loads((FIX / case / "official.json").read_text())


@pytest.mark.parametrize("case", CASES)
def test_matches_timechat_eval_dvc(case):
    """TimeChat's eval_dvc.py printed these (percent, 1 decimal) on the same files."""
    result, official = evaluate_case(case, meteor=False)
    for key, value in official["printed"].items():
        if key.startswith(("METEOR", "SODA")):
            continue
        assert result[key] == value, key


@pytest.mark.parametrize("case", CASES)
def test_matches_timechat_unrounded(case):
    """The same means before TimeChat's rounding, to 1e-9."""
    truth = dense_captioning.read_ground_truth(FIX / case / "val.json")
    preds = dense_captioning.read_predictions(FIX / case / "pred.json")
    metric = DenseCaptioning(meteor=False)
    metric.update([preds.get(key) for key, _ in truth], [t for _, t in truth])
    out = metric.compute()
    official = json.loads((FIX / case / "official.json").read_text())["unrounded"]
    for key, value in official.items():
        if not key.startswith(("METEOR", "SODA")):
            assert float(out[key]) == pytest.approx(value, abs=1e-9), key


@pytest.mark.slow
@needs_meteor
@pytest.mark.parametrize("case", CASES)
def test_meteor_and_soda_match_timechat(case):
    result, official = evaluate_case(case, meteor=True)
    assert result["METEOR"] == official["printed"]["METEOR"]
    assert result["SODA_c"] == official["printed"]["SODA_c_2"]

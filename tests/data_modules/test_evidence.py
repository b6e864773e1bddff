"""D²VLM evidence responses: parsing, rendering and each factorized perturbation, seeded."""

import random

import pytest

from data_modules.tasks.evidence import (
    EvidenceResponse,
    SwapDistorter,
    delete,
    insert,
    merge,
    repeat,
    shift,
    synthesize,
)

VALUE = "<evi> <evi> <evi> </evi> <evi>, remove the skin. <evi>, cut and dice the mango. <evi>, enjoy your 2 mangoes."
SPANS = [[75, 83], [120, 128], [126, 128]]


def response():
    return EvidenceResponse.parse(VALUE, SPANS, "s0")


def test_parse_and_render_round_trip():
    parsed = response()
    assert parsed.spans == ((75.0, 83.0), (120.0, 128.0), (126.0, 128.0))
    assert parsed.texts == (", remove the skin.", ", cut and dice the mango.", ", enjoy your 2 mangoes.")
    assert parsed.render() == VALUE
    assert parsed.time_gt()["evidence_grounding"] == [[75.0, 83.0], [120.0, 128.0], [126.0, 128.0]]


@pytest.mark.parametrize("value, spans, problem", [
    ("<evi> <evi> <evi>, a.", [[0, 1]], "exactly one </evi>"),
    ("<evi> </evi> <evi>, a. </evi>", [[0, 1]], "exactly one </evi>"),
    ("<evi> </evi> <evi>, a. <evi>, b.", [[0, 1]], "must agree"),
    ("<evi> </evi> <evi>, a.", [[0, 1], [2, 3]], "must agree"),
])
def test_malformed_responses_name_the_sample(value, spans, problem):
    with pytest.raises(ValueError, match=f"s9: .*{problem}"):
        EvidenceResponse.parse(value, spans, "s9")


def test_grounding_perturbations_change_only_the_events():
    """Each draw is seeded; shifting keeps the length (8 s) inside the 130-s video; deleting drops one event's span
    and text; merging two neighbours spans both; inserting adds a same-length copy of an event, in time order."""
    original = response()
    shifted = shift(original, 130.0, random.Random(0))
    changed = [k for k in range(3) if shifted.spans[k] != original.spans[k]]
    assert len(changed) == 1 and shifted.texts == original.texts
    start, end = shifted.spans[changed[0]]
    assert end - start == pytest.approx(original.spans[changed[0]][1] - original.spans[changed[0]][0])
    assert 0 <= start and end <= 130
    deleted = delete(original, 130.0, random.Random(0))
    assert len(deleted.spans) == len(deleted.texts) == 2
    merged = merge(original, 130.0, random.Random(1))
    assert len(merged.spans) == 2 and any(span in merged.spans for span in ((75.0, 128.0), (120.0, 128.0)))
    inserted = insert(original, 130.0, random.Random(2))
    assert len(inserted.spans) == 4 and list(inserted.spans) == sorted(inserted.spans)
    single = EvidenceResponse(((1.0, 3.0),), (", a.",))
    assert delete(single, 10, random.Random(0)) is None and merge(single, 10, random.Random(0)) is None


def test_text_perturbations():
    """Repetition puts one event's text on the next; the rule-based distortion changes a number (2 → another),
    else swaps a content word for one from other samples."""
    original = response()
    repeated = repeat(original, 130.0, random.Random(0))
    assert repeated.spans == original.spans and len(set(repeated.texts)) == 2
    distort = SwapDistorter([", slice the banana."])
    number = distort(", enjoy your 2 mangoes.", random.Random(0))
    assert number != ", enjoy your 2 mangoes." and number.startswith(", enjoy your ") and number.endswith(" mangoes.")
    word = distort(", remove the skin.", random.Random(0))
    assert word in (", remove the slice.", ", remove the banana.", ", slice the skin.", ", banana the skin.")


def test_synthesis_is_seeded_records_factors_and_counts_what_it_drops():
    samples = [{"id": f"s{i}", "duration": 130.0, "response": response()} for i in range(6)]
    samples.append({"id": "single", "duration": 10.0, "response": EvidenceResponse(((0.0, 10.0),), (", all of it.",))})
    distort = SwapDistorter([", slice the banana."])
    first = synthesize(samples, distort, per_sample=2, seed=0)
    again = synthesize(samples, distort, per_sample=2, seed=0)
    assert [(p["id"], p["factor"], p["rejected"]) for p in first.pairs] == [(p["id"], p["factor"], p["rejected"]) for p in again.pairs]
    assert all(p["rejected"] != p["chosen"] for p in first.pairs)
    assert {p["factor"].split("/")[0] for p in first.pairs} == {"grounding", "text"}
    assert sum(p["id"] == "s0" for p in first.pairs) == 2
    # the whole-video single event: delete, merge and repeat cannot apply, and a shift cannot move it
    assert first.not_applicable["grounding/delete"] + first.not_applicable["text/repeat"] >= 1
    assert sum(first.identical.values()) + sum(first.not_applicable.values()) >= 1
    assert synthesize(samples, distort, per_sample=2, seed=1).pairs != first.pairs

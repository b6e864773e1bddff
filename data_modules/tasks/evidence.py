"""D²VLM's evidence responses and their factorized perturbations (supplement Sec. 3, Fig. 1-2).

A response has two stages, as in E.T. Instruct's D²VLM annotations: a pure grounding stage of one
``<evi>`` per event closed by ``</evi>``, then the answer with one ``<evi>`` before each event's text::

    "<evi> <evi> </evi> <evi>, cut the mango. <evi>, enjoy it."    time_gt: [[75, 83], [120, 128]] (both stages)

The released code ships no preference-data generator; this module builds it from the paper. A rejected
response differs from the chosen one in exactly one factor: grounding (``shift`` an event, ``insert`` a
false positive, ``delete`` one, ``merge`` two neighbours) or text (``repeat`` one event's text over the
next, ``distort`` key information, by an LLM client or, without one, by swapping numbers or content words
with other samples'). Everything is a function of the seed and the sample's id.
"""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

EVIDENCE, EVIDENCE_END = "<evi>", "</evi>"
GROUNDING_FACTORS = ("shift", "insert", "delete", "merge")
TEXT_FACTORS = ("repeat", "distort")

Span = tuple[float, float]
Distorter = Callable[[str, random.Random], str | None]
"""``distort(text, rng) -> a version with its key information wrong, or None when it cannot``."""


@dataclass(frozen=True)
class EvidenceResponse:
    """One response: per event its span and the text that follows its interleaved ``<evi>``.

    Attributes:
        spans: one ``(start, end)`` per event in seconds, the same in both stages.
        texts: per event, the text after its ``<evi>`` in the answer stage.
        lead: any answer text before the first interleaved ``<evi>``.
    """

    spans: tuple[Span, ...]
    texts: tuple[str, ...]
    lead: str = ""

    @classmethod
    def parse(cls, value: str, spans: Sequence[Sequence[float]], where: str) -> EvidenceResponse:
        """Read a response string with its ``time_gt`` spans; ``where`` names the sample in errors."""
        if value.count(EVIDENCE_END) != 1:
            raise ValueError(f"{where}: a response needs exactly one {EVIDENCE_END}, found {value.count(EVIDENCE_END)}")
        grounding, answer = value.split(EVIDENCE_END)
        lead, *texts = answer.split(EVIDENCE)
        events = grounding.split().count(EVIDENCE)
        if grounding.replace(EVIDENCE, "").strip() or events != len(texts) or events != len(spans):
            raise ValueError(f"{where}: {events} grounding <evi>, {len(texts)} answer <evi> and {len(spans)} spans must agree")
        return cls(tuple((float(s), float(e)) for s, e in spans), tuple(t.rstrip() for t in texts), lead.strip())

    def render(self) -> str:
        grounding = " ".join([EVIDENCE] * len(self.spans) + [EVIDENCE_END])
        answer = " ".join(EVIDENCE + text for text in self.texts)
        return " ".join(part for part in (grounding, self.lead, answer) if part)

    def timestamp_text(self, decimals: int = 1) -> str:
        """The response with every ``<evi>`` written as its span: what D²VLM's output decodes to, and what the
        text-timestamp baseline is trained to write (see :func:`timestamp_text`)."""
        return timestamp_text(self.spans, self.lead, list(zip(self.spans, self.texts)), decimals)

    def time_gt(self) -> dict[str, list[list[float]]]:
        spans = [list(span) for span in self.spans]
        return {"evidence_grounding": spans, "interleaved_response": [list(span) for span in spans]}


EVIDENCE_HEAD, ANSWER_HEAD = "Evidence:", "Answer:"
"""Words that open the two stages once ``<evi>`` tokens are written as text."""


def span_text(span: Span, decimals: int = 1) -> str:
    return f"{span[0]:.{decimals}f} - {span[1]:.{decimals}f} seconds"


def timestamp_text(grounding: Sequence[Span], lead: str, answer: Sequence[tuple[Span | None, str]],
                   decimals: int = 1) -> str:
    """``"Evidence: 1.0 - 3.0 seconds, 5.0 - 7.0 seconds. Answer: 1.0 - 3.0 seconds, the red circle appears. ..."``.

    ``grounding``: the first stage's spans; ``answer``: per interleaved ``<evi>`` its span (``None``: not
    grounded) and the text after it. ``metrics.parse.parse_evidence`` reads the first stage back.
    """
    stage = ", ".join(span_text(span, decimals) for span in grounding)
    events = " ".join((span_text(span, decimals) if span is not None else "") + text for span, text in answer)
    return " ".join(part for part in (f"{EVIDENCE_HEAD} {stage}.", ANSWER_HEAD, lead, events) if part).strip()


def shift(response: EvidenceResponse, duration: float, rng: random.Random) -> EvidenceResponse | None:
    """One event moves by 0.5-1.5 of its length (at least 1 s), left or right, inside the video."""
    k = rng.randrange(len(response.spans))
    start, end = response.spans[k]
    length = end - start
    offset = max(1.0, rng.uniform(0.5, 1.5) * length) * rng.choice((-1, 1))
    new_start = round(min(max(0.0, start + offset), max(0.0, duration - length)), 1)
    return _with_span(response, k, (new_start, round(min(duration, new_start + length), 1)))


def insert(response: EvidenceResponse, duration: float, rng: random.Random) -> EvidenceResponse | None:
    """A false positive: a copy of one event's text at a random span of the same length elsewhere, in time order."""
    k = rng.randrange(len(response.spans))
    length = response.spans[k][1] - response.spans[k][0]
    start = round(rng.uniform(0, max(0.0, duration - length)), 1)
    spans = [*response.spans, (start, round(min(duration, start + length), 1))]
    texts = [*response.texts, response.texts[k]]
    order = sorted(range(len(spans)), key=lambda i: spans[i])
    return replace(response, spans=tuple(spans[i] for i in order), texts=tuple(texts[i] for i in order))


def delete(response: EvidenceResponse, duration: float, rng: random.Random) -> EvidenceResponse | None:
    """A missed detection: one event (span and text) is gone; needs two events."""
    if len(response.spans) < 2:
        return None
    k = rng.randrange(len(response.spans))
    return replace(response, spans=response.spans[:k] + response.spans[k + 1 :],
                   texts=response.texts[:k] + response.texts[k + 1 :])


def merge(response: EvidenceResponse, duration: float, rng: random.Random) -> EvidenceResponse | None:
    """Two neighbouring events become one spanning both, their texts joined; needs two events."""
    if len(response.spans) < 2:
        return None
    k = rng.randrange(len(response.spans) - 1)
    (s1, e1), (s2, e2) = response.spans[k], response.spans[k + 1]
    span = (min(s1, s2), max(e1, e2))
    text = response.texts[k].rstrip(". ") + " and" + response.texts[k + 1]
    return replace(response, spans=response.spans[:k] + (span,) + response.spans[k + 2 :],
                   texts=response.texts[:k] + (text,) + response.texts[k + 2 :])


def repeat(response: EvidenceResponse, duration: float, rng: random.Random) -> EvidenceResponse | None:
    """The repetition failure: one event's text stands in for the next event's too; needs two events."""
    if len(response.texts) < 2:
        return None
    k = rng.randrange(len(response.texts) - 1)
    return replace(response, texts=response.texts[: k + 1] + (response.texts[k],) + response.texts[k + 2 :])


def distortion(distort: Distorter) -> Callable[[EvidenceResponse, float, random.Random], EvidenceResponse | None]:
    """The key-information distortion of one event's text, by ``distort``."""
    def perturb(response: EvidenceResponse, duration: float, rng: random.Random) -> EvidenceResponse | None:
        k = rng.randrange(len(response.texts))
        text = distort(response.texts[k], rng)
        return None if text is None else replace(response, texts=response.texts[:k] + (text,) + response.texts[k + 1 :])
    return perturb


_NUMBER = re.compile(r"\b\d+(?:\.\d+)?\b")
_WORD = re.compile(r"\b[a-z]{4,}\b")
STOP_WORDS = frozenset("then that this with from into onto over under after before while when where what which their "
                       "there them they your have been will would could should about also just more most some such "
                       "than very each other video seconds".split())


class SwapDistorter:
    """Rule-based distortion when no chat model is given: a number becomes another number, else one content
    word becomes a content word from other samples' texts (``vocabulary``)."""

    def __init__(self, vocabulary: Sequence[str]) -> None:
        self.vocabulary = sorted({w for text in vocabulary for w in _WORD.findall(text.lower()) if w not in STOP_WORDS})

    def __call__(self, text: str, rng: random.Random) -> str | None:
        numbers = list(_NUMBER.finditer(text))
        if numbers:
            match = rng.choice(numbers)
            value = float(match.group())
            delta = max(1, round(value * rng.uniform(0.3, 0.9)))
            new = value - delta if value - delta >= 0 and rng.random() < 0.5 else value + delta
            return text[: match.start()] + f"{new:g}" + text[match.end() :]
        words = [m for m in _WORD.finditer(text) if m.group().lower() not in STOP_WORDS]
        if not words:
            return None
        match = rng.choice(words)
        others = [w for w in self.vocabulary if w != match.group().lower()]
        return None if not others else text[: match.start()] + rng.choice(others) + text[match.end() :]


DISTORT_PROMPT = ("Rewrite this description of one event in a video so that its key information (the action, object, "
                  "quantity or attribute) is wrong but the sentence stays fluent and about as long. Reply with the "
                  "rewritten description only.\nDescription: {text}")


class ClientDistorter:
    """Key-information distortion by a chat model (``groundlight.tools.chat_clients``), as the paper prompts an LLM."""

    def __init__(self, client: Callable[[list[dict[str, str]]], str]) -> None:
        self.client = client

    def __call__(self, text: str, rng: random.Random) -> str | None:
        reply = self.client([{"role": "user", "content": DISTORT_PROMPT.format(text=text.strip())}]).strip()
        return " " + reply if reply and reply.strip() != text.strip() else None


@dataclass
class Synthesis:
    """The pairs made, and the counts of what was not: per factor, perturbations that did not apply
    (too few events) and those that left the response unchanged (rejected at synthesis)."""

    pairs: list[dict]
    not_applicable: dict[str, int]
    identical: dict[str, int]


def perturbations(distort: Distorter) -> dict[str, Callable[[EvidenceResponse, float, random.Random], EvidenceResponse | None]]:
    grounding = {"shift": shift, "insert": insert, "delete": delete, "merge": merge}
    return {f"grounding/{k}": v for k, v in grounding.items()} | {"text/repeat": repeat,
                                                                 "text/distort": distortion(distort)}


def synthesize(samples: Sequence[dict], distort: Distorter, per_sample: int = 2, seed: int = 0) -> Synthesis:
    """For each sample (``id``, ``duration``, ``response``: an :class:`EvidenceResponse`, plus anything to carry),
    ``per_sample`` rejected responses, each from a different factor drawn at random."""
    table = perturbations(distort)
    result = Synthesis([], dict.fromkeys(table, 0), dict.fromkeys(table, 0))
    for sample in samples:
        rng = random.Random(seed * 1_000_003 + zlib.crc32(str(sample["id"]).encode()))
        chosen: EvidenceResponse = sample["response"]
        made = 0
        for factor in rng.sample(sorted(table), len(table)):
            if made == per_sample:
                break
            rejected = table[factor](chosen, sample["duration"], rng)
            if rejected is None:
                result.not_applicable[factor] += 1
            elif rejected == chosen:
                result.identical[factor] += 1
            else:
                result.pairs.append({"id": sample["id"], "factor": factor, "chosen": chosen, "rejected": rejected})
                made += 1
    return result


def _with_span(response: EvidenceResponse, k: int, span: Span) -> EvidenceResponse:
    return replace(response, spans=response.spans[:k] + (span,) + response.spans[k + 1 :])

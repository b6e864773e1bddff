"""``groundlight data fitnessqa-mcq``: FitnessQA open-ended answers → 4-option multiple choice.

    groundlight data fitnessqa-mcq --in data/fitnessqa/fitnessqa/test.json --out data/fitnessqa/mcq/test.json \\
        --client hf --model Qwen/Qwen2.5-7B-Instruct
    OPENAI_API_KEY=... groundlight data fitnessqa-mcq --in ... --out ... --client openai --model gpt-4o \\
        --base-url <endpoint>/v1

The self-consistency paper (supplement Sec. 8) converts each FitnessQA question, its
reference answer and the exercise into four options with an LLM. The extracted paper text
lacks the prompt itself (only its examples, Table 6, survive), so ``CONVERSION_PROMPT`` is
written here to the paper's description: the correct option restates the reference answer as
a statement, and three distractors are graded alternatives of the same kind (e.g. excessive /
insufficient / appropriate / too slow). Outputs that do not parse into a correct option and
three distinct distractors are counted and skipped, never filled in. Option order is a
shuffle seeded by the question id, so reruns write the same file.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from data_modules.formats.fitnessqa import read_fitnessqa
from data_modules.formats.mcq import write_mcq
from data_modules.samples import VideoSample
from groundlight.tools.chat_clients import ChatClient, add_client_arguments, client_from_args


SYSTEM_PROMPT = "You write multiple-choice questions for a fitness coaching benchmark. Reply with JSON only."

CONVERSION_PROMPT = (
    "Convert this open-ended question about a fitness exercise video into a four-option multiple-choice question.\n"
    "Exercise: {exercise}\n"
    "Question: {question}\n"
    "Reference answer: {answer}\n\n"
    "Write the correct option as a short statement that says what the reference answer says, without a leading "
    "yes/no. Then write three incorrect options of the same form and length that a viewer could only rule out by "
    "watching the video: graded alternatives of the same quantity (more / less / appropriate) or plausible "
    "different faults. Each incorrect option must contradict the reference answer, and no two options may mean "
    "the same thing.\n"
    'Reply with JSON only: {{"correct": "...", "distractors": ["...", "...", "..."]}}'
)

NUM_DISTRACTORS = 3


def conversion_messages(sample: VideoSample) -> list[dict[str, str]]:
    """The chat messages that ask for one sample's options."""
    prompt = CONVERSION_PROMPT.format(exercise=sample.meta.get("exercise") or "unspecified",
                                      question=sample.query.strip(), answer=(sample.answer_text or "").strip())
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}]


def _clean(option: str) -> str:
    """Strip list markers (``A)``, ``2.``, ``-``), quotes and a trailing ✓ from one option."""
    option = re.sub(r"^\s*(?:[-*•]|\(?[A-Da-d1-4][).:]|\d+\.)\s+", "", option.strip())
    return option.strip().strip('"').strip("'").rstrip("✓").strip()


def _from_json(reply: str) -> tuple[str | None, list[str]] | None:
    match = re.search(r"\{.*\}", reply, flags=re.DOTALL)
    if match is None:
        return None
    try:
        data = json.loads(match.group(0))
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("distractors"), list):
        return None
    correct = data.get("correct")
    return (correct if isinstance(correct, str) else None), [d for d in data["distractors"] if isinstance(d, str)]


def _from_lines(reply: str) -> tuple[str | None, list[str]]:
    """``Correct: ...`` and ``Distractor N: ...`` / ``Incorrect: ...`` lines."""
    correct, distractors = None, []
    for line in reply.splitlines():
        label, _, text = line.partition(":")
        label = label.strip().lower().strip("*# ")
        if not text.strip():
            continue
        if label in ("correct", "correct option", "answer"):
            correct = text
        elif label.startswith(("distractor", "incorrect", "wrong")):
            distractors.append(text)
    return correct, distractors


def parse_options(reply: str) -> tuple[str | None, list[str]] | None:
    """``(correct or None, three distractors)`` from a model reply; ``None`` when it does not parse.

    JSON (possibly inside prose or a code fence) is preferred, then labelled lines. A reply
    parses when it yields exactly three distinct, non-empty distractors that differ from the
    correct option (case- and punctuation-insensitive).
    """
    parsed = _from_json(reply) or _from_lines(reply)
    correct, distractors = parsed
    correct = _clean(correct) if correct else None
    distractors = [_clean(d) for d in distractors]
    keys = [_key(d) for d in distractors]
    if len(distractors) != NUM_DISTRACTORS or not all(keys) or len(set(keys)) != NUM_DISTRACTORS:
        return None
    if correct is not None and _key(correct) in keys:
        return None
    return correct, distractors


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def to_mcq(sample: VideoSample, correct: str | None, distractors: list[str]) -> VideoSample:
    """The multiple-choice sample: options in a shuffle seeded by the id (the reference answer if no ``correct``)."""
    key = sample.meta.get("id", sample.sample_id)
    options = [correct or (sample.answer_text or "").strip(), *distractors]
    order = list(range(len(options)))
    random.Random(zlib.crc32(str(key).encode())).shuffle(order)
    return replace(sample, task="mcq", options=[options[i] for i in order], answer_index=order.index(0),
                   answer_text=None, meta={**sample.meta, "question_type": "fitnessqa_mcq", "reference": sample.answer_text})


@dataclass
class ConversionResult:
    converted: list[VideoSample]
    skipped: list[str]  # sample ids whose reply did not parse


def convert(samples: Iterable[VideoSample], client: ChatClient) -> ConversionResult:
    """Ask ``client`` for each sample's options; unparseable replies are skipped and listed."""
    converted, skipped = [], []
    for sample in samples:
        parsed = parse_options(client(conversion_messages(sample)))
        if parsed is None:
            skipped.append(sample.sample_id)
        else:
            converted.append(to_mcq(sample, *parsed))
    return ConversionResult(converted, skipped)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="groundlight data fitnessqa-mcq", description=__doc__.splitlines()[0])
    parser.add_argument("--in", dest="source", type=Path, required=True, help="open-ended FitnessQA JSON/JSONL")
    parser.add_argument("--out", type=Path, required=True, help="mcq JSON to write (read it with the `mcq` task)")
    add_client_arguments(parser, required=True)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    client = client_from_args(parser, args)
    result = convert(read_fitnessqa(args.source, args.source.parent / "videos"), client)
    write_mcq(args.out, result.converted)
    print(json.dumps({"converted": len(result.converted), "skipped": len(result.skipped),
                      "skipped_ids": result.skipped[:20], "out": str(args.out)}))
    return 0

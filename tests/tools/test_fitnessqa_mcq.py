"""FitnessQA → MCQ: the prompt snapshot, the reply parser on tricky outputs, conversion with a fake and a tiny local LM."""

import json

import pytest
import torch

from data_modules.formats.fitnessqa import read_fitnessqa
from data_modules.formats.mcq import read_mcq
from groundlight.tools.chat_clients import HFChatClient
from groundlight.tools.fitnessqa_mcq import conversion_messages, convert, main, parse_options, to_mcq

RECORDS = [
    {"id": "fqa_1", "video_id": "gators_01", "exercise": "shoulder gators",
     "question": "Is the user's movement sufficient during shoulder gators?", "answer": "Yes, the movement is insufficient."},
    {"id": "fqa_2", "video_id": "plank_07", "exercise": "plank taps",
     "question": "While performing plank taps on their knees, are the user's hips elevated?",
     "answer": "No, the user's hips are not elevated."},
]
GOOD = ('Sure! ```json\n{"correct": "The movement is insufficient.", "distractors": '
        '["The movement is excessive.", "The movement is appropriate.", "The movement is too slow."]}\n```')


@pytest.fixture
def fitnessqa_file(tmp_path):
    path = tmp_path / "fitnessqa" / "test.json"
    path.parent.mkdir()
    path.write_text(json.dumps(RECORDS))
    return path


def test_prompt_snapshot(fitnessqa_file):
    sample = read_fitnessqa(fitnessqa_file, fitnessqa_file.parent)[0]
    messages = conversion_messages(sample)
    assert messages[0] == {"role": "system", "content": "You write multiple-choice questions for a fitness coaching "
                                                          "benchmark. Reply with JSON only."}
    assert messages[1]["content"].startswith(
        "Convert this open-ended question about a fitness exercise video into a four-option multiple-choice question.\n"
        "Exercise: shoulder gators\nQuestion: Is the user's movement sufficient during shoulder gators?\n"
        "Reference answer: Yes, the movement is insufficient.\n\n")
    assert messages[1]["content"].endswith(
        'Reply with JSON only: {"correct": "...", "distractors": ["...", "...", "..."]}')


@pytest.mark.parametrize("reply, expected", [
    (GOOD, ("The movement is insufficient.",
            ["The movement is excessive.", "The movement is appropriate.", "The movement is too slow."])),
    ("Correct: The hips are not elevated. ✓\nDistractor 1: A) The hips are slightly elevated.\n"
     "Distractor 2: The hips are significantly elevated.\n**Distractor 3**: \"The hips are at an appropriate height.\"",
     ("The hips are not elevated.", ["The hips are slightly elevated.", "The hips are significantly elevated.",
                                     "The hips are at an appropriate height."])),
    ('{"distractors": ["Too wide.", "Too narrow.", "Uneven."]}', (None, ["Too wide.", "Too narrow.", "Uneven."])),
    ('{"correct": "Too wide.", "distractors": ["Too narrow.", "Uneven."]}', None),          # only two distractors
    ('{"correct": "Too wide.", "distractors": ["Too wide!", "Too narrow.", "Uneven."]}', None),  # repeats the answer
    ('{"correct": "Wide.", "distractors": ["Narrow.", "narrow", "Uneven."]}', None),       # duplicate distractors
    ("I cannot help with that.", None),
    ('{"correct": "x", "distractors": [', None),  # truncated JSON, no labelled lines
])
def test_parse_options_on_tricky_replies(reply, expected):
    assert parse_options(reply) == expected


def test_options_are_shuffled_deterministically_by_id(fitnessqa_file):
    sample = read_fitnessqa(fitnessqa_file, fitnessqa_file.parent)[0]
    first = to_mcq(sample, "Right.", ["Wrong 1.", "Wrong 2.", "Wrong 3."])
    again = to_mcq(sample, "Right.", ["Wrong 1.", "Wrong 2.", "Wrong 3."])
    assert first.options == again.options and first.options[first.answer_index] == "Right."
    assert sorted(first.options) == ["Right.", "Wrong 1.", "Wrong 2.", "Wrong 3."]
    fallback = to_mcq(sample, None, ["Wrong 1.", "Wrong 2.", "Wrong 3."])
    assert fallback.options[fallback.answer_index] == "Yes, the movement is insufficient."


def test_convert_with_a_fake_client_writes_mcq_and_counts_skips(fitnessqa_file, tmp_path):
    replies = iter([GOOD, "no idea"])
    seen = []

    def client(messages):
        seen.append(messages[1]["content"])
        return next(replies)

    result = convert(read_fitnessqa(fitnessqa_file, fitnessqa_file.parent), client)
    assert len(seen) == 2 and result.skipped == ["fitnessqa/test.json:fqa_2"]
    from data_modules.formats.mcq import write_mcq

    out = write_mcq(tmp_path / "mcq" / "test.json", result.converted)
    (mcq,) = read_mcq(out, tmp_path / "videos")
    assert mcq.options[mcq.answer_index] == "The movement is insufficient." and len(mcq.options) == 4
    assert mcq.video_path.endswith("gators_01.mp4")


@pytest.fixture(scope="module")
def tiny_causal_lm(tmp_path_factory):
    """A random-init 2-layer Qwen2 causal LM with the project's offline tokenizer, saved to disk."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from groundlight.backbones.tokenizer import build_tokenizer

    tokenizer = build_tokenizer(["correct distractors movement exercise question answer", *(r["answer"] for r in RECORDS)],
                                vocab_size=400)
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    path = tmp_path_factory.mktemp("tiny_lm")
    Qwen2ForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_hf_client_runs_a_local_model_and_random_text_is_skipped(tiny_causal_lm, fitnessqa_file, tmp_path):
    client = HFChatClient(str(tiny_causal_lm), max_new_tokens=8)
    messages = conversion_messages(read_fitnessqa(fitnessqa_file, fitnessqa_file.parent)[0])
    reply = client(messages)
    assert isinstance(reply, str) and reply == client(messages)  # greedy: the same reply twice
    out = tmp_path / "mcq.json"
    assert main(["--in", str(fitnessqa_file), "--out", str(out), "--client", "hf", "--model", str(tiny_causal_lm),
                 "--max-new-tokens", "8"]) == 0
    assert json.loads(out.read_text()) == []  # a random model's text never parses into options: all skipped

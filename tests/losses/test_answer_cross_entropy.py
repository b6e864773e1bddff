"""The answer cross-entropy from the answer positions' logits only (``logits_to_keep``) equals the full sequence's."""

import torch

from groundlight.losses import answer_cross_entropy, answer_window
from groundlight.methods.sft import SFTModule


def test_answer_window_starts_one_before_the_earliest_answer_token():
    """Labels [[-, -, 7, 8], [-, -, -, 9]]: the earliest answer token sits at 2 and is predicted from position 1, so
    the last 3 positions; without any answer token, all of them."""
    labels = torch.tensor([[-100, -100, 7, 8], [-100, -100, -100, 9]])
    assert answer_window(labels) == 3
    assert answer_window(torch.full((2, 5), -100)) == 5


def test_the_sft_loss_keeps_only_answer_logits_and_equals_the_full_sequence_loss(tiny_backbone):
    """A tiny Qwen2.5-VL batch of an MCQ and a moment question (left-padded, answers of different lengths): the
    module's forward returns logits for the answer window only, and its loss equals the cross-entropy over every
    position's logits."""
    from tests.methods.test_self_consistency import make_batch

    batch = make_batch(tiny_backbone)
    module = SFTModule(tiny_backbone)
    output, labels = module.answer_forward(batch)
    length = batch["input_ids"].shape[1]
    assert output.logits.shape[1] == labels.shape[1] == answer_window(batch["labels"]) < length // 2
    with torch.no_grad():
        full, _ = answer_cross_entropy(tiny_backbone(batch).logits, batch["labels"])
        kept, diagnostics = module.loss(batch)
    torch.testing.assert_close(kept, full)
    assert int(diagnostics["answer_tokens"]) == int((batch["labels"] != -100).sum())

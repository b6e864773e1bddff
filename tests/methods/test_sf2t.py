"""SF2T's module: the per-task answer loss (by hand) and the stage hand-off (init_from)."""

import math

import torch

from groundlight.losses import answer_cross_entropy
from groundlight.methods.sf2t import SF2TModule, per_task_answer_loss, task_name


def test_per_task_loss_by_hand():
    """V = 2. Row 0 (counting): labels 0 then 1 at positions 1, 2, predicted from logits [0, 0] (CE ln 2) and
    [ln 3, 0] (p(1) = 1/4, CE ln 4). Row 1 (mcq): label 0 at position 2 from [0, 0] (ln 2).
    Loss = (ln 2 + ln 4 + ln 2) / 3 = 4/3 ln 2; counting = (ln 2 + ln 4) / 2 = 3/2 ln 2; mcq = ln 2."""
    logits = torch.zeros(2, 3, 2)
    logits[0, 1, 0] = math.log(3)
    labels = torch.tensor([[-100, 0, 1], [-100, -100, 0]])
    loss, diagnostics = per_task_answer_loss(logits, labels, ["fragment_counting", "mcq"])
    ln2 = math.log(2)
    assert abs(loss.item() - 4 / 3 * ln2) < 1e-6
    assert abs(diagnostics["loss_counting"].item() - 1.5 * ln2) < 1e-6
    assert abs(diagnostics["loss_mcq"].item() - ln2) < 1e-6
    assert diagnostics["answer_tokens"] == 3 and set(diagnostics) == {"answer_tokens", "loss_counting", "loss_mcq"}


def test_the_loss_is_the_answer_cross_entropy_and_only_it_carries_gradients():
    torch.manual_seed(0)
    logits = torch.randn(3, 6, 11, requires_grad=True)
    labels = torch.tensor([[-100, -100, 3, 4, -100, -100], [-100, 1, 2, 3, 4, 5], [-100, -100, -100, -100, 7, 8]])
    loss, diagnostics = per_task_answer_loss(logits, labels, ["fragment_disorder", "fragment_disorder", "mcq"])
    reference, _ = answer_cross_entropy(logits, labels)
    assert torch.allclose(loss, reference)
    assert not any(value.requires_grad for value in diagnostics.values())
    assert task_name("fragment_rearrangement") == "loss_rearrangement"


def tiny():
    from groundlight.backbones.qwen2_5_vl import Qwen25VLBackbone, TinyQwenConfig

    return Qwen25VLBackbone(tiny=TinyQwenConfig(), min_pixels=56 * 56, max_pixels=56 * 56)


def test_init_from_loads_the_previous_stage_weights(tmp_path):
    torch.manual_seed(0)
    first = SF2TModule(tiny())
    with torch.no_grad():
        for parameter in first.parameters():
            parameter.add_(0.5)
    path = tmp_path / "stage.ckpt"
    torch.save({"state_dict": first.state_dict()}, path)
    torch.manual_seed(1)
    second = SF2TModule(tiny(), init_from=str(path))
    assert all(torch.equal(p, dict(first.named_parameters())[n]) for n, p in second.named_parameters())
    assert not all(torch.equal(p, dict(first.named_parameters())[n]) for n, p in SF2TModule(tiny()).named_parameters())

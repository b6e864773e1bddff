"""The probe's row equals eager attention, keeps gradients, and restores the model."""

import pytest
import torch

from groundlight.attention.probe import AttentionProbe, last_prompt_positions


def video_items(backbone, lengths=(4, 8), side=56, answer=None):
    generator = torch.Generator().manual_seed(1)
    items = []
    for i, frames in enumerate(lengths):
        video = torch.randint(0, 256, (frames, side, side, 3), dtype=torch.uint8, generator=generator)
        visual = backbone.processor.prepare_video(video, torch.arange(frames).double())
        prompt = "When is the red circle visible?" + " the blue square" * i  # rows differ in length → left padding
        items.append({"visual": visual, "prompt": prompt, "answer": answer or "from 1s to 3s"})
    return items


def set_text_attention(backbone, name):
    for layer in backbone.decoder_layers().values():
        layer.self_attn.config._attn_implementation_internal = name


@pytest.mark.parametrize("with_answer", [False, True])
def test_probe_row_equals_eager_on_left_padded_batch(tiny_backbone, with_answer):
    batch = tiny_backbone.processor.collate(video_items(tiny_backbone), with_answer=with_answer)
    assert (batch["attention_mask"][:, 0] == 0).any(), "the batch must be left-padded"
    positions = last_prompt_positions(batch)
    with torch.no_grad(), AttentionProbe(tiny_backbone, layers=[0, 1]) as probe:
        probe.query_positions = positions
        probed_logits = tiny_backbone(batch).logits
    set_text_attention(tiny_backbone, "eager")
    try:
        with torch.no_grad():
            eager = tiny_backbone(batch, output_attentions=True)
    finally:
        set_text_attention(tiny_backbone, "sdpa")
    rows = torch.arange(len(positions))
    for layer in (0, 1):
        expected = eager.attentions[layer][rows, :, positions]
        assert torch.allclose(probe.rows[layer], expected, atol=1e-6, rtol=0)
        assert probe.rows[layer][0, :, 0].abs().max() == 0  # padding gets no attention
    real = batch["attention_mask"].bool()  # padded rows differ between kernels and are never used
    assert torch.allclose(probed_logits[real], eager.logits[real], atol=1e-5)


def test_last_prompt_position_precedes_the_answer(tiny_backbone):
    batch = tiny_backbone.processor.collate(video_items(tiny_backbone), with_answer=True)
    positions = last_prompt_positions(batch)
    rows = torch.arange(len(positions))
    assert (batch["labels"][rows, positions] == -100).all()
    assert (batch["labels"][rows, positions + 1] != -100).all()
    prompt_only = tiny_backbone.processor.collate(video_items(tiny_backbone), with_answer=False)
    assert (last_prompt_positions(prompt_only) == prompt_only["input_ids"].shape[1] - 1).all()


def test_probe_keeps_gradients_and_restores_sdpa(tiny_backbone):
    batch = tiny_backbone.processor.collate(video_items(tiny_backbone), with_answer=True)
    layers = tiny_backbone.decoder_layers()
    with AttentionProbe(tiny_backbone, layers=[1]) as probe:
        probe.query_positions = last_prompt_positions(batch)
        tiny_backbone(batch)
        assert layers[1].self_attn.config._attn_implementation == "groundlight_probe"
    assert layers[1].self_attn.config._attn_implementation == "sdpa"
    assert layers[1].self_attn._groundlight_probe is None and not layers[1]._forward_pre_hooks
    assert set(probe.rows) == {1} and probe.hidden[1].shape[:2] == batch["input_ids"].shape
    q_proj = layers[1].self_attn.q_proj.weight
    (grad,) = torch.autograd.grad((probe.rows[1] * (batch["frame_index"] >= 0)[:, None]).sum(), q_proj)
    assert grad.abs().sum() > 0


def test_probe_rejects_missing_layer(tiny_backbone):
    with pytest.raises(ValueError, match="layers 0..1"):
        AttentionProbe(tiny_backbone, layers=[8])


def test_visual_rows_left_aligns_visual_keys():
    from groundlight.attention.probe import visual_rows

    rows = torch.arange(12.0).view(2, 1, 6)
    visual = torch.tensor([[False, True, True, False, True, False], [False, False, False, True, True, False]])
    gathered, mask = visual_rows(rows, visual)
    assert gathered.tolist() == [[[1.0, 2.0, 4.0]], [[9.0, 10.0, 0.0]]]
    assert mask.tolist() == [[True, True, True], [True, True, False]]


def test_probe_can_stop_the_pass_after_the_last_probed_layer(tiny_backbone):
    batch = tiny_backbone.processor.collate(video_items(tiny_backbone), with_answer=False)
    with torch.no_grad(), AttentionProbe(tiny_backbone, layers=[0]) as full:
        tiny_backbone(batch)
    output = None
    with torch.no_grad(), AttentionProbe(tiny_backbone, layers=[0], stop_after=True) as stopped:
        output = tiny_backbone(batch)
    assert output is None and torch.equal(stopped.rows[0], full.rows[0])
    assert tiny_backbone.decoder_layers()[0].self_attn.config._attn_implementation == "sdpa"

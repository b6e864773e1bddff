"""Tiny Qwen2.5-VL through the backbone interface: collation, frame map, generation, LoRA."""

import torch

from groundlight.backbones.base import LoraOptions
from groundlight.backbones.qwen2_5_vl import Qwen25VLBackbone, TinyQwenConfig
from groundlight.ops import IGNORE_INDEX


def make_items(processor, lengths=(6, 3)):
    items = []
    for n, (prompt, answer) in zip(lengths, [("Find the red circle.", "from 3.0s to 7.0s"), ("Which shape?", "B")]):
        frames = torch.stack([torch.full((56, 56, 3), 20 * i, dtype=torch.uint8) for i in range(n)])
        items.append({"visual": processor.prepare_video(frames, torch.arange(n).double()), "prompt": prompt, "answer": answer})
    return items


def test_collate_marks_video_tokens_frames_and_answer(tiny_backbone):
    proc = tiny_backbone.processor
    items = make_items(proc)
    batch = proc.collate(items, with_answer=True)
    video_id = proc.tokenizer.convert_tokens_to_ids("<|video_pad|>")
    for b, item in enumerate(items):
        is_video = batch["input_ids"][b] == video_id
        assert torch.equal(batch["frame_index"][b][is_video], item["visual"].token_frame)
        assert (batch["frame_index"][b][~is_video] == -1).all()
        assert torch.equal(batch["mm_token_type_ids"][b] == 2, is_video)
        answer = batch["labels"][b][batch["labels"][b] != IGNORE_INDEX]
        assert proc.tokenizer.decode(answer) == item["answer"] + "<|im_end|>"
    assert batch["attention_mask"][1, 0] == 0  # shorter row is left-padded
    assert batch["video_grid_thw"].tolist() == [[3, 4, 4], [2, 4, 4]]
    layout_only = proc.collate(items, with_answer=True, with_pixels=False)
    assert "pixel_values_videos" not in layout_only
    assert all(torch.equal(layout_only[k], batch[k]) for k in ("input_ids", "labels", "frame_index", "video_grid_thw"))


def test_batched_generation_equals_one_by_one(tiny_backbone):
    proc = tiny_backbone.processor
    items = make_items(proc)
    batched = tiny_backbone.generate(proc.collate(items, with_answer=False), max_new_tokens=8)
    single = [tiny_backbone.generate(proc.collate([i], with_answer=False), max_new_tokens=8)[0] for i in items]
    assert batched == single


def test_padding_does_not_change_logits(tiny_backbone):
    """The mask reaches attention: a row's answer logits are the same alone and left-padded in a batch."""
    proc = tiny_backbone.processor
    items = make_items(proc)
    with torch.no_grad():
        batch = proc.collate(items, with_answer=True)
        padded = tiny_backbone(batch).logits[1][batch["attention_mask"][1].bool()]
        alone = tiny_backbone(proc.collate(items[1:], with_answer=True)).logits[0]
    assert torch.allclose(padded, alone, atol=1e-4)


def test_lora_wraps_language_model_attention_only():
    torch.manual_seed(0)
    backbone = Qwen25VLBackbone(tiny=TinyQwenConfig(), lora=LoraOptions(r=4, alpha=8), min_pixels=3136, max_pixels=3136)
    trainable = [n for n, p in backbone.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and "language_model" in n for n in trainable)
    assert any("q_proj" in n for n in trainable) and not any("visual" in n for n in trainable)


def test_exactly_one_source_required():
    import pytest

    with pytest.raises(ValueError, match="exactly one"):
        Qwen25VLBackbone()

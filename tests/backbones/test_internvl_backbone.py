"""Tiny InternVL through the backbone interface: collation, positions, LoRA, freezing, save/load, config checks."""

import copy

import pytest
import torch
from transformers import InternVLConfig

from groundlight.backbones.base import LoraOptions
from groundlight.backbones.internvl import (
    InternVLBackbone,
    TinyInternVLConfig,
    _settle_tokenizer,
    _tile_layout,
    tiny_tokenizer,
)
from groundlight.ops import IGNORE_INDEX


@pytest.fixture(scope="module")
def backbone():
    torch.manual_seed(0)
    return InternVLBackbone(tiny=TinyInternVLConfig()).eval()


def make_items(processor, lengths=(3, 1)):
    """Frame i of a clip is filled with 20*i; clip k's frames sit at 0.5 s, 1.5 s, ... shifted by k."""
    items = []
    for k, (n, prompt, answer) in enumerate(zip(lengths, ["When does the red circle appear?", "Which shape?"],
                                                ["from 3.0s to 7.0s", "B"])):
        frames = torch.stack([torch.full((56, 56, 3), 20 * i, dtype=torch.uint8) for i in range(n)])
        timestamps = torch.arange(n).double() + 0.5 + k
        items.append({"visual": processor.prepare_video(frames, timestamps), "prompt": prompt, "answer": answer,
                      "query": "the red circle" if k == 0 else "shape"})
    return items


def test_collate_lays_out_one_block_per_frame(backbone):
    """Row 0 (3 frames, 4 tokens each): <img>, 4 context ids of frame f, </img> per frame; seconds per token."""
    proc = backbone.processor
    tok = proc.tokenizer
    items = make_items(proc)
    batch = proc.collate(items, with_answer=True)
    ids, frames = batch["input_ids"][0], batch["frame_index"][0]
    visual = (frames >= 0).nonzero().squeeze(1)
    assert frames[visual].tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert torch.equal(ids[visual], torch.full((12,), tok.convert_tokens_to_ids("<IMG_CONTEXT>")))
    for f in range(3):
        first, last = visual[4 * f], visual[4 * f + 3]
        assert tok.convert_ids_to_tokens([int(ids[first - 1]), int(ids[last + 1])]) == ["<img>", "</img>"]
    assert batch["frame_seconds"][0].tolist() == [0.5] * 4 + [1.5] * 4 + [2.5] * 4
    assert batch["frame_seconds"][1].tolist() == [1.5] * 4
    for b, item in enumerate(items):
        answer = batch["labels"][b][batch["labels"][b] != IGNORE_INDEX]
        assert tok.decode(answer) == item["answer"] + "<|im_end|>"
        assert item["query"] in tok.decode(batch["input_ids"][b][batch["query_mask"][b]])
    assert batch["attention_mask"][1, 0] == 0 and batch["pixel_values"].shape == (4, 3, 56, 56)
    layout_only = proc.collate(items, with_answer=True, with_pixels=False)
    assert "pixel_values" not in layout_only and "labels" not in proc.collate(items, with_answer=False)
    assert all(torch.equal(layout_only[k], batch[k]) for k in ("input_ids", "labels", "frame_index", "query_mask"))


def test_positions_count_real_tokens_so_padding_changes_nothing(backbone):
    """Row 1 is left-padded by p columns: its ids are 0 on the padding, then 0, 1, 2, ... as when it is alone.

    The installed forward would number the row from the first pad column: in bf16 that moved the tiny model's
    logits by 4.9e-3; with the counted ids the padded row equals the row alone.
    """
    proc = backbone.processor
    items = make_items(proc)
    batch, alone = proc.collate(items, with_answer=True), proc.collate(items[1:], with_answer=True)
    positions = backbone.full_positions(batch)
    pad = int((batch["attention_mask"][1] == 0).sum())
    assert positions.shape == (1, 2, batch["input_ids"].shape[1]) and pad > 0
    assert positions[0, 1, :pad].tolist() == [0] * pad
    assert torch.equal(positions[0, 1, pad:], backbone.full_positions(alone)[0, 0])
    assert positions[0, 0].tolist() == list(range(batch["input_ids"].shape[1]))
    half = copy.deepcopy(backbone).to(torch.bfloat16)  # fp32 hides a shifted numbering (RoPE is relative), bf16 does not
    with torch.no_grad():
        for model, atol in ((backbone, 1e-5), (half, 1e-3)):
            padded = model(batch).logits[1, pad:].float()
            single = model(alone).logits[0].float()
            assert torch.allclose(padded, single, atol=atol)


def test_backbone_takes_any_frame_count(backbone):
    proc = backbone.processor
    for n in (1, 5):
        batch = proc.collate(make_items(proc, lengths=(n, 2))[:1], with_answer=False)
        assert int((batch["frame_index"] >= 0).sum()) == 4 * n
        with torch.no_grad():
            assert backbone(batch).logits.shape[:2] == batch["input_ids"].shape


def test_lora_wraps_language_model_attention_only():
    """The InternViT has q_proj/k_proj/v_proj too: the default regex wraps the LM's four projections in every
    layer and none of the tower's, where a name-only pattern would wrap the tower's three in every vision layer."""
    torch.manual_seed(0)
    adapted = InternVLBackbone(tiny=TinyInternVLConfig(), lora=LoraOptions(r=4, alpha=8))
    wrapped = sorted(n.removesuffix(".lora_A") for n, _ in adapted.named_modules() if n.endswith(".lora_A"))
    expected = sorted(f"model.base_model.model.model.language_model.layers.{i}.self_attn.{p}"
                      for i in range(2) for p in ("q_proj", "k_proj", "v_proj", "o_proj"))
    assert wrapped == expected
    trainable = [n for n, p in adapted.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and "language_model" in n for n in trainable)
    by_name = InternVLBackbone(tiny=TinyInternVLConfig(), lora=LoraOptions(r=4, target_modules=r".*\.(q_proj|k_proj|v_proj|o_proj)"))
    tower = [n for n, _ in by_name.named_modules() if n.endswith(".lora_A") and "vision_tower" in n]
    assert len(tower) == 2 * 3  # 2 vision layers x q/k/v: the regex's language_model part is what keeps them out


def test_freeze_vision_freezes_the_tower_and_the_projector():
    frozen = InternVLBackbone(tiny=TinyInternVLConfig(), freeze_vision=True)
    for name, param in frozen.named_parameters():
        assert param.requires_grad == ("vision_tower" not in name and "multi_modal_projector" not in name), name
    assert {id(p) for p in frozen.projector_parameters()} == {
        id(p) for n, p in frozen.named_parameters() if "multi_modal_projector" in n}


def test_save_pretrained_merges_lora_into_a_copy(tmp_path):
    torch.manual_seed(0)
    adapted = InternVLBackbone(tiny=TinyInternVLConfig(), lora=LoraOptions(r=4, alpha=8)).eval()
    with torch.no_grad():
        for name, param in adapted.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.5)  # zero-initialised B would make the merge a no-op
    batch = adapted.processor.collate(make_items(adapted.processor), with_answer=True)
    adapted.save_pretrained(tmp_path)
    assert any("lora_" in n for n, _ in adapted.named_parameters())  # the live model keeps its adapters
    loaded = InternVLBackbone(pretrained=str(tmp_path), local_files_only=True).eval()
    assert not any("lora_" in n for n, _ in loaded.named_parameters())
    with torch.no_grad():
        base = adapted.model.get_base_model()
        with adapted.model.disable_adapter():
            without = base(**adapted.model_inputs(batch)).logits
        ours, theirs = adapted(batch).logits, loaded(batch).logits
    assert not torch.allclose(ours, without, atol=1e-3)
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_qwen2_language_model_builds_the_internvl3_layout():
    torch.manual_seed(0)
    internvl3 = InternVLBackbone(tiny=TinyInternVLConfig(text_model_type="qwen2")).eval()
    assert internvl3.model.config.text_config.model_type == "qwen2" and sorted(internvl3.decoder_layers()) == [0, 1]
    batch = internvl3.processor.collate(make_items(internvl3.processor), with_answer=True)
    with torch.no_grad():
        assert internvl3(batch).logits.shape[:2] == batch["input_ids"].shape


def test_checkpoint_layout_is_read_from_the_config_and_checked():
    """The released layout (448 px, patch 14, shuffle 0.5) gives 256 tokens, which image_seq_length must agree with."""
    assert _tile_layout(InternVLConfig()) == (448, 256)
    with pytest.raises(ValueError, match="image_seq_length 64"):
        _tile_layout(InternVLConfig(image_seq_length=64))
    tokenizer = tiny_tokenizer(1024)
    with pytest.raises(ValueError, match="image_token_id"):
        _settle_tokenizer(tokenizer, InternVLConfig(image_token_id=3))
    tokenizer.eos_token = "<|endoftext|>"
    _settle_tokenizer(tokenizer, InternVLConfig(image_token_id=tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")))
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.padding_side == "left"


def test_exactly_one_source_required():
    with pytest.raises(ValueError, match="exactly one"):
        InternVLBackbone()

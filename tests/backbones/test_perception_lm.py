"""Tiny PerceptionLM through the backbone interface: prompt layout, frame map, 1-D positions, pooling, LoRA, loading."""

import sys

import pytest
import torch

from groundlight.backbones.base import LoraOptions
from groundlight.backbones.perception_lm import (
    PLM_CHAT_TEMPLATE,
    PerceptionLMBackbone,
    PerceptionLMVideoProcessor,
    TinyPerceptionLMConfig,
)
from groundlight.ops import IGNORE_INDEX

SYSTEM = ("You are a helpful language and vision assistant. You are able to understand the visual content that the user "
          "provides, and assist the user with a variety of tasks using natural language.")


@pytest.fixture(scope="module")
def backbone():
    torch.manual_seed(0)
    return PerceptionLMBackbone(tiny=TinyPerceptionLMConfig()).eval()


def make_items(processor, lengths=(3, 2)):
    """Frame i of video v is filled with 20*i + v; frames sampled at 0.5 s, 1.5 s, ... (not at integer seconds)."""
    items = []
    for v, (n, prompt, answer) in enumerate(zip(lengths, ["When does the red circle appear?", "Which shape?"], ["from 1.0s to 2.5s", "B"])):
        frames = torch.stack([torch.full((56, 56, 3), 20 * i + v, dtype=torch.uint8) for i in range(n)])
        visual = processor.prepare_video(frames, torch.arange(n).double() + 0.5)
        items.append({"visual": visual, "prompt": prompt, "answer": answer, "query": "the red circle" if v == 0 else ""})
    return items


def test_chat_text_has_the_hub_layout(backbone):
    """BOS, the default system turn, the user header, one <|video|> before the trimmed text, the assistant header."""
    tokenizer = backbone.processor.tokenizer
    messages = [{"role": "user", "content": [{"type": "text", "text": "  Where?  "}, {"type": "video"}]}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n" + SYSTEM + "<|eot_id|>"
                    "<|start_header_id|>user<|end_header_id|>\n\n<|video|>Where?<|eot_id|>"
                    "<|start_header_id|>assistant<|end_header_id|>\n\n")
    own = [{"role": "system", "content": " Be brief. "}, {"role": "user", "content": "Hi"},
           {"role": "assistant", "content": [{"type": "text", "text": "Hello"}]}]
    assert tokenizer.apply_chat_template(own, tokenize=False) == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello<|eot_id|>")
    assert tokenizer.chat_template == PLM_CHAT_TEMPLATE
    assert (tokenizer.eos_token, tokenizer.pad_token, tokenizer.bos_token) == ("<|eot_id|>", "<|end_of_text|>", "<|begin_of_text|>")


def test_collate_expands_the_video_frame_after_frame(backbone):
    proc = backbone.processor
    items = make_items(proc)
    batch = proc.collate(items, with_answer=True)
    video_id = proc.tokenizer.convert_tokens_to_ids("<|video|>")
    assert video_id == backbone.model.config.video_token_id
    for b, item in enumerate(items):
        row = batch["input_ids"][b][batch["attention_mask"][b].bool()]
        at = int((row == video_id).nonzero()[0])
        assert proc.tokenizer.decode(row[:at]).endswith("<|start_header_id|>user<|end_header_id|>\n\n")
        assert torch.equal(row[at : at + item["visual"].num_tokens], torch.full((item["visual"].num_tokens,), video_id))
        assert proc.tokenizer.decode(row[at + item["visual"].num_tokens :]).startswith(item["prompt"] + "<|eot_id|>")
        is_video = batch["input_ids"][b] == video_id
        assert batch["frame_index"][b][is_video].tolist() == [f for f in range(len(item["visual"].timestamps)) for _ in range(4)]
        assert (batch["frame_index"][b][~is_video] == -1).all()
        answer = batch["labels"][b][batch["labels"][b] != IGNORE_INDEX]
        assert proc.tokenizer.decode(answer) == item["answer"] + "<|eot_id|>"
    assert batch["frame_seconds"][0].tolist() == [0.5] * 4 + [1.5] * 4 + [2.5] * 4
    assert proc.tokenizer.decode(batch["input_ids"][0][batch["query_mask"][0]]).strip() == "the red circle"
    assert not batch["query_mask"][1].any()
    assert batch["attention_mask"][1, 0] == 0  # shorter row is left-padded
    assert batch["pixel_values_videos"].shape == (5, 3, 56, 56)
    assert torch.equal(batch["pixel_values_videos"][3], items[1]["visual"].pixel_values[0])
    layout_only = proc.collate(items, with_answer=True, with_pixels=False)
    assert "pixel_values_videos" not in layout_only and proc.visual_keys == ("pixel_values_videos",)
    assert all(torch.equal(layout_only[k], batch[k]) for k in ("input_ids", "labels", "frame_index", "query_mask"))


def test_full_positions_count_real_tokens_after_left_padding(backbone):
    batch = {"attention_mask": torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])}
    assert backbone.full_positions(batch).tolist() == [[[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]]]


def test_padding_does_not_change_logits(backbone):
    """A row's logits are the same alone and left-padded (the mask reaches attention; ids restart after the padding)."""
    proc = backbone.processor
    items = make_items(proc)
    batch = proc.collate(items, with_answer=True)
    with torch.no_grad():
        padded = backbone(batch).logits[1][batch["attention_mask"][1].bool()]
        alone = backbone(proc.collate(items[1:], with_answer=True)).logits[0]
    assert torch.allclose(padded, alone, atol=1e-5)


def test_dropped_frame_keeps_the_original_ids_of_what_follows(backbone):
    """Dropping frame 1 (4 tokens) of row 0: gathered columns keep their full-sequence ids (a gap of 4 after frame 0's
    tokens), and the gathered run equals the masked run of the same length on every kept token."""
    proc = backbone.processor
    batch = proc.collate(make_items(proc), with_answer=True)
    keep = batch["attention_mask"].bool() & (batch["frame_index"] != 1)
    keep[1] = batch["attention_mask"][1].bool()  # row 1 keeps everything
    embeds = backbone.embed_inputs(batch).detach()
    inputs = backbone.kept_inputs(batch, embeds, keep)
    full = backbone.full_positions(batch)[0]
    valid = inputs["attention_mask"][0].bool()
    ids = inputs["position_ids"][0, 0][valid]
    assert torch.equal(ids, full[0][keep[0]])
    assert torch.equal(ids.diff().unique(), torch.tensor([1, 5]))  # one jump: over frame 1's 4 tokens
    with torch.no_grad():
        gathered = backbone.forward_kept(batch, embeds, keep)
        masked = backbone.forward_kept(batch, embeds, keep, mode="mask")
    for row in range(2):
        kept = gathered.attention_mask[row].bool()
        assert torch.allclose(gathered.logits[row][kept], masked.logits[row][keep[row]], atol=1e-5)


def test_video_tokens_carry_their_own_frames_features(backbone):
    """Each frame is encoded and pooled alone: the 4 embeddings at frame 2's positions are frame 2's features."""
    proc = backbone.processor
    items = make_items(proc)[:1]
    batch = proc.collate(items, with_answer=False)
    frame_two = proc.collate([{**items[0], "visual": proc.prepare_video(
        torch.full((1, 56, 56, 3), 40, dtype=torch.uint8), torch.tensor([2.5]))}], with_answer=False)
    with torch.no_grad():
        embeds = backbone.embed_inputs(batch)[0]
        alone = backbone.video_features(frame_two)
    assert alone.shape == (4, 64)
    assert torch.allclose(embeds[batch["frame_index"][0] == 2], alone, atol=1e-6)


def test_pooling_ratio_sets_tokens_per_frame_for_tiny_and_loaded_models(tmp_path):
    torch.manual_seed(0)
    dense = PerceptionLMBackbone(tiny=TinyPerceptionLMConfig(), pooling_ratio=1)
    assert dense.processor.tokens_per_frame == 16 and dense.model.config.projector_pooling_ratio == 1
    dense.save_pretrained(tmp_path)
    coarse = PerceptionLMBackbone(pretrained=str(tmp_path), local_files_only=True, pooling_ratio=4).eval()
    assert coarse.processor.tokens_per_frame == 1 and coarse.model.config.projector_pooling_ratio == 4
    items = make_items(coarse.processor, lengths=(3,))
    batch = coarse.processor.collate(items, with_answer=False)
    assert int((batch["frame_index"] >= 0).sum()) == 3
    with torch.no_grad():
        assert coarse.embed_inputs(batch).shape[1] == batch["input_ids"].shape[1]
    kept = PerceptionLMBackbone(pretrained=str(tmp_path), local_files_only=True)
    assert kept.processor.tokens_per_frame == 16  # None keeps the checkpoint's ratio


def test_lora_wraps_language_model_attention_only():
    torch.manual_seed(0)
    backbone = PerceptionLMBackbone(tiny=TinyPerceptionLMConfig(), lora=LoraOptions(r=4, alpha=8))
    trainable = [n for n, p in backbone.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and ".language_model.layers." in n for n in trainable)
    wrapped = {n.split(".self_attn.")[1].split(".")[0] for n in trainable}
    assert wrapped == {"q_proj", "k_proj", "v_proj", "o_proj"} and len(trainable) == 2 * 4 * 2  # A, B x 4 x 2 layers
    tower = [n for n, _ in backbone.named_parameters() if "vision_tower" in n or "multi_modal_projector" in n]
    assert tower and not any("lora_" in n for n in tower)  # the CLIP tower's q/k/v_proj are not wrapped


def test_lora_save_pretrained_merges_into_a_loadable_copy(tmp_path):
    torch.manual_seed(0)
    backbone = PerceptionLMBackbone(tiny=TinyPerceptionLMConfig(), lora=LoraOptions(r=4, alpha=8, dropout=0.0)).eval()
    with torch.no_grad():
        for name, param in backbone.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.5)  # B starts at zero: make the adapters change the output
    batch = backbone.processor.collate(make_items(backbone.processor), with_answer=True)
    backbone.save_pretrained(tmp_path)
    assert any("lora_" in n for n, _ in backbone.named_parameters())  # the live model keeps its adapters
    loaded = PerceptionLMBackbone(pretrained=str(tmp_path), local_files_only=True).eval()
    assert not any("lora_" in n for n, _ in loaded.named_parameters())
    with torch.no_grad():
        assert torch.allclose(backbone(batch).logits, loaded(batch).logits, atol=1e-5)


def test_freeze_vision_freezes_tower_and_projector_only():
    torch.manual_seed(0)
    backbone = PerceptionLMBackbone(tiny=TinyPerceptionLMConfig(), freeze_vision=True)
    frozen = {n for n, p in backbone.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, _ in backbone.named_parameters() if "vision_tower" in n or "multi_modal_projector" in n}
    assert {id(p) for p in backbone.projector_parameters()} <= {id(p) for n, p in backbone.named_parameters() if n in frozen}


def test_timm_tower_without_timm_names_timm_and_torchvision(tmp_path, monkeypatch):
    from transformers import PerceptionLMConfig, TimmWrapperConfig

    tower = TimmWrapperConfig(architecture="vit_pe_core_gigantic_patch14_448", model_args={"embed_dim": 1536})
    text = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4,
            "intermediate_size": 64, "vocab_size": 300}
    PerceptionLMConfig(vision_config=tower, text_config=text).save_pretrained(tmp_path)
    monkeypatch.setitem(sys.modules, "timm", None)  # `import timm` raises ImportError
    with pytest.raises(ImportError, match=r"vit_pe_core_gigantic_patch14_448.*needs timm.*torchvision"):
        PerceptionLMBackbone(pretrained=str(tmp_path), local_files_only=True)


def test_exactly_one_source_required():
    with pytest.raises(ValueError, match="exactly one"):
        PerceptionLMBackbone()
    with pytest.raises(ValueError, match="pooling_ratio"):
        PerceptionLMBackbone(tiny=TinyPerceptionLMConfig(), pooling_ratio=0)


def test_processor_is_picklable(backbone):
    import pickle

    clone = pickle.loads(pickle.dumps(backbone.processor))
    assert isinstance(clone, PerceptionLMVideoProcessor) and clone.tokens_per_frame == 4

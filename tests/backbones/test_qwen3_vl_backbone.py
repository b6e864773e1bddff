"""Tiny Qwen3-VL through the backbone interface: the ids the model receives, DeepStack in kept runs, LoRA."""

import pytest
import torch

from groundlight.backbones.base import LoraOptions
from groundlight.backbones.qwen3_vl import DEEPSTACK_KEY, Qwen3VLBackbone, TinyQwen3Config, rope_index
from groundlight.backbones.token_keep import TokenKeep
from groundlight.ops import IGNORE_INDEX


@pytest.fixture(scope="module")
def backbone():
    torch.manual_seed(0)
    return Qwen3VLBackbone(tiny=TinyQwen3Config(), min_pixels=64 * 64, max_pixels=64 * 64, total_pixels=None).eval()


def make_items(processor, fps_and_frames=((1, 6), (2, 8), (4, 5))):
    generator = torch.Generator().manual_seed(0)
    items = []
    for fps, n in fps_and_frames:
        frames = torch.randint(0, 256, (n, 56, 56, 3), dtype=torch.uint8, generator=generator)
        visual = processor.prepare_video(frames, torch.arange(n, dtype=torch.float64) / fps + 0.5)
        items.append({"visual": visual, "prompt": f"When does the red circle appear? ({fps} fps)",
                      "answer": "from 1.0s to 2.5s", "query": "the red circle"})
    return items


def test_collate_marks_only_video_pads(backbone):
    proc = backbone.processor
    items = make_items(proc)
    batch = proc.collate(items, with_answer=True)
    tokenizer = proc.tokenizer
    video_id = tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert batch["video_grid_thw"].tolist() == [[3, 4, 4], [4, 4, 4], [3, 4, 4]]
    for b, item in enumerate(items):
        is_video = batch["input_ids"][b] == video_id
        assert torch.equal(batch["mm_token_type_ids"][b] == 2, is_video)  # start/end and times are text (0)
        assert set(batch["mm_token_type_ids"][b].tolist()) <= {0, 2}
        assert torch.equal(batch["frame_index"][b][is_video], item["visual"].token_frame)
        answer = batch["labels"][b][batch["labels"][b] != IGNORE_INDEX]
        assert tokenizer.decode(answer) == item["answer"] + "<|im_end|>"
    assert tokenizer.decode(batch["input_ids"][2][batch["attention_mask"][2].bool()]).count(" seconds>") == 3
    assert batch["attention_mask"][0, 0] == 0  # the shortest row is left-padded


def test_installed_rope_index_equals_ours_and_text_resumes_at_block_max_plus_one(backbone):
    """At 1, 2 and 4 fps (3, 4, 3 groups) the installed get_rope_index gives our ids; after every group the next
    token's ids are the max so far + 1 on all three axes (Qwen3-VL is not hit by Qwen2.5-VL's text-after-video bug)."""
    batch = backbone.processor.collate(make_items(backbone.processor), with_answer=False, with_pixels=False)
    ours = backbone.full_positions(batch)
    installed, _ = backbone.model.model.get_rope_index(
        batch["input_ids"], mm_token_type_ids=batch["mm_token_type_ids"], video_grid_thw=batch["video_grid_thw"],
        attention_mask=batch["attention_mask"],
    )
    assert torch.equal(installed, ours)
    video = batch["mm_token_type_ids"] == 2
    after_group = video[:, :-1] & ~video[:, 1:]
    for row, column in (after_group.nonzero() + torch.tensor([0, 1])).tolist():
        assert ours[:, row, column].tolist() == [int(ours[:, row, :column].max()) + 1] * 3
    assert int(after_group.sum()) == 3 + 4 + 3


def _recorded_positions(backbone, run):
    seen = []
    handle = backbone.model.model.language_model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["position_ids"].clone()), with_kwargs=True)
    try:
        with torch.no_grad():
            run()
    finally:
        handle.remove()
    return seen


def test_training_and_generation_use_our_ids(backbone):
    """The teacher-forced pass and generation's prefill get rope_index's ids; decoded tokens continue at max + 1 + step."""
    proc = backbone.processor
    item = make_items(proc, ((2, 6),))[0]
    train, prompt = proc.collate([item], with_answer=True), proc.collate([item], with_answer=False)
    expected = rope_index(train["mm_token_type_ids"], train["video_grid_thw"], train["attention_mask"])
    (trained,) = _recorded_positions(backbone, lambda: backbone(train))
    assert torch.equal(trained, expected)
    calls = _recorded_positions(backbone, lambda: backbone.generate(prompt, max_new_tokens=3))
    length = prompt["input_ids"].shape[1]
    assert torch.equal(calls[0], expected[:, :, :length])
    top = int(expected[:, :, :length].max())
    assert [call[:, 0, -1].tolist() for call in calls[1:]] == [[top + step] * 3 for step in range(1, len(calls))]


def test_the_model_computes_the_same_ids_from_the_video_marker_and_refuses_without_it(backbone):
    batch = backbone.processor.collate(make_items(backbone.processor), with_answer=True)
    inputs = backbone.model_inputs(batch)
    ours = inputs.pop("position_ids")
    (own,) = _recorded_positions(backbone, lambda: backbone.model(**inputs, use_cache=False))
    assert torch.equal(own, ours)
    inputs.pop("mm_token_type_ids")
    with pytest.raises(ValueError, match="mm_token_type_ids"):
        backbone.model(**inputs, use_cache=False)


def test_kept_runs_add_the_deepstack_features_of_the_kept_visual_tokens(backbone):
    """Keeping every other visual token: the gathered run equals the masked run on the kept columns, and both
    differ from a run without DeepStack (the tiny model adds vision block 0's features after decoder layer 0)."""
    batch = backbone.processor.collate(make_items(backbone.processor), with_answer=True)
    visual = backbone.visual_mask(batch)
    keep = batch["attention_mask"].bool() & ~(visual & (visual.long().cumsum(1) % 2 == 0))
    with torch.no_grad():
        embeds = backbone.embed_inputs(batch)
        assert [level.shape for level in batch[DEEPSTACK_KEY]] == [(int(visual.sum()), 64)]
        gathered = backbone.forward_kept(batch, embeds, keep, mode="gather")
        masked = backbone.forward_kept(batch, embeds, keep, mode="mask")
        without = TokenKeep.forward_kept(backbone, batch, embeds, keep, mode="gather")
    valid = gathered.attention_mask.bool()
    for row in range(valid.shape[0]):
        columns = gathered.index[row][valid[row]]
        assert torch.allclose(gathered.logits[row][valid[row]], masked.logits[row][columns], atol=1e-5)
    assert (gathered.logits - without.logits)[valid].abs().max() > 1e-3


def test_a_kept_run_trains_the_deepstack_mergers(backbone):
    """projector_parameters() holds the merger and the DeepStack mergers; a kept-token loss reaches both."""
    batch = backbone.processor.collate(make_items(backbone.processor, ((2, 4),)), with_answer=True)
    out = backbone.forward_kept(batch, backbone.embed_inputs(batch), batch["attention_mask"].bool())
    out.logits.float().logsumexp(-1).mean().backward()
    visual = backbone.vision_encoder()
    try:
        for module in (visual.merger, visual.deepstack_merger_list):
            assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
        assert {id(p) for p in backbone.projector_parameters()} == {
            id(p) for m in (visual.merger, visual.deepstack_merger_list) for p in m.parameters()}
    finally:
        backbone.zero_grad(set_to_none=True)


def test_lora_wraps_language_model_attention_only_and_saves_merged(tmp_path):
    torch.manual_seed(0)
    backbone = Qwen3VLBackbone(tiny=TinyQwen3Config(), lora=LoraOptions(r=4, alpha=8), min_pixels=4096,
                               max_pixels=4096, total_pixels=None).eval()
    trainable = [n for n, p in backbone.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and ".language_model." in n for n in trainable)
    assert {n.split(".self_attn.")[1].split(".")[0] for n in trainable} == {"q_proj", "k_proj", "v_proj", "o_proj"}
    for name, module in backbone.named_modules():
        if name.endswith("lora_B.default"):
            torch.nn.init.normal_(module.weight, std=0.5)  # non-zero adapters, so merging matters
    backbone.save_pretrained(tmp_path)
    loaded = Qwen3VLBackbone(pretrained=str(tmp_path), local_files_only=True, min_pixels=4096, max_pixels=4096,
                             total_pixels=None).eval()
    assert not any("lora_" in n for n, _ in loaded.named_parameters())
    batch = backbone.processor.collate(make_items(backbone.processor, ((1, 4),)), with_answer=True)
    with torch.no_grad():
        assert torch.allclose(backbone(batch).logits, loaded(batch).logits, atol=1e-5)


def test_exactly_one_source_and_a_valid_mrope_section():
    with pytest.raises(ValueError, match="exactly one"):
        Qwen3VLBackbone()
    with pytest.raises(ValueError, match="head_dim/2"):
        TinyQwen3Config(mrope_section=(2, 3, 2)).build_config(None)

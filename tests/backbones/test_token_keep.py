"""Running the tiny Qwen2.5-VL with only some visual tokens kept (the GroundVTS backbone path)."""

import pytest
import torch

from data_modules.samples import VideoSample


def _items(backbone, frames=(8, 6), side=56, seed=0):
    generator = torch.Generator().manual_seed(seed)
    items = []
    for count in frames:
        video = torch.randint(0, 256, (count, side, side, 3), dtype=torch.uint8, generator=generator)
        visual = backbone.processor.prepare_video(video, torch.arange(count).double())
        sample = VideoSample("s", "v.mp4", "moment_retrieval", "the red circle appears.", windows=[(1.0, 3.0)])
        prompt = "Find the moment described by the query: 'the red circle appears.' Answer."
        items.append({"visual": visual, "prompt": prompt, "answer": "from 1.0s to 3.0s", "sample": sample,
                      "query": sample.query})  # the task builder's query span
    return items


@pytest.fixture(scope="module")
def batch(tiny_backbone):
    return tiny_backbone.processor.collate(_items(tiny_backbone), with_answer=False)


def _random_keep(batch, ratio=0.5, seed=1):
    visual = batch["frame_index"] >= 0
    generator = torch.Generator().manual_seed(seed)
    return ~visual | (visual & (torch.rand(visual.shape, generator=generator) < ratio))


def test_query_mask_marks_exactly_the_query_text(tiny_backbone, batch):
    tokenizer = tiny_backbone.processor.tokenizer
    for row in range(2):
        ids = batch["input_ids"][row][batch["query_mask"][row]]
        text = tokenizer.decode(ids)
        assert "red circle appears." in text
        assert "Find" not in text and "Answer" not in text
    assert not (batch["query_mask"] & (batch["frame_index"] >= 0)).any()


def test_an_item_without_a_query_span_marks_no_query_tokens(tiny_backbone):
    items = [{k: v for k, v in item.items() if k != "query"} for item in _items(tiny_backbone)]
    assert not tiny_backbone.processor.collate(items, with_answer=False)["query_mask"].any()


def test_kept_tokens_keep_their_full_sequence_position_ids(tiny_backbone, batch):
    keep = _random_keep(batch)
    embeds = tiny_backbone.embed_inputs(batch)
    full = tiny_backbone.full_positions(batch)
    inputs = tiny_backbone.kept_inputs(batch, embeds, keep)
    assert inputs["inputs_embeds"].shape[1] < batch["input_ids"].shape[1]  # the sequence really shrinks
    for row in range(2):
        kept = keep[row] & batch["attention_mask"][row].bool()
        valid = inputs["attention_mask"][row].bool()
        assert torch.equal(inputs["position_ids"][:, row, valid], full[:, row, kept])
        assert torch.equal(inputs["inputs_embeds"][row, valid], embeds[row, kept])
    # video tokens have genuinely 3-D ids (t differs from h/w somewhere)
    visual = batch["frame_index"] >= 0
    assert (full[0][visual] != full[1][visual]).any()


def test_contiguous_positions_ablation_renumbers_without_gaps(tiny_backbone, batch):
    keep = _random_keep(batch)
    inputs = tiny_backbone.kept_inputs(batch, tiny_backbone.embed_inputs(batch), keep, positions="contiguous")
    for row in range(2):
        valid = inputs["attention_mask"][row].bool()
        expected = torch.arange(int(valid.sum()))
        assert torch.equal(inputs["position_ids"][0, row, valid], expected)
        assert torch.equal(inputs["position_ids"][2, row, valid], expected)


def test_keep_all_matches_the_plain_forward_and_generate(tiny_backbone, batch):
    keep = torch.ones_like(batch["attention_mask"], dtype=torch.bool)
    embeds = tiny_backbone.embed_inputs(batch)
    with torch.no_grad():
        kept = tiny_backbone.forward_kept(batch, embeds, keep)
        plain = tiny_backbone(batch).logits
    valid = batch["attention_mask"].bool()
    assert torch.allclose(kept.logits[valid], plain[valid], atol=1e-4)
    assert tiny_backbone.generate_kept(batch, embeds, keep, 6) == tiny_backbone.generate(batch, 6)


def test_generation_with_cache_equals_generation_without(tiny_backbone, batch):
    keep = _random_keep(batch)
    embeds = tiny_backbone.embed_inputs(batch)
    inputs = tiny_backbone.kept_inputs(batch, embeds, keep)
    cached = tiny_backbone._greedy(inputs, 8, use_cache=True)
    uncached = tiny_backbone._greedy(inputs, 8, use_cache=False)
    assert cached.shape[1] == 8 and torch.equal(cached, uncached)


def test_dropped_tokens_are_never_attended_in_mask_mode_decoding(tiny_backbone, batch):
    """Mask mode must equal gather mode, and scrambling the dropped tokens' embeddings changes nothing."""
    keep = _random_keep(batch)
    embeds = tiny_backbone.embed_inputs(batch)
    dropped = ~keep & batch["attention_mask"].bool()
    scrambled = embeds.clone()
    scrambled[dropped] = torch.randn_like(scrambled[dropped]) * 10
    masked_inputs = tiny_backbone.kept_inputs(batch, scrambled, keep, mode="mask")
    gathered_inputs = tiny_backbone.kept_inputs(batch, embeds, keep, mode="gather")
    masked = tiny_backbone._greedy(masked_inputs, 8, use_cache=True)
    gathered = tiny_backbone._greedy(gathered_inputs, 8, use_cache=True)
    assert torch.equal(masked, gathered)
    with torch.no_grad():
        a = tiny_backbone.forward_kept(batch, scrambled, keep, mode="mask")
        b = tiny_backbone.forward_kept(batch, embeds, keep, mode="gather")
    for row in range(2):
        rows_a = a.logits[row, keep[row] & batch["attention_mask"][row].bool()]
        rows_b = b.logits[row, b.attention_mask[row].bool()]
        assert torch.allclose(rows_a, rows_b, atol=1e-4)


def test_labels_follow_the_gathered_answer(tiny_backbone):
    batch = tiny_backbone.processor.collate(_items(tiny_backbone), with_answer=True)
    keep = _random_keep(batch)
    out = tiny_backbone.forward_kept(batch, tiny_backbone.embed_inputs(batch), keep)
    for row in range(2):
        original = batch["labels"][row][batch["labels"][row] != -100]
        gathered = out.labels[row][out.labels[row] != -100]
        assert torch.equal(original, gathered)
    assert out.logits.shape[:2] == out.labels.shape

"""Every registered family (``families.py``) meets the backbone contract that methods rely on."""

from __future__ import annotations

import pytest
import torch

from groundlight.attention.probe import AttentionProbe, last_prompt_positions
from tests.backbones.families import FAMILIES

FPS = 2.0  # sampled frames at 0, 0.5, 1, ... s: a frame map that confused frames with seconds would fail


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request):
    return request.param


@pytest.fixture(scope="module")
def backbone(family):
    return FAMILIES[family].tiny().eval()


def _items(backbone, lengths=(8, 6), query="the red circle"):
    generator = torch.Generator().manual_seed(0)
    items = []
    for i, frames in enumerate(lengths):
        video = torch.randint(0, 256, (frames, 56, 56, 3), dtype=torch.uint8, generator=generator)
        timestamps = torch.arange(frames).double() / FPS + 0.25
        visual = backbone.processor.prepare_video(video, timestamps)
        prompt = f"When does {query} appear?" + " Answer briefly." * i  # rows differ in length → left padding
        items.append({"visual": visual, "prompt": prompt, "answer": "from 1.0s to 2.5s", "query": query,
                      "timestamps": timestamps})
    return items


@pytest.fixture(scope="module")
def items(backbone):
    return _items(backbone)


def test_frame_map_matches_the_sampled_timestamps(backbone, items):
    batch = backbone.processor.collate(items, with_answer=True)
    visual = backbone.visual_mask(batch)
    for row, item in enumerate(items):
        frames = backbone.frame_index(batch)[row][visual[row]]
        assert torch.equal(frames, item["visual"].token_frame)
        assert frames.min() >= 0 and frames.max() < len(item["timestamps"]) and bool((frames.diff() >= 0).all())
        assert torch.allclose(batch["frame_seconds"][row].double(), item["timestamps"][frames], atol=1e-6)


def test_visual_mask_covers_exactly_the_video_tokens(backbone, items):
    batch = backbone.processor.collate(items, with_answer=True)
    visual = backbone.visual_mask(batch)
    assert visual.sum(1).tolist() == [item["visual"].num_tokens for item in items]
    assert not (visual & ~batch["attention_mask"].bool()).any()
    assert not (visual & (batch["labels"] != -100)).any()
    assert not (visual & batch["query_mask"]).any() and batch["query_mask"].any(1).all()
    assert (batch["attention_mask"][:, 0] == 0).any(), "the batch must be left-padded"


def test_everything_kept_equals_the_full_run(backbone, items):
    batch = backbone.processor.collate(items, with_answer=True)
    with torch.no_grad():
        full = backbone(batch).logits
        kept = backbone.forward_kept(batch, backbone.embed_inputs(batch), batch["attention_mask"].bool())
    for row in range(len(items)):
        valid = kept.attention_mask[row].bool()
        positions = kept.index[row][valid]
        assert torch.equal(positions, batch["attention_mask"][row].bool().nonzero().squeeze(1))
        assert torch.allclose(kept.logits[row][valid], full[row][positions], atol=1e-5)
        assert torch.equal(kept.labels[row][valid], batch["labels"][row][positions])


def test_probe_row_equals_eager_attention(backbone, items):
    batch = backbone.processor.collate(items, with_answer=True)
    layers = sorted(backbone.decoder_layers())
    positions = last_prompt_positions(batch)
    with torch.no_grad(), AttentionProbe(backbone, layers) as probe:
        probe.query_positions = positions
        backbone(batch)
    configs = {id(layer.self_attn.config): layer.self_attn.config for layer in backbone.decoder_layers().values()}
    saved = {key: config._attn_implementation for key, config in configs.items()}
    for config in configs.values():
        config._attn_implementation_internal = "eager"
    try:
        with torch.no_grad():
            eager = backbone(batch, output_attentions=True)
    finally:
        for key, config in configs.items():
            config._attn_implementation_internal = saved[key]
    rows = torch.arange(len(items))
    for layer in layers:
        assert torch.allclose(probe.rows[layer], eager.attentions[layer][rows, :, positions], atol=1e-6, rtol=0)


def test_cached_generation_equals_recomputing_every_step(backbone, items):
    batch = backbone.processor.collate(items, with_answer=False)
    everything = batch["attention_mask"].bool()
    with torch.no_grad():
        cached = backbone.generate(batch, max_new_tokens=6)
        uncached = backbone.generate_kept(batch, backbone.embed_inputs(batch), everything, 6, use_cache=False)
        one_by_one = [backbone.generate(backbone.processor.collate([item], with_answer=False), 6)[0] for item in items]
    assert cached == uncached == one_by_one


def test_replayed_visual_features_give_the_same_logits_without_encoding_again(backbone, items):
    batch = backbone.processor.collate(items, with_answer=True)
    second = backbone.processor.collate([item | {"prompt": "Is the red circle visible?"} for item in items],
                                        with_answer=True, with_pixels=False)
    second |= {key: batch[key] for key in backbone.processor.visual_keys}
    calls = []
    first_child = next(backbone.vision_encoder().children())
    handle = first_child.register_forward_hook(lambda *args: calls.append(1))
    try:
        with torch.no_grad():
            direct = backbone(second).logits
            with backbone.reuse_visual_features() as reuse:
                backbone(batch)
                reuse.replay = True
                replayed = backbone(second).logits
    finally:
        handle.remove()
    assert len(calls) == 2  # the direct pass and the recording pass; the replay skipped the encoder
    assert torch.allclose(direct, replayed, atol=1e-6)
    assert "forward" not in backbone.vision_encoder().__dict__


def test_save_pretrained_round_trip(family, backbone, items, tmp_path):
    backbone.save_pretrained(tmp_path)
    loaded = FAMILIES[family].load(tmp_path).eval()
    batch = backbone.processor.collate(items, with_answer=True)
    reloaded_batch = loaded.processor.collate(items, with_answer=True)
    assert torch.equal(batch["input_ids"], reloaded_batch["input_ids"])
    with torch.no_grad():
        assert torch.allclose(backbone(batch).logits, loaded(reloaded_batch).logits, atol=1e-6)


def test_hidden_state_stops_at_its_layer_and_equals_the_full_pass(backbone, items):
    batch = backbone.processor.collate(items, with_answer=True)
    with torch.no_grad():
        full = backbone(batch, output_hidden_states=True).hidden_states
    calls = []
    handle = backbone.decoder_layers()[max(backbone.decoder_layers())].register_forward_hook(lambda *a: calls.append(1))
    try:
        early = backbone.hidden_state(batch, 1)
    finally:
        handle.remove()
    real = batch["attention_mask"].bool()
    assert torch.allclose(early[real], full[1][real], atol=1e-5)
    assert not calls, "the layers after the requested state must not run"
    with pytest.raises(ValueError, match="does not exist"):
        backbone.hidden_state(batch, len(backbone.decoder_layers()) + 1)


def test_embedding_offsets_reach_the_llm_only_where_set(backbone, items):
    batch = backbone.processor.collate(items, with_answer=True)
    with torch.no_grad():
        plain = backbone(batch, output_hidden_states=True).hidden_states[0]
        offsets = torch.zeros_like(plain)
        offsets[:, -1] = 1.0  # the last token of every row
        with backbone.embedding_offsets(offsets):
            moved = backbone(batch, output_hidden_states=True).hidden_states[0]
        again = backbone(batch, output_hidden_states=True).hidden_states[0]
    assert torch.allclose(moved[:, -1], plain[:, -1] + 1.0, atol=1e-5)
    assert torch.equal(moved[:, :-1], plain[:, :-1]) and torch.equal(again, plain), "offsets leaked past their context"


@pytest.mark.parametrize("where", ["answer", "prompt"])
def test_a_continued_pass_equals_one_pass_in_logits_states_and_gradients(backbone, items, where):
    """``forward_continued`` split after the video, each row at its own column (``answer``: its first answer token;
    the rows' answers start at different columns, so one row's answer starts before another's video ends), with
    offsets on the second part: the same logits, hidden states and gradients as one pass with those offsets
    (``embedding_offsets``); the offsets come from the first part's states, as D²VLM's aggregation does."""
    items = [items[0], items[1] | {"answer": ", then ".join(["from 1.0s to 2.5s"] * 12)}]  # a longer answer
    batch = backbone.processor.collate(items, with_answer=True)
    length = batch["input_ids"].shape[1]
    visual = backbone.visual_mask(batch)
    last_visual = torch.stack([row.nonzero().max() for row in visual])
    answer = (batch["labels"] != -100).long().argmax(1)
    if where == "answer":
        split = answer
        assert len(set(split.tolist())) > 1 and int(answer.min()) <= int(last_visual.max()), "rows must split apart"
    else:
        split = last_visual + 2
    keep = length - int(split.min()) + 1  # the first part's last position predicts the second part's first token
    rows = torch.arange(len(items))
    grads = {}

    def offsets_from(states):
        extra = torch.zeros(len(items), length, states(1).shape[-1])
        extra[rows, split + 1] = states(1)[rows, last_visual].detach()  # a first-part state, added to a second-part input
        return extra

    backbone.train()
    try:
        continued = backbone.forward_continued(batch, split, offsets_from, keep)
        real = batch["attention_mask"].bool()
        (continued.logits.float().square().mean() + continued.hidden_state(-1)[real].square().mean()).backward()
        grads["continued"] = {n: p.grad.clone() for n, p in backbone.named_parameters() if p.grad is not None}
        backbone.zero_grad(set_to_none=True)
        with torch.no_grad():
            states = backbone(batch, output_hidden_states=True).hidden_states
        full_offsets = offsets_from(lambda index: states[index])
        with backbone.embedding_offsets(full_offsets):
            one = backbone(batch, output_hidden_states=True, logits_to_keep=keep)
        (one.logits.float().square().mean() + one.hidden_states[-1][real].square().mean()).backward()
        grads["one"] = {n: p.grad.clone() for n, p in backbone.named_parameters() if p.grad is not None}
        backbone.zero_grad(set_to_none=True)
    finally:
        backbone.eval()
    assert continued.logits.shape == one.logits.shape
    window = real[:, length - keep :]
    assert torch.allclose(continued.logits[window], one.logits[window], atol=1e-5)
    for index in (1, -1):
        assert torch.allclose(continued.hidden_state(index)[real], one.hidden_states[index][real], atol=1e-5)
    assert full_offsets.abs().sum() > 0 and grads["one"].keys() == grads["continued"].keys()
    for name, grad in grads["one"].items():
        assert torch.allclose(grads["continued"][name], grad, atol=1e-6, rtol=1e-4), name
    with pytest.raises(ValueError, match="visual tokens lie after"):
        backbone.forward_continued(batch, last_visual, offsets_from, 2)


def test_step_hooked_greedy_equals_plain_greedy_without_offsets(backbone, items):
    batch = backbone.processor.collate(items, with_answer=False)
    seen = []

    def hook(step, token, hidden):
        seen.append((step, hidden[0].shape[1]))
        return None

    with torch.no_grad():
        embeds = backbone.embed_inputs(batch)
        hooked = backbone.greedy_tokens(batch, embeds, 4, on_step=hook)
        plain = backbone.greedy_tokens(batch, embeds, 4)
    assert torch.equal(hooked, plain)
    assert seen[0] == (0, batch["input_ids"].shape[1]) and all(length == 1 for _, length in seen[1:])


def test_added_tokens_start_at_the_vocabulary_mean_and_survive_a_save(family, tmp_path):
    backbone = FAMILIES[family].tiny()
    known = len(backbone.processor.tokenizer)
    ids = backbone.add_tokens(["<evi>", "</evi>"])
    embeddings = backbone.input_embeddings().weight
    assert len(set(ids)) == 2 and min(ids) >= known
    assert torch.allclose(embeddings[ids[0]], embeddings[:known].mean(0), atol=1e-6)
    assert backbone.add_tokens(["<evi>", "</evi>"]) == ids, "adding again must not move or re-initialise them"
    with torch.no_grad():
        embeddings[ids[0]] += 1.0  # "trained"
    backbone.save_pretrained(tmp_path)
    loaded = FAMILIES[family].load(tmp_path)
    assert loaded.add_tokens(["<evi>", "</evi>"]) == ids
    assert torch.allclose(loaded.input_embeddings().weight[ids[0]], embeddings[ids[0]], atol=1e-6)

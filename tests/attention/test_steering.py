"""Steering (Eq. 11) by hand, keyframe tokens, and steered forward passes on the tiny model."""

import torch

from data_modules.samples import VideoSample
from groundlight.attention.steering import AttentionSteering, frame_keyframe_flags, keyframe_tokens, redistribute


def test_proportional_and_uniform_by_hand():
    """Keys: text 0.4, v1 0.1, v2 0.3, v3 0.2; keyframes v2, v3. S_vis = 0.6, S_key = 0.5, so
    proportional gives v2 = 0.3·0.6/0.5 = 0.36, v3 = 0.24, v1 = 0; uniform gives 0.2 each; text stays 0.4.
    Head 1 is not chosen and keeps its row."""
    probs = torch.tensor([[[0.4, 0.1, 0.3, 0.2], [0.1, 0.2, 0.3, 0.4]]])
    visual = torch.tensor([[False, True, True, True]])
    keyframes = torch.tensor([[False, False, True, True]])
    heads = torch.tensor([[0]])
    proportional = redistribute(probs, visual, keyframes, heads, "proportional")
    assert torch.allclose(proportional[0, 0], torch.tensor([0.4, 0.0, 0.36, 0.24]))
    assert torch.equal(proportional[0, 1], probs[0, 1])
    uniform = redistribute(probs, visual, keyframes, heads, "uniform")
    assert torch.allclose(uniform[0, 0], torch.tensor([0.4, 0.2, 0.2, 0.2]))
    no_keys = redistribute(probs, visual, torch.zeros_like(keyframes), heads, "proportional")
    assert torch.equal(no_keys, probs)


def test_frame_flags_and_keyframe_tokens(tiny_backbone):
    assert frame_keyframe_flags(torch.arange(8).double(), [2.0, 3.2, 9.0]).tolist() == [
        False, False, True, True, False, False, False, False]
    video = torch.zeros(8, 56, 56, 3, dtype=torch.uint8)
    visual = tiny_backbone.processor.prepare_video(video, torch.arange(8).double())  # 4 groups of 2 frames, 4 tokens each
    sample = VideoSample("s", "v.mp4", "mcq", "q?", options=["a", "b"], answer_index=0, keyframes=[3.0])
    batch = tiny_backbone.processor.collate([{"visual": visual, "prompt": "q?", "answer": "A"}], with_answer=False)
    batch |= {"visuals": [visual], "samples": [sample]}
    keys = keyframe_tokens(batch)
    visual_positions = (batch["frame_index"][0] >= 0).nonzero().squeeze(1)
    assert keys[0, visual_positions].tolist() == [False] * 4 + [True] * 4 + [False] * 8  # frames 2-3 = group 1


def steering_batch(backbone, keyframes):
    generator = torch.Generator().manual_seed(3)
    video = torch.randint(0, 256, (8, 56, 56, 3), dtype=torch.uint8, generator=generator)
    visual = backbone.processor.prepare_video(video, torch.arange(8).double())
    sample = VideoSample("s", "v.mp4", "mcq", "q?", options=["a", "b"], answer_index=0, keyframes=keyframes)
    batch = backbone.processor.collate([{"visual": visual, "prompt": "Which object appears?", "answer": "A"}] * 2,
                                       with_answer=False)
    return batch | {"visuals": [visual] * 2, "samples": [sample] * 2}


def test_steered_forward_changes_only_with_a_real_redistribution(tiny_backbone):
    all_frames = steering_batch(tiny_backbone, [float(t) for t in range(8)])
    with torch.no_grad():
        plain = tiny_backbone(all_frames).logits[:, -1]
        steering = AttentionSteering(layer=1, mode="proportional", selection="manual", heads=[0, 1, 2, 3])
        steering.start(tiny_backbone, all_frames)  # every token is a keyframe: Eq. 11 is the identity
        identity = tiny_backbone(all_frames).logits[:, -1]
        steering.stop()
        one_frame = steering_batch(tiny_backbone, [3.0])
        steering = AttentionSteering(layer=1, mode="proportional", selection="non_sink_ratio", top_k=2)
        steering.start(tiny_backbone, one_frame)
        steered = tiny_backbone(one_frame).logits[:, -1]
        assert steering._state["heads"].shape == (2, 2)
        steering.stop()
        assert tiny_backbone.model.config.text_config._attn_implementation == "sdpa"
    assert torch.allclose(identity, plain, atol=1e-5)
    assert not torch.allclose(steered, plain, atol=1e-4)


def test_steered_generation_with_cache_equals_recomputing_every_step(tiny_backbone):
    """Steering acts on every decode step: cached decoding (one new query row per step) gives the tokens of
    recomputing the whole sequence each step, and the steer is called on the prompt and on each new token."""
    batch = steering_batch(tiny_backbone, [3.0])
    length = batch["input_ids"].shape[1]
    outputs, seen = [], []
    for use_cache in (True, False):
        steering = AttentionSteering(layer=1, mode="uniform", selection="visual_sum", top_k=2)
        steer, calls = steering._steer, []
        steering._steer = lambda layer, probs, steer=steer, calls=calls: (calls.append(probs.shape[-1]), steer(layer, probs))[1]
        steering.start(tiny_backbone, batch)
        with torch.no_grad():
            if use_cache:
                outputs.append(tiny_backbone.generate(batch, max_new_tokens=4))
            else:
                everything = torch.ones_like(batch["attention_mask"], dtype=torch.bool)
                outputs.append(tiny_backbone.generate_kept(batch, tiny_backbone.embed_inputs(batch), everything, 4,
                                                           use_cache=False))
        steering.stop()
        seen.append(calls)
    assert outputs[0] == outputs[1]
    steps = len(seen[0])
    assert steps >= 2 and seen[0] == seen[1] == [length + step for step in range(steps)]

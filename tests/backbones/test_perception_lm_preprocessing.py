"""PerceptionLM video preprocessing and token geometry on hand-made frames (no model is built)."""

import pytest
import torch

from groundlight.backbones.perception_lm import PerceptionLMVideoProcessor, tower_geometry


def processor(**kwargs):
    return PerceptionLMVideoProcessor(tokenizer=None, **{"tile_size": 56, "patch_size": 14, **kwargs})


def test_constant_frames_normalise_to_half_mean_half_std():
    """Frame i is filled with 10*i at 80x120: bicubic keeps a constant image constant, so every entry of frame i
    is (10*i/255 - 0.5)/0.5, on the 56x56 tile."""
    frames = torch.stack([torch.full((80, 120, 3), 10 * i, dtype=torch.uint8) for i in range(3)])
    visual = processor().prepare_video(frames, torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64))
    assert visual.pixel_values.shape == (3, 3, 56, 56)
    for i in range(3):
        expected = torch.full((3, 56, 56), (10 * i / 255 - 0.5) / 0.5)
        assert torch.allclose(visual.pixel_values[i], expected, atol=1e-6)


def test_frames_already_at_the_tile_are_not_resampled():
    generator = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (2, 56, 56, 3), dtype=torch.uint8, generator=generator)
    visual = processor().prepare_video(frames, torch.tensor([0.0, 1.0]))
    expected = frames.permute(0, 3, 1, 2).float() / 255 * 2 - 1
    assert torch.allclose(visual.pixel_values, expected, atol=1e-6)


def test_tokens_per_frame_follow_the_pooled_grid():
    """448-px tile, 14-px patches: 32 patches a side, pooled to floor(32/r) cells a side (HF's adaptive pooling).
    r=2 → 256 (the hub checkpoint), r=4 → 64 (self-consistency inference), r=5 → 6² = 36 (its training)."""
    counts = {r: PerceptionLMVideoProcessor(tokenizer=None, pooling_ratio=r).tokens_per_frame for r in (1, 2, 3, 4, 5)}
    assert counts == {1: 1024, 2: 256, 3: 100, 4: 64, 5: 36}
    with pytest.raises(ValueError, match="pooling_ratio"):
        processor(pooling_ratio=5)  # 4 patches a side pool to 0 cells


def test_token_frame_is_frame_after_frame():
    """56-px tile, pooling 2: 4 tokens per frame, frames in order; timestamps are kept as given (float64)."""
    frames = torch.zeros((3, 56, 56, 3), dtype=torch.uint8)
    timestamps = torch.tensor([0.3, 1.1, 4.0])
    visual = processor().prepare_video(frames, timestamps)
    assert (visual.num_tokens, visual.tokens_per_frame) == (12, 4)
    assert visual.token_frame.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert visual.timestamps.dtype == torch.float64 and visual.timestamps.tolist() == pytest.approx([0.3, 1.1, 4.0])
    one_token = processor(pooling_ratio=4).prepare_video(frames, timestamps)
    assert one_token.token_frame.tolist() == [0, 1, 2]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="frames"):
        processor().prepare_video(torch.zeros((0, 56, 56, 3), dtype=torch.uint8), torch.zeros(0))
    with pytest.raises(ValueError, match="one timestamp per frame"):
        processor().prepare_video(torch.zeros((2, 56, 56, 3), dtype=torch.uint8), torch.zeros(3))


def test_tower_geometry_prefers_the_tile_over_the_architecture_name():
    """A PE tower named ..._patch14_336 runs on 448-px tiles in PerceptionLM: model_args' img_size wins."""
    from transformers import CLIPVisionConfig, TimmWrapperConfig

    pe = TimmWrapperConfig(architecture="vit_pe_core_large_patch14_336", model_args={"embed_dim": 1024, "img_size": [448, 448]})
    assert tower_geometry(pe) == (448, 14)
    bare = TimmWrapperConfig(architecture="vit_pe_core_gigantic_patch16_448", model_args={"embed_dim": 1536})
    assert tower_geometry(bare) == (448, 16)  # HF's video processor default tile; patch from the name
    assert tower_geometry(CLIPVisionConfig(image_size=56, patch_size=14)) == (56, 14)


def test_matches_hf_video_processor():
    """Equality with HF's PerceptionLM video processor; needs torchvision (GPU machines have it)."""
    pytest.importorskip("torchvision")
    from transformers import PerceptionLMVideoProcessor as HFVideoProcessor

    generator = torch.Generator().manual_seed(1)
    frames = torch.randint(0, 256, (4, 100, 150, 3), dtype=torch.uint8, generator=generator)
    hf = HFVideoProcessor(size={"height": 56, "width": 56})
    out = hf(videos=[frames.permute(0, 3, 1, 2)], return_tensors="pt")
    ours = processor().prepare_video(frames, torch.arange(4).double())
    assert out["pixel_values_videos"].shape == (1, 4, 3, 56, 56)
    assert torch.allclose(out["pixel_values_videos"][0], ours.pixel_values, atol=2e-2)

"""Qwen2.5-VL video preprocessing on hand-made frames."""

import pytest
import torch

from groundlight.backbones.qwen2_5_vl import CLIP_MEAN, CLIP_STD, QwenVideoProcessor, smart_resize


def processor(**kwargs):
    return QwenVideoProcessor(tokenizer=None, min_pixels=56 * 56, max_pixels=56 * 56, **kwargs)


def test_smart_resize_matches_qwen_rules():
    """240x320 at <= 56*56 px: beta = sqrt(76800/3136) = 4.949; floor(240/4.949/28)*28 = 28, floor(320/4.949/28)*28 = 56."""
    assert smart_resize(240, 320, 28, 56 * 56, 56 * 56) == (28, 56)
    assert smart_resize(56, 56, 28, 56 * 56, 56 * 56) == (56, 56)
    assert smart_resize(60, 50, 28, 56 * 56, 10**6) == (56, 56)  # round(60/28)=2, round(50/28)=2
    with pytest.raises(ValueError, match="aspect"):
        smart_resize(1, 300, 28, 1, 10**6)


def test_constant_frames_normalise_to_clip_values():
    """Frame i is filled with 10*i: every entry of channel c, temporal slot s equals (10*(2t+s)/255 - mean_c)/std_c."""
    frames = torch.stack([torch.full((56, 56, 3), 10 * i, dtype=torch.uint8) for i in range(4)])
    visual = processor().prepare_video(frames, torch.arange(4).double())
    assert visual.grid_thw == (2, 4, 4)
    assert visual.pixel_values.shape == (2 * 4 * 4, 3 * 2 * 14 * 14)
    assert visual.num_tokens == 8
    assert visual.token_frame.tolist() == [0, 0, 0, 0, 2, 2, 2, 2]
    assert visual.seconds_per_step == 2.0
    patch = visual.pixel_values[-1].view(3, 2, 14, 14)  # last patch: frames 2 and 3
    for c in range(3):
        for s in range(2):
            expected = (10 * (2 + s) / 255 - CLIP_MEAN[c]) / CLIP_STD[c]
            assert torch.allclose(patch[c, s], torch.full((14, 14), expected), atol=1e-6)


def test_patch_order_is_qwen_merge_window_order():
    """Patches come in (t, h/2, w/2, 2, 2) order; rebuilt here from explicit loops over the frames."""
    generator = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (2, 56, 84, 3), dtype=torch.uint8, generator=generator)
    proc = QwenVideoProcessor(tokenizer=None, min_pixels=56 * 84, max_pixels=56 * 84)
    visual = proc.prepare_video(frames, torch.tensor([0.0, 0.5]))
    mean, std = torch.tensor(CLIP_MEAN).view(3, 1, 1, 1), torch.tensor(CLIP_STD).view(3, 1, 1, 1)
    video = (frames.permute(3, 0, 1, 2).float() / 255 - mean) / std  # (C, T, H, W)
    expected = []
    for bh in range(2):
        for bw in range(3):
            for mh in range(2):
                for mw in range(2):
                    h, w = (bh * 2 + mh) * 14, (bw * 2 + mw) * 14
                    expected.append(video[:, 0:2, h : h + 14, w : w + 14].reshape(-1))
    assert visual.grid_thw == (1, 4, 6)
    assert torch.allclose(visual.pixel_values, torch.stack(expected), atol=1e-5)
    assert visual.seconds_per_step == 1.0  # 2 frames x 0.5 s


def test_odd_frame_count_repeats_last_frame():
    frames = torch.stack([torch.full((56, 56, 3), 10 * i, dtype=torch.uint8) for i in range(3)])
    visual = processor().prepare_video(frames, torch.arange(3).double())
    assert visual.grid_thw == (2, 4, 4)
    last = visual.pixel_values[-1].view(3, 2, 14, 14)
    assert torch.equal(last[:, 0], last[:, 1])
    assert visual.token_frame.max() == 2


def test_matches_hf_video_processor():
    """Equality with HF's Qwen2-VL video processor; needs torchvision (GPU machines have it)."""
    pytest.importorskip("torchvision")
    from transformers import Qwen2VLVideoProcessor

    generator = torch.Generator().manual_seed(1)
    frames = torch.randint(0, 256, (4, 100, 150, 3), dtype=torch.uint8, generator=generator)
    hf = Qwen2VLVideoProcessor(size={"shortest_edge": 56 * 56, "longest_edge": 112 * 112})
    out = hf(videos=[frames.permute(0, 3, 1, 2)], return_tensors="pt", cap_pixels_per_frame=False)
    ours = QwenVideoProcessor(tokenizer=None, min_pixels=56 * 56, max_pixels=112 * 112).prepare_video(
        frames, torch.arange(4).double()
    )
    assert tuple(out["video_grid_thw"][0].tolist()) == ours.grid_thw
    assert torch.allclose(out["pixel_values_videos"], ours.pixel_values, atol=2e-2)

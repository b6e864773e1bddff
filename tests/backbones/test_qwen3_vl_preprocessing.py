"""Qwen3-VL preprocessing, group times and position ids, without a model."""

from types import SimpleNamespace

import pytest
import torch

from groundlight.backbones.qwen3_vl import (
    IMAGE_MEAN,
    IMAGE_STD,
    Qwen3VideoProcessor,
    build_qwen3_tokenizer,
    group_seconds,
    rope_index,
    timestamp_text,
)


@pytest.fixture(scope="module")
def tokenizer():
    return build_qwen3_tokenizer()


def processor(tokenizer=None, side=64, **kwargs):
    return Qwen3VideoProcessor(tokenizer, min_pixels=side * side, max_pixels=side * side, total_pixels=None, **kwargs)


@pytest.mark.parametrize(("timestamps", "expected"), [
    ([10.0, 11.0, 12.0, 13.0, 14.0], ["<10.5 seconds>", "<12.5 seconds>", "<14.0 seconds>"]),  # 1 fps from 10 s
    ([0.25, 0.75, 1.25, 1.75, 2.25], ["<0.5 seconds>", "<1.5 seconds>", "<2.2 seconds>"]),  # 2 fps; 2.25 rounds to even
    ([3.0, 3.25, 3.5, 3.75, 4.0], ["<3.1 seconds>", "<3.6 seconds>", "<4.0 seconds>"]),  # 4 fps: 3.125, 3.625, 4
])
def test_each_group_is_preceded_by_the_mean_time_of_its_frames(tokenizer, timestamps, expected):
    """5 frames → 3 groups: (f0, f1), (f2, f3), (f4, f4 repeated); the text is the mean of each pair's real times."""
    frames = torch.zeros(5, 64, 64, 3, dtype=torch.uint8)
    proc = processor(tokenizer)
    visual = proc.prepare_video(frames, torch.tensor(timestamps, dtype=torch.float64))
    block = "<|vision_start|>" + "<|video_pad|>" * 4 + "<|vision_end|>"
    assert proc.video_text(visual) == "".join(time + block for time in expected)
    ids, _ = proc.prompt_ids("Find it.", visual)
    text = tokenizer.decode(ids)
    assert text == "<|im_start|>user\n" + "".join(time + block for time in expected) + "Find it.<|im_end|>\n<|im_start|>assistant\n"
    assert torch.equal(visual.timestamps, torch.tensor(timestamps, dtype=torch.float64))
    assert visual.token_frame.tolist() == [0] * 4 + [2] * 4 + [4] * 4


@pytest.mark.parametrize("fps", [1, 2, 4])
def test_group_times_match_the_installed_qwen3_processor(fps):
    """HF's Qwen3VLProcessor computes the same strings from frame indices of a 24 fps source (index / 24)."""
    from transformers import Qwen3VLProcessor
    from transformers.video_utils import VideoMetadata

    indices = [k * 24 // fps + 5 for k in range(7)]
    hf = Qwen3VLProcessor.__new__(Qwen3VLProcessor)  # only the placeholder text is needed: no video processor
    hf.video_processor = SimpleNamespace(merge_size=2, temporal_patch_size=2)
    hf.vision_start_token, hf.vision_end_token, hf.video_token = "<|vision_start|>", "<|vision_end|>", "<|video_pad|>"
    metadata = VideoMetadata(total_num_frames=400, fps=24.0, frames_indices=list(indices))
    expected = hf.replace_video_token({"video_grid_thw": torch.tensor([[4, 4, 4]]), "video_metadata": [metadata]}, 0)
    visual = processor().prepare_video(torch.zeros(7, 64, 64, 3, dtype=torch.uint8),
                                      torch.tensor(indices, dtype=torch.float64) / 24.0)
    assert processor().video_text(visual) == expected
    assert expected.count(" seconds>") == 4


def test_installed_processor_keeps_the_templates_outer_wrapper():
    """transformers 5.24 replaces only <|video_pad|>: the template's <|vision_start|> ... <|vision_end|> stay around
    the groups. The Qwen release (4.57) replaced the whole wrapper; this family follows the release."""
    import transformers
    from transformers import Qwen3VLProcessor

    hf = Qwen3VLProcessor.__new__(Qwen3VLProcessor)
    hf.video_token = "<|video_pad|>"
    expanded, _ = hf.get_text_with_replacements(["a<|vision_start|><|video_pad|><|vision_end|>b"],
                                                videos_replacements=["<0.5 seconds><|vision_start|>V<|vision_end|>"])
    if expanded[0] == "a<0.5 seconds><|vision_start|>V<|vision_end|>b":
        pytest.fail(f"transformers {transformers.__version__} now drops the outer wrapper like the release")
    assert expanded[0] == "a<|vision_start|><0.5 seconds><|vision_start|>V<|vision_end|><|vision_end|>b"


def test_constant_frames_normalise_to_half_mean_and_std():
    """Frame i is filled with 10*i: every entry of channel c, temporal slot s equals (10*(2t+s)/255 - 0.5)/0.5."""
    frames = torch.stack([torch.full((64, 64, 3), 10 * i, dtype=torch.uint8) for i in range(4)])
    visual = processor().prepare_video(frames, torch.arange(4).double())
    assert visual.grid_thw == (2, 4, 4)
    assert visual.pixel_values.shape == (2 * 4 * 4, 3 * 2 * 16 * 16)
    assert visual.num_tokens == 8 and visual.token_frame.tolist() == [0, 0, 0, 0, 2, 2, 2, 2]
    patch = visual.pixel_values[-1].view(3, 2, 16, 16)  # last patch: frames 2 and 3
    for c in range(3):
        for s in range(2):
            expected = (10 * (2 + s) / 255 - IMAGE_MEAN[c]) / IMAGE_STD[c]
            assert torch.allclose(patch[c, s], torch.full((16, 16), expected), atol=1e-6)


def test_patch_order_is_merge_window_order():
    """Patches come in (t, h/2, w/2, 2, 2) order; rebuilt here from explicit loops over the frames."""
    frames = torch.randint(0, 256, (2, 64, 96, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    proc = Qwen3VideoProcessor(None, min_pixels=64 * 96, max_pixels=64 * 96, total_pixels=None)
    visual = proc.prepare_video(frames, torch.tensor([0.0, 0.5]))
    video = (frames.permute(3, 0, 1, 2).float() / 255 - 0.5) / 0.5  # (C, T, H, W)
    expected = []
    for bh in range(2):
        for bw in range(3):
            for mh in range(2):
                for mw in range(2):
                    h, w = (bh * 2 + mh) * 16, (bw * 2 + mw) * 16
                    expected.append(video[:, 0:2, h : h + 16, w : w + 16].reshape(-1))
    assert visual.grid_thw == (1, 4, 6)
    assert torch.allclose(visual.pixel_values, torch.stack(expected), atol=1e-5)


def test_frame_size_budget_by_hand():
    """480x640 frames, factor 32.

    * budget per frame: 8 frames sharing 800000 px → min(786432, 100000) = 100000; beta = sqrt(307200 / 100000)
      = 1.7527; floor(480 / 1.7527 / 32) · 32 = 256, floor(640 / 1.7527 / 32) · 32 = 352;
    * no clip budget: 307200 px fit 768·32² as they are;
    * the floor: a clip budget of 1000 px gives max(125, 1.05 · 4096) = 4300 px per frame → 32 x 64;
    * frames under 32 px are scaled up first: 20x40 → 32x64.
    """
    shared = Qwen3VideoProcessor(None, min_pixels=4096, max_pixels=768 * 32 * 32, total_pixels=800000)
    assert shared.frame_size(8, 480, 640) == (256, 352)
    assert Qwen3VideoProcessor(None, 4096, 768 * 32 * 32, None).frame_size(8, 480, 640) == (480, 640)
    assert Qwen3VideoProcessor(None, 4096, 768 * 32 * 32, 1000).frame_size(8, 480, 640) == (32, 64)
    assert Qwen3VideoProcessor(None, 1024, 768 * 32 * 32, None).frame_size(4, 20, 40) == (32, 64)


def test_group_seconds_repeats_the_last_frame():
    assert group_seconds(torch.tensor([1.0, 2.0, 4.0])) == [1.5, 4.0]
    assert timestamp_text(12.0) == "<12.0 seconds>"


def test_matches_hf_video_processor():
    """Equality with HF's Qwen3-VL video processor (capped per-frame budget); needs torchvision (GPU machines)."""
    pytest.importorskip("torchvision")
    from transformers import Qwen3VLVideoProcessor

    frames = torch.randint(0, 256, (4, 180, 320, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    hf = Qwen3VLVideoProcessor(size={"shortest_edge": 4096, "longest_edge": 4 * 20000}, max_video_tokens=768)
    out = hf(videos=[frames.permute(0, 3, 1, 2)], return_tensors="pt", do_sample_frames=False, cap_pixels_per_frame=True)
    ours = Qwen3VideoProcessor(None, min_pixels=4096, max_pixels=768 * 32 * 32, total_pixels=4 * 20000).prepare_video(
        frames, torch.arange(4).double()
    )
    assert tuple(out["video_grid_thw"][0].tolist()) == ours.grid_thw
    assert torch.allclose(out["pixel_values_videos"], ours.pixel_values, atol=2e-2)


def test_positions_by_hand():
    """One row: 5 text tokens, 2 groups of a 4x4-patch (2x2 merged) video with 3 text tokens between, 2 after.

    Text 0..4; group 1 starts at 5: t 5, h 5 5 6 6, w 5 6 5 6; text resumes at 5 + max(2, 2) = 7 (7, 8, 9);
    group 2 at 10: t 10, h 10 10 11 11, w 10 11 10 11; text 12, 13, 14. Padding on the left gets 0.
    """
    types = torch.tensor([[0, 0] + [0] * 5 + [2] * 4 + [0] * 3 + [2] * 4 + [0] * 3])
    mask = torch.tensor([[0, 0] + [1] * 19])
    positions = rope_index(types, torch.tensor([[2, 4, 4]]), mask)
    text = lambda *ids: [[i, i, i] for i in ids]  # noqa: E731
    expected = ([[0, 0, 0]] * 2 + text(0, 1, 2, 3, 4) + [[5, 5, 5], [5, 5, 6], [5, 6, 5], [5, 6, 6]] + text(7, 8, 9)
                + [[10, 10, 10], [10, 10, 11], [10, 11, 10], [10, 11, 11]] + text(12, 13, 14))
    assert positions[:, 0].T.tolist() == expected


def test_positions_of_a_wide_group():
    """Grid (1, 4, 6) → 2x3 merged: h +0 +0 +0 +1 +1 +1, w +0 +1 +2 +0 +1 +2; text resumes at start + 3."""
    types = torch.tensor([[0, 0] + [2] * 6 + [0, 0]])
    positions = rope_index(types, torch.tensor([[1, 4, 6]]))[:, 0]
    assert positions[0].tolist() == [0, 1, 2, 2, 2, 2, 2, 2, 5, 6]
    assert positions[1].tolist() == [0, 1, 2, 2, 2, 3, 3, 3, 5, 6]
    assert positions[2].tolist() == [0, 1, 2, 3, 4, 2, 3, 4, 5, 6]


def test_rope_index_rejects_bad_layouts():
    with pytest.raises(ValueError, match="image"):
        rope_index(torch.tensor([[0, 1]]), None)
    with pytest.raises(ValueError, match="not one 2x2 frame group"):
        rope_index(torch.tensor([[0] + [2] * 8 + [0]]), torch.tensor([[2, 4, 4]]))  # two groups back to back
    with pytest.raises(ValueError, match="left over"):
        rope_index(torch.tensor([[0] + [2] * 4 + [0]]), torch.tensor([[2, 4, 4]]))

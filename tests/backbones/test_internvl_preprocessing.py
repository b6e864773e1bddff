"""InternVL video preprocessing and prompt layout on hand-made frames, against HF's own code where it runs here."""

from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from groundlight.backbones.internvl import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    InternVLVideoProcessor,
    tiny_tokenizer,
    tokens_per_frame,
)

MEAN, STD = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer(1024)


def processor(tokenizer=None, size=56, tokens=4, **kwargs):
    return InternVLVideoProcessor(tokenizer=tokenizer, image_size=size, tokens_per_frame=tokens, **kwargs)


def test_tokens_per_frame_follow_the_patch_grid_and_pixel_shuffle():
    """(448/14)² · 0.5² = 32² / 4 = 256; (56/14)² / 4 = 4; 384 is no multiple of 14; 42/14 = 3 is odd."""
    assert tokens_per_frame(448, 14, 0.5) == 256
    assert tokens_per_frame(56, 14, 0.5) == 4
    for size in (384, 42):
        with pytest.raises(ValueError, match="pixel shuffle"):
            tokens_per_frame(size, 14, 0.5)


def test_constant_frames_normalise_to_imagenet_values():
    """Frame i is filled with 10*i at the tile size (no resize): channel c holds (10i/255 - mean_c)/std_c."""
    frames = torch.stack([torch.full((56, 56, 3), 10 * i, dtype=torch.uint8) for i in range(3)])
    visual = processor().prepare_video(frames, torch.tensor([0.25, 0.75, 1.25]))
    assert visual.pixel_values.shape == (3, 3, 56, 56)
    assert visual.num_tokens == 12 and visual.tokens_per_frame == 4
    assert visual.token_frame.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    for i in range(3):
        expected = (torch.full((3, 56, 56), 10 * i / 255) - MEAN) / STD
        assert torch.allclose(visual.pixel_values[i], expected, atol=1e-6)


def test_resize_squashes_to_a_square_without_keeping_the_aspect():
    """A 56x112 frame, black left half and white right half, becomes 56x56 with the edge at column 28:
    PIL's bicubic at 2x downscale reaches 4 source pixels (2 target columns) around it."""
    frame = torch.zeros((1, 56, 112, 3), dtype=torch.uint8)
    frame[:, :, 56:] = 255
    tile = processor().prepare_video(frame, torch.zeros(1)).pixel_values[0]
    assert tile.shape == (3, 56, 56)
    assert torch.allclose(tile[:, :, :26], ((0 - MEAN) / STD).expand(3, 56, 26), atol=1e-6)
    assert torch.allclose(tile[:, :, 30:], ((1 - MEAN) / STD).expand(3, 56, 26), atol=1e-6)


def test_matches_hf_pil_image_processor():
    """Equal to HF's PIL-backend InternVL image processor (GotOcr2, one tile, ImageNet mean/std), which is the
    official ``T.Resize((448, 448), BICUBIC)`` on PIL images; runs without torchvision."""
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

    generator = torch.Generator().manual_seed(1)
    frames = torch.randint(0, 256, (3, 100, 150, 3), dtype=torch.uint8, generator=generator)
    hf = GotOcr2ImageProcessorPil(size={"height": 56, "width": 56}, crop_to_patches=False,
                                  image_mean=list(IMAGENET_MEAN), image_std=list(IMAGENET_STD))
    expected = hf(images=[Image.fromarray(f.numpy()) for f in frames], return_tensors="pt")
    ours = processor().prepare_video(frames, torch.arange(3).double())
    assert expected["num_patches"].tolist() == [1, 1, 1]
    assert torch.allclose(ours.pixel_values, expected["pixel_values"], atol=1e-5)


def test_matches_hf_video_processor_given_the_model_s_size_and_statistics():
    """HF's InternVL video processor (torchvision) told the real tile size and mean/std: equal without a
    resize; within 5/255 with one (torch's bicubic kernel is not PIL's). Needs torchvision (GPU machines)."""
    pytest.importorskip("torchvision")
    from transformers import InternVLVideoProcessor as HFVideoProcessor

    hf = HFVideoProcessor(size={"height": 56, "width": 56}, image_mean=list(IMAGENET_MEAN), image_std=list(IMAGENET_STD))
    generator = torch.Generator().manual_seed(2)
    for shape, atol in (((4, 56, 56, 3), 1e-5), ((4, 100, 150, 3), 5 / 255 / min(IMAGENET_STD))):
        frames = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
        expected = hf(videos=[frames.permute(0, 3, 1, 2)], return_tensors="pt")["pixel_values_videos"][0]
        ours = processor().prepare_video(frames, torch.arange(4).double()).pixel_values
        assert expected.shape == ours.shape == (4, 3, 56, 56)
        assert torch.allclose(ours, expected, atol=atol)


def test_video_text_is_hf_s_expansion_of_the_video_placeholder():
    """Frames numbered from 1, one ``<img>`` block each, joined by newlines: HF's ``replace_video_token`` text."""
    from transformers.models.internvl.processing_internvl import InternVLProcessor

    hf_fields = SimpleNamespace(start_image_token="<img>", end_image_token="</img>", image_token="<IMG_CONTEXT>",
                                image_seq_length=2)
    hf_text = InternVLProcessor.replace_video_token(hf_fields, {"pixel_values_videos": [torch.zeros(3, 3, 28, 28)]}, 0)
    assert processor(size=28, tokens=2).video_text(3) == hf_text
    assert hf_text.startswith("Frame1: <img>") and "Frame3: " in hf_text and "Frame0" not in hf_text


def test_prompt_layout_snapshot(tokenizer):
    """The -HF chat layout: no default system turn, the frames, a newline, the question, the generation prompt."""
    text = processor(tokenizer, size=28, tokens=2).prompt_text("When does it happen?", 2)
    block = "<img><IMG_CONTEXT><IMG_CONTEXT></img>"
    assert text == (f"<|im_start|>user\nFrame1: {block}\nFrame2: {block}\nWhen does it happen?<|im_end|>\n"
                    "<|im_start|>assistant\n")
    with_system = processor(tokenizer, size=28, tokens=2, system_prompt="Be brief.").prompt_text("Why?", 1)
    assert with_system.startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nFrame1: <img>")


def test_special_tokens_are_single_ids(tokenizer):
    """Each marker is one token, so a frame block is exactly ``<img>``, N context ids, ``</img>``."""
    ids = tokenizer("<img><IMG_CONTEXT><IMG_CONTEXT></img><|im_end|>", add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids) == ["<img>", "<IMG_CONTEXT>", "<IMG_CONTEXT>", "</img>", "<|im_end|>"]


def test_bad_frames_are_refused():
    with pytest.raises(ValueError, match="T>0"):
        processor().prepare_video(torch.zeros((0, 56, 56, 3), dtype=torch.uint8), torch.zeros(0))
    with pytest.raises(ValueError, match="one timestamp per frame"):
        processor().prepare_video(torch.zeros((2, 56, 56, 3), dtype=torch.uint8), torch.zeros(3))

import os

import pytest
import torch

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_backbone():
    """One tiny random-init Qwen2.5-VL (56x56 frames) shared by read-only tests."""
    from groundlight.backbones.qwen2_5_vl import Qwen25VLBackbone, TinyQwenConfig

    torch.manual_seed(0)
    return Qwen25VLBackbone(tiny=TinyQwenConfig(), min_pixels=56 * 56, max_pixels=56 * 56).eval()

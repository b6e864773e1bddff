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


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    """A very small synthetic benchmark (short clips) with its FineVidBench-style questions and D²VLM tasks, made once per test session."""
    from data_modules.d2vlm_synth import generate_d2vlm
    from data_modules.finevid import generate_finevid
    from data_modules.synthetic import generate

    out = tmp_path_factory.mktemp("synth")
    generate(out, seed=0, n_train=8, n_val=4, n_test=4, min_duration=6, max_duration=10)
    generate_finevid(out)
    generate_d2vlm(out)
    return out

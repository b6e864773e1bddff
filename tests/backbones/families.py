"""The registered backbone families, as the contract test builds them: a tiny random-init model of the
real HF class, and how to load one back from a ``save_pretrained`` directory. A new family joins the
contract test (and every family-parametrised test) by adding one entry here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from groundlight.backbones.base import VideoBackbone


@dataclass(frozen=True)
class Family:
    tiny: Callable[[], VideoBackbone]
    load: Callable[[Path], VideoBackbone]


def _qwen2_5_vl_tiny() -> VideoBackbone:
    from groundlight.backbones.qwen2_5_vl import Qwen25VLBackbone, TinyQwenConfig

    torch.manual_seed(0)
    return Qwen25VLBackbone(tiny=TinyQwenConfig(), min_pixels=56 * 56, max_pixels=56 * 56)


def _qwen2_5_vl_load(directory: Path) -> VideoBackbone:
    from groundlight.backbones.qwen2_5_vl import Qwen25VLBackbone

    return Qwen25VLBackbone(pretrained=str(directory), local_files_only=True, min_pixels=56 * 56, max_pixels=56 * 56)


def _internvl_tiny() -> VideoBackbone:
    from groundlight.backbones.internvl import InternVLBackbone, TinyInternVLConfig

    torch.manual_seed(0)
    return InternVLBackbone(tiny=TinyInternVLConfig())


def _internvl_load(directory: Path) -> VideoBackbone:
    from groundlight.backbones.internvl import InternVLBackbone

    return InternVLBackbone(pretrained=str(directory), local_files_only=True)


def _perception_lm_tiny() -> VideoBackbone:
    from groundlight.backbones.perception_lm import PerceptionLMBackbone, TinyPerceptionLMConfig

    torch.manual_seed(0)
    return PerceptionLMBackbone(tiny=TinyPerceptionLMConfig())


def _perception_lm_load(directory: Path) -> VideoBackbone:
    from groundlight.backbones.perception_lm import PerceptionLMBackbone

    return PerceptionLMBackbone(pretrained=str(directory), local_files_only=True)


def _qwen3_vl_tiny() -> VideoBackbone:
    from groundlight.backbones.qwen3_vl import Qwen3VLBackbone, TinyQwen3Config

    torch.manual_seed(0)
    return Qwen3VLBackbone(tiny=TinyQwen3Config(), min_pixels=64 * 64, max_pixels=64 * 64, total_pixels=None)


def _qwen3_vl_load(directory: Path) -> VideoBackbone:
    from groundlight.backbones.qwen3_vl import Qwen3VLBackbone

    return Qwen3VLBackbone(pretrained=str(directory), local_files_only=True, min_pixels=64 * 64, max_pixels=64 * 64,
                           total_pixels=None)


FAMILIES: dict[str, Family] = {
    "qwen2_5_vl": Family(_qwen2_5_vl_tiny, _qwen2_5_vl_load),
    "internvl": Family(_internvl_tiny, _internvl_load),
    "perception_lm": Family(_perception_lm_tiny, _perception_lm_load),
    "qwen3_vl": Family(_qwen3_vl_tiny, _qwen3_vl_load),
}

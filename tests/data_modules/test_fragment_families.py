"""SF2T fragment samples reach every backbone family through the current contract (one video per prompt)."""

from __future__ import annotations

import pytest
import torch

from data_modules.datamodule import collate_items
from data_modules.tasks.fragments import (
    FragmentConfig,
    FragmentDataset,
    build_fragment_samples,
    frame_counts,
)
from groundlight.losses import answer_cross_entropy
from groundlight.ops import IGNORE_INDEX
from tests.backbones.families import FAMILIES


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_fragment_batches_train_on_every_family(family: str, tmp_path, write_video) -> None:
    videos = [str(write_video(tmp_path / f"{k}.mp4", num_frames=30, fps=10, gop=10)) for k in range(2)]
    samples = build_fragment_samples(videos, FragmentConfig(max_frames=4), "train", frame_counts(videos)).samples
    backbone = FAMILIES[family].tiny()
    data = FragmentDataset(samples, backbone.processor, decode_size=(56, 56), cache_draws=True)
    items = [data[i] for i in range(len(data))]
    batch = collate_items(items, backbone.processor, with_answer=True)
    assert batch["skipped_videos"] == 0
    shown = [sum(len(s.picks) for s in item["sample"].frame_sets) for item in items]
    # presentation times only: a token never shows a source time beyond the concatenated video's length
    assert all(float(seconds.max()) < count for seconds, count in zip(batch["frame_seconds"], shown))
    assert ((batch["labels"] != IGNORE_INDEX).sum(dim=1) > 0).all()
    loss, _ = answer_cross_entropy(backbone(batch).logits, batch["labels"])
    assert torch.isfinite(loss) and loss > 0

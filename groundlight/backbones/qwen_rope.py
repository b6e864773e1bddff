"""Reference 3-D MRoPE position ids for Qwen2.5-VL video prompts.

transformers 5.24's ``Qwen2_5_VLModel.get_rope_index`` resumes the text after a video at
``start + max(H, W) / merge``, ignoring the video's temporal extent, so the question
lands inside the video's temporal range. The Qwen reference (and transformers 5.2) is:

* text: 1-D ids copied to the three axes ``(t, h, w)``, from 0 at the first real token;
* a video of grid ``(T, H, W)``, merge ``m``: for token ``(t, h, w)`` of the
  ``(T, H/m, W/m)`` LLM grid the ids are ``start + floor(t * second_per_grid *
  tokens_per_second)``, ``start + h`` and ``start + w``, with ``start`` = max id so far + 1;
* whatever follows a block (text or another video) starts at the block's max id + 1;
* ``deltas`` = max id + 1 - number of real tokens, per row (what generation adds to a
  1-D position to place new tokens).

Padding (``attention_mask == 0``) gets id :data:`PAD_POSITION` (0, as the installed
``get_rope_index`` does). Only videos are supported: this project never sends images.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

import torch

PAD_POSITION = 0
TEXT, IMAGE, VIDEO = 0, 1, 2

# (llm_t, llm_h, llm_w, temporal step in ids per temporal grid)
VideoLayout = tuple[int, int, int, float]


def reference_rope_index(
    input_ids: torch.Tensor,
    mm_token_type_ids: torch.Tensor,
    video_grid_thw: torch.Tensor | None,
    second_per_grid_ts: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    spatial_merge_size: int = 2,
    tokens_per_second: float = 2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """MRoPE ids of a left- (or right-) padded batch of text + video prompts.

    Args:
        input_ids: ``(B, L)`` token ids (only their shape and device are used).
        mm_token_type_ids: ``(B, L)``: 0 text, 2 video.
        video_grid_thw: ``(num_videos, 3)`` patch grids, in prompt order over the batch.
        second_per_grid_ts: ``(num_videos,)`` seconds per temporal grid; ``None`` means 1 s.
        attention_mask: ``(B, L)``; ``None`` means no padding.
        spatial_merge_size: the vision merger's ``m``.
        tokens_per_second: ``vision_config.tokens_per_second``.

    Returns:
        ``(3, B, L)`` long position ids and ``(B, 1)`` long rope deltas.

    Raises:
        ValueError: image tokens, or video tokens that do not match the grids.
    """
    if bool((mm_token_type_ids == IMAGE).any()):
        raise ValueError("mm_token_type_ids holds image tokens (1): only video (2) is supported")
    real = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
    videos = _video_layouts(video_grid_thw, second_per_grid_ts, spatial_merge_size, tokens_per_second)
    batch, length = input_ids.shape
    positions = torch.full((3, batch, length), PAD_POSITION, dtype=torch.long, device=input_ids.device)
    deltas = torch.zeros(batch, 1, dtype=torch.long, device=input_ids.device)
    for row in range(batch):
        ids = _row_positions(mm_token_type_ids[row][real[row]], videos)
        positions[:, row, real[row]] = ids
        if ids.shape[1]:
            deltas[row, 0] = int(ids.max()) + 1 - ids.shape[1]
    if videos:
        raise ValueError(f"{len(videos)} video grid(s) left over: the prompts hold fewer video blocks")
    return positions, deltas


def rope_index_for_batch(batch: Mapping[str, Any], config: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`reference_rope_index` of a ``QwenVideoProcessor.collate`` batch.

    Args:
        batch: holds ``input_ids``, ``mm_token_type_ids``, ``video_grid_thw``,
            ``second_per_grid_ts`` and ``attention_mask``.
        config: a ``Qwen2_5_VLConfig`` (its ``vision_config`` gives merge size and tokens per second).

    Returns:
        ``(3, B, L)`` position ids and ``(B, 1)`` rope deltas.
    """
    vision = config.vision_config
    return reference_rope_index(
        batch["input_ids"], batch["mm_token_type_ids"], batch["video_grid_thw"], batch.get("second_per_grid_ts"),
        batch.get("attention_mask"), vision.spatial_merge_size, vision.tokens_per_second,
    )


def _video_layouts(
    grid_thw: torch.Tensor | None, second_per_grid: torch.Tensor | None, merge: int, tokens_per_second: float
) -> deque[VideoLayout]:
    """Per video, in order: its LLM grid and the temporal id step ``second_per_grid * tokens_per_second``."""
    if grid_thw is None:
        return deque()
    grids = grid_thw.tolist()
    seconds = [1.0] * len(grids) if second_per_grid is None else [float(s) for s in second_per_grid.reshape(-1)]
    if len(seconds) != len(grids):
        raise ValueError(f"{len(grids)} video grids but {len(seconds)} second_per_grid_ts values")
    if any(h % merge or w % merge for _, h, w in grids):
        raise ValueError(f"video grids {grids} are not divisible by spatial_merge_size {merge}")
    return deque((t, h // merge, w // merge, s * tokens_per_second) for (t, h, w), s in zip(grids, seconds))


def _row_positions(types: torch.Tensor, videos: deque[VideoLayout]) -> torch.Tensor:
    """``(3, n)`` ids of one row's real tokens; consumes that row's videos from ``videos``."""
    kinds, counts = torch.unique_consecutive(types, return_counts=True)
    pieces, start = [], 0
    for kind, count in zip(kinds.tolist(), counts.tolist()):
        if kind == TEXT:
            block = torch.arange(start, start + count).expand(3, -1)
        else:
            block = _video_run(start, count, videos)
        pieces.append(block)
        start = int(block.max()) + 1
    return torch.cat(pieces, dim=1).to(types.device) if pieces else torch.zeros(3, 0, dtype=torch.long)


def _video_run(start: int, count: int, videos: deque[VideoLayout]) -> torch.Tensor:
    """Ids of ``count`` consecutive video tokens: one video, or several back to back."""
    pieces = []
    while count > 0:
        if not videos:
            raise ValueError("more video tokens than video_grid_thw describes")
        t, h, w, step = videos.popleft()
        block = _video_block(start, t, h, w, step)
        if block.shape[1] > count:
            raise ValueError(f"a video of {block.shape[1]} tokens does not fit a run of {count} video tokens")
        pieces.append(block)
        count -= block.shape[1]
        start = int(block.max()) + 1
    return torch.cat(pieces, dim=1)


def _video_block(start: int, t: int, h: int, w: int, step: float) -> torch.Tensor:
    """``(3, t·h·w)`` ids of one video in (t, h, w) raster order; temporal ids are ``floor(i · step)``."""
    temporal = torch.floor(torch.arange(t, dtype=torch.float64) * step).long()
    grid = torch.meshgrid(temporal, torch.arange(h), torch.arange(w), indexing="ij")
    return torch.stack(grid).reshape(3, -1) + start

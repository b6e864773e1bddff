"""Reference Qwen2.5-VL MRoPE ids: hand-worked cases and the installed transformers' deviation.

Notation: a layout lists text runs (ints) and video grids ``(T, H, W)``; with merge 2 a
video has ``T·(H/2)·(W/2)`` tokens in (t, h, w) raster order. ``tokens_per_second`` is 2
throughout, so a video's temporal id step is ``2 · second_per_grid``.
"""

import pytest
import torch

from groundlight.backbones.qwen_rope import reference_rope_index, rope_index_for_batch

TPS = 2


def types_of(*parts):
    """``(1, L)`` mm_token_type_ids of a layout: ints are text runs, tuples are video grids."""
    types = []
    for part in parts:
        types += [0] * part if isinstance(part, int) else [2] * (part[0] * part[1] * part[2] // 4)
    return torch.tensor([types])


def rope(types, grids, seconds, mask=None):
    """Reference ids ``(3, B, L)`` and deltas ``(B, 1)`` with merge 2 and 2 tokens per second."""
    return reference_rope_index(
        torch.zeros_like(types), types, torch.tensor(grids), torch.tensor(seconds, dtype=torch.float), mask, 2, TPS
    )


def video_rows(start, temporal, h, w):
    """Expected (t, h, w) id lists of one video: ``start`` + temporal offsets, rows and columns."""
    t_ids, h_ids, w_ids = [], [], []
    for offset in temporal:
        for row in range(h):
            for col in range(w):
                t_ids.append(start + offset), h_ids.append(start + row), w_ids.append(start + col)
    return t_ids, h_ids, w_ids


def text(start, n):
    return list(range(start, start + n))


@pytest.mark.parametrize(
    "fps, temporal, after",
    [(1, [0, 4, 8, 12], 15), (2, [0, 2, 4, 6], 9), (4, [0, 1, 2, 3], 6)],
)
def test_fps_sampling(fps, temporal, after):
    """Layout 2 text, video (4, 4, 4) → LLM grid (4, 2, 2), 2 text; second_per_grid = 2 / fps.

    Text ids 0, 1; the video starts at 2. Temporal step = 2/fps · 2:
    fps 1: step 4 → t offsets 0, 4, 8, 12 → t ids 2..14, h/w ids 2..3, max 14 → text 15, 16;
    fps 2: step 2 → 0, 2, 4, 6 → max(8, 3) = 8 → text 9, 10;
    fps 4: step 1 → 0, 1, 2, 3 → max(5, 3) = 5 → text 6, 7.
    """
    positions, deltas = rope(types_of(2, (4, 4, 4), 2), [[4, 4, 4]], [2 / fps])
    t_ids, h_ids, w_ids = video_rows(2, temporal, 2, 2)
    tail = text(after, 2)
    assert positions[:, 0].tolist() == [[0, 1] + t_ids + tail, [0, 1] + h_ids + tail, [0, 1] + w_ids + tail]
    assert deltas.tolist() == [[after + 2 - 20]]  # max id + 1 = after + 2, 20 real tokens


@pytest.mark.parametrize(
    "seconds, temporal",
    [(2 / 3, [0, 1, 2, 4, 5, 6, 8, 9]), (0.25, [0, 0, 1, 1, 2, 2, 3, 3])],
)
def test_fractional_interval_floors_the_product(seconds, temporal):
    """The #48669 case: floor(t · second_per_grid · tps), never int(interval) first.

    Layout 1 text, video (8, 2, 2) → LLM grid (8, 1, 1), 1 text; video start 1.
    fps 3: 2/3 s per grid · 2 = 1.3333 → floor(t · 1.3333), t = 0..7 → 0, 1, 2, 4, 5, 6, 8, 9
      (truncating the interval first would give 1 → 0..7); max 1 + 9 = 10 → text 11.
    fps 8: 0.25 s per grid · 2 = 0.5 → floor(t / 2) → 0, 0, 1, 1, 2, 2, 3, 3
      (truncating would give 0 everywhere); max 1 + 3 = 4 → text 5.
    """
    positions, _ = rope(types_of(1, (8, 2, 2), 1), [[8, 2, 2]], [seconds])
    after = 1 + temporal[-1] + 1
    assert positions[0, 0].tolist() == [0] + [1 + o for o in temporal] + [after]
    assert positions[1, 0].tolist() == positions[2, 0].tolist() == [0] + [1] * 8 + [after]


def test_text_after_the_video_starts_at_the_block_max_plus_one():
    """The measured case: 3 text, video (8, 4, 4) (16 frames at 1 fps: 2 s per grid), 3 text.

    LLM grid (8, 2, 2), 32 tokens, start 3, step 2 · 2 = 4 → t ids 3, 7, ..., 31;
    h/w ids 3..4. The question resumes at 31 + 1 = 32: ids 32, 33, 34 on all axes
    (transformers 5.24 gives 3 + max(4, 4)/2 = 5: 5, 6, 7, inside the video's range).
    deltas = 35 - 38 = -3.
    """
    positions, deltas = rope(types_of(3, (8, 4, 4), 3), [[8, 4, 4]], [2.0])
    t_ids, h_ids, w_ids = video_rows(3, [0, 4, 8, 12, 16, 20, 24, 28], 2, 2)
    assert positions[:, 0].tolist() == [[0, 1, 2] + ids + [32, 33, 34] for ids in (t_ids, h_ids, w_ids)]
    assert deltas.tolist() == [[-3]]
    assert 38 + deltas.item() == 35  # the first generated token's id: max + 1 on every axis


def test_left_padded_rows_get_their_unpadded_ids():
    """Row A: 4 text, video (2, 4, 4) at 2 s/grid, 3 text (15 tokens);
    row B: 1 text, video (2, 4, 4) at 1 s/grid, 2 text (11 tokens).

    A: text 0..3; start 4, step 4 → t 4 ×4, 8 ×4; h 4, 4, 5, 5; w 4, 5, 4, 5; text 9, 10, 11; delta 12 - 15 = -3.
    B: text 0; start 1, step 2 → t 1 ×4, 3 ×4; h 1, 1, 2, 2; w 1, 2, 1, 2; text 4, 5; delta 6 - 11 = -5.
    B is left-padded by 4 columns whose ids are 0; the grids are consumed in row order.
    """
    row_a, row_b = types_of(4, (2, 4, 4), 3)[0], types_of(1, (2, 4, 4), 2)[0]
    types = torch.stack([row_a, torch.cat([torch.zeros(4, dtype=torch.long), row_b])])
    mask = torch.ones_like(types)
    mask[1, :4] = 0
    positions, deltas = rope(types, [[2, 4, 4], [2, 4, 4]], [2.0, 1.0], mask)
    t_a, h_a, w_a = video_rows(4, [0, 4], 2, 2)
    assert positions[:, 0].tolist() == [[0, 1, 2, 3] + ids + [9, 10, 11] for ids in (t_a, h_a, w_a)]
    t_b, h_b, w_b = video_rows(1, [0, 2], 2, 2)
    assert positions[:, 1].tolist() == [[0] * 4 + [0] + ids + [4, 5] for ids in (t_b, h_b, w_b)]
    assert deltas.tolist() == [[-3], [-5]]
    alone, alone_delta = rope(row_b[None], [[2, 4, 4]], [1.0])
    assert torch.equal(positions[:, 1, 4:], alone[:, 0]) and alone_delta.item() == -5


def test_two_videos_in_one_prompt():
    """2 text, video 1 (2, 4, 4) at 2 s/grid, 1 text, video 2 (4, 2, 2) at 0.5 s/grid, 2 text.

    Video 1: start 2, step 4 → t 2 ×4, 6 ×4; h 2, 2, 3, 3; w 2, 3, 2, 3; max 6 → text 7.
    Video 2: LLM grid (4, 1, 1), start 8, step 1 → t 8, 9, 10, 11; h = w = 8; max 11 → text 12, 13.
    17 real tokens (2 + 8 + 1 + 4 + 2): deltas = 14 - 17 = -3.
    """
    positions, deltas = rope(types_of(2, (2, 4, 4), 1, (4, 2, 2), 2), [[2, 4, 4], [4, 2, 2]], [2.0, 0.5])
    first = video_rows(2, [0, 4], 2, 2)
    second = video_rows(8, [0, 1, 2, 3], 1, 1)
    expected = [[0, 1] + a + [7] + b + [12, 13] for a, b in zip(first, second)]
    assert positions[:, 0].tolist() == expected
    assert deltas.tolist() == [[-3]]


def test_rejects_images_and_grid_mismatches():
    with pytest.raises(ValueError, match="image"):
        reference_rope_index(torch.zeros(1, 3, dtype=torch.long), torch.tensor([[0, 1, 0]]), None)
    with pytest.raises(ValueError, match="left over"):
        rope(types_of(1, (2, 4, 4), 1), [[2, 4, 4], [2, 4, 4]], [1.0, 1.0])
    with pytest.raises(ValueError, match="more video tokens"):
        rope(types_of(1, (4, 4, 4), 1), [[2, 4, 4]], [1.0])


@pytest.mark.parametrize("fps", [1, 2, 3, 4])
def test_processor_seconds_per_grid_is_two_over_fps(fps):
    """QwenVideoProcessor: temporal patch 2 → second_per_grid = 2 · (1 / fps)."""
    from groundlight.backbones.qwen2_5_vl import QwenVideoProcessor

    frames = torch.zeros(4, 56, 56, 3, dtype=torch.uint8)
    visual = QwenVideoProcessor(None, 56 * 56, 56 * 56).prepare_video(frames, torch.arange(4) / fps)
    assert visual.seconds_per_step == pytest.approx(2 / fps)


def test_installed_transformers_agrees_up_to_the_video_and_not_after(tiny_backbone):
    """The tiny model's real batch (two left-padded rows, 6 and 3 frames at 1 fps: grids (3, 4, 4), (2, 4, 4)).

    The installed ``get_rope_index`` must match the reference on padding, the text before
    and the video block; after the video it resumes at start + max(H, W)/2 = start + 2
    instead of start + 2·2·(T - 1) + 1 (start + 9 and start + 5 here).
    """
    import transformers

    proc = tiny_backbone.processor
    items = []
    for n, prompt in ((6, "Find the red circle."), (3, "Which shape?")):
        frames = torch.zeros(n, 56, 56, 3, dtype=torch.uint8)
        items.append({"visual": proc.prepare_video(frames, torch.arange(n).double()), "prompt": prompt})
    batch = proc.collate(items, with_answer=False, with_pixels=False)
    installed, _ = tiny_backbone.model.model.get_rope_index(
        batch["input_ids"], mm_token_type_ids=batch["mm_token_type_ids"], video_grid_thw=batch["video_grid_thw"],
        second_per_grid_ts=batch["second_per_grid_ts"], attention_mask=batch["attention_mask"],
    )
    reference, _ = rope_index_for_batch(batch, tiny_backbone.model.config)
    columns = torch.arange(batch["input_ids"].shape[1])
    last_video = torch.where(batch["mm_token_type_ids"] == 2, columns, -1).amax(1, keepdim=True)
    upto, after = columns <= last_video, columns > last_video
    wrong = (installed != reference).any(0) & upto
    assert not wrong.any(), f"installed get_rope_index differs up to the video at (row, col) {wrong.nonzero().tolist()}"
    if torch.equal(installed[:, after], reference[:, after]):
        pytest.fail(f"installed transformers {transformers.__version__} now matches the reference: drop the override")
    for row in range(2):
        first = int(last_video[row]) + 1
        assert reference[:, row, first].tolist() == [int(reference[:, row, :first].max()) + 1] * 3


def _recorded_positions(backbone, run):
    """The position ids the language model receives in each call made by ``run()``."""
    seen = []
    language_model = backbone.model.model.language_model
    handle = language_model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["position_ids"].clone()), with_kwargs=True)
    try:
        with torch.no_grad():
            run()
    finally:
        handle.remove()
    return seen


def test_training_and_generation_use_the_reference_ids(tiny_backbone):
    """One prompt over 6 frames at 2 fps (second_per_grid 1 s): the teacher-forced pass and generation's
    prefill both get the reference ids, and each decoded token continues at the prompt's max id + 1 + step."""
    proc = tiny_backbone.processor
    frames = torch.randint(0, 256, (6, 56, 56, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    item = {"visual": proc.prepare_video(frames, torch.arange(6) / 2.0), "prompt": "Find the red circle.",
            "answer": "from 1.0s to 2.0s"}
    train_batch = proc.collate([item], with_answer=True)
    prompt_batch = proc.collate([item], with_answer=False)
    expected, _ = rope_index_for_batch(train_batch, tiny_backbone.model.config)
    (trained,) = _recorded_positions(tiny_backbone, lambda: tiny_backbone(train_batch))
    assert torch.equal(trained[-3:], expected)
    calls = _recorded_positions(tiny_backbone, lambda: tiny_backbone.generate(prompt_batch, max_new_tokens=3))
    prompt_length = prompt_batch["input_ids"].shape[1]
    assert torch.equal(calls[0][-3:], expected[:, :, :prompt_length])  # same timing as training
    top = int(expected[:, :, :prompt_length].max())
    assert [call[-3:, 0, -1].tolist() for call in calls[1:]] == [[top + step] * 3 for step in range(1, len(calls))]

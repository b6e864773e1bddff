"""groundlight-tiny: its scoring by hand, the query-before-video layout, the recipe end to end, and the shipped asset."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import torch

from groundlight.analysis.grounding import bootstrap, query_grounding
from groundlight.recipes import tiny_base
from groundlight.recipes.tiny_base import ASSET, WEIGHTS, sha256

META = {"videos": {
    "test_00000": {"objects": [{"role": "target", "interval": [2, 6]}, {"role": "distractor", "interval": [8, 12]}]},
    "test_00001": {"objects": [{"role": "target", "interval": [0, 4]}]},
}}


def test_query_grounding_scores_each_distractor_clip_twice():
    """Clip 0 (target [2, 6], distractor [8, 12]). Target's query predicted [2, 6]: named IoU 1, other 0.
    Distractor's query predicted [2, 6] too (the model ignores the query): named 0 (vs [8, 12]), other 1 (vs
    [2, 6]). Clip 1 has no distractor and is left out. So named = [1, 0], other = [0, 1]."""
    named, other = query_grounding(META, {"test_00000": (2.0, 6.0), "test_00001": (0.0, 4.0)}, {"test_00000": (2.0, 6.0)})
    assert named == [1.0, 0.0] and other == [0.0, 1.0]


def test_query_grounding_counts_an_unparsed_answer_as_zero():
    """Target's query → [10, 12]: IoU with [2, 6] is 0; with [8, 12] it is 2 / 4 = 0.5. Swap unparsed: 0 and 0."""
    named, other = query_grounding(META, {"test_00000": (10.0, 12.0)}, {"test_00000": None})
    assert named == [0.0, 0.0] and other == [0.5, 0.0]


def test_bootstrap_interval_of_a_constant_is_the_constant_and_widens_with_spread():
    assert bootstrap(np.full(50, 0.3)) == {"mean": 0.3, "ci_low": 0.3, "ci_high": 0.3, "n": 50}
    spread = bootstrap(np.array([0.0, 1.0] * 50))
    assert spread["mean"] == 0.5 and 0.35 < spread["ci_low"] < 0.45 and 0.55 < spread["ci_high"] < 0.65


def test_query_position_both_states_the_query_before_the_video_too(tiny_backbone):
    """Default layout unchanged (video, then the prompt); ``both`` adds the query before the video. The query
    mask still marks the query inside the prompt after the video (what query-guided methods pool)."""
    processor = tiny_backbone.processor
    visual = processor.prepare_video(torch.zeros(2, 56, 56, 3, dtype=torch.uint8), torch.tensor([0.0, 1.0]))
    prompt, query = "Find the moment described by the query: 'the red circle appears.'.", "the red circle appears."
    video_id = processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")

    def layout(position: str) -> tuple[str, str]:
        processor.query_position = position
        ids, flags = processor.prompt_ids(prompt, visual, query)
        at = ids.index(video_id)
        return processor.tokenizer.decode(ids[:at]), processor.tokenizer.decode([i for i, f in zip(ids, flags) if f])

    try:
        before_after, mask_after = layout("after")
        before_both, mask_both = layout("both")
    finally:
        processor.query_position = "after"
    assert query not in before_after and before_after.endswith("<|im_start|>user\n<|vision_start|>")
    assert before_both.endswith(f"<|im_start|>user\n{query}\n<|vision_start|>")
    assert mask_after.strip() == mask_both.strip() == query


def test_save_pretrained_records_the_query_position(tmp_path, tiny_backbone):
    from groundlight.backbones.qwen2_5_vl import Qwen25VLBackbone

    tiny_backbone.processor.query_position = "both"
    try:
        tiny_backbone.save_pretrained(tmp_path)
    finally:
        tiny_backbone.processor.query_position = "after"
    loaded = Qwen25VLBackbone(pretrained=str(tmp_path), local_files_only=True, min_pixels=3136, max_pixels=3136)
    assert loaded.processor.query_position == "both"
    forced = Qwen25VLBackbone(pretrained=str(tmp_path), local_files_only=True, query_position="after")
    assert forced.processor.query_position == "after"


def card_sha(card: str) -> str:
    return re.search(rf"`{WEIGHTS}` sha256: `([0-9a-f]{{64}})`", card).group(1)


def test_the_shipped_base_loads_and_matches_its_card():
    from groundlight.backbones.qwen2_5_vl import Qwen25VLBackbone

    card = (ASSET / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert sha256(ASSET / WEIGHTS) == card_sha(card)
    assert sum(p.stat().st_size for p in ASSET.iterdir()) <= 10 * 2**20
    backbone = Qwen25VLBackbone(pretrained=str(ASSET), local_files_only=True, min_pixels=3136, max_pixels=3136)
    assert backbone.processor.query_position == "both"
    assert all(key in card for key in ("mIoU", "R1@0.5", "named_mIoU", "other_mIoU", "mcq_accuracy", "majority_answer"))


def test_the_recipe_runs_end_to_end(tmp_path, synth_dir):
    """A 4-step build (after a 2-step vision warm-up) on the session's small benchmark: summary keys with intervals, a loadable asset whose card
    carries the weights' sha256, and weights that moved from the (re-seeded, identical) random init."""
    import lightning as L

    from groundlight.backbones.qwen2_5_vl import Qwen25VLBackbone

    out, asset = tmp_path / "run", tmp_path / "asset"
    args = ["--data", str(synth_dir), "--out", str(out), "--asset", str(asset), "--steps", "4", "--batch-size", "2",
            "--max-eval-samples", "3", "--num-workers", "0", "--warmup-steps", "1", "--single-object-items", "2",
            "--vision-warmup-steps", "2"]
    assert tiny_base.main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    for key in ("mIoU", "R1@0.5", "named_mIoU", "other_mIoU", "mcq_accuracy", "majority_answer"):
        assert set(summary["metrics"][key]) == {"mean", "ci_low", "ci_high", "n"} and key in summary
    assert summary["metrics"]["mIoU"]["n"] == 3 and "mIoU" in summary["metrics"]["constant_window"]
    card = (asset / "MODEL_CARD.md").read_text()
    assert card_sha(card) == sha256(asset / WEIGHTS)
    loaded = Qwen25VLBackbone(pretrained=str(asset), local_files_only=True, min_pixels=3136, max_pixels=3136)
    recipe = tiny_base.TinyBaseRecipe(**{**summary["recipe"], "mrope_section": tuple(summary["recipe"]["mrope_section"]),
                                         "weights": tuple(summary["recipe"]["weights"])})
    L.seed_everything(recipe.seed)
    fresh = tiny_base.build_module(recipe).backbone.model.state_dict()
    trained = loaded.model.state_dict()
    assert fresh.keys() == trained.keys()
    assert any(not torch.equal(fresh[k], trained[k]) for k in fresh)


def test_family_qwen3_vl_builds_that_class_and_refuses_what_it_cannot_do():
    import pytest

    from groundlight.backbones.qwen3_vl import Qwen3VLBackbone

    recipe = tiny_base.TinyBaseRecipe(family="qwen3_vl", frame_size=64, query_position="after", num_layers=2)
    assert isinstance(tiny_base.build_module(recipe).backbone, Qwen3VLBackbone)
    for bad in ({"query_position": "both"}, {"frame_size": 56}, {"family": "qwen2"}):
        with pytest.raises(ValueError, match="family"):
            tiny_base.build_module(tiny_base.TinyBaseRecipe(**{**dataclasses.asdict(recipe), **bad}))

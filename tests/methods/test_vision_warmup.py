"""Vision warm-up: bags and their labels by hand, the best-token pooling, the stream's on-screen table, a short run."""

from __future__ import annotations

import dataclasses
from functools import partial

import pytest
import torch
from torch.utils.data import DataLoader

from data_modules.stream import (
    OBJECT_KINDS,
    StreamOptions,
    VisionStream,
    collate_vision,
    stream_scene,
    visible_objects,
)
from data_modules.tasks import PromptTemplates
from groundlight.backbones.qwen2_5_vl import Qwen25VLBackbone, TinyQwenConfig
from groundlight.methods.base import OptimizerConfig
from groundlight.methods.vision_warmup import (
    VisionWarmupModule,
    bag_logits,
    bag_targets,
    warm_up_vision,
)


def test_bags_are_frame_groups_labelled_over_every_frame_they_cover():
    """Row 0: 5 frames in groups starting at frames 0, 2, 4 (two tokens each, text around them); kind 1 is on
    screen in frame 3 only, kind 0 in frame 4. Group 0 covers frames 0-1 (nothing), group 1 frames 2-3 (kind 1),
    group 2 frame 4 (kind 0). Row 1: one group over frames 0-1, kind 0 in frame 1."""
    frames = torch.tensor([[-1, 0, 0, 2, 2, 4, 4, -1], [-1, -1, -1, -1, 0, 0, -1, -1]])
    shown = [torch.tensor([[0, 0], [0, 0], [0, 0], [0, 1], [1, 0]], dtype=torch.bool),
             torch.tensor([[0, 0], [1, 0]], dtype=torch.bool)]
    bags, labels = bag_targets(frames, shown)
    assert bags.tolist() == [[-1, 0, 0, 1, 1, 2, 2, -1], [-1, -1, -1, -1, 3, 3, -1, -1]]
    assert labels.tolist() == [[0, 0], [0, 1], [1, 0], [1, 0]]


def test_a_bag_scores_each_kind_by_its_best_token():
    bags = torch.tensor([[-1, 0, 0, 1], [1, -1, 2, 2]])
    scores = torch.tensor([[[9.0, 9.0], [1.0, -2.0], [3.0, -5.0], [0.5, 0.0]],
                           [[-1.0, 4.0], [9.0, 9.0], [2.0, 2.0], [-3.0, 7.0]]])
    assert bag_logits(scores, bags, 3).tolist() == [[3.0, -2.0], [0.5, 4.0], [2.0, 7.0]]


def test_visible_objects_follow_each_objects_interval():
    scene = stream_scene(StreamOptions(), 7)
    times = torch.arange(float(scene.duration))
    table = visible_objects(scene, times)
    assert table.shape == (scene.duration, len(OBJECT_KINDS))
    for obj in scene.objects:
        column = table[:, OBJECT_KINDS.index(f"{obj.colour} {obj.shape}")]
        assert column.nonzero().flatten().tolist() == list(range(obj.start, obj.end))
    assert int(table.sum()) == sum(obj.end - obj.start for obj in scene.objects)
    assert not visible_objects(dataclasses.replace(scene, objects=()), times).any()


@pytest.mark.parametrize("head", ["linear", "words"])
def test_warm_up_trains_the_tower_and_projector_only(head):
    torch.manual_seed(0)
    tiny_backbone = Qwen25VLBackbone(tiny=TinyQwenConfig(), min_pixels=56 * 56, max_pixels=56 * 56)
    stream = VisionStream(tiny_backbone.processor, StreamOptions(), PromptTemplates(state_duration=False), 2)
    loader = DataLoader(stream, batch_size=2, collate_fn=partial(collate_vision, processor=tiny_backbone.processor))
    tower = [p.detach().clone() for p in tiny_backbone.vision_encoder().parameters()]
    text = tiny_backbone.input_embeddings().weight.detach().clone()
    losses = warm_up_vision(tiny_backbone, loader, 3, OptimizerConfig(lr=1e-2), OBJECT_KINDS, head)
    assert len(losses) == 3 and min(losses) > 0  # one loss per step
    assert any(not torch.equal(a, b) for a, b in zip(tower, tiny_backbone.vision_encoder().parameters()))
    assert torch.equal(text, tiny_backbone.input_embeddings().weight)
    module = VisionWarmupModule(tiny_backbone, OBJECT_KINDS, head=head)
    trained = {id(p) for p in module.trainable()}
    assert {id(p) for p in tiny_backbone.projector_parameters()} <= trained
    assert id(tiny_backbone.input_embeddings().weight) not in trained


def test_the_words_head_scores_a_token_by_its_cosine_with_the_kind_names_mean_embedding():
    """Kind k's score for a token is ``scale · cos(token, mean embedding of k's name tokens) + bias_k``: a token equal
    to a kind's name embedding scores ``scale + bias`` for it, the highest of all kinds."""
    torch.manual_seed(0)
    backbone = Qwen25VLBackbone(tiny=TinyQwenConfig(), min_pixels=56 * 56, max_pixels=56 * 56)
    kinds = ["red circle", "blue square", "green triangle"]
    module = VisionWarmupModule(backbone, kinds, head="words")
    tokenizer, table = backbone.processor.tokenizer, backbone.input_embeddings().weight.detach()
    names = [table[tokenizer.encode(" " + kind, add_special_tokens=False)].mean(0) for kind in kinds]
    with torch.no_grad():
        module.head["bias"].copy_(torch.tensor([0.0, 1.0, -1.0]))
        logits = module.kind_logits(torch.stack(names).unsqueeze(0) * 3.0)  # cosine ignores the length
    assert logits.shape == (1, 3, 3)
    assert torch.allclose(logits[0].diagonal(), torch.tensor([10.0, 11.0, 9.0]), atol=1e-4)
    assert (logits[0].argmax(-1) == torch.arange(3)).all()
    with pytest.raises(ValueError, match="linear or words"):
        VisionWarmupModule(backbone, kinds, head="mlp")

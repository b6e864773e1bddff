"""GroundVTSModule: stage trainable sets, stage-to-stage loading, generation records."""

import pytest
import torch

from data_modules.samples import VideoSample
from groundlight.backbones.base import LoraOptions
from groundlight.backbones.qwen2_5_vl import Qwen25VLBackbone, TinyQwenConfig
from groundlight.methods.groundvts import GroundVTSModule, VTSConfig


def _module(trainable, **kwargs):
    torch.manual_seed(0)
    backbone = Qwen25VLBackbone(tiny=TinyQwenConfig(), min_pixels=56 * 56, max_pixels=56 * 56,
                                lora=LoraOptions(r=8, alpha=16, dropout=0.05))
    return GroundVTSModule(backbone, vts=VTSConfig(hidden_size=16), trainable=trainable, max_new_tokens=4, **kwargs)


def _batch(module, with_answer=True):
    generator = torch.Generator().manual_seed(0)
    items = []
    for count, window in ((8, (1.0, 3.0)), (6, (2.0, 5.0))):
        video = torch.randint(0, 256, (count, 56, 56, 3), dtype=torch.uint8, generator=generator)
        visual = module.backbone.processor.prepare_video(video, torch.arange(count).double())
        sample = VideoSample(f"s{count}", "v.mp4", "moment_retrieval", "the red circle appears.", windows=[window])
        items.append({"visual": visual, "prompt": "Query: 'the red circle appears.'", "answer": "from 1s to 3s",
                      "sample": sample, "query": sample.query})
    batch = module.backbone.processor.collate(items, with_answer=with_answer)
    batch["samples"] = [item["sample"] for item in items]
    return batch


def _train_steps(module, steps=3):
    batch = _batch(module)
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-2)
    module.train()
    for _ in range(steps):
        loss, diagnostics = module.loss(batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert 0.4 < float(diagnostics["kept_fraction"]) < 0.7


@pytest.mark.parametrize("trainable", [["vts"], ["vts", "projector", "lora"], ["vts", "projector", "llm"]],
                         ids=["stage1", "stage2_3", "synth_full_llm"])
def test_only_the_stage_trainable_set_changes(trainable):
    module = _module(trainable)
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    trainable_names = {n for n, p in module.named_parameters() if p.requires_grad}
    _train_steps(module)
    changed = {n for n, p in module.named_parameters() if not torch.equal(p, before[n])}
    assert changed == trainable_names
    assert any(n.startswith("vts.") for n in changed)
    if "lora" in trainable:
        assert any("lora_" in n for n in changed) and any("merger" in n for n in changed)
        assert not any("visual.blocks" in n or ("language_model" in n and "lora_" not in n) for n in changed)
    elif "llm" in trainable:
        assert any("language_model" in n and "lora_" not in n for n in changed) and any("lm_head" in n for n in changed)
        assert not any("visual.blocks" in n for n in changed) and any("merger" in n for n in changed)
    else:
        assert all(n.startswith("vts.") for n in changed)


def test_next_stage_loads_the_previous_checkpoint_weights(tmp_path):
    stage1 = _module(["vts"])
    _train_steps(stage1, steps=2)
    path = tmp_path / "stage1.ckpt"
    torch.save({"state_dict": stage1.state_dict()}, path)
    stage2 = _module(["vts", "projector", "lora"], init_from=str(path))
    for (name, a), b in zip(stage1.state_dict().items(), stage2.state_dict().values()):
        assert torch.equal(a, b), name
    assert {n for n, p in stage2.named_parameters() if p.requires_grad} > {n for n, _ in stage2.vts.named_parameters(prefix="vts")}


def test_unknown_trainable_group_is_rejected():
    with pytest.raises(ValueError, match="trainable groups"):
        _module(["vts", "everything"])


def test_generation_records_carry_the_kept_density():
    module = _module(["vts"]).eval()
    batch = _batch(module, with_answer=False)
    records, parsed = module.generate_records(batch)
    assert len(parsed) == 2
    assert len(records) == 2
    for record, frames in zip(records, (8, 6)):
        assert len(record["vts_seconds"]) == frames // 2
        assert sum(record["vts_tokens"]) == (frames // 2) * 4
        assert sum(record["vts_kept"]) == -(-sum(record["vts_tokens"]) // 2)  # ceil(rho * N_v)
        assert record["vts_seconds"] == [float(2 * g) for g in range(frames // 2)]

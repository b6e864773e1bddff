"""Self-consistency: verification prompt snapshots, the dual-pathway loss, ablation options, a training step."""

import pytest
import torch

from data_modules.datamodule import collate_items
from data_modules.samples import VideoSample
from data_modules.tasks import PromptTemplates
from groundlight.metrics.tasks import build_example
from data_modules.tasks.verification import VerificationPrompts, verification_prompt
from groundlight.backbones.qwen2_5_vl import Qwen25VLBackbone, TinyQwenConfig
from groundlight.methods.self_consistency import ConsistencyOptions, SelfConsistencyModule

MCQ = VideoSample("mcq/test.json:v1_when", "v1.mp4", "mcq", "When is the red circle visible?",
                  duration=12.0, options=["from 0s to 2s", "from 3s to 7s", "from 8s to 9s", "from 1s to 4s"],
                  answer_index=1, keyframes=[3.0, 4.0, 5.0, 6.0])
MOMENT = VideoSample("charades_sta/test.txt:3", "v2.mp4", "moment_retrieval", "the red circle appears.",
                     duration=10.0, windows=[(2.0, 6.0)])
FEEDBACK = VideoSample("expertaf/test.json:7", "v3.mp4", "open_qa", "What feedback would you give this athlete?",
                       answer_text="Keep the elbow high on the follow-through.", meta={"feedback": True})


def test_verification_prompt_snapshots():
    prompts = VerificationPrompts()
    assert verification_prompt(MCQ, "B", 12.0, prompts) == (
        "The video lasts 12.0 seconds. Please verify if the following answer is correct for the given video.\n"
        "Question: When is the red circle visible?\nAnswer: from 3s to 7s\nAnswer yes or no."
    )
    assert verification_prompt(MOMENT, "from 2.0s to 6.0s", 10.0, prompts) == (
        "The video lasts 10.0 seconds. Does the video support this answer? Question: When does this happen "
        "in the video: 'the red circle appears'? Answer: from 2.0s to 6.0s. Reply yes or no."
    )
    assert verification_prompt(FEEDBACK, "", 30.0, VerificationPrompts(state_duration=False)) == (
        "Please verify if the following feedback statement is correct for the given video: "
        "Keep the elbow high on the follow-through.\nAnswer yes or no."
    )
    summary = VerificationPrompts(related_task="summary", state_duration=False)
    assert verification_prompt(MCQ, "B", 12.0, summary) == "Summarize this video."
    with pytest.raises(ValueError, match="related_task"):
        VerificationPrompts(related_task="caption")


def make_backbone():
    torch.manual_seed(0)
    return Qwen25VLBackbone(tiny=TinyQwenConfig(), min_pixels=56 * 56, max_pixels=56 * 56)


def make_batch(backbone, samples=(MCQ, MOMENT), frames=8):
    generator = torch.Generator().manual_seed(0)
    items = []
    for sample in samples:
        video = torch.randint(0, 256, (frames, 56, 56, 3), dtype=torch.uint8, generator=generator)
        visual = backbone.processor.prepare_video(video, torch.arange(frames).double())
        example = build_example(sample, PromptTemplates(), sample.duration)
        items.append({**example, "visual": visual, "sample": sample, "duration": sample.duration})
    return collate_items(items, backbone.processor, with_answer=True)


@pytest.fixture(scope="module")
def backbone():
    return make_backbone()


def module(backbone, **options):
    return SelfConsistencyModule(backbone, consistency=ConsistencyOptions(**{"layer": 1, "top_k": 3} | options))


def test_loss_combines_ce_consistency_and_entropy(backbone):
    model = module(backbone)
    batch = make_batch(backbone)
    total, diag = model.loss(batch)
    assert torch.isfinite(total)
    assert total.item() == pytest.approx((diag["ce"] + diag["cons"] + diag["ent"]).item(), rel=1e-5)
    assert diag["cons"] > 0 and diag["ent"] > 0
    assert diag["cons_pairs"] == 2 * 3 and diag["ent_heads"] == 2 * 3
    assert int(diag["heads_no_visual"] + diag["heads_nonfinite"] + diag["heads_all_sink"]) == 0
    verification = model.verification_batch(batch)
    text = backbone.processor.tokenizer.decode(verification["input_ids"][0])
    assert "from 3s to 7s" in text and "labels" not in verification
    # the same videos: the verification batch shares the pixel tensor (a copy would cost the step's memory goal)
    assert verification["pixel_values_videos"].data_ptr() == batch["pixel_values_videos"].data_ptr()


def test_weights_and_stop_gradient(backbone):
    batch = make_batch(backbone)
    only_ce, diag = module(backbone, consistency_weight=0.0, entropy_weight=0.0).loss(batch)
    assert only_ce.item() == pytest.approx(diag["ce"].item(), rel=1e-6)
    with_ver_ce, diag = module(backbone, stop_gradient="none", verification_ce_weight=1.0).loss(batch)
    assert with_ver_ce.item() == pytest.approx((diag["ce"] + diag["cons"] + diag["ent"] + diag["verification_ce"]).item(), rel=1e-5)
    with pytest.raises(ValueError, match="gradients in the verification"):
        ConsistencyOptions(verification_ce_weight=1.0)


def test_consistency_gradient_reaches_only_the_generation_pathway(backbone):
    """With stop-gradient on verification, L_cons alone trains the layer through the generation rows only:
    the q projection of the probed layer gets a gradient, and it equals the one computed with the
    verification rows detached by hand (they are computed under no_grad)."""
    model = module(backbone, ce_weight=0.0, entropy_weight=0.0)
    batch = make_batch(backbone)
    total, _ = model.loss(batch)
    q_proj = backbone.decoder_layers()[1].self_attn.q_proj.weight
    (grad,) = torch.autograd.grad(total, q_proj)
    assert grad.abs().sum() > 0


def test_ablation_options_run(backbone):
    batch = make_batch(backbone)
    for options in ({"matching": "exact_random"}, {"matching": "exact_discard"},
                    {"matching": "hungarian", "verification_layers": [0, 1], "top_k": 4}):
        total, diag = module(backbone, **options).loss(batch)
        assert torch.isfinite(total), options
        expected = diag["exact_matches"] if options["matching"] == "exact_discard" else 2 * options.get("top_k", 3)
        assert diag["cons_pairs"] == expected, options


def test_flexible_layer_requires_hungarian():
    with pytest.raises(ValueError, match="matching: hungarian"):
        ConsistencyOptions(verification_layers=[0, 1])


def _one_step(**options) -> dict[str, torch.Tensor]:
    backbone = make_backbone().train()
    optimizer = torch.optim.AdamW(backbone.parameters(), lr=1e-3)
    total, _ = module(backbone, **options).loss(make_batch(backbone))
    total.backward()
    optimizer.step()
    return {n: p.detach().clone() for n, p in backbone.named_parameters()}


def test_training_step_moves_the_language_model_beyond_cross_entropy():
    """One step from the same init changes the language model, and the attention losses change it
    differently from cross-entropy alone (the probed layer's attention gets their gradient): with both
    attention weights at zero the two steps would be equal."""
    initial = {n: p.detach().clone() for n, p in make_backbone().named_parameters()}
    trained = _one_step()
    ce_only = _one_step(consistency_weight=0.0, entropy_weight=0.0)
    language = [n for n in initial if "language_model" in n]
    assert any(not torch.equal(initial[n], trained[n]) for n in language)
    probed = [n for n in language if ".layers.1.self_attn." in n and "q_proj" in n]
    assert probed and any(not torch.allclose(trained[n], ce_only[n], atol=1e-7) for n in probed)


def test_verification_pass_reuses_the_vision_output(backbone):
    """The encoder runs once per step, and the verification rows equal those of a full second pass."""
    calls = []
    handle = backbone.vision_encoder().patch_embed.register_forward_hook(lambda *args: calls.append(1))
    model = module(backbone)
    batch = make_batch(backbone)
    verification = model.verification_batch(batch)
    with torch.no_grad():
        *_, full = model._pathway(verification, [1])
        with backbone.reuse_visual_features() as share:
            model._pathway(batch, [1])
            share.replay = True
            *_, replayed = model._pathway(verification, [1])
    handle.remove()
    assert len(calls) == 2  # the full pass + the recording pass; the replay skipped the encoder
    assert torch.allclose(full.rows, replayed.rows, atol=1e-6)
    assert "forward" not in backbone.vision_encoder().__dict__

"""D²VLM's module: frame units, teacher-forced aggregation, the generation hook and FPO's references."""

from __future__ import annotations

import pytest
import torch

from data_modules.samples import VideoSample
from data_modules.tasks.evidence import EvidenceResponse
from groundlight.backbones.base import LoraOptions
from groundlight.backbones.qwen2_5_vl import Qwen25VLBackbone, TinyQwenConfig
from groundlight.methods.d2vlm import D2VLMModule, EvidenceOptions, FPOOptions
from groundlight.methods.d2vlm.decoding import frame_units
from groundlight.methods.d2vlm.losses import evidence_logits, salient_span
from groundlight.metrics.parse import parse_evidence

FRAMES = 8  # 1 fps: Qwen merges 2 frames per temporal group → 4 units of 2 s


def _backbone(lora: bool = False) -> Qwen25VLBackbone:
    torch.manual_seed(0)
    return Qwen25VLBackbone(tiny=TinyQwenConfig(num_layers=3), min_pixels=56 * 56, max_pixels=56 * 56,
                            lora=LoraOptions(r=4) if lora else None, add_tokens=("<evi>", "</evi>") if lora else ())


def _batch(module: D2VLMModule, responses: list[EvidenceResponse], with_answer: bool = True) -> dict:
    generator = torch.Generator().manual_seed(0)
    processor = module.backbone.processor
    items, samples = [], []
    for i, response in enumerate(responses):
        video = torch.randint(0, 256, (FRAMES, 56, 56, 3), dtype=torch.uint8, generator=generator)
        visual = processor.prepare_video(video, torch.arange(FRAMES).double())
        sample = VideoSample(f"s{i}", "v.mp4", "evidence", "When?", duration=float(FRAMES),
                             windows=list(response.spans), answer_text=response.render(), source=f"test.json:{i}")
        items.append({"visual": visual, "prompt": "When?" + " Say." * i, "query": "When?", "answer": response.render(),
                      "sample": sample})
        samples.append(sample)
    batch = processor.collate(items, with_answer=with_answer)
    return batch | {"samples": samples, "visuals": [item["visual"] for item in items],
                    "prompts": [item["prompt"] for item in items], "queries": ["When?"] * len(items)}


TWO = EvidenceResponse(((0.0, 3.0), (4.0, 7.0)), (", a red circle.", ", a blue square."))
ONE = EvidenceResponse(((2.0, 5.0),), (", it moves.",))


@pytest.fixture(scope="module")
def module():
    return D2VLMModule(_backbone(), evidence=EvidenceOptions(aggregation_layer=1)).eval()


def test_frame_units_follow_the_frame_map():
    frame_index = torch.tensor([-1, 0, 0, 2, 2, 4, -1, 6, 6, -1])
    units = frame_units(frame_index, torch.arange(8).double())
    assert units.start.tolist() == [0, 2, 4, 6] and units.end.tolist() == [2, 4, 6, 8]
    assert torch.allclose(units.pool.sum(1), torch.ones(4)) and units.pool[0, 1] == 0.5 and units.pool[0, 3] == 0
    assert units.span_units((0.0, 3.0)) == (0, 1) and units.span_units((4.0, 7.0)) == (2, 3)
    assert units.span_units((2.2, 2.8)) is None  # a span between unit centres holds no unit
    assert units.seconds((1, 2)) == (2.0, 6.0)


def test_the_tokens_are_added_once_with_their_ids(module):
    vocab = module.backbone.processor.tokenizer.get_vocab()
    assert (module.evi_id, module.end_id) == (vocab["<evi>"], vocab["</evi>"])


def test_teacher_forced_aggregation_adds_the_span_mean_of_the_first_pass(module):
    batch = _batch(module, [TWO, ONE])
    units = module._units(batch)
    positions = module._evidence_positions(batch, [2, 1])
    states = module.backbone.hidden_state(batch, 1)
    offsets = module._aggregates(units, positions, [list(TWO.spans), list(ONE.spans)], states, states.shape[1])
    unit_states = units[0].pool @ states[0]
    assert torch.allclose(offsets[0, positions[0][0]], unit_states[0:2].mean(0), atol=1e-6)  # [0, 3] s: units 0-1
    assert torch.allclose(offsets[0, positions[0][3]], unit_states[2:4].mean(0), atol=1e-6)  # 2nd stage, event 2
    assert int((offsets.abs().sum(-1) > 0).sum()) == 6, "exactly the <evi> positions get an offset"
    # under causal attention the frames' states do not depend on the response: the pass with the offsets sees
    # the same frame states the first pass aggregated
    with torch.no_grad(), module.backbone.embedding_offsets(offsets):
        second = module.backbone(batch, output_hidden_states=True).hidden_states[1]
    visual = batch["frame_index"] >= 0
    assert torch.allclose(second[visual], states[visual], atol=1e-5)


@pytest.mark.parametrize("stage", ["sft", "fpo"])
def test_the_one_pass_split_over_a_cache_equals_the_two_pass_route(stage):
    """The teacher-forced pass in two parts over one KV cache (video and prompt, then the response with the
    aggregation) gives the loss and gradients of the route taken under gradient checkpointing: a no-grad first
    pass up to ``aggregation_layer``, then the full pass with the offsets."""
    backbone = _backbone()
    module = D2VLMModule(backbone, stage=stage, evidence=EvidenceOptions(aggregation_layer=1)).train()
    batch = _batch(module, [TWO, ONE])
    if stage == "fpo":
        for sample, response in zip(batch["samples"], [ONE, TWO]):
            swapped = EvidenceResponse(tuple((e + 0.5, e + 2.0) for e, _ in response.spans), response.texts)
            sample.meta["rejected"] = {"response": swapped.render(), "windows": [list(w) for w in swapped.spans]}
    assert module._split(batch) is not None
    calls = []
    handle = backbone.vision_encoder().register_forward_hook(lambda *a: calls.append(1))
    try:
        results = {}
        for route in ("split", "two_pass"):
            if route == "two_pass":
                module._split = lambda batch: None  # what gradient checkpointing makes it take
            calls.clear()
            loss, _ = module.loss(batch)
            loss.backward()
            results[route] = (loss.detach(), {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None},
                              len(calls))
            module.zero_grad(set_to_none=True)
    finally:
        handle.remove()
    (split_loss, split_grads, split_calls), (two_loss, two_grads, _) = results["split"], results["two_pass"]
    assert split_calls == (1 if stage == "sft" else 2), "the split route encodes each video once per pass"
    assert torch.allclose(split_loss, two_loss, atol=1e-5) and split_grads.keys() == two_grads.keys()
    for name, grad in two_grads.items():
        assert torch.allclose(split_grads[name], grad, atol=1e-6, rtol=1e-4), name


def test_sft_loss_has_every_term_and_counts_spans_without_frames(module):
    batch = _batch(module, [TWO, EvidenceResponse(((2.2, 2.8),), (", brief.",))])
    module.empty_spans = 0
    loss, parts = module.loss(batch)
    assert torch.isfinite(loss) and parts["grounding"] > 0 and parts["consistency"] >= 0
    expected = parts["ce"] + 10 * parts["grounding"] + 10 * parts["consistency"]
    assert torch.allclose(loss.detach(), expected, atol=1e-4)
    assert module.empty_spans == 1


def test_a_response_that_disagrees_with_its_spans_names_the_sample(module):
    batch = _batch(module, [TWO])
    batch["samples"][0].windows = [(0.0, 3.0)]
    with pytest.raises(ValueError, match="test.json:0"):
        module.loss(batch)


def test_generation_grounds_each_evi_aggregates_it_and_writes_its_span(module):
    """A scripted LM head makes the model write ``<evi> <evi> </evi> <evi> x <evi> y``; every other part is real."""
    tokenizer = module.backbone.processor.tokenizer
    x, y = tokenizer.encode("red", add_special_tokens=False)[0], tokenizer.encode("blue", add_special_tokens=False)[0]
    script = [module.evi_id, module.evi_id, module.end_id, module.evi_id, x, module.evi_id, y, tokenizer.eos_token_id]
    head = module.backbone.model.get_output_embeddings()
    calls = []

    def scripted(mod, args, output):
        forced = torch.full_like(output, -1e4)
        forced[..., script[min(len(calls), len(script) - 1)]] = 0
        calls.append(1)
        return forced

    batch = _batch(module, [TWO], with_answer=False)
    handle = head.register_forward_hook(scripted)
    try:
        module.max_new_tokens = 10
        with torch.no_grad():
            texts, extras = module.generate_texts(batch)
            # what the hook saw: recompute the spans from the same prompt states
            hidden = module.backbone(batch, output_hidden_states=True).hidden_states
    finally:
        handle.remove()
    spans = extras[0]["evidence_spans"]
    assert len(spans) == 4
    units = module._units(batch)[0]
    frames = module.frame_head(units.pool @ hidden[-2][0])
    first = module.evidence_head(hidden[-2][0, -1])  # the prompt's last state predicts the first <evi>
    chosen = salient_span(torch.sigmoid(evidence_logits(first.unsqueeze(0), frames.unsqueeze(0)))[0], 0.6)
    assert spans[0] == list(units.seconds(chosen))
    parsed = parse_evidence(texts[0])
    assert parsed == [tuple(spans[0]), tuple(spans[1])]
    assert texts[0].endswith(tokenizer.decode([y]).strip()) and tokenizer.decode([x]).strip() in texts[0]
    assert "Answer:" in texts[0] and texts[0].count("seconds") == 4


@pytest.mark.parametrize("on_host", [True, False])
def test_the_hook_grounds_only_the_rows_that_generated_evi_as_the_heads_would(module, on_host):
    """The hook folds the evidence head's last layer into the frame features at step 0 (and, on the host path, the
    layer norm's affine into the first layer): the span it picks and the aggregation it returns equal the plain
    heads' (``evidence_logits``), row by row, in a batch where only one row generates ``<evi>`` at this step.
    ``on_host=False`` is the accelerator path (layer norm and first layer as tensor ops), run here on the CPU."""
    from groundlight.methods.d2vlm.decoding import EvidenceDecoder

    batch = _batch(module, [TWO, ONE], with_answer=False)
    saved = {name: p.detach().clone() for name, p in module.named_parameters() if "_head." in name}
    torch.manual_seed(1)
    for name, parameter in module.named_parameters():  # away from init, so that every frame scores differently
        if name in saved:
            parameter.data.add_(torch.randn_like(parameter) * 0.2)
    with torch.no_grad():
        hidden = module.backbone(batch, output_hidden_states=True).hidden_states
        decoder = EvidenceDecoder(module, batch, on_host=on_host)
        assert decoder(0, torch.tensor([7, 7]), hidden) is None  # no <evi> yet
        last = tuple(h[:, -1:] for h in hidden)
        extra = decoder(1, torch.tensor([7, module.evi_id]), last)
        units = module._units(batch)[1]
        frames = module.frame_head(units.pool @ hidden[-2][1])
        evidence = module.evidence_head(hidden[-2][1, -1])
        probabilities = torch.sigmoid(evidence_logits(evidence.unsqueeze(0), frames.unsqueeze(0)))[0]
        chosen = salient_span(probabilities, module.evidence.threshold)
        aggregated = (units.pool @ hidden[1][1])[chosen[0] : chosen[1] + 1].mean(0)
    for name, parameter in module.named_parameters():  # the fixture is shared
        if name in saved:
            parameter.data.copy_(saved[name])
    assert decoder.spans == [[], [list(units.seconds(chosen))]]
    assert extra.shape == (2, 1, hidden[0].shape[-1]) and not extra[0].any() and extra.dtype == hidden[0].dtype
    assert torch.allclose(extra[1, 0], aggregated, atol=1e-5)
    assert probabilities.max() - probabilities.min() > 0.05 and probabilities.max() < 0.999  # moved, not saturated
    assert decoder.probabilities[0] == [] and len(decoder.probabilities[1]) == 1
    assert torch.allclose(torch.from_numpy(decoder.probabilities[1][0]), probabilities, atol=1e-5)


def test_a_response_without_its_closing_token_is_a_parse_failure(module):
    tokenizer = module.backbone.processor.tokenizer
    batch = _batch(module, [TWO], with_answer=False)
    from groundlight.methods.d2vlm.decoding import EvidenceDecoder

    decoder = EvidenceDecoder(module, batch)
    decoder.spans = [[[0.0, 2.0], [2.0, 4.0]]]
    unclosed = torch.tensor([module.evi_id, module.evi_id, tokenizer.eos_token_id])
    twice = torch.tensor([module.evi_id, module.end_id, module.evi_id, module.end_id])
    assert parse_evidence(decoder.render(0, unclosed)) is None
    assert parse_evidence(decoder.render(0, twice)) is None
    closed = torch.tensor([module.evi_id, module.end_id, module.evi_id])
    assert parse_evidence(decoder.render(0, closed)) == [(0.0, 2.0)]
    plain = torch.tensor(tokenizer.encode("from 1.0s to 2.0s", add_special_tokens=False) + [tokenizer.eos_token_id])
    assert decoder.render(0, plain) == "from 1.0s to 2.0s"  # another task's answer is left as written


def test_adapter_disabled_reference_starts_at_the_policy_and_precomputed_matches_it():
    backbone = _backbone(lora=True)
    module = D2VLMModule(backbone, stage="fpo", evidence=EvidenceOptions(aggregation_layer=1),
                         fpo=FPOOptions(reference="adapter-disabled"))
    assert backbone.model.get_input_embeddings().token_adapter.trainable_tokens_delta["default"].requires_grad
    module.on_fit_start()
    rejected = EvidenceResponse(((4.0, 7.0), (0.0, 3.0)), TWO.texts)
    batch = _batch(module, [TWO])
    batch["samples"][0].meta["rejected"] = {"response": rejected.render(), "windows": [list(s) for s in rejected.spans]}
    loss, parts = module.loss(batch)  # fresh LoRA (B = 0): policy = reference, so the margin is 0
    assert torch.allclose(loss, torch.log(torch.tensor(2.0)), atol=1e-5) and abs(float(parts["reward_margin"])) < 1e-4
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in module.named_parameters() if "lora_B" in n)
    module.fpo = FPOOptions(reference="none", factors=("grounding",))
    _, parts_none = module.loss(batch)
    assert torch.allclose(parts_none["reward_margin"],
                          parts["chosen_grounding"] - parts["rejected_grounding"], atol=1e-3)
    with pytest.raises(ValueError, match="precomputed"):
        module.fpo = FPOOptions(reference="precomputed")
        module.loss(batch)


def test_adapter_disabled_needs_lora():
    module = D2VLMModule(_backbone(), stage="fpo", evidence=EvidenceOptions(aggregation_layer=1),
                         fpo=FPOOptions(reference="adapter-disabled"))
    batch = _batch(module, [TWO])
    batch["samples"][0].meta["rejected"] = {"response": ONE.render(), "windows": [list(s) for s in ONE.spans]}
    with pytest.raises(ValueError, match="lora"):
        module.loss(batch)


def test_tokens_cannot_be_added_after_lora():
    backbone = Qwen25VLBackbone(tiny=TinyQwenConfig(), min_pixels=56 * 56, max_pixels=56 * 56, lora=LoraOptions(r=4))
    with pytest.raises(ValueError, match="add_tokens"):
        D2VLMModule(backbone)


def test_precomputed_reference_scores_every_pair_before_the_first_step_and_is_checkpointed(synth_dir, tmp_path, monkeypatch):
    from pathlib import Path

    from data_modules.readers import read_task_split
    from groundlight.cli import lightning_main

    monkeypatch.chdir(Path(__file__).resolve().parents[3])
    torch.manual_seed(0)
    cli = lightning_main([
        "--config", "experiments/d2vlm/synth_fpo.yaml", "--model.init_args.backbone",
        "experiments/base/backbones/tiny_qwen2_5_vl.yaml", "--model.init_args.fpo.reference", "precomputed",
        "--model.init_args.evidence.aggregation_layer", "1", "--data.init_args.data_dir", str(synth_dir),
        "--runs_dir", str(tmp_path), "--data.init_args.batch_size", "2", "--trainer.max_steps", "1",
        "--trainer.logger", "false", "--trainer.limit_val_batches", "0",
    ], run=False)
    losses = []
    cli.model.on_train_batch_end = lambda outputs, batch, index: losses.append(float(outputs["loss"]))
    cli.trainer.fit(cli.model, cli.datamodule)
    pairs = read_task_split(synth_dir, "d2vlm_preferences", "train")
    assert set(cli.model.reference_scores) == {p.sample_id for p in pairs}
    assert losses[0] == pytest.approx(float(torch.log(torch.tensor(2.0))), abs=1e-4)  # policy = reference at start
    checkpoint = torch.load(cli.trainer.checkpoint_callback.last_model_path, map_location="cpu", weights_only=True)
    assert checkpoint["d2vlm_reference_scores"] == cli.model.reference_scores


def test_the_answer_stage_is_what_etbench_parsers_read():
    """Submitted to E.T. Bench (dense captioning, grounding), the record's ``answer`` gives one window and one caption
    per event; the whole response would repeat every window (both stages)."""
    from groundlight.methods.d2vlm.decoding import answer_stage
    from groundlight.metrics.etbench import etbench_dense_captions

    text = EvidenceResponse(((3.0, 8.0), (12.0, 15.5)), (", a red circle.", ", a blue square.")).timestamp_text()
    windows, captions = etbench_dense_captions(answer_stage(text))
    assert windows == [[3.0, 8.0], [12.0, 15.5]] and captions == ["a red circle.", "a blue square."]
    assert answer_stage("Evidence: 1.0 - 2.0 seconds") == ""

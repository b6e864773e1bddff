"""Attention self-consistency between related tasks (Rai & Kovashka 2026).

The same video goes through the shared model twice: the generation pathway (the task
prompt, trained with cross-entropy, Eq. 2) and the verification pathway (a yes/no
prompt asking whether the ground-truth answer is correct, no gradient). At one fixed
decoder layer, the top-K heads of each pathway by Visual Non-Sink Ratio (supplement
Eq. 10) are paired by head bipartite matching (Sec. 3.4), and the generation heads'
visual attention is pulled towards the verification heads' (L_cons, Eq. 4) and
sharpened (L_ent, Eq. 3). Total: Eq. 5, with weights in config.

Configs: ``experiments/self_consistency/{synth,exact,fitnessqa,expertaf}.yaml``;
ablations: ``experiments/sweeps/self_consistency_ablations.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from data_modules.tasks.verification import VerificationPrompts, verification_prompt
from groundlight.attention.matching import MatchingStrategy, match_heads, pairwise_kl
from groundlight.attention.probe import AttentionProbe, last_prompt_positions, visual_rows
from groundlight.attention.sinks import DEFAULT_TAU, non_sink_ratio, sink_tokens, top_heads, visual_mass
from groundlight.backbones.base import VideoBackbone
from groundlight.losses import answer_cross_entropy
from groundlight.losses.attention import StopGradient, consistency_loss, entropy_loss, head_validity
from groundlight.methods.base import GroundingModule, OptimizerConfig

VERIFICATION_ANSWER = "yes"  # the ground-truth answer is, by construction, correct


@dataclass
class ConsistencyOptions:
    """Where and how attention consistency is enforced.

    Attributes:
        layer: the decoder layer (paper: 8 for PerceptionLM-8B; chosen with ``groundlight analyze attention``).
        top_k: heads selected per pathway per forward pass (paper: 5).
        temperature: entropy sharpening ``T`` (paper: 0.03).
        ce_weight / consistency_weight / entropy_weight: Eq. 5 weights (paper: equal).
        matching: ``exact_hungarian`` (paper), ``exact_random``, ``exact_discard``, ``hungarian``.
        verification_layers: the flexible-layer ablation: the verification heads are the
            top-K over all these layers (requires ``matching: hungarian``); ``None`` = ``layer``.
        stop_gradient: ``verification`` (paper), ``generation`` or ``none`` (supplement Sec. 9).
        verification_ce_weight: CE on the verification answer ("yes"); only with gradients there.
        sink_dims: the LLM's sink dimensions (``groundlight analyze sink-dims``); empty = no sinks.
        sink_tau: sink threshold on the RMS-normalised hidden state.
        seed: randomness of ``exact_random`` matching.
    """

    layer: int = 8
    top_k: int = 5
    temperature: float = 0.03
    ce_weight: float = 1.0
    consistency_weight: float = 1.0
    entropy_weight: float = 1.0
    matching: MatchingStrategy = "exact_hungarian"
    verification_layers: list[int] | None = None
    stop_gradient: StopGradient = "verification"
    verification_ce_weight: float = 0.0
    sink_dims: list[int] = field(default_factory=list)
    sink_tau: float = DEFAULT_TAU
    seed: int = 0

    def __post_init__(self) -> None:
        if self.verification_layers is not None and self.matching != "hungarian":
            raise ValueError("a flexible verification layer has no head indices to match exactly: set matching: hungarian")
        if self.verification_ce_weight and self.stop_gradient == "verification":
            raise ValueError("verification_ce_weight needs gradients in the verification pathway: "
                             "set stop_gradient to 'generation' or 'none'")
        if self.top_k < 1 or self.temperature <= 0:
            raise ValueError(f"top_k must be >= 1 and temperature > 0, got {self.top_k}, {self.temperature}")


@dataclass
class PathwayAttention:
    """One pathway's attention at the probed layer(s), restricted to visual keys.

    Attributes:
        rows: ``(B, H, V)`` attention of the last prompt token on visual tokens (heads of all probed layers).
        mask: ``(B, V)`` real visual tokens.
        sinks: ``(B, V)`` visual sink tokens.
        ratio: ``(B, H)`` Visual Non-Sink Ratio.
        mass: ``(B, H)`` total visual attention.
    """

    rows: torch.Tensor
    mask: torch.Tensor
    sinks: torch.Tensor
    ratio: torch.Tensor
    mass: torch.Tensor

    @classmethod
    def from_probe(cls, probe: AttentionProbe, batch: dict[str, Any], sink_dims: list[int], tau: float) -> PathwayAttention:
        visual = batch["frame_index"] >= 0
        rows, sinks, ratios, masses = [], [], [], []
        for layer in probe.probed:
            layer_sinks = sink_tokens(probe.hidden[layer], visual, sink_dims, tau)
            ratios.append(non_sink_ratio(probe.rows[layer], visual, layer_sinks))
            masses.append(visual_mass(probe.rows[layer], visual))
            gathered, mask = visual_rows(probe.rows[layer], visual)
            rows.append(gathered)
            sinks.append(visual_rows(layer_sinks[:, None].float(), visual)[0][:, 0].bool())
        return cls(torch.cat(rows, 1), mask, torch.stack(sinks).any(0), torch.cat(ratios, 1), torch.cat(masses, 1))

    def top_heads(self, k: int) -> torch.Tensor:
        return top_heads(self.ratio, min(k, self.ratio.shape[1]), tie_break=self.mass)


class SelfConsistencyModule(GroundingModule):
    """Dual-pathway self-consistency training (Eqs. 2-5) on the shared base.

    Args:
        backbone: any :class:`VideoBackbone` whose language model the probe can find.
        optimizer: AdamW schedule (paper: batch 1 × grad-accumulation 4, LoRA r16/α32).
        max_new_tokens: generation length at validation/test.
        consistency: layer, heads, matching and loss weights.
        verification: how the verification prompt is built.
    """

    def __init__(
        self,
        backbone: VideoBackbone,
        optimizer: OptimizerConfig = OptimizerConfig(),  # noqa: B008
        max_new_tokens: int = 32,
        consistency: ConsistencyOptions = ConsistencyOptions(),  # noqa: B008
        verification: VerificationPrompts = VerificationPrompts(),  # noqa: B008
    ) -> None:
        super().__init__(backbone, optimizer, max_new_tokens)
        self.consistency, self.verification = consistency, verification
        self._generator = torch.Generator().manual_seed(consistency.seed)
        AttentionProbe(backbone, [consistency.layer, *(consistency.verification_layers or [])])  # validates layers

    def loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        options = self.consistency
        with self.backbone.reuse_visual_features() as share:
            logits, labels, generation = self._pathway(batch, [options.layer])
            ce, diagnostics = answer_cross_entropy(logits, labels)
            verification_batch = self.verification_batch(batch)
            share.replay = True  # same videos: the verification pass reuses the encoder's output
            with torch.set_grad_enabled(torch.is_grad_enabled() and options.stop_gradient != "verification"):
                ver_logits, ver_labels, verification = self._pathway(
                    verification_batch, options.verification_layers or [options.layer],
                    need_logits=bool(options.verification_ce_weight))
        gen_heads = generation.top_heads(options.top_k)
        ver_heads = verification.top_heads(options.top_k)
        pairs = self.matched_pairs(generation, verification, gen_heads, ver_heads)
        cons, ent, attention_diagnostics = self.attention_losses(generation, verification, gen_heads, pairs)
        total = options.ce_weight * ce + options.consistency_weight * cons + options.entropy_weight * ent
        if options.verification_ce_weight:
            ver_ce, _ = answer_cross_entropy(ver_logits, ver_labels)
            total = total + options.verification_ce_weight * ver_ce
            diagnostics["verification_ce"] = ver_ce.detach()
        return total, diagnostics | attention_diagnostics | {"ce": ce.detach(), "cons": cons.detach(), "ent": ent.detach()}

    def _pathway(self, batch: dict[str, Any], layers: list[int],
                 need_logits: bool = True) -> tuple[torch.Tensor | None, torch.Tensor | None, PathwayAttention]:
        """One probed pass: the answer positions' logits and labels (see ``answer_forward``), and the attention;
        without ``need_logits`` it stops after the last probed layer (no logits)."""
        logits = labels = None
        with AttentionProbe(self.backbone, layers, stop_after=not need_logits) as probe:
            probe.query_positions = last_prompt_positions(batch)
            output, labels = self.answer_forward(batch)  # without need_logits, stopped after the last probed layer
            logits = output.logits
        options = self.consistency
        return logits, labels, PathwayAttention.from_probe(probe, batch, options.sink_dims, options.sink_tau)

    def verification_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        """The same videos with verification prompts, collated by the backbone's processor."""
        items = [
            {"visual": visual, "sample": sample, "answer": VERIFICATION_ANSWER,
             "prompt": verification_prompt(sample, answer, duration, self.verification)}
            for visual, sample, answer, duration in zip(batch["visuals"], batch["samples"], batch["answers"], batch["durations"])
        ]
        collated = self.backbone.processor.collate(items, with_answer=bool(self.consistency.verification_ce_weight),
                                                   with_pixels=False)
        for key in self.backbone.processor.visual_keys:  # the same videos in the same order: share, do not copy
            collated[key] = batch[key]
        return {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in collated.items()}

    def matched_pairs(self, generation: PathwayAttention, verification: PathwayAttention, gen_heads: torch.Tensor,
                      ver_heads: torch.Tensor) -> list[list[tuple[int, int]]]:
        """Per sample, ``(generation head, verification head)`` pairs by head bipartite matching."""
        pairs = []
        for b in range(gen_heads.shape[0]):
            gen_probs = _renormalised(generation.rows[b, gen_heads[b]])
            ver_probs = _renormalised(verification.rows[b, ver_heads[b]])
            cost = pairwise_kl(ver_probs.detach(), gen_probs.detach()).T  # cost[g, v] = KL(A_ver,v ‖ A_gen,g)
            pairs.append(match_heads(gen_heads[b].tolist(), ver_heads[b].tolist(), cost,
                                     self.consistency.matching, self._generator))
        return pairs

    def attention_losses(self, generation: PathwayAttention, verification: PathwayAttention, gen_heads: torch.Tensor,
                         pairs: list[list[tuple[int, int]]]) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """L_cons over the matched pairs and L_ent over the generation heads, with head counts."""
        options = self.consistency
        sample = torch.tensor([b for b, found in enumerate(pairs) for _ in found], dtype=torch.long, device=self.device)
        gen_index = torch.tensor([g for found in pairs for g, _ in found], dtype=torch.long, device=self.device)
        ver_index = torch.tensor([v for found in pairs for _, v in found], dtype=torch.long, device=self.device)
        mask, sinks = generation.mask[sample], generation.sinks[sample]
        gen_rows, ver_rows = generation.rows[sample, gen_index], verification.rows[sample, ver_index]
        gen_valid, counts = head_validity(gen_rows, mask, sinks)
        ver_valid, _ = head_validity(ver_rows, mask, verification.sinks[sample])
        cons, cons_diag = consistency_loss(gen_rows, ver_rows, mask, gen_valid & ver_valid, options.stop_gradient)
        rows_b = torch.arange(gen_heads.shape[0], device=self.device)[:, None].expand_as(gen_heads).reshape(-1)
        ent_rows = generation.rows[rows_b, gen_heads.reshape(-1)]
        ent_valid, _ = head_validity(ent_rows, generation.mask[rows_b], generation.sinks[rows_b])
        ent, ent_diag = entropy_loss(ent_rows, generation.mask[rows_b], ent_valid, options.temperature)
        exact = sum(g == v for found in pairs for g, v in found)
        diagnostics = counts | cons_diag | ent_diag | {
            "exact_matches": torch.tensor(float(exact)),
            "gen_visual_mass": generation.mass.gather(1, gen_heads).mean().detach(),
            "gen_non_sink_ratio": generation.ratio.gather(1, gen_heads).mean().detach(),
        }
        return cons, ent, diagnostics


def _renormalised(rows: torch.Tensor) -> torch.Tensor:
    """Rows over visual tokens → distributions (rows without mass stay zero)."""
    rows = rows.float().nan_to_num(0.0)
    return rows / rows.sum(-1, keepdim=True).clamp_min(1e-12)

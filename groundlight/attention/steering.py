"""Inference-time attention steering onto ground-truth keyframes (paper Sec. 4.2, supplement Eq. 11).

For the chosen heads of one layer, the last prompt token's attention is redistributed:

- ``proportional``: keyframe visual tokens are scaled by ``S_vis / S_key`` so the total
  visual mass is kept, other visual tokens go to 0, text is untouched (Eq. 11);
- ``uniform``: the visual mass is spread evenly over all visual tokens (Table 1's baseline).

Heads are given by hand or chosen per input as the top-K by Visual Non-Sink Ratio or
by visual attention sum. During generation the heads chosen on the prompt are kept
for every generated token, whose row is steered the same way (keys after the prompt
are text). :class:`AttentionSteering` is a callback, so ``validate``/``test``/``predict``
of any method can turn it on::

    groundlight test --config experiments/sft/synth.yaml --ckpt_path ... \\
        --trainer.callbacks+=groundlight.attention.steering.AttentionSteering \\
        --trainer.callbacks.mode=proportional --trainer.callbacks.layer=1
"""

from __future__ import annotations

from typing import Any, Literal

import lightning as L
import torch

from groundlight.attention.probe import AttentionProbe
from groundlight.attention.sinks import DEFAULT_TAU, non_sink_ratio, sink_tokens, top_heads, visual_mass
from groundlight.backbones.base import VideoBackbone

SteerMode = Literal["none", "uniform", "proportional"]
HeadSelection = Literal["manual", "non_sink_ratio", "visual_sum"]


def frame_keyframe_flags(timestamps: torch.Tensor, keyframes: list[float]) -> torch.Tensor:
    """``(T,)`` bool: sampled frames nearest to some keyframe time (within half a frame interval)."""
    flags = torch.zeros(len(timestamps), dtype=torch.bool)
    if not keyframes or len(timestamps) == 0:
        return flags
    times = timestamps.double()
    half = float((times[1:] - times[:-1]).mean()) / 2 if len(times) > 1 else float("inf")
    for time in keyframes:
        distance = (times - time).abs()
        nearest = int(distance.argmin())
        if distance[nearest] <= half + 1e-9:
            flags[nearest] = True
    return flags


def sample_keyframes(sample: Any) -> list[float]:
    """The sample's keyframe times, or every second of its ground-truth windows."""
    if sample.keyframes:
        return list(sample.keyframes)
    return [float(t) for start, end in (sample.windows or []) for t in range(int(start), int(-(-end // 1)))]


def keyframe_tokens(batch: dict[str, Any]) -> torch.Tensor:
    """``(B, L)`` bool: visual positions whose frames include a ground-truth keyframe.

    A token shows the frames from its ``token_frame`` up to the next token group's.
    """
    frame_index = batch["frame_index"]
    out = torch.zeros_like(frame_index, dtype=torch.bool)
    for b, (visual, sample) in enumerate(zip(batch["visuals"], batch["samples"])):
        flags = frame_keyframe_flags(visual.timestamps, sample_keyframes(sample))
        starts = torch.unique(visual.token_frame)
        ends = torch.cat([starts[1:], torch.tensor([len(flags)])])
        group_key = {int(s): bool(flags[s:e].any()) for s, e in zip(starts, ends)}
        positions = (frame_index[b] >= 0).nonzero().squeeze(1)
        out[b, positions] = torch.tensor([group_key[int(f)] for f in frame_index[b, positions].cpu()], dtype=torch.bool)
    return out


def redistribute(probs: torch.Tensor, visual: torch.Tensor, keyframes: torch.Tensor, heads: torch.Tensor,
                 mode: SteerMode) -> torch.Tensor:
    """Steered copy of ``probs`` ``(B, H, L)`` on ``heads`` ``(B, K)``; rows without keyframe mass are kept."""
    if mode == "none":
        return probs
    visual_f, key_f = visual.to(probs.dtype)[:, None], (keyframes & visual).to(probs.dtype)[:, None]
    s_vis = (probs * visual_f).sum(-1, keepdim=True)
    if mode == "uniform":
        steered = probs * (1 - visual_f) + s_vis * visual_f / visual_f.sum(-1, keepdim=True).clamp_min(1)
    elif mode == "proportional":
        s_key = (probs * key_f).sum(-1, keepdim=True)
        scaled = probs * (1 - visual_f) + probs * key_f * s_vis / s_key.clamp_min(torch.finfo(probs.dtype).tiny)
        steered = torch.where(s_key > 0, scaled, probs)
    else:
        raise ValueError(f"steering mode must be none, uniform or proportional, got {mode!r}")
    chosen = torch.zeros(probs.shape[:2], dtype=torch.bool, device=probs.device).scatter(1, heads, True)
    return torch.where(chosen[..., None], steered, probs)


class AttentionSteering(L.Callback):
    """Steer one layer's attention onto ground-truth keyframes during validate/test/predict.

    Args:
        layer: decoder layer to steer (paper: 8).
        mode: ``none``, ``uniform`` or ``proportional`` (Eq. 11).
        heads: ``manual`` head ids (paper: head 7).
        selection: ``manual``, or adaptive top-K by ``non_sink_ratio`` (paper's best) or ``visual_sum``.
        top_k: heads per input for adaptive selection.
        sink_dims / sink_tau: sink definition for ``non_sink_ratio``.
    """

    def __init__(self, layer: int, mode: SteerMode = "proportional", heads: list[int] | None = None,
                 selection: HeadSelection = "non_sink_ratio", top_k: int = 5, sink_dims: list[int] | None = None,
                 sink_tau: float = DEFAULT_TAU) -> None:
        if selection == "manual" and not heads:
            raise ValueError("manual head selection needs `heads`")
        if selection not in ("manual", "non_sink_ratio", "visual_sum"):
            raise ValueError(f"selection must be manual, non_sink_ratio or visual_sum, got {selection!r}")
        self.layer, self.mode, self.heads, self.selection = layer, mode, heads or [], selection
        self.top_k, self.sink_dims, self.sink_tau = top_k, list(sink_dims or []), sink_tau
        self._probe: AttentionProbe | None = None
        self._state: dict[str, torch.Tensor] = {}

    def start(self, backbone: VideoBackbone, batch: dict[str, Any]) -> None:
        """Steer the next forward passes of ``backbone`` for ``batch``."""
        self._state = {"visual": batch["frame_index"] >= 0, "keyframes": keyframe_tokens(batch)}
        self._probe = AttentionProbe(backbone, [self.layer], steer=self._steer).__enter__()

    def stop(self) -> None:
        if self._probe is not None:
            self._probe.__exit__(None, None, None)
        self._probe, self._state = None, {}

    def _choose_heads(self, probs: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        if self.selection == "manual":
            return torch.tensor(self.heads, device=probs.device).expand(probs.shape[0], -1)
        mass = visual_mass(probs, visual)
        if self.selection == "visual_sum":
            return top_heads(mass, min(self.top_k, probs.shape[1]))
        sinks = sink_tokens(self._probe.hidden[self.layer], visual, self.sink_dims, self.sink_tau)
        return top_heads(non_sink_ratio(probs, visual, sinks), min(self.top_k, probs.shape[1]), tie_break=mass)

    def _steer(self, layer: int, probs: torch.Tensor) -> torch.Tensor | None:
        if self.mode == "none":
            return None
        pad = probs.shape[-1] - self._state["visual"].shape[1]  # generated tokens are text
        visual = torch.nn.functional.pad(self._state["visual"].to(probs.device), (0, pad))
        keyframes = torch.nn.functional.pad(self._state["keyframes"].to(probs.device), (0, pad))
        if "heads" not in self._state:
            self._state["heads"] = self._choose_heads(probs, visual)
        return redistribute(probs, visual, keyframes, self._state["heads"], self.mode)

    def _on_start(self, module: L.LightningModule, batch: dict[str, Any]) -> None:
        if batch.get("samples"):
            self.start(module.backbone, batch)

    def on_validation_batch_start(self, trainer, module, batch, batch_idx, dataloader_idx=0) -> None:  # noqa: ANN001
        self._on_start(module, batch)

    def on_test_batch_start(self, trainer, module, batch, batch_idx, dataloader_idx=0) -> None:  # noqa: ANN001
        self._on_start(module, batch)

    def on_predict_batch_start(self, trainer, module, batch, batch_idx, dataloader_idx=0) -> None:  # noqa: ANN001
        self._on_start(module, batch)

    def on_validation_batch_end(self, *args: Any, **kwargs: Any) -> None:
        self.stop()

    def on_test_batch_end(self, *args: Any, **kwargs: Any) -> None:
        self.stop()

    def on_predict_batch_end(self, *args: Any, **kwargs: Any) -> None:
        self.stop()

"""The shared module's guards: a non-finite loss or an answerless batch never reaches the optimizer."""

import math

import torch

from data_modules.samples import VideoSample
from groundlight.losses import answer_cross_entropy
from groundlight.methods.base import GroundingModule, OptimizerConfig


class FixedLoss(GroundingModule):
    def __init__(self, backbone, value):
        super().__init__(backbone)
        self.value = value

    def loss(self, batch):
        return torch.tensor(self.value, requires_grad=True), {}


def test_nonfinite_loss_is_skipped_and_counted(tiny_backbone):
    module = FixedLoss(tiny_backbone, float("nan"))
    module.log = lambda *args, **kwargs: None
    samples = [VideoSample(f"s{i}", "v.mp4", "verify", "statement", label=True) for i in range(2)]
    batch = {"samples": samples, "skipped_videos": 0}
    assert module.training_step(batch, 0) is None
    assert module.training_step(batch, 1) is None
    assert module.skipped_batches == 2


def test_finite_loss_passes_through(tiny_backbone):
    module = FixedLoss(tiny_backbone, 0.5)
    module.log = lambda *args, **kwargs: None
    assert module.training_step({"samples": ["a"], "skipped_videos": 0}, 0).item() == 0.5


def test_answerless_batch_gives_nan_for_the_guard():
    """No label differs from -100: 0/0 → NaN, which the training step then skips."""
    loss, diagnostics = answer_cross_entropy(torch.zeros(1, 4, 7), torch.full((1, 4), -100))
    assert math.isnan(loss.item()) and diagnostics["answer_tokens"] == 0


def test_cross_entropy_by_hand():
    """Uniform logits over V=4 on the one answer token: loss = ln 4 = 1.3863."""
    labels = torch.tensor([[-100, -100, 2, -100]])
    loss, diagnostics = answer_cross_entropy(torch.zeros(1, 4, 4), labels)
    assert abs(loss.item() - math.log(4)) < 1e-6 and diagnostics["answer_tokens"] == 1


def test_schedule_warmup_then_cosine_to_floor():
    config = OptimizerConfig(warmup_steps=10, schedule="cosine", min_lr_ratio=0.1)
    assert config.factor(0, 110) == 0.1  # (0 + 1) / 10
    assert config.factor(9, 110) == 1.0
    assert abs(config.factor(60, 110) - 0.55) < 1e-9  # halfway: 0.1 + 0.9 * 0.5
    assert abs(config.factor(110, 110) - 0.1) < 1e-9


def test_a_skip_under_a_distributed_strategy_is_a_zero_loss_on_every_trainable_parameter(tiny_backbone):
    """Lightning refuses ``None`` from a DDP training step: the skip joins the all-reduce with zero gradients."""
    from types import SimpleNamespace

    module = FixedLoss(tiny_backbone, float("inf"))
    logged = []
    module.log = lambda name, value, **kwargs: logged.append((name, value, kwargs))
    module._trainer = SimpleNamespace(world_size=2)
    samples = [VideoSample("s0", "v.mp4", "verify", "statement", label=True)]
    loss = module.training_step({"samples": samples, "skipped_videos": 0}, 0)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    grads = [p.grad for p in module.parameters() if p.requires_grad]
    assert grads and all(g is not None and not g.any() for g in grads)
    assert module.skipped_batches == 1
    assert logged == [  # every rank logs both counts at every step: each synced log is a collective all ranks join
        ("train/skipped_videos", 0.0, {"reduce_fx": "sum", "batch_size": 1, "on_step": False, "on_epoch": True,
                                       "sync_dist": True}),
        ("train/skipped_batches", 1.0, {"batch_size": 1, "sync_dist": True, "reduce_fx": "sum"}),
    ]
    empty = module.training_step({"samples": [], "skipped_videos": 1}, 1)
    assert empty.item() == 0.0


def test_a_skip_under_a_distributed_strategy_replays_the_last_batch_that_trained(tiny_backbone):
    """Every rank runs the same modules at every step: an all-skipped batch (every video unreadable) replays this
    rank's last trained batch times zero, so the vision tower runs here as on the others, with zero gradients."""
    from types import SimpleNamespace

    calls = []

    class Counting(FixedLoss):
        def loss(self, batch):
            calls.append(batch["samples"][0])
            return super().loss(batch)

    module = Counting(tiny_backbone, 0.5)
    module.log = lambda *args, **kwargs: None
    module._trainer = SimpleNamespace(world_size=2)
    assert module.training_step({"samples": ["trained"], "skipped_videos": 0}, 0).item() == 0.5
    replay = module.training_step({"samples": [], "skipped_videos": 4}, 1)
    assert calls == ["trained", "trained"] and replay.item() == 0.0 and replay.requires_grad


def test_a_non_finite_replay_falls_back_to_the_plain_zero(tiny_backbone):
    """0 · inf would put NaN gradients into the all-reduce: a replay that is not finite is dropped."""
    from types import SimpleNamespace

    class Diverged(GroundingModule):
        def loss(self, batch):  # depends on the weights, so 0 · loss would give them 0 · inf = NaN gradients
            weight = next(p for p in self.parameters() if p.requires_grad)
            return weight.sum() * float("inf"), {}

    module = Diverged(tiny_backbone)
    module.log = lambda *args, **kwargs: None
    module._trainer = SimpleNamespace(world_size=2)
    module._replay = {"samples": ["stale"], "skipped_videos": 0}
    loss = module.training_step({"samples": [], "skipped_videos": 2}, 0)
    loss.backward()
    assert loss.item() == 0.0
    assert all(not p.grad.isnan().any() for p in module.parameters() if p.requires_grad)

"""Every method trains on every backbone family through the real CLI, switched by one config key.

``pytest -k family`` runs the matrix. A family joins by adding itself to ``tests/backbones/families.py``
and its tiny builds to ``experiments/base/backbones/tiny_<family>.yaml`` and ``tiny_<family>_lora8.yaml``; a method joins by adding its
synth config to ``METHODS``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from groundlight.cli import lightning_main
from tests.backbones.families import FAMILIES

ROOT = Path(__file__).resolve().parents[2]
METHODS = {  # method → (its synth config, the build it names: tiny_<family><suffix>.yaml)
    "sft": ("experiments/sft/synth.yaml", ""),
    "self_consistency": ("experiments/self_consistency/synth.yaml", ""),
    "groundvts": ("experiments/groundvts/synth_stage3.yaml", "_lora8"),  # stage 3 trains [vts, projector, lora]
    "sf2t": ("experiments/sf2t/synth.yaml", ""),  # fragment questions: the sets as one video, presentation times
    "d2vlm": ("experiments/d2vlm/synth.yaml", ""),  # evidence tokens: heads on frame units, aggregation into <evi>
    "d2vlm_fpo": ("experiments/d2vlm/synth_fpo.yaml", ""),  # FPO on the preference pairs (no reference, as released)
}


SLOW = {"d2vlm_fpo"}  # in `make test-full`: the fast matrix keeps one run per method and family


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("method", [pytest.param(m, marks=pytest.mark.slow) if m in SLOW else m for m in sorted(METHODS)])
def test_every_method_trains_on_every_family(method, family, synth_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    config, build = METHODS[method]
    torch.manual_seed(0)
    cli = lightning_main([
        "--config", config, "--model.init_args.backbone", f"experiments/base/backbones/tiny_{family}{build}.yaml",
        "--data.init_args.data_dir", str(synth_dir), "--runs_dir", str(tmp_path / "runs"),
        "--data.init_args.batch_size", "2", "--trainer.fast_dev_run", "1", "--trainer.logger", "false",
    ], run=False)
    assert type(cli.model.backbone).__module__.endswith(family), "the backbone key did not switch the family"
    before = {n: p.detach().clone() for n, p in cli.model.named_parameters() if p.requires_grad}
    cli.trainer.fit(cli.model, cli.datamodule)
    loss = cli.trainer.callback_metrics["train/loss"]
    assert torch.isfinite(loss), loss
    changed = [n for n, p in cli.model.named_parameters() if p.requires_grad and not torch.equal(p, before[n])]
    assert changed, "no trainable parameter changed"

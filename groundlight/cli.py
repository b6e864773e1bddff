"""The ``groundlight`` console script.

``fit|validate|test|predict`` run through LightningCLI; ``data``, ``eval``, ``demo``, ``bench``,
``sweep``, ``analyze``, ``recipe`` (experiment chains) and ``estimate`` (memory before a run) are tools beside it.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

from lightning.pytorch.cli import LightningCLI

from groundlight.callbacks import AtomicModelCheckpoint, CheckpointOnSigterm, JsonlPredictionWriter, RunSummary

TOOLS = {
    "data": "groundlight.tools.data:main",
    "eval": "groundlight.evaluate.cli:main",
    "demo": "groundlight.analysis.demo:main",
    "bench": "groundlight.bench:main",
    "sweep": "groundlight.tools.sweep:main",
    "analyze": "groundlight.analysis.cli:main",
    "recipe": "groundlight.recipes:main",
    "estimate": "groundlight.tools.estimate:main",
}



def trainer_defaults() -> dict:
    """Defaults every run gets; configs override them, and their callbacks are added to these."""
    return {
        "max_epochs": 1,
        "log_every_n_steps": 10,
        "num_sanity_val_steps": 0,
        "gradient_clip_val": 1.0,
        "callbacks": [AtomicModelCheckpoint(save_last=True)],
    }


def command_line_configs(words: list[str]) -> list[str]:
    """The ``--config`` files named on the command line, in order; not the files those include (``config:`` keys)."""
    configs = []
    for index, word in enumerate(words):
        if word in ("--config", "-c") and index + 1 < len(words):
            configs.append(words[index + 1])
        elif word.startswith("--config="):
            configs.append(word.split("=", 1)[1])
    return configs


def _under_experiments(config: str) -> list[str]:
    parts = Path(str(config)).with_suffix("").parts
    return list(parts[parts.index("experiments") + 1 :]) if "experiments" in parts else [Path(str(config)).stem]


def experiment_name(config_paths: list[str]) -> str:
    """``experiments/sft/synth.yaml`` → ``sft/synth``; the last config names the run, except overlays from
    ``experiments/base/`` (``base/wandb.yaml``, a strategy, a budget), which name it only when nothing else does."""
    if not config_paths:
        return "default"
    named = [c for c in config_paths if _under_experiments(c)[0] != "base"] or list(config_paths)
    return "/".join(_under_experiments(named[-1]))


class GroundlightCLI(LightningCLI):
    """LightningCLI that files every run under ``runs/<experiment>/``."""

    def add_arguments_to_parser(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--experiment", type=str | None, default=None,
                            help="run name; default: the config path under experiments/")
        parser.add_argument("--runs_dir", type=str, default="runs", help="root of run directories")
        parser.add_argument("--predictions", type=str | None, default=None,
                            help="predict: jsonl path (default runs/<experiment>/predictions.jsonl)")

    def parse_arguments(self, parser, args) -> None:  # noqa: ANN001
        words = sys.argv[1:] if args is None else args
        self.given_configs = command_line_configs(words) if isinstance(words, list) else None
        super().parse_arguments(parser, args)

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        configs = [str(c) for c in (config.get("config") or [])]
        if self.given_configs is not None:  # the run is named and summarised by the configs given, not their includes
            configs = [c for c in configs if c in self.given_configs]
        name = config.get("experiment") or experiment_name(configs)
        self.run_dir = Path(config.get("runs_dir") or "runs") / name
        self.config_paths = configs
        if config.trainer.get("default_root_dir") in (None, os.getcwd(), "."):
            config.trainer.default_root_dir = str(self.run_dir)
        self._loggers_in_run_dir(config.trainer.get("logger"))
        self.predictions_path = config.get("predictions") or str(self.run_dir / "predictions.jsonl")

    def _loggers_in_run_dir(self, loggers: Any) -> None:
        """Every configured logger writes under ``runs/<experiment>/`` (a shared ``runs/csv`` mixed runs up)."""
        for logger in loggers if isinstance(loggers, list) else [loggers]:
            init_args = getattr(logger, "init_args", None)
            if init_args is not None and "save_dir" in init_args:
                init_args.save_dir = str(self.run_dir)

    def instantiate_trainer(self, **kwargs):  # noqa: ANN003, ANN201
        trainer = super().instantiate_trainer(**kwargs)
        trainer.callbacks.append(RunSummary(self.run_dir, self.config_paths))
        if self.subcommand in (None, "fit"):  # None: built with run=False, to be fitted by the caller
            trainer.callbacks.append(CheckpointOnSigterm())
        if self.subcommand == "predict":
            trainer.callbacks.append(JsonlPredictionWriter(self.predictions_path))
        return trainer


def lightning_main(args: list[str] | None = None, run: bool = True,
                   cli_class: type[GroundlightCLI] = GroundlightCLI) -> GroundlightCLI:
    from groundlight.methods.base import GroundingModule
    from lightning import LightningDataModule

    return cli_class(
        GroundingModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        seed_everything_default=0,
        trainer_defaults=trainer_defaults(),
        args=args,
        run=run,
        auto_configure_optimizers=False,
    )


def main(argv: list[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words and words[0] in TOOLS:
        module, function = TOOLS[words[0]].split(":")
        return int(getattr(importlib.import_module(module), function)(words[1:]) or 0)
    lightning_main(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Every YAML under experiments/ goes through the real parser, so config drift fails CI; hub weights are never loaded.

How configs compose (experiments/README.md): a backbone build is one key (``backbone: ../base/backbones/<build>.yaml``,
read relative to the file naming it); a training budget is the trainer section from a file
(``trainer: ../base/budgets/<budget>.yaml``); a config includes one base with ``config: <file>`` as its first key and
overrides it with dotted keys; an overlay is added as a further ``--config``.
"""

import copy
import importlib
from pathlib import Path

import pytest
import yaml

from groundlight.cli import lightning_main
from groundlight.tools.sweep import commands

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = ROOT / "experiments"
BACKBONES = sorted((EXPERIMENTS / "base" / "backbones").glob("*.yaml"))
BUDGETS = sorted((EXPERIMENTS / "base" / "budgets").glob("*.yaml"))
DATA_SOURCES = sorted((EXPERIMENTS / "base" / "data").glob("*.yaml"))
SWEEPS = sorted((EXPERIMENTS / "sweeps").glob("*.yaml"))
STRATEGIES = sorted((EXPERIMENTS / "base" / "strategies").glob("*.yaml"))
CONFIGS = sorted(p for p in EXPERIMENTS.rglob("*.yaml") if p.relative_to(EXPERIMENTS).parts[0] not in ("base", "sweeps"))
TINY = EXPERIMENTS / "base" / "backbones" / "tiny_qwen2_5_vl.yaml"
OVERLAYS = {  # overlay → a config it is documented to go on (wandb.yaml: tests/integration/test_cli.py runs it)
    "base/groundvts_tiny_budget.yaml": "groundvts/synth_uniform.yaml",
    "base/groundvts_qwen7b.yaml": "groundvts/synth_stage1.yaml",
}
# A bare model and data source, for parsing a base that is not a whole config (a data source, a budget).
BARE = ["--model", "groundlight.methods.sft.SFTModule", "--model.init_args.backbone", TINY,
        "--data", "data_modules.datamodule.GroundingDataModule", "--data.init_args.data_dir", "data/synth"]
WANDB = EXPERIMENTS / "base" / "wandb.yaml"
INCLUDING = EXPERIMENTS / "groundvts" / "synth_frame.yaml"  # includes stage 3, which includes stage 2, ...


def rel(path: Path) -> str:
    return path.relative_to(EXPERIMENTS).as_posix()


@pytest.fixture(scope="module")
def cli():
    return lightning_main(["--config", str(INCLUDING), "--trainer.logger", "false"], run=False)


@pytest.fixture(scope="module")
def parse(cli):
    """Parse arguments with the parser every groundlight tool uses (built once; each parse once)."""
    cache = {}

    def parse(*args):
        key = tuple(str(a) for a in args)
        if key not in cache:
            cache[key] = cli.parser.parse_args(list(key))
        return cache[key].clone()

    return parse


@pytest.fixture(scope="module")
def resolve(cli, parse):
    """The resolved config as ``--print_config`` writes it, minus the config list."""
    cache = {}

    def resolve(*args):
        key = tuple(str(a) for a in args)
        if key not in cache:
            cache[key] = yaml.safe_load(cli.parser.dump(parse(*args), skip_none=False, skip_validation=True))
            cache[key].pop("config", None)
        return copy.deepcopy(cache[key])

    return resolve


@pytest.fixture(scope="module")
def build(cli):
    """A backbone file (or files, the last one named last) → the resolved backbone, by a parser of that key alone."""
    from jsonargparse import ArgumentParser

    from groundlight.backbones.base import VideoBackbone

    parser = ArgumentParser()
    parser.add_subclass_arguments(VideoBackbone, "backbone")
    cache = {}

    def build(*paths):
        if paths not in cache:
            args = [word for path in paths for word in ("--backbone", str(path))]
            cache[paths] = yaml.safe_load(parser.dump(parser.parse_args(args), skip_none=False))["backbone"]
        return copy.deepcopy(cache[paths])

    return build


def flatten(tree, prefix: str = "") -> dict:
    """Nested mappings (and dotted keys) → ``{"a.b.c": leaf}``."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat = {}
    for key, value in tree.items():
        flat |= flatten(value, f"{prefix}.{key}" if prefix else str(key))
    return flat


def own_keys(path: Path) -> dict:
    """What a file sets itself (its include left out), as flat keys."""
    data = yaml.safe_load(path.read_text()) or {}
    data.pop("config", None)
    return flatten(data)


def include_of(path: Path) -> Path | None:
    data = yaml.safe_load(path.read_text()) or {}
    return (path.parent / data["config"]).resolve() if "config" in data else None


def unexplained_changes(before: dict, after: dict, sets: dict) -> list[str]:
    """Keys that differ between two resolved configs although ``sets`` (the flat keys a file sets) does not name
    them, and keys the file sets that did not get its value.

    A key set to a file (a backbone build, a budget) covers everything under it; a file that sets a ``class_path``
    may bring the new class's defaults under its ``init_args``. Lists of class specs (loggers) are resolved with their
    defaults filled in, so only their keys are checked.
    """
    before, after = flatten(before), flatten(after)
    covered = list(sets) + [k.removesuffix("class_path") + "init_args" for k in sets if k.endswith("class_path")]
    wrong = [k for k in sorted(set(before) | set(after)) if before.get(k, "<absent>") != after.get(k, "<absent>")
             and not any(k == c or k.startswith(c + ".") or c.startswith(k + ".") for c in covered)]
    for key, value in sets.items():
        from_file = isinstance(value, str) and value.endswith(".yaml")
        spec_list = isinstance(value, list) and any(isinstance(item, dict) for item in value)
        if not from_file and not spec_list and after.get(key) != value:
            wrong.append(f"{key}: {after.get(key)!r} != {value!r}")
    return wrong


def test_every_yaml_is_checked_here():
    """A new file under experiments/ must be one of the kinds below (and so parsed by a test)."""
    known = {*CONFIGS, *BACKBONES, *BUDGETS, *DATA_SOURCES, *SWEEPS, *STRATEGIES, *(EXPERIMENTS / o for o in OVERLAYS),
             WANDB}
    assert set(EXPERIMENTS.rglob("*.yaml")) == known


@pytest.mark.parametrize("path", [*CONFIGS, *SWEEPS, *STRATEGIES, *(EXPERIMENTS / o for o in OVERLAYS), WANDB], ids=rel)
def test_file_opens_with_the_command_that_runs_it(path):
    lines = path.read_text().splitlines()
    header = "\n".join(lines[: next(i for i, line in enumerate(lines) if not line.startswith("#"))])
    assert f"experiments/{rel(path)}" in header and ("groundlight " in header or "wandb sweep" in header), header
    if path in CONFIGS:
        assert lines[0].startswith("# groundlight "), lines[0]


def test_run_is_named_by_the_config_given_not_its_includes(cli):
    assert cli.run_dir == Path("runs/groundvts/synth_frame") and cli.config_paths == [str(INCLUDING)]


@pytest.mark.parametrize("path", CONFIGS, ids=rel)
def test_config_resolves_and_tiny_ones_build(cli, parse, resolve, path):
    """Hub configs are parsed and validated only (building one would download its weights). Of the tiny ones, those
    that include another config are built by tests/integration/test_cli.py's fast_dev_run; here the rest are."""
    resolved = resolve("--config", path)
    if resolved["model"]["init_args"]["backbone"]["init_args"].get("pretrained") is not None:
        return
    if include_of(path) in CONFIGS and "class_path" not in " ".join(own_keys(path)):
        return
    init = cli.parser.instantiate_classes(parse("--config", path))
    module, _, name = resolved["model"]["class_path"].rpartition(".")
    assert type(init.model) is getattr(importlib.import_module(module), name)
    assert any(p.requires_grad for p in init.model.parameters())
    adapters = any("lora_" in n for n, _ in init.model.named_parameters())
    assert adapters == (resolved["model"]["init_args"]["backbone"]["init_args"]["lora"] is not None)
    assert init.data.tasks == resolved["data"]["init_args"]["tasks"]


def test_hub_config_builds_with_the_tiny_backbone_swapped_in(cli, parse, resolve):
    """Everything but the weights (module options, data) builds; the backbone is one key (9 layers: layer 8 is probed).
    expertaf.yaml includes exact.yaml; fitnessqa.yaml differs from exact.yaml in its data_dir only."""
    path = EXPERIMENTS / "self_consistency" / "gpu" / "expertaf.yaml"
    init = cli.parser.instantiate_classes(parse("--config", path, "--model.init_args.backbone", TINY,
                                                "--model.init_args.backbone.init_args.tiny.num_layers", "9"))
    assert init.model.backbone.model.config.text_config.num_hidden_layers == 9
    assert init.data.tasks == resolve("--config", path)["data"]["init_args"]["tasks"]


@pytest.mark.parametrize("path", CONFIGS, ids=rel)
def test_config_backbone_is_exactly_a_build_file(resolve, build, path):
    backbone = resolve("--config", path)["model"]["init_args"]["backbone"]
    assert backbone in [build(b) for b in BACKBONES], f"{rel(path)}: its backbone is not exactly a file of base/backbones/"


def build_classes() -> dict[str, list[Path]]:
    classes: dict[str, list[Path]] = {}
    for path in BACKBONES:
        classes.setdefault(yaml.safe_load(path.read_text())["class_path"], []).append(path)
    return classes


def test_builds_of_a_class_set_the_same_init_args():
    """Init args of one class merge key by key, so a build that left a key out would keep the previous build's value."""
    for class_path, paths in build_classes().items():
        keys = {p.name: sorted(yaml.safe_load(p.read_text())["init_args"]) for p in paths}
        assert len({tuple(k) for k in keys.values()}) == 1, f"{class_path}: {keys}"


def test_switching_backbone_is_one_key(build):
    """Switching from one build to another gives exactly the second: each build of a class is switched to from the
    one before it (cyclically), and one build of each class from another class's."""
    classes = build_classes()
    pairs = [(paths[i - 1], paths[i]) for paths in classes.values() if len(paths) > 1 for i in range(len(paths))]
    firsts = [paths[0] for paths in classes.values()]
    pairs += list(zip(firsts, firsts[1:]))
    for before, after in pairs:
        assert build(before, after) == build(after), f"{before.name} → {after.name}"


def test_switching_backbone_in_a_config_is_one_key(resolve, build):
    config = EXPERIMENTS / "self_consistency" / "gpu" / "exact.yaml"
    assert resolve("--config", config, "--model.init_args.backbone", TINY)["model"]["init_args"]["backbone"] == build(TINY)


def test_backbone_blocks_live_in_build_files_only():
    for path in EXPERIMENTS.rglob("*.yaml"):
        if path not in BACKBONES:
            assert "groundlight.backbones" not in path.read_text(), f"{rel(path)} writes out a backbone; name a build file"


@pytest.mark.parametrize("path", [p for p in CONFIGS if include_of(p)], ids=rel)
def test_include_changes_only_what_the_file_sets(resolve, path):
    """``config: <base>`` first, then the file's own keys: it differs from its base at those keys only, with their values."""
    assert next(iter(yaml.safe_load(path.read_text()))) == "config", "`config:` must be the first key (keys above it are overwritten)"
    base, sets, after = include_of(path), own_keys(path), resolve("--config", path)
    if base in DATA_SOURCES:  # compare the data section; the rest is the file's own
        before, after = resolve(*BARE, "--config", base)["data"], after["data"]
        sets = {k.removeprefix("data."): v for k, v in sets.items() if k.startswith("data.")}
    else:
        before = resolve("--config", base)
    assert not unexplained_changes(before, after, sets)


@pytest.mark.parametrize("overlay", OVERLAYS, ids=str)
def test_overlay_changes_only_what_it_sets(resolve, overlay):
    config = EXPERIMENTS / OVERLAYS[overlay]
    after = resolve("--config", config, "--config", EXPERIMENTS / overlay)
    assert not unexplained_changes(resolve("--config", config), after, own_keys(EXPERIMENTS / overlay))


@pytest.mark.parametrize("path", STRATEGIES, ids=rel)
def test_strategy_overlay_parses_and_sets_only_trainer_keys(resolve, path):
    """Each strategy goes after any experiment and changes its trainer only (DeepSpeed's is parsed against
    Lightning's signature here, not built: deepspeed is an optional GPU extra)."""
    config = EXPERIMENTS / "sft" / "synth.yaml"
    before, after = resolve("--config", config), resolve("--config", config, "--config", path)
    assert not unexplained_changes(before, after, own_keys(path))
    assert all(key.startswith("trainer.") for key in own_keys(path))
    assert after["trainer"]["strategy"] not in (None, "auto")


@pytest.mark.parametrize("path", DATA_SOURCES, ids=rel)
def test_data_source_is_a_data_section(resolve, path):
    """A data source sets the data section only (the root configs that include it build it)."""
    assert set(yaml.safe_load(path.read_text())) == {"data"}
    assert resolve(*BARE, "--config", path)["data"]["init_args"]["tasks"]


@pytest.mark.parametrize("path", BUDGETS, ids=rel)
def test_budget_is_trainer_arguments(resolve, path):
    trainer = resolve(*BARE, "--trainer", path)["trainer"]
    assert trainer | yaml.safe_load(path.read_text()) == trainer


def validation_runs(trainer: dict) -> bool:
    """Whether a fit with these trainer settings reaches a validation loop (``None``: Lightning's default)."""
    if trainer["limit_val_batches"] == 0:
        return False
    if trainer["check_val_every_n_epoch"] is None:
        return isinstance(trainer["val_check_interval"], int) and (
            trainer["max_steps"] == -1 or trainer["val_check_interval"] <= trainer["max_steps"])
    return (trainer["max_epochs"] or 0) > 0 and trainer["check_val_every_n_epoch"] <= trainer["max_epochs"]


def test_validation_rule():
    budget = yaml.safe_load((EXPERIMENTS / "base" / "budgets" / "tiny_2400.yaml").read_text())
    assert not validation_runs(budget)
    assert not validation_runs(budget | {"limit_val_batches": 1.0})  # every 1000th epoch of a 2400-step run
    assert validation_runs(budget | {"limit_val_batches": 1.0, "check_val_every_n_epoch": None, "val_check_interval": 2400})
    assert validation_runs({"limit_val_batches": None, "check_val_every_n_epoch": 1, "max_epochs": 3, "max_steps": -1})


@pytest.mark.parametrize("path", SWEEPS, ids=rel)
def test_sweep_runs_real_configs_that_log_its_metric(resolve, path):
    sweep = yaml.safe_load(path.read_text())
    assert isinstance(sweep["command"], list) and "${args}" in sweep["command"], "`command:` must be a block list with ${args}"
    line = commands(sweep, path.stem, max_runs=1, seed=0)[0]
    program = line.index("groundlight")
    assert line[program + 1] == "fit", line
    resolved = flatten(resolve(*line[program + 2:]))
    missing = [key for key in sweep["parameters"] if key not in resolved]
    assert not missing, f"not config keys of {line}: {missing}"
    stage = sweep["metric"]["name"].split("/")[0]
    assert stage in ("train", "val"), f"a fit logs train/ and val/ metrics, not {sweep['metric']['name']}"
    if stage == "val":
        trainer = {k.removeprefix("trainer."): v for k, v in resolved.items() if k.startswith("trainer.")}
        assert validation_runs(trainer), f"{rel(path)} optimises {sweep['metric']['name']} but its runs never validate"

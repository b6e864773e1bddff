"""Imports run one way: data → tasks/metrics → backbones → attention → methods → analysis/tools.

The test reads every module's imports (module level and inside functions) with ``ast`` and fails
on an import that runs back up the layers. A method's report (``methods/<method>/report.py``) sits
on top of its method and of the shared analysis; nothing else in ``methods/`` imports analysis.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package folder → module prefixes it must never import
FORBIDDEN = {
    "groundlight/backbones": ("data_modules", "groundlight.methods", "groundlight.attention", "groundlight.analysis"),
    "groundlight/metrics": ("groundlight.backbones", "groundlight.methods", "groundlight.attention", "transformers.models"),
    "groundlight/losses": ("data_modules", "groundlight.methods", "groundlight.analysis"),
    "groundlight/attention": ("groundlight.methods", "groundlight.analysis"),
    "groundlight/methods": ("groundlight.bench", "groundlight.recipes"),
    "groundlight/analysis": ("groundlight.methods",),
    "data_modules": ("groundlight.backbones", "groundlight.methods", "groundlight.attention", "groundlight.analysis"),
}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, node.module)] + [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def violations(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        rules = forbidden + (("groundlight.analysis",) if folder == "groundlight/methods" and path.name != "report.py" else ())
        for line, module in imported_modules(path):
            if any(module == prefix or module.startswith(prefix + ".") for prefix in rules):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return bad


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_imports_never_run_back_up_the_layers(folder):
    assert violations(folder, FORBIDDEN[folder]) == []


def test_the_walk_sees_function_level_imports(tmp_path, monkeypatch):
    """A forbidden import hidden inside a function is still found (the check can fail)."""
    module = tmp_path / "pkg" / "leaky.py"
    module.parent.mkdir()
    module.write_text("def f():\n    from data_modules.tasks import tokenizer_corpus\n    return tokenizer_corpus\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    assert violations("pkg", ("data_modules",)) == ["pkg/leaky.py:2 imports data_modules.tasks",
                                                    "pkg/leaky.py:2 imports data_modules.tasks.tokenizer_corpus"]


def test_no_method_analysis_or_bench_reaches_into_the_hf_model():
    """``backbone.model`` (the HF model) is the backbone's own business."""
    leaks = [f"{path.relative_to(ROOT)}:{number}" for path in sorted((ROOT / "groundlight").rglob("*.py"))
             if "backbones" not in path.parts
             for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if "backbone.model" in text.replace("backbone.model_inputs", "")]
    assert leaks == []


def test_the_tiny_tokenizer_corpus_matches_the_prompt_texts():
    """The backbone ships the tiny BPE's corpus as data (it may not import the prompt builders): it must stay
    the text ``data_modules.tasks.tokenizer_corpus()`` gives, or the tiny tokenizer drifts from the prompts."""
    import json

    from data_modules.tasks import tokenizer_corpus
    from groundlight.backbones.tokenizer import TINY_CORPUS

    assert json.loads(TINY_CORPUS.read_text(encoding="utf-8")) == tokenizer_corpus(), (
        "regenerate groundlight/backbones/tiny_corpus.json from data_modules.tasks.tokenizer_corpus()")

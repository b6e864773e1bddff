"""``groundlight recipe <name> [options]``: experiment chains as Python, one module per chain.

A recipe runs real ``groundlight`` commands in order, hands each fit's checkpoint (Lightning's
``last_model_path``) to the steps after it, and skips steps an earlier run finished with the same
arguments (see :mod:`groundlight.recipes._chain`). ``<name>`` is a module of this package, with
``-`` for ``_``; ``groundlight recipe <name> --help`` lists its options, ``--dry-run`` its steps.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys


def recipe_names() -> list[str]:
    return sorted(m.name.replace("_", "-") for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = recipe_names()
    if not argv or argv[0] not in names + [n.replace("-", "_") for n in names]:
        given = f"unknown recipe {argv[0]!r}\n\n" if argv and not argv[0].startswith("-") else ""
        print(f"{given}usage: groundlight recipe <name> [options]\n\nrecipes:\n" + "\n".join(f"  {n}" for n in names),
              file=sys.stderr)
        return 2 if given or not argv else 0
    module = importlib.import_module(f"{__name__}.{argv[0].replace('-', '_')}")
    return int(module.main(argv[1:]) or 0)

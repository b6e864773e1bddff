"""One recipe step in its own process: ``python -m groundlight.recipes._step --result FILE -- <groundlight argv>``.

Runs the command as ``groundlight`` would and writes what the recipe needs to ``FILE``: for a fit,
the checkpoint Lightning's ``ModelCheckpoint`` saved last (``last_model_path``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from groundlight.io import write_json_atomic

LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test", "predict")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m groundlight.recipes._step", description=__doc__.splitlines()[0])
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("words", nargs=argparse.REMAINDER)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    words = args.words[1:] if args.words[:1] == ["--"] else args.words
    from groundlight.cli import lightning_main
    from groundlight.cli import main as groundlight_main

    if words[0] not in LIGHTNING_SUBCOMMANDS:
        code = groundlight_main(words)
        if code == 0:
            write_json_atomic(args.result, {})
        return code
    trainer = lightning_main(words).trainer
    result = {}
    if words[0] == "fit":
        result["last_model_path"] = trainer.checkpoint_callback.last_model_path if trainer.checkpoint_callback else ""
        if not result["last_model_path"]:
            print("the fit saved no checkpoint (enable_checkpointing false or fast_dev_run?)", file=sys.stderr)
            return 1
    if trainer.is_global_zero:
        write_json_atomic(args.result, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())

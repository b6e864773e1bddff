"""``groundlight data d2vlm-preferences``: factorized preference pairs for D²VLM's FPO (paper Sec. 3.3, supplement Sec. 3).

    groundlight data d2vlm-preferences --in et_instruct_d2vlm.json --out fpo_pairs.json --per-sample 2 --seed 0
    groundlight data d2vlm-preferences ... --client hf --model Qwen/Qwen2.5-7B-Instruct   # LLM key-information distortion

Each rejected response perturbs one factor of the correct one (``data_modules/tasks/evidence.py``): grounding
(shift, insert, delete, merge) or text (repeat, distort). Distortion asks the chat model when one is given
(the paper prompts an LLM); without one it swaps numbers or content words with other samples'. Pairs whose
rejected response equals the chosen one are dropped and counted, never written.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from data_modules.formats.d2vlm import read_d2vlm_records, write_preference_pairs
from data_modules.tasks.evidence import ClientDistorter, SwapDistorter, synthesize
from groundlight.tools.chat_clients import add_client_arguments, client_from_args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="groundlight data d2vlm-preferences", description=__doc__.splitlines()[0])
    parser.add_argument("--in", dest="source", type=Path, required=True, help="D²VLM-format annotations (.json or .jsonl)")
    parser.add_argument("--out", type=Path, required=True, help="JSON list of preference pairs to write")
    parser.add_argument("--per-sample", type=int, default=2, help="rejected responses per sample (distinct factors)")
    parser.add_argument("--seed", type=int, default=0)
    add_client_arguments(parser, required=False)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    samples = read_d2vlm_records(args.source)
    client = client_from_args(parser, args)
    distort = ClientDistorter(client) if client is not None else SwapDistorter(
        [text for sample in samples for text in sample["response"].texts])
    result = synthesize(samples, distort, args.per_sample, args.seed)
    write_preference_pairs(args.out, {s["id"]: s for s in samples}, result.pairs)
    factors = {}
    for pair in result.pairs:
        factors[pair["factor"]] = factors.get(pair["factor"], 0) + 1
    print(json.dumps({"samples": len(samples), "pairs": len(result.pairs), "factors": factors,
                      "identical_dropped": result.identical, "not_applicable": result.not_applicable,
                      "out": str(args.out)}))
    return 0

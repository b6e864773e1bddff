"""``groundlight data grounding-ft``: official VTG training annotations → Grounding-FT instructions.

Reads Charades-STA, ActivityNet Captions and QVHighlights files in their official
formats (through the project's readers) and writes one ShareGPT-style JSON list with the
GroundVTS supplement's 13 moment-retrieval and 7 highlight templates::

    groundlight data grounding-ft --charades-sta charades_sta_train.txt \\
        --activitynet train.json --qvhighlights highlight_train_release.jsonl \\
        --out data/grounding_ft/train.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from data_modules.tasks.grounding_templates import grounding_ft_samples, instruction_record


def convert(charades_sta: Path | None, activitynet: Path | None, qvhighlights: Path | None, seed: int = 0) -> list[dict]:
    """Instruction records of every given file (MR from all three, HD from QVHighlights)."""
    from data_modules.formats.activitynet_captions import read_activitynet_captions
    from data_modules.formats.charades_sta import read_charades_sta
    from data_modules.formats.qvhighlights import read_qvhighlights

    moments, highlights = [], []
    if charades_sta:
        moments += read_charades_sta(charades_sta, "")
    if activitynet:
        moments += read_activitynet_captions(activitynet, "")
    if qvhighlights:
        samples = read_qvhighlights(qvhighlights, "")
        moments += [s for s in samples if s.windows]
        highlights += samples
    return [instruction_record(s) for s in grounding_ft_samples(moments, highlights, seed)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="groundlight data grounding-ft", description=__doc__.splitlines()[0])
    parser.add_argument("--charades-sta", type=Path, help="Charades-STA training lines (<vid> <s> <e>##<query>)")
    parser.add_argument("--activitynet", type=Path, help="ActivityNet Captions train.json")
    parser.add_argument("--qvhighlights", type=Path, help="QVHighlights highlight_train_release.jsonl")
    parser.add_argument("--out", type=Path, required=True, help="output JSON list")
    parser.add_argument("--seed", type=int, default=0, help="template choice seed")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if not (args.charades_sta or args.activitynet or args.qvhighlights):
        parser.error("give at least one of --charades-sta, --activitynet, --qvhighlights")
    rows = convert(args.charades_sta, args.activitynet, args.qvhighlights, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(rows)} instructions to {args.out}")
    return 0

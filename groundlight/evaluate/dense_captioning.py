"""``groundlight eval dense_captioning``: YouCook2 / ActivityNet Captions, as TimeChat scores them.

``--gt`` is the COCO-style caption file TimeChat's ``metrics/dvc/eval_dvc.py`` reads
(``{"annotations": [{"image_id", "segments", "pure_cap" | "caption", ...}]}``) and
``--pred`` its prediction file ``{video: [{"timestamp": [s, e], "caption": str}]}``, or
the same inside ``{"results": {...}}``. Scoring is ``DenseCaptioning``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from groundlight.evaluate.io import InputError, as_window, read_json, render_table
from groundlight.metrics.captioning import DenseCaptioning, TimedCaptions

NAME = "dense_captioning"
HELP = "YouCook2 / ActivityNet dense captioning: P/R@tIoU, F1, CIDEr, METEOR and SODA_c (with Java)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt", required=True, help='COCO-style caption file {"annotations": [...]} with "segments"')
    parser.add_argument("--pred", required=True, help='{video: [{"timestamp": [s, e], "caption": str}]} '
                        '(or wrapped in {"results": ...})')
    parser.add_argument("--meteor-jar", help="meteor-1.5.jar (default: the one pycocoevalcap ships)")
    parser.add_argument("--no-meteor", action="store_true", help="skip METEOR and SODA_c even if Java is present")


def ground_truth_captions(entry: dict, where: str) -> list[str]:
    """The entry's captions split as TimeChat splits them, each ending in ``"."``.

    YouCook2 (``pure_cap``) splits at ``". "``; ActivityNet (``caption``) at ``"."``,
    keeping pieces longer than 5 characters, stripped of spaces.
    """
    if isinstance(entry.get("pure_cap"), str):
        pieces = entry["pure_cap"].split(". ")
    elif isinstance(entry.get("caption"), str):
        pieces = [c.strip(" ") for c in entry["caption"].split(".") if len(c) > 5]
    else:
        raise InputError(f"{where}: needs a 'pure_cap' (YouCook2) or 'caption' (ActivityNet) string")
    return [c + "." for c in pieces]


def read_ground_truth(path: Path) -> list[tuple[str, TimedCaptions]]:
    """``(video key, captions)`` per annotation; the key is ``image_id`` after its last ``/``."""
    data = read_json(path)
    annotations = data.get("annotations") if isinstance(data, dict) else None
    if not isinstance(annotations, list):
        raise InputError(f'{path}: expected {{"annotations": [...]}}')
    videos = []
    for i, entry in enumerate(annotations):
        where = f"{path}: annotations[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("image_id"), str):
            raise InputError(f"{where}: needs an 'image_id' string")
        where += f" ({entry['image_id']})"
        segments = entry.get("segments")
        if not isinstance(segments, list):
            raise InputError(f"{where}: 'segments' must be a list of [start, end]")
        windows = [as_window(s, f"{where} segments[{j}]") for j, s in enumerate(segments)]
        captions = ground_truth_captions(entry, where)
        if len(captions) != len(windows):
            raise InputError(f"{where}: {len(windows)} segments but {len(captions)} captions after splitting")
        videos.append((entry["image_id"].split("/")[-1], TimedCaptions(windows, captions)))
    return videos


def read_predictions(path: Path) -> dict[str, TimedCaptions]:
    """Predicted captions per video key (``caption``, or densevid's ``sentence``)."""
    data = read_json(path)
    if isinstance(data, dict) and isinstance(data.get("results"), dict):
        data = data["results"]
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected {{video: [{{timestamp, caption}}, ...]}}")
    out = {}
    for video, events in data.items():
        if not isinstance(events, list):
            raise InputError(f"{path}: video {video!r}: expected a list of {{timestamp, caption}}")
        windows, captions = [], []
        for j, event in enumerate(events):
            where = f"{path}: video {video!r} [{j}]"
            caption = event.get("caption", event.get("sentence")) if isinstance(event, dict) else None
            if not isinstance(caption, str):
                raise InputError(f"{where}: needs a 'caption' string and a 'timestamp' [start, end]")
            windows.append(as_window(event.get("timestamp"), f"{where} timestamp"))
            captions.append(caption)
        out[video] = TimedCaptions(windows, captions)
    return out


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    truth = read_ground_truth(Path(args.gt))
    predictions = read_predictions(Path(args.pred))
    metric = DenseCaptioning(meteor=False if args.no_meteor else None, meteor_jar=args.meteor_jar)
    if metric.meteor_jar is None:
        print("notice: METEOR and SODA_c skipped (they need `java` and meteor-1.5.jar; "
              "pip install pycocoevalcap or pass --meteor-jar)", file=sys.stderr)
    metric.update([predictions.get(key) for key, _ in truth], [captions for _, captions in truth])
    scores = {key: float(value) for key, value in metric.compute().items()}
    # TimeChat prints every mean in percent with one decimal, n_preds unscaled.
    return {key: round(value * (1 if key == "n_preds" else 100), 1) for key, value in scores.items()}


def table(result: dict[str, Any]) -> str:
    return render_table(("metric", "value"), [(key, value) for key, value in result.items()])

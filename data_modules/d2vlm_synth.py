"""D²VLM's multi-event tasks on the embedded benchmark, written in E.T. Instruct's D²VLM format.

Every clip knows each object's interval and velocity, so every answer is exact. Two questions per clip:

- ``dense`` ("when does each object appear"): one event per object, in order of appearance, each
  answered with what it is and which way it moves: one to three events;
- ``qa`` (grounded question answering): when the clip's target is on screen and which way it moves:
  one event.

Both are written as supplement Fig. 1 shows the annotations (``conversations`` + ``time_gt``) to
``d2vlm/{split}.json``, beside the benchmark's other folders; the training split's factorized
preference pairs (``data_modules.tasks.evidence.synthesize``, rule-based distortion) go to
``d2vlm/train_pairs.json``. Scenes are re-drawn from ``meta.json`` (``sample_scene`` is a pure function of
its arguments); nothing here is random apart from the pairs, which follow ``seed``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from data_modules.finevid import diagonal
from data_modules.formats._records import write_json_list
from data_modules.formats.d2vlm import read_d2vlm_records, write_preference_pairs
from data_modules.synthetic import (
    SPLITS,
    GeneratorConfig,
    Scene,
    load_meta,
    sample_scene,
)
from data_modules.tasks.evidence import EvidenceResponse, SwapDistorter, synthesize

DENSE_QUESTION = "<image>\nLocalize every object that appears in the video, then say what each one is and how it moves."
QA_QUESTION = "<image>\nWhen is the {colour} {shape} on screen, and which way does it move?"
def scene_records(scene: Scene) -> list[dict[str, Any]]:
    """The clip's ``dense`` and ``qa`` records."""
    ordered = sorted(scene.objects, key=lambda o: (o.start, o.end))
    dense = EvidenceResponse(tuple((float(o.start), float(o.end)) for o in ordered),
                             tuple(f", a {o.colour} {o.shape} moving {diagonal(o)}." for o in ordered))
    target = scene.target
    qa = EvidenceResponse(((float(target.start), float(target.end)),), (f", it moves {diagonal(target)}.",))
    return [_record(f"{scene.vid}:dense", scene, DENSE_QUESTION, dense),
            _record(f"{scene.vid}:qa", scene, QA_QUESTION.format(**target.words), qa)]


def _record(key: str, scene: Scene, question: str, response: EvidenceResponse) -> dict[str, Any]:
    return {"id": key, "video": f"{scene.vid}.mp4", "duration": float(scene.duration), "time_gt": response.time_gt(),
            "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": response.render()}]}


def generate_d2vlm(data_dir: str | Path, pairs_per_sample: int = 2, seed: int = 0) -> dict[str, Any]:
    """Write ``d2vlm/{split}.json`` and ``d2vlm/train_pairs.json``; returns the files and the pair counts."""
    data_dir = Path(data_dir)
    args = load_meta(data_dir)["args"]
    config = GeneratorConfig(**{**args, "fps_choices": tuple(args["fps_choices"]), "workers": 1})
    written: dict[str, Any] = {}
    for split in SPLITS:
        rows = [row for index in range(config.count(split)) for row in scene_records(sample_scene(config, split, index))]
        written[split] = str(write_json_list(data_dir / "d2vlm" / f"{split}.json", rows))
    samples = read_d2vlm_records(data_dir / "d2vlm" / "train.json")
    distort = SwapDistorter([text for sample in samples for text in sample["response"].texts])
    result = synthesize(samples, distort, pairs_per_sample, seed)
    written["train_pairs"] = str(write_preference_pairs(data_dir / "d2vlm" / "train_pairs.json",
                                                        {s["id"]: s for s in samples}, result.pairs))
    factors: dict[str, int] = {}
    for pair in result.pairs:
        factors[pair["factor"]] = factors.get(pair["factor"], 0) + 1
    written["pairs"] = {"made": len(result.pairs), "factors": factors, "identical_dropped": result.identical,
                        "not_applicable": result.not_applicable}
    return written


def main(argv: list[str]) -> int:
    """``groundlight data d2vlm-synth --data DIR``."""
    import argparse

    parser = argparse.ArgumentParser(prog="groundlight data d2vlm-synth",
                                     description="add D²VLM's multi-event tasks (E.T. Instruct format) to a generated benchmark")
    parser.add_argument("--data", default="data/synth", help="a benchmark made by `groundlight data synth` (default data/synth)")
    parser.add_argument("--pairs-per-sample", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(json.dumps(generate_d2vlm(args.data, args.pairs_per_sample, args.seed)))
    return 0

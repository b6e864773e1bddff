"""``groundlight demo``: fine-tune groundlight-tiny on the embedded benchmark and compare it with the base and controls.

Rows: the fine-tuned model, the base it started from (the same model before fine-tuning), the best constant window
(fitted on the train windows; majority answer for multiple choice), text only (the fine-tuned model on blank
frames), shuffled video (each question scored on another clip) and query swap (the question names a distractor in
the same clip and is scored against the distractor's window). ``query_grounding`` scores the base and the
fine-tuned model on both sides of each distractor clip (the named object's window against the other's, as the
base's card does), and ``intervals`` holds each model's mIoU, R1@0.5 and MCQ accuracy with 95 % bootstrap
intervals over the questions, and fine-tuned − base paired on the same questions. Writes ``runs/demo/summary.json``,
``predictions.jsonl`` and ``demo.png``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from data_modules.samples import VideoSample
from groundlight.analysis.controls import constant_scores, durations_of, scores
from groundlight.analysis.grounding import bootstrap, query_grounding, window_iou
from groundlight.io import write_json_atomic, write_jsonl_atomic
from groundlight.viz import save_figure

COLUMNS = ("R1@0.5", "mIoU", "mcq_accuracy")
DEMO_CONFIG = "experiments/demo/synth.yaml"


def model_scores(trainer, model, datamodule, samples, **overrides) -> tuple[dict[str, float], list[dict]]:  # noqa: ANN001
    """Generate for ``samples`` with ``model`` through the normal predict path (each record carries its ``parsed``
    answer), then score."""
    batches = trainer.predict(model, dataloaders=datamodule.eval_loader(samples, **overrides))
    records = [r for batch in batches for r in batch]
    by_id = {s.sample_id: s for s in samples}
    return scores([by_id[r["sample_id"]] for r in records], [r["parsed"] for r in records]), records


def question_scores(samples: Sequence[VideoSample], records: list[dict]) -> dict[str, np.ndarray]:
    """Per question, in ``samples``' order: IoU and R1@0.5 of the moment-retrieval questions, correctness of the MCQ
    ones (a question without a record scores 0)."""
    parsed = {r["sample_id"]: r.get("parsed") for r in records}
    moments = [s for s in samples if s.windows]
    choices = [s for s in samples if s.answer_index is not None]
    out = {}
    if moments:
        ious = np.array([window_iou(parsed.get(s.sample_id), s.windows[0]) for s in moments])
        out |= {"mIoU": ious, "R1@0.5": (ious >= 0.5).astype(float)}
    if choices:
        out["mcq_accuracy"] = np.array([parsed.get(s.sample_id) == s.answer_index for s in choices], dtype=float)
    return out


def model_intervals(samples: Sequence[VideoSample], runs: dict[str, list[dict]]) -> dict[str, Any]:
    """Each run's metrics with their intervals over the questions, and each run minus the first (the base) on the
    same questions, resampled in pairs, with "no effect detected" when that interval holds 0."""
    from groundlight.analysis.stats import paired_difference

    per_run = {name: question_scores(samples, records) for name, records in runs.items()}
    out: dict[str, Any] = {name: {k: bootstrap(v) for k, v in values.items()} for name, values in per_run.items()}
    first, *others = per_run
    for name in others:
        out[f"{name} - {first}"] = {k: paired_difference(v[None, :], per_run[first][k][None, :])
                                    for k, v in per_run[name].items()}
    return out


def grounding_rows(meta: dict, test: Sequence[VideoSample], swaps: Sequence[VideoSample], records: list[dict],
                   swap_records: list[dict]) -> dict[str, dict[str, float]]:
    """``named_mIoU``, ``other_mIoU`` and their difference, with intervals, on the clips with a distractor."""
    def by_video(samples: Sequence[VideoSample], rows: list[dict]) -> dict[str, Any]:
        parsed = {r["sample_id"]: r["parsed"] for r in rows}
        return {s.meta["vid"]: parsed[s.sample_id] for s in samples if s.windows and s.sample_id in parsed}

    named, other = query_grounding(meta, by_video(test, records), by_video(swaps, swap_records))
    named, other = np.array(named), np.array(other)
    return {"named_mIoU": bootstrap(named), "other_mIoU": bootstrap(other), "named_minus_other": bootstrap(named - other)}


def shuffled_videos(samples: Sequence[VideoSample], seed: int) -> list[VideoSample]:
    """Each question paired with another clip's video (a derangement over distinct videos). The question's annotated
    duration is dropped: it belongs to its own clip, and would fail the loader's duration check on the other one."""
    videos = sorted({s.video_path for s in samples})
    rng = random.Random(seed)
    target = videos[:]
    while len(videos) > 1 and any(a == b for a, b in zip(videos, target)):
        rng.shuffle(target)
    swap = dict(zip(videos, target))
    return [dataclasses.replace(s, video_path=swap[s.video_path], duration=None) for s in samples]


def print_table(rows: dict[str, dict[str, float]]) -> str:
    header = f"{'row':<16}" + "".join(f"{c:>14}" for c in COLUMNS)
    lines = [header, "-" * len(header)]
    for name, values in rows.items():
        cells = "".join(f"{values[c]:>14.3f}" if c in values else f"{'—':>14}" for c in COLUMNS)
        lines.append(f"{name:<16}{cells}")
    table = "\n".join(lines)
    print(table)
    return table


def plot(rows: dict[str, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(COLUMNS), figsize=(4 * len(COLUMNS), 3.2))
    names = list(rows)
    for ax, column in zip(axes, COLUMNS):
        values = [rows[n].get(column, float("nan")) for n in names]
        ax.barh(names, values, color=[{"fine_tuned": "tab:green", "base": "tab:blue"}.get(n, "tab:gray") for n in names])
        ax.set_xlim(0, 1)
        ax.set_title(column)
        ax.invert_yaxis()
    save_figure(fig, path, dpi=110)


def ensure_data(data_dir: Path, seed: int, sizes: tuple[int, int, int], max_duration: int) -> None:
    """Generate the benchmark unless a complete one (meta.json and every video) is there."""
    from data_modules.synthetic import generate, load_meta

    if (data_dir / "meta.json").exists():
        missing = [v for v in load_meta(data_dir)["videos"] if not (data_dir / "videos" / f"{v}.mp4").exists()]
        if not missing:
            return
        print(f"{len(missing)} videos missing in {data_dir} (interrupted generation?); regenerating", flush=True)

    print(f"synthesising the embedded benchmark into {data_dir} ...", flush=True)
    generate(data_dir, seed=seed, n_train=sizes[0], n_val=sizes[1], n_test=sizes[2], max_duration=max_duration)


def run(config: str, data_dir: Path, out_dir: Path, seed: int, sizes: tuple[int, int, int], max_duration: int,
        extra: list[str]) -> dict[str, Any]:
    from data_modules.synthetic import load_meta, query_swap_samples
    from groundlight.cli import lightning_main

    start = time.time()
    ensure_data(data_dir, seed, sizes, max_duration)
    args = ["--config", config, "--data.init_args.data_dir", str(data_dir), "--seed_everything", str(seed),
            "--experiment", "demo", *extra]
    cli = lightning_main(args, run=False)
    model, datamodule, trainer = cli.model, cli.datamodule, cli.trainer
    base = copy.deepcopy(model)
    trainer.fit(model, datamodule)
    print(f"fine-tuned in {time.time() - start:.0f} s", flush=True)
    test, train = datamodule.read("test", datamodule.max_eval_samples), datamodule.datasets["fit"].samples
    swaps = query_swap_samples(data_dir, "test")[: datamodule.max_eval_samples]
    durations = {s.video_path: s.duration for s in [*train, *test]} | durations_of([*train, *test])
    rows: dict[str, dict[str, float]] = {}
    rows["fine_tuned"], records = model_scores(trainer, model, datamodule, test)
    rows["base"], base_records = model_scores(trainer, base, datamodule, test)
    rows["constant_window"] = constant_scores(train, test, durations)
    rows["text_only"], _ = model_scores(trainer, model, datamodule, test, blank_frames=True, cache=False)
    rows["shuffled_video"], _ = model_scores(trainer, model, datamodule, shuffled_videos(test, seed), cache=False)
    rows["query_swap"], swap_records = model_scores(trainer, model, datamodule, swaps)
    _, base_swap_records = model_scores(trainer, base, datamodule, swaps)
    print_table(rows)
    meta = load_meta(data_dir)
    grounding = {"base": grounding_rows(meta, test, swaps, base_records, base_swap_records),
                 "fine_tuned": grounding_rows(meta, test, swaps, records, swap_records)}
    intervals = model_intervals(test, {"base": base_records, "fine_tuned": records})
    for name, values in grounding.items():
        print(f"{name:<16}" + "".join(f"  {k} {v['mean']:.3f} [{v['ci_low']:.3f}, {v['ci_high']:.3f}]" for k, v in values.items()))
    summary = {**rows, "query_grounding": grounding, "intervals": intervals, "wall_seconds": round(time.time() - start, 1),
               "config": config, "seed": seed}
    write_json_atomic(out_dir / "summary.json", summary)
    write_jsonl_atomic(out_dir / "predictions.jsonl", records)
    plot(rows, out_dir / "demo.png")
    print(f"wrote {out_dir / 'summary.json'} and {out_dir / 'demo.png'} in {summary['wall_seconds']} s")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="groundlight demo", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=DEMO_CONFIG)
    parser.add_argument("--data", type=Path, default=Path("data/synth"))
    parser.add_argument("--out", type=Path, default=Path("runs/demo"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sizes", type=int, nargs=3, default=(1000, 50, 150), metavar=("TRAIN", "VAL", "TEST"),
                        help="clips per split when the data has to be generated")
    parser.add_argument("--max-duration", type=int, default=24, help="longest generated clip (s)")
    args, extra = parser.parse_known_args(argv)
    run(args.config, args.data, args.out, args.seed, tuple(args.sizes), args.max_duration, extra)
    return 0

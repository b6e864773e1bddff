"""Benchmark of SF2T's data side: the motion pass and fragment samples per worker → ``sf2t.json``.

Clips shaped like SF2T's sources are generated in a temp dir: Something-Something V2
(about 4 s at 12 fps, 240p) and Moments in Time (3 s at 30 fps, 256p), with a box moving
over a drifting gradient. Times are medians of interleaved repeats (the machine is shared).

- ``motion_seconds_per_video``: ``read_video(strategy="motion")`` of one N*M = 15-frame draw:
  candidate decode, 64-px grey conversion, SSIM pass and RGB conversion of the chosen frames.
- ``motion_over_uniform``: its time over a uniform 15-frame read of the same clip.
- ``two_pass_over_one``: a motion pass that decodes the clip, then a second read of the
  chosen frames (at least a uniform read's cost), over the one-decode motion read.
- ``fragments_per_second_per_worker``: fragment samples loaded (frames decoded and assembled,
  prompt and answer built) per second in one process, as one DataLoader worker does before
  the backbone's preprocessing; ``_cached`` keeps each video's draw for its other questions
  (``FragmentDataset(cache_draws=True)``); generation alone (probing frame counts) is
  reported beside them.
- ``data_time_fraction``: the training loop's wait for its next batch as a share of the whole step, SF2T on the tiny
  model at batch 4 through the datamodule with the SF2T configs' worker count (``experiments/sf2t/synth_sft.yaml``'s
  ``num_workers``, ``_data_time``). Goal < 0.10. Beside it, ``..._motion_index_warm``: the same through a motion index
  filled by an earlier pass (``FragmentOptions.motion_index``), and ``..._in_process``: the same without workers.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import torch

from data_modules.tasks.fragments import (
    FragmentConfig,
    FragmentDataset,
    build_fragment_samples,
)
from data_modules.video import MOTION_SIDE, motion_scores, read_video
from groundlight.io import write_json_atomic

CLIPS = {"ssv2_like": (4, 12, 320, 240), "mit_like": (3, 30, 340, 256)}
"""name → (seconds, fps, width, height)."""
DRAW = 15
"""Frames per video draw: N = 3 fragments of M = 5."""
DECODE_SIZE = (112, 112)
SF2T_CONFIG = Path(__file__).resolve().parents[2] / "experiments" / "sf2t" / "synth_sft.yaml"
"""The config every SF2T synth run includes; its ``data.init_args.num_workers`` is the worker count benchmarked."""


def config_workers(path: Path = SF2T_CONFIG) -> int:
    """``data.init_args.num_workers`` of an experiment config (dotted or nested), 0 when it leaves the default."""
    import yaml

    config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if "data.init_args.num_workers" in config:
        return int(config["data.init_args.num_workers"])
    return int(((config.get("data") or {}).get("init_args") or {}).get("num_workers", 0))


def write_clip(path: Path, seconds: int, fps: int, width: int, height: int, seed: int) -> Path:
    """A moving box over a drifting gradient, H.264."""
    rng = np.random.default_rng(seed)
    base = np.tile(np.linspace(30, 200, width, dtype=np.uint8)[None, :, None], (height, 1, 3))
    velocity = rng.uniform(2, 6, size=2)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "threads": "1"}
        for k in range(seconds * fps):
            frame = np.roll(base, k, axis=1)
            x, y = (int(v * k) % (d - 40) for v, d in zip(velocity, (width, height)))
            frame[y : y + 40, x : x + 40] = (240, 60, 30)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def _motion_pass(path: Path) -> torch.Tensor:
    """The motion scores alone, from a decode of its own (the first pass of a two-pass reader)."""
    with av.open(str(path)) as container:
        grey = [f.to_ndarray(format="gray", width=MOTION_SIDE, height=MOTION_SIDE) for f in container.decode(video=0)]
    return motion_scores(torch.from_numpy(np.stack(grey)))


def _median_times(jobs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(repeats):
        for name, job in jobs.items():
            began = time.perf_counter()
            job()
            times[name].append(time.perf_counter() - began)
    return {name: statistics.median(values) for name, values in times.items()}


def _motion_report(path: Path, repeats: int) -> dict[str, float]:
    times = _median_times({
        "motion": lambda: read_video(path, num_frames=DRAW, size=DECODE_SIZE, strategy="motion"),
        "uniform": lambda: read_video(path, num_frames=DRAW, size=DECODE_SIZE),
        "motion_pass": lambda: _motion_pass(path),
    }, repeats)
    return {
        "motion_seconds": round(times["motion"], 5),
        "uniform_seconds": round(times["uniform"], 5),
        "motion_over_uniform": round(times["motion"] / times["uniform"], 3),
        "two_pass_over_one": round((times["motion_pass"] + times["uniform"]) / times["motion"], 3),
    }


class _Frames:
    """A processor that keeps the frames: the bench stops before the backbone's preprocessing."""

    def prepare_video(self, frames: torch.Tensor, timestamps: torch.Tensor) -> torch.Tensor:
        return frames


def _fragment_rates(videos: list[str], repeats: int) -> dict[str, float]:
    config = FragmentConfig(max_frames=5)
    began = time.perf_counter()
    samples = build_fragment_samples(videos, config, "train").samples
    generation = len(samples) / (time.perf_counter() - began)
    def load(cache_draws: bool) -> list:
        data = FragmentDataset(samples, _Frames(), strategy="motion", decode_size=DECODE_SIZE, cache_draws=cache_draws)
        return [data[i] for i in range(len(data))]

    seconds = _median_times({"plain": lambda: load(False), "cached": lambda: load(True)}, repeats)
    return {"fragments_per_second_per_worker": round(len(samples) / seconds["plain"], 2),
            "fragments_per_second_per_worker_cached": round(len(samples) / seconds["cached"], 2),
            "generated_samples_per_second": round(generation, 1), "samples": len(samples)}


def _data_time(steps: int = 32, warmup: int = 8, batch_size: int = 4, num_workers: int | None = None,
               warm_index: bool = False) -> dict[str, float]:
    """``data_time_fraction``: the training loop's wait for its next batch over the whole step (wait + forward +
    backward + optimizer), SF2T's fragment questions on a small generated benchmark through the datamodule the
    configs use (``experiments/base/data/synth.yaml``'s sampling and caching; ``num_workers`` defaults to the SF2T
    configs' count), the tiny Qwen2.5-VL at batch 4; the first ``warmup`` steps are left out. ``warm_index``: through
    a motion index that an earlier pass over the training questions filled (a later epoch, or a later run)."""
    from data_modules.datamodule import FragmentOptions, FrameSampling, GroundingDataModule
    from data_modules.synthetic import generate
    from data_modules.tasks import PromptTemplates
    from groundlight.backbones.qwen2_5_vl import Qwen25VLBackbone, TinyQwenConfig
    from groundlight.methods.sf2t import SF2TModule

    num_workers = config_workers() if num_workers is None else num_workers
    with tempfile.TemporaryDirectory() as tmp:
        generate(tmp, seed=0, n_train=steps * batch_size // 5 + 4, n_val=2, n_test=2, max_duration=20)
        index = str(Path(tmp) / "motion_index") if warm_index else None
        datamodule = GroundingDataModule(
            tmp, tasks=["fragments"], fragments=FragmentOptions(sources=["charades_sta"], motion_index=index),
            sampling=FrameSampling(fps=1.0, max_frames=40, decode_size=(56, 56)), batch_size=batch_size,
            cache_visual=True, prompts=PromptTemplates(state_duration=False), num_workers=num_workers)
        torch.manual_seed(0)
        module = SF2TModule(Qwen25VLBackbone(tiny=TinyQwenConfig(), min_pixels=56 * 56, max_pixels=56 * 56))
        datamodule.processor = module.backbone.processor
        datamodule.setup("fit")
        if warm_index:  # an earlier pass of its own (not the loader's dataset, whose draw cache must start empty)
            questions = datamodule.train_dataloader().dataset
            earlier = FragmentDataset(questions.samples, _Frames(), questions.strategy, questions.decode_size,
                                      motion_index=index)
            for i in range(len(earlier)):
                earlier[i]
        optimizer = torch.optim.AdamW(module.parameters(), lr=1e-4)
        batches = iter(datamodule.train_dataloader())
        waited = total = 0.0
        for step in range(steps):
            began = time.perf_counter()
            batch = next(batches)
            fetched = time.perf_counter()
            loss, _ = module.loss(batch)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if step >= warmup:
                waited, total = waited + fetched - began, total + time.perf_counter() - began
    return {"data_time_fraction": round(waited / total, 4), "data_seconds_per_step": round(waited / (steps - warmup), 4),
            "step_seconds": round(total / (steps - warmup), 4), "num_workers": datamodule.num_workers,
            "batch_size": batch_size}


def run(out_dir: Path, repeats: int = 5, videos_per_kind: int = 4) -> dict:
    """Generate the clips, time the motion pass and fragment loading, write ``out_dir/sf2t.json``."""
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        videos = {name: [str(write_clip(Path(tmp) / f"{name}_{k}.mp4", *shape, seed=k)) for k in range(videos_per_kind)]
                  for name, shape in CLIPS.items()}
        per_clip = {name: _motion_report(Path(paths[0]), repeats) for name, paths in videos.items()}
        rates = _fragment_rates([v for paths in videos.values() for v in paths], repeats)
    results = {
        "motion_seconds_per_video": round(statistics.mean(c["motion_seconds"] for c in per_clip.values()), 5),
        "fragments_per_second_per_worker": rates["fragments_per_second_per_worker"],
        "fragments_per_second_per_worker_cached": rates["fragments_per_second_per_worker_cached"],
        "generated_samples_per_second": rates["generated_samples_per_second"],
        "samples": rates["samples"],
        **_data_time(),
        **{f"{key}_motion_index_warm": value for key, value in _data_time(warm_index=True).items()
           if key in ("data_time_fraction", "data_seconds_per_step", "step_seconds")},
        **{f"{key}_in_process": value for key, value in _data_time(num_workers=0).items()
           if key in ("data_time_fraction", "data_seconds_per_step", "step_seconds")},
        "draw_frames": DRAW,
        "decode_size": list(DECODE_SIZE),
        "repeats": repeats,
        "clips": {name: {"seconds_fps_width_height": list(CLIPS[name])} | report for name, report in per_clip.items()},
    }
    write_json_atomic(Path(out_dir) / "sf2t.json", results)
    return results

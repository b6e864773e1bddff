"""Benchmark of the video reader: sampled vs full decode, and seek vs scan by density.

Generates its own clips in a temp dir, times every strategy side by side (interleaved,
median of ``repeats``), and writes ``video.json``. The numbers justify
``data_modules.video``'s ``auto`` cost model: ``auto_over_best_time_ratio`` near 1 at
every density means ``auto`` picked the faster method.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from data_modules.video import probe, read_video

DENSITIES: dict[str, dict[str, float]] = {
    "4frames": {"num_frames": 4},
    "8frames": {"num_frames": 8},
    "16frames": {"num_frames": 16},
    "32frames": {"num_frames": 32},
    "1fps": {"fps": 1.0},
    "2fps": {"fps": 2.0},
}


@dataclass(frozen=True)
class BenchClip:
    """A clip to generate: name, length, rate, size and GOP."""

    name: str
    seconds: int
    fps: int
    width: int
    height: int
    gop: int


CLIPS = (
    BenchClip("long_gop", seconds=90, fps=30, width=320, height=240, gop=250),
    BenchClip("short_gop", seconds=90, fps=30, width=320, height=240, gop=30),
)


def _scene(clip: BenchClip, index: int, base: np.ndarray) -> np.ndarray:
    """A drifting gradient with a moving box, so every frame has real motion to code."""
    frame = np.roll(base, shift=index * 2, axis=1)
    x = (index * 3) % (clip.width - 40)
    y = (index * 2) % (clip.height - 40)
    frame[y : y + 40, x : x + 40] = (255, 64, 32)
    return frame


def write_clip(clip: BenchClip, path: Path) -> Path:
    """Encode ``clip`` as H.264 (ultrafast, fixed GOP, no scene-cut keyframes)."""
    gradient = np.linspace(0, 255, clip.width, dtype=np.float32)
    base = np.stack([gradient, gradient[::-1], np.full_like(gradient, 96)], axis=-1)
    base = np.broadcast_to(base.astype(np.uint8), (clip.height, clip.width, 3)).copy()
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=clip.fps)
        stream.width, stream.height, stream.pix_fmt = clip.width, clip.height, "yuv420p"
        stream.codec_context.gop_size = clip.gop
        stream.options = {"preset": "ultrafast", "x264-params": "scenecut=0"}
        for index in range(clip.seconds * clip.fps):
            frame = av.VideoFrame.from_ndarray(_scene(clip, index, base), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def decode_all(path: Path) -> int:
    """The naive baseline: decode and convert every frame (then a caller would index)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for frame in container.decode(stream) if frame.to_ndarray(format="rgb24") is not None)


def _median_times(jobs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time of each job, running them interleaved ``repeats`` times."""
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(repeats):
        for name, job in jobs.items():
            start = time.perf_counter()
            job()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def _clip_jobs(path: Path) -> dict[str, Callable[[], object]]:
    """Every strategy at every density, plus the decode-all baseline."""
    jobs: dict[str, Callable[[], object]] = {"decode_all": lambda: decode_all(path)}
    for density, kwargs in DENSITIES.items():
        for method in ("scan", "seek", "auto"):
            jobs[f"{method}@{density}"] = lambda m=method, k=kwargs: read_video(path, method=m, **k)
    return jobs


def _clip_report(times: dict[str, float]) -> dict[str, float]:
    """Seconds per job plus the ratios a reader of the numbers wants."""
    report = {f"{name}_s": round(value, 4) for name, value in times.items()}
    report["sampled_over_all_time_ratio@1fps"] = round(times["auto@1fps"] / times["decode_all"], 3)
    for density in DENSITIES:
        scan, seek, auto = (times[f"{m}@{density}"] for m in ("scan", "seek", "auto"))
        report[f"seek_over_scan_time_ratio@{density}"] = round(seek / scan, 3)
        report[f"auto_over_best_time_ratio@{density}"] = round(auto / min(scan, seek), 3)
    return report


def run(out_dir: Path, repeats: int = 3) -> dict:
    """Generate the clips, time every strategy, write ``out_dir/video.json`` atomically.

    Args:
        out_dir: where ``video.json`` goes (created if absent).
        repeats: interleaved repetitions per job; the median is reported.

    Returns:
        ``{"clips": {name: {config + timings + ratios}}, "repeats": repeats}``.
    """
    results: dict = {"repeats": repeats, "clips": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for clip in CLIPS:
            path = write_clip(clip, Path(tmp) / f"{clip.name}.mp4")
            info = probe(path)
            config = {"seconds": info.duration, "fps": info.fps, "size": [clip.height, clip.width], "gop": clip.gop}
            results["clips"][clip.name] = config | _clip_report(_median_times(_clip_jobs(path), repeats))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    partial = out_dir / "video.json.tmp"
    partial.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(partial, out_dir / "video.json")
    return results

"""``groundlight data check DIR``: every annotation file and every video of a data directory, checked against reality.

1. Each task file that exists under ``DIR`` (the layouts of :data:`data_modules.readers.TASK_FILES`, any split) is read
   with its official-format reader, every bad record reported with the file and line it names: a non-finite number,
   a path leaving the data root, bad UTF-8, too many options, any other malformed record (a file that cannot be read
   as a whole, one error).
2. Each distinct video the annotations name is probed and decoded at 1 fps in parallel worker processes (a progress
   bar on stderr): missing, corrupt or empty files, files cut short (frames stop before the length the container
   states), rotated footage (reported: the reader turns it upright), and samples whose annotated duration or windows
   the video does not have.

Writes a JSON report (``--out``, default ``DIR/data_check.json``) with every error and warning and their counts by
kind (the :class:`~data_modules.faults.Fault` names a run's counted skips use), prints the counts, and exits 1 when
there is an error, 0 otherwise.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data_modules.faults import Fault
from data_modules.formats._records import AnnotationSkips
from data_modules.readers import TASK_FILES, read_task_split
from data_modules.samples import AnnotationError, VideoSample

WINDOW_SLACK = 0.5
"""Seconds a ground-truth window may run past the probed end (annotations round to the second)."""


@dataclass
class VideoUse:
    """One video and the samples that name it."""

    path: str
    samples: list[VideoSample] = field(default_factory=list)


def annotation_files(data_dir: Path, tasks: list[str] | None) -> list[tuple[str, str, Path]]:
    """``(task, split, file)`` for every task file present under ``data_dir``. A file two layouts match
    (``d2vlm/train_pairs.json`` is ``d2vlm/{split}.json`` and ``d2vlm/{split}_pairs.json``) belongs to the more
    specific one, the longer literal tail."""
    best: dict[Path, tuple[int, list[tuple[str, str]]]] = {}
    for task, (pattern, _) in TASK_FILES.items():
        if tasks and task not in tasks:
            continue
        head, _, tail = pattern.partition("{split}")
        prefix = f"{data_dir.as_posix()}/{head}"
        for path in sorted(glob.glob(glob.escape(prefix) + "*" + glob.escape(tail))):
            split = Path(path).as_posix()[len(prefix):][: -len(tail) or None]
            if not split or "/" in split:
                continue
            length, readers = best.get(Path(path), (-1, []))
            if len(tail) > length:
                best[Path(path)] = (len(tail), [(task, split)])
            elif len(tail) == length:
                readers.append((task, split))
    return [(task, split, path) for path, (_, readers) in sorted(best.items()) for task, split in readers]


def read_annotations(data_dir: Path, tasks: list[str] | None) -> tuple[dict[str, VideoUse], list[dict[str, Any]], int]:
    """The videos the annotations name, the annotation errors, and the number of samples read."""
    videos: dict[str, VideoUse] = {}
    errors, count, read = [], 0, set()
    for task, split, path in annotation_files(data_dir, tasks):
        if path in read:  # another task reads the same file (e.g. charades_sta_ft): its samples are the same clips
            continue
        read.add(path)
        skips = AnnotationSkips()
        try:
            samples: list[VideoSample] = read_task_split(data_dir, task, split, skips=skips)
        except (ValueError, OSError, KeyError, TypeError) as error:  # readers name file:line in their messages
            message = str(error) if str(path.name) in str(error) else f"{path}: {error}"
            kind = error.kind if isinstance(error, AnnotationError) else Fault.MALFORMED
            errors.append({"kind": str(kind), "file": str(path), "task": task, "error": message})
            samples = []
        errors += [{"kind": str(bad.kind), "file": str(path), "task": task, "error": str(bad)}
                   for bad in skips.errors.values()]
        count += len(samples)
        for sample in samples:
            paths = [sample.video_path] + [f.video_path for f in sample.frame_sets or []]
            for video in dict.fromkeys(paths):
                use = videos.setdefault(video, VideoUse(video))
                use.samples.append(sample)
    return videos, errors, count


def check_video(use: VideoUse) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Errors and warnings of one video (run in a worker process): one 1-fps read, then its first frame for the
    rotation."""
    import av
    import torch

    from data_modules.datamodule import check_duration
    from data_modules.video import DurationMismatchError, VideoError, read_video, resolve_video

    torch.set_num_threads(1)
    errors, warnings = [], []

    def error(kind: Fault, message: str, sample: str | None = None) -> None:
        errors.append({"kind": str(kind), "video": use.path, "sample": sample, "error": message})

    try:
        duration = read_video(use.path, fps=1.0, size=(32, 32)).duration
    except VideoError as problem:  # missing, not a file, empty, corrupt, truncated
        error(problem.kind, str(problem))
        return errors, warnings
    try:
        with av.open(str(resolve_video(use.path))) as container:
            first = next(container.decode(video=0))
            rotation = int(first.rotation or 0)
    except (av.FFmpegError, StopIteration):  # decoded above: only the rotation is unknown
        rotation = 0
    if rotation % 360:
        warnings.append({"kind": "rotated", "video": use.path,
                         "warning": f"display matrix turns it {rotation} degrees counter-clockwise (applied on read)"})
    for sample in use.samples:
        name = sample.source or sample.sample_id
        try:
            check_duration(sample, duration)
        except DurationMismatchError as problem:
            error(problem.kind, str(problem), name)
        outside = [w for w in sample.windows or [] if w[1] > duration + WINDOW_SLACK or w[0] < 0]
        if outside:
            error(Fault.WINDOW_OUTSIDE, f"window {list(outside[0])} lies outside the video's {duration:.2f} s", name)
    return errors, warnings


def run_checks(videos: dict[str, VideoUse], workers: int, progress: bool = True) -> tuple[list, list]:
    """Every video checked, in ``workers`` processes (0: in this one)."""
    errors, warnings = [], []
    uses = list(videos.values())
    try:
        from tqdm import tqdm
    except ImportError:  # a transitive dependency of the stack; without it, no bar
        tqdm = None

    def collect(results) -> None:  # noqa: ANN001
        bar = tqdm(results, total=len(uses), desc="videos", unit="video", file=sys.stderr,
                   disable=None if progress else True) if tqdm else results  # None: off when stderr is no terminal
        for found, warned in bar:
            errors.extend(found)
            warnings.extend(warned)

    if workers <= 0:
        collect(map(check_video, uses))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            collect(pool.map(check_video, uses, chunksize=4))
    return errors, warnings


def check(data_dir: str | Path, tasks: list[str] | None = None, workers: int = 2, progress: bool = True) -> dict[str, Any]:
    """The report of :func:`main` as a dict."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{data_dir} is not a directory")
    videos, errors, samples = read_annotations(data_dir, tasks)
    video_errors, warnings = run_checks(videos, workers, progress)
    errors += video_errors
    return {
        "data_dir": str(data_dir), "annotation_files": [str(p) for _, _, p in annotation_files(data_dir, tasks)],
        "samples": samples, "videos": len(videos),
        "error_counts": dict(Counter(e["kind"] for e in errors)), "warning_counts": dict(Counter(w["kind"] for w in warnings)),
        "errors": errors, "warnings": warnings,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="groundlight data check", description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--tasks", nargs="+", default=None, help=f"only these tasks (default: every task file found; known: {', '.join(TASK_FILES)})")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="decoding processes (0: none)")
    parser.add_argument("--out", type=Path, default=None, help="the JSON report (default DATA_DIR/data_check.json)")
    args = parser.parse_args(argv)
    from groundlight.io import write_json_atomic

    report = check(args.data_dir, args.tasks, args.workers)
    out = args.out or args.data_dir / "data_check.json"
    write_json_atomic(out, report)
    print(f"{report['samples']} samples, {report['videos']} videos; errors {report['error_counts'] or 0}, "
          f"warnings {report['warning_counts'] or 0} → {out}")
    for entry in report["errors"][:20]:
        print(f"  {entry['kind']}: {entry['error']}" + (f" ({entry['sample']})" if entry.get("sample") else ""))
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())

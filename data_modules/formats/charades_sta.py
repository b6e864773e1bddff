"""Charades-STA: one moment per line, ``<vid> <start> <end>##<query>``.

As released in ``charades_sta_{train,test}.txt``, e.g. ``3MSZA 24.3 30.4##person turn a light on.``
Times are seconds with one decimal. The file gives no video duration, so windows are
only checked for order and sign here.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from data_modules.formats._records import (
    check_unique,
    check_window,
    numbered_lines,
    parse_each,
    sample_id,
    to_float,
    video_id,
    video_path,
)
from data_modules.samples import AnnotationError, VideoSample


def _format_time(seconds: float) -> str:
    """One decimal as released (``24.3``), more only when needed to stay exact."""
    return f"{seconds:.1f}" if round(seconds, 1) == seconds else repr(float(seconds))


def parse_line(line: str, path: str | Path, number: int, video_dir: str | Path, video_ext: str) -> VideoSample:
    """One ``VideoSample`` from one annotation line."""
    where = (str(path), number)
    if "##" not in line:
        raise AnnotationError(str(path), number, "missing '##' between '<vid> <start> <end>' and the query")
    head, query = line.split("##", 1)
    parts = head.split()
    if len(parts) != 3:
        raise AnnotationError(str(path), number, f"expected '<vid> <start> <end>' before '##', got {head!r}")
    if not query.strip():
        raise AnnotationError(str(path), number, "empty query after '##'")
    start, end = (to_float(value, name, where) for value, name in zip(parts[1:], ("start", "end"), strict=True))
    window = check_window(start, end, None, where)
    return VideoSample(
        sample_id=sample_id(path, number),
        video_path=video_path(video_dir, parts[0], video_ext, where),
        task="moment_retrieval",
        query=query.strip(),
        windows=[window],
        source=f"{path}:{number}",
        meta={"vid": parts[0]},
    )


def read_charades_sta(path: str | Path, video_dir: str | Path, video_ext: str = ".mp4") -> list[VideoSample]:
    """Moment-retrieval samples of a Charades-STA annotation file.

    Args:
        path: ``charades_sta_*.txt``.
        video_dir: folder holding ``<vid><video_ext>``.
        video_ext: video file extension.

    Raises:
        AnnotationError: a malformed line (missing ``##``, bad number, reversed window).
    """
    samples = parse_each(numbered_lines(path), lambda number, line: parse_line(line, path, number, video_dir, video_ext))
    check_unique(samples, path)
    return samples


def format_line(sample: VideoSample) -> str:
    """The annotation line of a single-window moment-retrieval sample."""
    if len(sample.windows) != 1:
        raise ValueError(f"{sample.sample_id}: Charades-STA holds exactly one window per line, got {sample.windows}")
    start, end = sample.windows[0]
    return f"{video_id(sample)} {_format_time(start)} {_format_time(end)}##{sample.query}"


def write_charades_sta(path: str | Path, samples: Iterable[VideoSample]) -> Path:
    """Write samples as Charades-STA lines; the vid is ``meta["vid"]`` or the video's stem."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(format_line(sample) + "\n" for sample in samples), encoding="utf-8")
    return path

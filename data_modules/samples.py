"""VideoSample: the one record every reader produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TASKS = ("moment_retrieval", "highlight", "mcq", "verify", "open_qa")


@dataclass
class VideoSample:
    """One question about one video, as read from an official annotation file.

    Attributes:
        sample_id: unique within a split (e.g. ``"charades_sta/test.txt:17"``).
        video_path: absolute or data-dir-relative path of the video file.
        task: one of ``TASKS``.
        query: the natural-language query, question or statement (no prompt template).
        duration: video length in seconds when the annotation states it, else ``None``.
        windows: ground-truth windows ``(start, end)`` in seconds.
        options: answer options for ``mcq``.
        answer_index: index of the correct option for ``mcq``.
        label: truth of a ``verify`` statement.
        answer_text: free-form reference answer (``open_qa``).
        keyframes: ground-truth keyframe times in seconds.
        saliency: per-clip saliency scores (QVHighlights: one list of 3 annotators per clip).
        source: ``"path:line"`` of the annotation, for error messages.
        meta: anything format-specific that no method may use as ground truth.
    """

    sample_id: str
    video_path: str
    task: str
    query: str
    duration: float | None = None
    windows: list[tuple[float, float]] = field(default_factory=list)
    options: list[str] | None = None
    answer_index: int | None = None
    label: bool | None = None
    answer_text: str | None = None
    keyframes: list[float] | None = None
    saliency: list[list[int]] | None = None
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"{self.source or self.sample_id}: unknown task {self.task!r}; expected one of {TASKS}")


class AnnotationError(ValueError):
    """A malformed annotation; the message names the file and line."""

    def __init__(self, path: str, line: int | None, problem: str) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")
        self.path, self.line = str(path), line

"""VideoSample: the one record every reader produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from data_modules.faults import Fault

FRAGMENT_TASKS = (
    "fragment_counting",
    "fragment_consistency",
    "fragment_localization",
    "fragment_disorder",
    "fragment_rearrangement",
)
"""SF2T's self-supervised fragment tasks (``data_modules.tasks.fragments`` builds them)."""

EVIDENCE_TASKS = ("evidence", "evidence_text")
"""D²VLM's multi-event evidence responses: with ``<evi>`` tokens, and written as text (the baseline)."""

TASKS = ("moment_retrieval", "highlight", "mcq", "verify", "open_qa", *FRAGMENT_TASKS, *EVIDENCE_TASKS)


@dataclass(frozen=True)
class FrameSet:
    """Frames of one video shown together as one fragment (SF2T).

    The video's frames are drawn once by the frame strategy (``sample_size`` of them, in time
    order); ``picks`` are positions in that draw, so all sets of one video share one decode.

    Attributes:
        video_path: the video the frames come from.
        sample_size: how many frames the strategy draws from the video.
        picks: ascending positions in the draw (``0 <= p < sample_size``).
        seed: seed of the strategy's within-bin draw (training); ``None`` takes bin centres.
    """

    video_path: str
    sample_size: int
    picks: tuple[int, ...]
    seed: int | None = None

    def __post_init__(self) -> None:
        ascending = bool(self.picks) and list(self.picks) == sorted(set(self.picks))
        if not ascending or not 0 <= self.picks[0] <= self.picks[-1] < self.sample_size:
            raise ValueError(f"{self.video_path}: picks {self.picks} must ascend within [0, {self.sample_size})")


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
        answer_text: free-form reference answer (``open_qa``); an evidence response with its ``<evi>`` tokens.
        keyframes: ground-truth keyframe times in seconds.
        saliency: per-clip saliency scores (QVHighlights: one list of 3 annotators per clip).
        source: ``"path:line"`` of the annotation, for error messages.
        meta: anything format-specific that no method may use as ground truth.
        frame_sets: the fragments a fragment task shows, in the order shown (``None``: the whole
            video, sampled as configured).
        order: rearrangement's reference: the shown fragments' 1-based numbers in time order.
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
    frame_sets: list[FrameSet] | None = None
    order: list[int] | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"{self.source or self.sample_id}: unknown task {self.task!r}; expected one of {TASKS}")


class AnnotationError(ValueError):
    """A malformed annotation; the message names the file and line, ``kind`` says what is wrong with it."""

    def __init__(self, path: str, line: int | None, problem: str, kind: Fault = Fault.MALFORMED) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")
        self.path, self.line, self.kind = str(path), line, kind

"""The kinds of bad input, named once.

A reader's :class:`~data_modules.samples.AnnotationError` and the video reader's
:class:`~data_modules.video.VideoError` carry one of these as ``kind``. The same names key the counted skips
(``on_bad_annotation`` / ``on_bad_video: skip``, the ``skipped`` counts of a test run's ``summary.json``) and the
error counts of ``groundlight data check``.
"""

from __future__ import annotations

from enum import StrEnum


class Fault(StrEnum):
    """One kind of bad input; its value is the name a count is filed under."""

    # videos
    MISSING = "missing"
    """No file at the path, nor one file beside it with the same stem and another container."""
    NOT_A_FILE = "not_a_file"
    """A directory where the video should be."""
    EMPTY = "empty"
    """0 bytes, or a video stream with no frames."""
    CORRUPT = "corrupt"
    """PyAV cannot open or decode it as video (a 200-byte stub, garbage, no video stream)."""
    TRUNCATED = "truncated"
    """The frames stop well before the length the container states (a file cut short)."""
    TOO_FEW_FRAMES = "too_few_frames"
    """Fewer distinct frames than a ``motion``/``random`` sample asks for (``on_short="raise"``)."""
    DURATION_MISMATCH = "duration_mismatch"
    """The annotated duration disagrees with the video's probed length beyond the tolerance."""
    WINDOW_OUTSIDE = "window_outside"
    """A ground-truth window past the video's probed end (``groundlight data check`` only: it probes every video)."""
    # annotation records
    MALFORMED = "malformed"
    """A record that does not parse (bad JSON, a missing field, a reversed window, ...)."""
    NON_FINITE = "non_finite"
    """A NaN or infinite number."""
    PATH_ESCAPE = "path_escape"
    """A video path that leaves the data root (``..`` or absolute)."""
    BAD_ENCODING = "bad_encoding"
    """Bytes that are not UTF-8."""
    TOO_MANY_OPTIONS = "too_many_options"
    """A multiple-choice question with more options than the prompt can letter."""

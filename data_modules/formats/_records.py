"""Parsing helpers every format reader shares; each failure is an ``AnnotationError``.

A reader raises at its first bad record. Within :func:`skipping_bad_records` it drops each bad record instead and
files the error, by kind, in an :class:`AnnotationSkips`: the records a reader parses with :func:`parse_each`, the
lines :func:`read_text` cannot decode and the lines of a ``.jsonl`` file that are not JSON. A file that cannot be
read as a whole (a broken JSON list, two samples with one id) still raises.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from data_modules.faults import Fault
from data_modules.samples import AnnotationError
from groundlight.io import write_jsonl_atomic, write_text_atomic

Parsed = TypeVar("Parsed")


@dataclass
class AnnotationSkips:
    """The bad records readers dropped, each once (a file two tasks read counts once), keyed by file, line and
    message."""

    errors: dict[tuple[str, int | None, str], AnnotationError] = field(default_factory=dict)

    def add(self, error: AnnotationError) -> None:
        self.errors.setdefault((error.path, error.line, str(error)), error)

    def counts(self) -> dict[str, int]:
        """Dropped records by :class:`~data_modules.faults.Fault` name."""
        return dict(Counter(str(error.kind) for error in self.errors.values()))


_SKIPS: ContextVar[AnnotationSkips | None] = ContextVar("annotation_skips", default=None)


@contextmanager
def skipping_bad_records(skips: AnnotationSkips | None) -> Iterator[None]:
    """Readers called within drop bad records into ``skips`` instead of raising; ``None``: they raise."""
    token = _SKIPS.set(skips)
    try:
        yield
    finally:
        _SKIPS.reset(token)


def skip_or_raise(error: AnnotationError) -> None:
    """File ``error`` as a dropped record within :func:`skipping_bad_records`, else raise it."""
    skips = _SKIPS.get()
    if skips is None:
        raise error
    skips.add(error)


def parse_each(items: Iterable[tuple[Any, ...]], parse: Callable[..., Parsed]) -> list[Parsed]:
    """``parse(*item)`` for every item (a record and where it is), dropping the ones whose parse raises an
    ``AnnotationError`` within :func:`skipping_bad_records`."""
    parsed = []
    for item in items:
        try:
            parsed.append(parse(*item))
        except AnnotationError as error:
            skip_or_raise(error)
    return parsed


def read_text(path: str | Path) -> str:
    """The file as UTF-8; bytes that are not UTF-8 are an error naming the file and line (within
    :func:`skipping_bad_records`, each such line is dropped: it reads as a blank line)."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        if _SKIPS.get() is None:
            raise _not_utf8(path, data, error.start) from None
    lines, start = [], 0
    for line in data.split(b"\n"):
        lines.append(_decoded_line(path, data, start, line))
        start += len(line) + 1
    return "\n".join(lines)


def _not_utf8(path: str | Path, data: bytes, offset: int) -> AnnotationError:
    line = data.count(b"\n", 0, offset) + 1
    return AnnotationError(str(path), line, f"not UTF-8 text (byte {data[offset]:#04x} at offset {offset})",
                           Fault.BAD_ENCODING)


def _decoded_line(path: str | Path, data: bytes, start: int, line: bytes) -> str:
    """The line of ``data`` at offset ``start`` as UTF-8, or blank (its error filed) when it is not."""
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as error:
        skip_or_raise(_not_utf8(path, data, start + error.start))
        return ""


def numbered_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Non-blank lines of a text file with their 1-based numbers, stripped."""
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if line.strip():
            yield number, line.strip()


def jsonl_records(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """``(line, object)`` for each line of a JSON-lines file."""
    records = []
    for number, line in numbered_lines(path):
        try:
            records.append((number, json.loads(line)))
        except json.JSONDecodeError as error:
            skip_or_raise(AnnotationError(str(path), number, f"invalid JSON ({error.msg})"))
    return records


def json_list_records(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """``(line where the element starts, element)`` for each element of a top-level JSON list."""
    text = read_text(path)
    decoder, position = json.JSONDecoder(), text.find("[")
    if position < 0:
        raise AnnotationError(str(path), 1, "expected a JSON list of records")
    records, position = [], position + 1
    while True:
        position = _skip_separators(text, position)
        if position >= len(text) or text[position] == "]":
            return records
        line = text.count("\n", 0, position) + 1
        try:
            record, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            raise AnnotationError(str(path), error.lineno, f"invalid JSON ({error.msg})") from error
        records.append((line, record))


def _skip_separators(text: str, position: int) -> int:
    """Index of the next character that is not whitespace or a comma."""
    while position < len(text) and (text[position].isspace() or text[position] == ","):
        position += 1
    return position


def records(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """Records of a ``.jsonl`` file (one per line) or a ``.json`` list, with line numbers."""
    return jsonl_records(path) if str(path).endswith(".jsonl") else json_list_records(path)


class Fields:
    """Typed access to one record's fields; every failure names the file and line."""

    def __init__(self, record: Any, path: str | Path, line: int) -> None:
        self.path, self.line = str(path), line
        if not isinstance(record, dict):
            raise self.error(f"expected a JSON object, got {type(record).__name__}")
        self.record = record

    def error(self, problem: str, kind: Fault = Fault.MALFORMED) -> AnnotationError:
        """An ``AnnotationError`` at this record."""
        return AnnotationError(self.path, self.line, problem, kind)

    def has(self, key: str) -> bool:
        return self.record.get(key) is not None

    def get(self, key: str) -> Any:
        """The value of a required field."""
        if key not in self.record or self.record[key] is None:
            raise self.error(f"missing field {key!r}")
        return self.record[key]

    def text(self, key: str) -> str:
        value = self.get(key)
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise self.error(f"field {key!r} must be a string, got {value!r}")
        return str(value)

    def number(self, key: str) -> float:
        return to_float(self.get(key), f"field {key!r}", self)

    def integer(self, key: str) -> int:
        value = self.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(f"field {key!r} must be an integer, got {value!r}")
        return value

    def boolean(self, key: str) -> bool:
        value = self.get(key)
        if not isinstance(value, bool):
            raise self.error(f"field {key!r} must be true or false, got {value!r}")
        return value

    def strings(self, key: str) -> list[str]:
        value = self.get(key)
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.error(f"field {key!r} must be a list of strings, got {value!r}")
        return value

    def windows(self, key: str, duration: float | None) -> list[tuple[float, float]]:
        """A list of ``[start, end]`` pairs, each checked by ``check_window``."""
        value = self.get(key)
        if not isinstance(value, list):
            raise self.error(f"field {key!r} must be a list of [start, end] pairs, got {value!r}")
        return [self.window(pair, duration, key) for pair in value]

    def window(self, pair: Any, duration: float | None, key: str) -> tuple[float, float]:
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise self.error(f"field {key!r}: window {pair!r} is not a [start, end] pair")
        start, end = (to_float(value, f"{key!r} window bound", self) for value in pair)
        return check_window(start, end, duration, self)


def to_float(value: Any, what: str, where: Fields | tuple[str, int]) -> float:
    """``float(value)`` or an ``AnnotationError`` saying which value is bad (NaN and infinities included)."""
    if isinstance(value, bool):
        value = None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _error(where, f"{what} is not a number: {value!r}") from None
    if not math.isfinite(number):
        raise _error(where, f"{what} is not a finite number: {value!r}", Fault.NON_FINITE)
    return number


def check_window(
    start: float, end: float, duration: float | None, where: Fields | tuple[str, int]
) -> tuple[float, float]:
    """``(start, end)`` if ordered and inside ``[0, duration]`` (when known)."""
    if start > end:
        raise _error(where, f"reversed window: start {start:g} > end {end:g}")
    if start < 0 or (duration is not None and end > duration):
        bound = f"[0, {duration:g}]" if duration is not None else "[0, inf)"
        raise _error(where, f"window [{start:g}, {end:g}] is outside the video {bound}")
    return start, end


def _error(where: Fields | tuple[str, int], problem: str, kind: Fault = Fault.MALFORMED) -> AnnotationError:
    if isinstance(where, Fields):
        return where.error(problem, kind)
    return AnnotationError(where[0], where[1], problem, kind)


def check_unique(samples: Iterable[Any], path: str | Path) -> None:
    """Raise when two samples share a ``sample_id``."""
    seen: dict[str, str] = {}
    for sample in samples:
        if sample.sample_id in seen:
            raise AnnotationError(
                str(path), None, f"duplicate sample id {sample.sample_id!r} ({seen[sample.sample_id]}, {sample.source})"
            )
        seen[sample.sample_id] = sample.source


def sample_id(path: str | Path, key: str | int) -> str:
    """``"<folder>/<file>:<key>"``, unique within a split."""
    path = Path(path)
    return f"{path.parent.name}/{path.name}:{key}"


def video_path(video_dir: str | Path, video_id: str, video_ext: str = "",
               where: Fields | tuple[str, int] | None = None) -> str:
    """``video_dir/video_id + video_ext`` as a string; an absolute id or one that climbs out with ``..`` is an error
    naming ``where`` (the annotation's file and line): a video path may not leave the data root."""
    relative = Path(f"{video_id}{video_ext}")
    if relative.is_absolute() or ".." in relative.parts:
        problem = f"video path {str(relative)!r} leaves the data root {str(video_dir)!r}"
        raise _error(where, problem, Fault.PATH_ESCAPE) if where is not None else \
            AnnotationError(str(video_dir), None, problem, Fault.PATH_ESCAPE)
    return str(Path(video_dir) / relative)


def video_id(sample: Any) -> str:
    """The id a writer puts in the file: ``meta["vid"]`` or the video file's stem."""
    return str(sample.meta.get("vid") or Path(sample.video_path).stem)


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> Path:
    """One compact JSON object per line, written atomically; creates parent folders."""
    return write_jsonl_atomic(path, rows)


def write_json_list(path: str | Path, rows: Iterable[dict[str, Any]]) -> Path:
    """A JSON list with one record per line (so errors can name a useful line), written atomically."""
    body = ",\n".join(json.dumps(row) for row in rows)
    return write_text_atomic(path, f"[\n{body}\n]\n" if body else "[]\n")


def plain_number(value: float) -> int | float:
    """``3`` for ``3.0`` (as the official files write integral times), else the float."""
    return int(value) if float(value).is_integer() else float(value)

"""The one parser for model answers: time windows and multiple-choice letters.

An answer that cannot be parsed returns ``None``. Callers count it as ``parse_failed``;
nothing here ever invents a window or a choice.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_CLOCK = r"\d{1,2}(?::\d{1,2}){1,2}(?:\.\d+)?"
_NUMBER = r"\d+(?:\.\d+)?|\.\d+"
_UNIT = r"\s*(?:seconds?|secs?|s|minutes?|mins?|m)\b"
# A number is a whole token: not glued to a digit, point or colon before it ("3.5.6"'s "5.6"), nor followed by
# one more digit, colon or decimal part. The guards also keep the search linear on long digit runs: a start inside a
# run fails at once, and a shorter match inside one fails its end guard at once.
TIME = rf"(?<![\d.:])(?:{_CLOCK}|{_NUMBER})(?![\d:]|\.\d)(?:{_UNIT})?"
_RANGE = re.compile(
    rf"(?P<a>{TIME})\s*(?:-|–|—|~|to|until|till|and|,)\s*(?P<b>{TIME})", re.IGNORECASE
)
_ANY_TIME = re.compile(TIME, re.IGNORECASE)
_NUMERIC = re.compile(r"[\d.:]*\d[\d.:]*(?:[eE][+-]?\d+)?")  # with an exponent: "1e400" is one (malformed) token
_WHOLE = re.compile(rf"(?:{_CLOCK}|{_NUMBER})")
MAX_SECONDS = 1e6
"""Longer than any video (11.6 days): a time beyond it is absurd, not a window."""


def _malformed_before(text: str, end: int) -> bool:
    """Whether a number-like token before ``end`` is malformed ("3.5.6", "1:2:3:4", "1e400": float() reads it as
    infinite) or negative ("-2", "from -2")."""
    for match in _NUMERIC.finditer(text, 0, end):
        token = match.group().rstrip(".:")  # a sentence's full stop or a label's colon after the number
        if not _WHOLE.fullmatch(token):
            return True
        before = text[: match.start()]
        if before.endswith("-") and not before[:-1].rstrip(" ").endswith(tuple("0123456789")) or \
                before.endswith("-") and before[:-1].endswith(" "):
            return True  # a minus sign, not a range's dash ("3-5", "3 - 5")
    return False


def parse_time(token: str) -> float:
    """Seconds from ``"3.2"``, ``"3.2s"``, ``"1.5 minutes"``, ``"00:03"`` or ``"1:02:03.5"``."""
    token = token.strip().lower()
    unit = re.search(r"[a-z]+$", token)
    number = token[: unit.start()].strip() if unit else token
    if ":" in number:
        seconds = 0.0
        for part in number.split(":"):
            seconds = seconds * 60 + float(part)
        return seconds
    value = float(number)
    if unit and unit.group().startswith("m"):
        value *= 60
    return value


def parse_window(text: str, sort: bool = True) -> tuple[float, float] | None:
    """The first time window stated in ``text``, in seconds.

    Prefers an explicit range ("from 3.2s to 7.5s", "3.2 - 7.5 seconds", "00:03 to 00:07");
    otherwise takes the first two times mentioned, as E.T. Bench's grounding parser does.
    A reversed pair is swapped when ``sort`` is true. Returns ``None`` when fewer than two
    times are present, when a number up to the window is malformed or negative, or when a time
    is not finite or beyond :data:`MAX_SECONDS`: never a guess.
    """
    if not text:
        return None
    match = _RANGE.search(text)
    if match:
        start, end, stop = parse_time(match["a"]), parse_time(match["b"]), match.end()
    else:
        found = []
        for time_match in _ANY_TIME.finditer(text):
            found.append(time_match)
            if len(found) == 2:
                break
        if len(found) < 2:
            return None
        start, end, stop = parse_time(found[0].group()), parse_time(found[1].group()), found[1].end()
    if _malformed_before(text, stop) or not all(0 <= t <= MAX_SECONDS for t in (start, end)):
        return None
    if sort and start > end:
        start, end = end, start
    return start, end


def parse_windows(text: str, sort: bool = True) -> list[tuple[float, float]]:
    """Every explicit time range in ``text``, in order (for multi-window answers); none when a number in the text
    is malformed or negative, or a time is beyond :data:`MAX_SECONDS`."""
    windows = []
    text = text or ""
    for match in _RANGE.finditer(text):
        start, end = parse_time(match["a"]), parse_time(match["b"])
        windows.append((min(start, end), max(start, end)) if sort else (start, end))
    if _malformed_before(text, len(text)) or not all(0 <= t <= MAX_SECONDS for w in windows for t in w):
        return []
    return windows


# Option letters, most explicit first: the whole answer is a letter ("B", "(b)", "B."), a
# leading letter with a delimiter ("(B) a dog", "B. a dog"), a letter after "answer",
# "option" or "choice" ("Answer: B", "the answer is (b)"), then any bracketed letter.
# A lower-case letter after a keyword needs a delimiter, so "the answer is a dog" is
# not read as option A.
_LETTER_PATTERNS = [
    re.compile(r"^\s*[(\[]?([A-Za-z])[)\].:]?\s*$"),
    re.compile(r"^\s*(?:\(([A-Za-z])\)|\[([A-Za-z])\]|([A-Za-z])[.:)\]])(?=\s|$)"),
    re.compile(r"\b(?i:answer|option|choice)(?:\s+(?i:is))?\s*:?\s*"
               r"\(?(?:([A-Z])\b|([a-z])(?=[.:)\]]|\s*$))"),
    re.compile(r"\(([A-Za-z])\)"),
]


def _normalise_option(text: str) -> str:
    return text.strip().strip("\"'").strip().rstrip(".!").strip().lower()


def _option_by_text(text: str, options: Sequence[str]) -> int | None:
    """The option whose text is the answer, or the one option named in it (as a phrase).

    An option contained in another named option ("blue" in "blue star") gives way to it.
    """
    answer = _normalise_option(text)
    exact = [i for i, o in enumerate(options) if _normalise_option(o) == answer]
    if len(exact) == 1:
        return exact[0]
    named = [i for i, o in enumerate(options) if _normalise_option(o)
             and re.search(rf"(?<!\w){re.escape(_normalise_option(o))}(?!\w)", answer)]
    longest = [i for i in named if not any(
        i != j and _normalise_option(options[i]) in _normalise_option(options[j]) for j in named)]
    return longest[0] if len(longest) == 1 else None


def parse_choice(text: str, options: Sequence[str]) -> int | None:
    """Index of the option chosen in ``text``, or ``None`` when it cannot be told.

    Survives ``"(B)"``, ``"B."``, ``"Answer: B"``, lowercase letters and the option text
    itself. A letter beyond the number of options is unparseable, not wrong-but-valid.
    """
    if not text:
        return None
    for pattern in _LETTER_PATTERNS:
        match = pattern.search(text)
        letter = next((g for g in match.groups() if g), None) if match else None
        if letter is not None and 0 <= ord(letter.upper()) - ord("A") < len(options):
            return ord(letter.upper()) - ord("A")
    return _option_by_text(text, options)


_EVIDENCE_SPAN = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?) - (\d+(?:\.\d+)?) seconds\b")  # the form we write


def parse_evidence(text: str) -> list[tuple[float, float]] | None:
    """The first stage of an evidence response written as text (``"Evidence: s - e seconds, ... . Answer: ..."``,
    ``data_modules.tasks.evidence.timestamp_text``): its spans in order. ``None`` when either stage head is missing
    or the first stage states no span (a D²VLM response without its ``</evi>`` has no ``Answer:``)."""
    head, answer = text.find("Evidence:"), text.find("Answer:")
    if head < 0 or answer < head:
        return None
    stage = text[head:answer]
    spans = [(float(a), float(b)) for a, b in _EVIDENCE_SPAN.findall(stage)]
    if _malformed_before(stage, len(stage)) or not all(0 <= t <= MAX_SECONDS for span in spans for t in span):
        return None
    return spans or None


def format_window(start: float, end: float, decimals: int = 1) -> str:
    """The answer text the project trains on: ``"from 3.2s to 7.5s"``."""
    return f"from {start:.{decimals}f}s to {end:.{decimals}f}s"


_INTEGER = re.compile(r"\d+")


def parse_order(text: str, count: int) -> tuple[int, ...] | None:
    """The first ``count`` consecutive numbers in ``text`` that are an ordering of ``1..count``.

    Survives ``"3, 1, 2"``, ``"[3 1 2]"``, ``"fragment 3, fragment 1, fragment 2"``, ``"3 -> 1 -> 2"``
    and, for fewer than ten items, ``"312"``. Anything else (a repeat, a missing number) is ``None``.
    """
    numbers = [int(token) for token in _INTEGER.findall(text or "")]
    if len(numbers) == 1 and count < 10 and len(str(numbers[0])) == count:
        numbers = [int(digit) for digit in str(numbers[0])]
    wanted = list(range(1, count + 1))
    for start in range(len(numbers) - count + 1):
        window = numbers[start : start + count]
        if sorted(window) == wanted:
            return tuple(window)
    return None

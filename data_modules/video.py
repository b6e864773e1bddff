"""The one video reader: PyAV decoding plus the frame-time samplers every task uses.

Frame choice: for each target time ``t`` the reader returns the decoded frame that is
on screen at ``t``, i.e. the last frame whose presentation time is ``<= t`` (within
``PTS_TOLERANCE``, so container rounding of ``k / fps`` never picks the previous frame).
A target before the first frame gets the first frame; one after the last gets the last.
Times are seconds from the video stream's start, so the first frame is at 0.

Two decode strategies return identical frames:

- ``scan``: one sequential pass from the start, converting only the chosen frames and
  stopping after the last target.
- ``seek``: for each target, seek back to the keyframe before it and decode forward.

``auto`` compares their costs in decoded frames, using the GOP length read from the
first packets (``_prefer_seek``). Measured by ``groundlight/bench/video.py`` on 90 s,
30 fps, 320x240 clips (2 shared CPU cores), seek/scan time ratio:

=========  ====  ====  =====  =====  ====  ====
GOP        4 fr  8 fr  16 fr  32 fr  1fps  2fps
=========  ====  ====  =====  =====  ====  ====
250        0.20  0.39  0.59   1.45   2.42  2.98
30         0.06  0.09  0.15   0.27   0.39  1.07
=========  ====  ====  =====  =====  ====  ====

``auto`` was within noise of the faster method in every cell (0.75-1.08x the best).
A seek costs about half a GOP plus ~8 frames of decoding (``SEEK_OVERHEAD_FRAMES``):
3.0 ms per target at GOP 30 against 0.135 ms per scanned frame.

Three frame strategies choose *which* frames (``strategy``):

- ``uniform``: the times above (bin centres or ``k / fps``).
- ``motion``: motion-salient sampling after MGSampler. Motion at frame ``i`` is
  ``1 - SSIM`` of grey frames ``i - 1`` and ``i`` (see ``ssim``); its square root is
  normalised into a distribution over frames, and frames are taken at the quantiles of
  ``count`` equal bins: the bin centres, or a uniform draw within each bin when an
  ``rng`` is given (training). A static video has no distribution and falls back to
  uniform bins.
- ``random``: ``count`` distinct frames at random (the ablation's control).

``motion`` and ``random`` decode each candidate frame once (every frame up to
``MAX_CANDIDATES``, else that many evenly spaced): each candidate is converted to a small
grey image for the motion pass and the decoded frame itself is held, so only the chosen
ones are converted to RGB. Nothing is decoded twice.

The motion scores depend on the video alone, so a ``MotionIndex`` (a directory) can keep each video's
candidate times and scores across epochs, runs and workers; a video found there is not scored again, and only
its chosen frames are decoded, the same frames a fresh pass picks.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np
import torch
import torch.nn.functional as F

from data_modules.faults import Fault

log = logging.getLogger(__name__)

PTS_TOLERANCE = 1e-3
"""Seconds a frame's pts may exceed a target and still count as ``<=`` it (pts rounding)."""

SEEK_OVERHEAD_FRAMES = 8
"""Cost of one seek (demuxer reposition, decoder flush, thread pipeline refill), in decoded frames."""

GOP_PROBE_LIMIT = 600
"""Packets read to find the second keyframe; a longer GOP is treated as the whole video."""

Method = Literal["auto", "scan", "seek"]
Strategy = Literal["uniform", "motion", "random"]
STRATEGIES = ("uniform", "motion", "random")

MOTION_SIDE = 64
"""Side of the square grey frames the motion pass compares (fast, and enough for 7x7 windows)."""

MAX_CANDIDATES = 256
"""Frames the motion pass decodes at most; a longer video is thinned to this many evenly spaced ones."""

SSIM_WINDOW = 7
"""Side of SSIM's uniform window (skimage's default)."""


class VideoError(RuntimeError):
    """A video that cannot be read; the message always names the file, ``kind`` says what is wrong with it."""

    kind: Fault = Fault.CORRUPT

    def __init__(self, path: str | Path, problem: str, kind: Fault | None = None) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        if kind is not None:
            self.kind = kind


class TruncatedVideoError(VideoError):
    """The decoded frames end well before the length the container states (a file cut short): later sampled
    times would otherwise repeat its last frame."""

    kind = Fault.TRUNCATED


class ShortVideoError(VideoError):
    """A video with fewer distinct frames than a ``motion``/``random`` sample asks for."""

    kind = Fault.TOO_FEW_FRAMES


class DurationMismatchError(VideoError):
    """An annotation states a length the video does not have (targets built from it would lie)."""

    kind = Fault.DURATION_MISMATCH


@dataclass
class VideoInfo:
    """Stream facts of a video file.

    Attributes:
        path: the file.
        duration: length in seconds.
        fps: average frame rate.
        num_frames: number of frames (from the container, else ``duration * fps``).
        width: frame width in pixels.
        height: frame height in pixels.
    """

    path: str
    duration: float
    fps: float
    num_frames: int
    width: int
    height: int


@dataclass
class Clip:
    """Frames decoded from one video.

    Attributes:
        frames: ``uint8`` tensor ``(T, H, W, 3)``, RGB, upright (a display-matrix rotation is applied).
        timestamps: ``float64`` tensor ``(T,)``, the presentation time in seconds of each
            returned frame (not the requested target time).
        duration: length of the whole video in seconds.
        path: the file.
    """

    frames: torch.Tensor
    timestamps: torch.Tensor
    duration: float
    path: str


CONTAINERS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg", ".flv", ".wmv",
              ".3gp", ".ogv")
"""Extensions a video named by an annotation may carry; PyAV opens all of them."""


def resolve_video(path: str | Path) -> Path:
    """``path`` when it is a file; otherwise the one file beside it with the same stem and another video
    extension (annotations name ``<id>.mp4`` while a dataset ships ``<id>.webm`` or ``.mkv``). Two candidates, or
    none, is a ``VideoError`` naming them."""
    file = Path(path)
    if file.is_file():
        return file
    if file.is_dir():
        raise VideoError(path, "a directory, not a video file", Fault.NOT_A_FILE)
    stem = file.stem if file.suffix.lower() in CONTAINERS else file.name
    found = sorted(p for p in file.parent.glob(f"{glob_escape(stem)}.*") if p.suffix.lower() in CONTAINERS and p.is_file()) \
        if file.parent.is_dir() else []
    if len(found) == 1:
        return found[0]
    if found:
        raise VideoError(path, f"no such video file, and {len(found)} with its name: {[p.name for p in found]}",
                         Fault.MISSING)
    raise VideoError(path, "no such video file", Fault.MISSING)


def glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


@contextmanager
def _open_video(path: str | Path) -> Iterator[tuple[av.container.InputContainer, av.video.stream.VideoStream]]:
    """Open ``path`` and yield its container and first video stream, or raise ``VideoError``."""
    file = resolve_video(path)
    if file.stat().st_size == 0:
        raise VideoError(path, "empty file (0 bytes)", Fault.EMPTY)
    try:
        container = av.open(str(file))
    except (av.FFmpegError, UnicodeDecodeError) as error:
        raise VideoError(path, f"unreadable or corrupt video ({error})") from error
    with container:
        if not container.streams.video:
            raise VideoError(path, "no video stream")
        yield container, container.streams.video[0]


def _duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float:
    """Stream duration in seconds, falling back to the container's."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return 0.0


def _info(path: str | Path, container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> VideoInfo:
    """``VideoInfo`` of an open stream; raises ``VideoError`` when it has no frames."""
    fps = float(stream.average_rate or stream.guessed_rate or 0)
    duration = _duration(container, stream)
    if duration <= 0 and stream.frames and fps:
        duration = stream.frames / fps
    num_frames = stream.frames or round(duration * fps)
    if duration <= 0 or num_frames <= 0:
        raise VideoError(path, "video stream has no frames (zero length)", Fault.EMPTY)
    ctx = stream.codec_context
    return VideoInfo(str(path), duration, fps, int(num_frames), ctx.width, ctx.height)


def probe(path: str | Path) -> VideoInfo:
    """Duration, frame rate, frame count and size of a video, without decoding it.

    Raises:
        VideoError: the file is missing, unreadable, corrupt, empty or has no video stream.
    """
    with _open_video(path) as (container, stream):
        return _info(path, container, stream)


def _bin_centres(duration: float, count: int) -> list[float]:
    """Centres of ``count`` equal bins over ``[0, duration)``."""
    return [(k + 0.5) * duration / count for k in range(count)]


def sample_timestamps(
    duration: float,
    fps: float | None = None,
    num_frames: int | None = None,
    max_frames: int | None = None,
) -> list[float]:
    """Target times in seconds, ascending.

    Args:
        duration: video length in seconds.
        fps: sample at ``k / fps`` for every ``k >= 0`` with ``k / fps < duration``.
        num_frames: sample the centres of ``num_frames`` equal bins.
        max_frames: cap on the count; fps sampling that would exceed it falls back to
            ``max_frames`` bin centres, and ``num_frames`` is clipped to it.

    Raises:
        ValueError: not exactly one of ``fps``/``num_frames``, or a non-positive value.
    """
    if (fps is None) == (num_frames is None):
        raise ValueError("give exactly one of fps or num_frames")
    if duration <= 0:
        raise ValueError(f"duration must be positive, got {duration}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    if num_frames is not None:
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        return _bin_centres(duration, min(num_frames, max_frames or num_frames))
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    count = math.ceil(duration * fps - 1e-6)
    if max_frames is not None and count > max_frames:
        return _bin_centres(duration, max_frames)
    return [k / fps for k in range(count)]


def _box_means(images: torch.Tensor, window: int) -> torch.Tensor:
    """Mean of every valid ``window x window`` box of ``(N, H, W)``, from one integral image."""
    total = F.pad(images, (1, 0, 1, 0)).cumsum(1).cumsum(2)
    w = window
    return (total[:, w:, w:] - total[:, :-w, w:] - total[:, w:, :-w] + total[:, :-w, :-w]) / (w * w)


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = SSIM_WINDOW, data_range: float = 255.0) -> torch.Tensor:
    """Mean structural similarity of each image pair ``(B, H, W)`` → ``(B,)`` (Wang et al. 2004).

    A uniform ``window x window`` box over the valid positions, with population (1/N)
    statistics and ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``. A box rather than the paper's
    Gaussian: on 64-pixel motion frames the two rank frame pairs alike, the local moments
    come from float64 integral images (exact sums on 8-bit input; the motion pass's main
    cost, about 3x cheaper than pooling here), and its values can be worked out by hand
    (see the tests).
    """
    _check_pairs(x, y, window)
    x, y = x.double(), y.double()
    mu_x, mu_y, xx, yy, xy = _box_means(torch.cat([x, y, x * x, y * y, x * y]), window).chunk(5)
    return _ssim_index(mu_x, mu_y, xx, yy, xy, data_range)


def _check_pairs(x: torch.Tensor, y: torch.Tensor, window: int) -> None:
    if x.shape != y.shape or x.ndim != 3 or min(x.shape[-2:]) < window:
        raise ValueError(f"ssim needs two (B, H, W) stacks of one shape, H and W >= {window}; got {x.shape}, {y.shape}")


def _ssim_index(mu_x: torch.Tensor, mu_y: torch.Tensor, xx: torch.Tensor, yy: torch.Tensor, xy: torch.Tensor,
                data_range: float) -> torch.Tensor:
    """Mean SSIM per pair from the local means of ``x``, ``y``, ``x^2``, ``y^2`` and ``xy``."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    var_x, var_y, cov = xx - mu_x**2, yy - mu_y**2, xy - mu_x * mu_y
    index = (2 * mu_x * mu_y + c1) * (2 * cov + c2) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return index.mean(dim=(1, 2)).float()


def motion_scores(grey: torch.Tensor, window: int = SSIM_WINDOW, data_range: float = 255.0) -> torch.Tensor:
    """``(T,)`` motion of each 8-bit frame of ``(T, H, W)``: ``1 - SSIM`` with the frame before; 0 for the first.

    Equal to ``1 - ssim(grey[:-1], grey[1:])`` to float32 rounding, but the moments are integers: the box sums of
    ``x``, ``x^2`` and ``x_t x_{t+1}`` come from int32 integral images (exact: at most ``H W 255^2``), each frame's own
    once, and with ``n`` pixels per box the scaled moments ``n Sxx - Sx^2`` and ``n Sxy - Sx Sy`` are exact in int64;
    only the index ``(2 Sx Sy + C1 n^2)(2 (n Sxy - Sx Sy) + C2 n^2) / ((Sx^2 + Sy^2 + C1 n^2)((n Sxx - Sx^2) +
    (n Syy - Sy^2) + C2 n^2))`` is formed in float64. Less memory traffic than ``ssim``'s float64 pass: about 2x faster
    on 140 frames of 64 pixels (the motion pass's main cost).
    """
    if grey.shape[0] < 2:
        return torch.zeros(grey.shape[0])
    _check_pairs(grey[:-1], grey[1:], window)
    frames, count, n = grey.to(torch.int32), grey.shape[0], window * window
    sums = _box_sums(torch.cat([frames, frames * frames, frames[:-1] * frames[1:]]), window).long()
    sx, sxx, sxy = sums[:count], sums[count : 2 * count], sums[2 * count :]
    squares, crossed = sx * sx, sx[:-1] * sx[1:]
    variance, covariance = (n * sxx - squares).double(), (n * sxy - crossed).double()  # n^2 var, n^2 cov
    squares, crossed = squares.double(), crossed.double()
    c1, c2 = (0.01 * data_range) ** 2 * n * n, (0.03 * data_range) ** 2 * n * n
    numerator = (2 * crossed + c1) * (2 * covariance + c2)
    denominator = (squares[:-1] + squares[1:] + c1) * (variance[:-1] + variance[1:] + c2)
    similarity = (numerator / denominator).mean(dim=(1, 2)).float()
    return torch.cat([torch.zeros(1), (1 - similarity).clamp(min=0)])


def _box_sums(images: torch.Tensor, window: int) -> torch.Tensor:
    """Integer sum of every valid ``window x window`` box of ``(N, H, W)`` integers, from one integral image."""
    total = F.pad(images, (1, 0, 1, 0)).cumsum(1, dtype=images.dtype).cumsum(2, dtype=images.dtype)
    w = window
    return total[:, w:, w:] - total[:, :-w, w:] - total[:, w:, :-w] + total[:, :-w, :-w]


def _quantiles(count: int, rng: np.random.Generator | None) -> np.ndarray:
    """One point per equal bin of ``[0, 1)``: its centre, or a uniform draw within it."""
    offsets = np.full(count, 0.5) if rng is None else rng.random(count)
    return (np.arange(count) + offsets) / count


def _distinct_ascending(indices: Sequence[int], total: int) -> list[int]:
    """Strictly increasing indices in ``[0, total)``, each moved as little as the order allows.

    Salient quantiles can land several bins on one frame (all motion in one cut); the
    fragments need distinct frames, so ties are pushed forward, then back from the end.
    """
    out = list(indices)
    for k in range(1, len(out)):
        out[k] = max(out[k], out[k - 1] + 1)
    for k in range(len(out) - 1, -1, -1):
        out[k] = min(out[k], total - len(out) + k)
    return out


class MotionIndex:
    """Each video's motion pass kept on disk: the candidate frames' times (seconds) and their motion scores.

    One ``.npz`` per video, named by a hash of the resolved path, the file's size and modification time, and the
    pass's settings (``MOTION_SIDE``, ``SSIM_WINDOW``, ``MAX_CANDIDATES``), so an edited or replaced video, or
    other settings, are scored afresh. Written atomically (a temp file, then a rename), so workers and runs can
    share a directory. An entry that cannot be read is scored again (logged) and rewritten.
    """

    VERSION = 1

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def entry(self, path: str | Path) -> Path:
        """The file that holds (or would hold) ``path``'s pass."""
        stat = os.stat(path)
        identity = "|".join(str(part) for part in (
            Path(path).resolve(), stat.st_size, stat.st_mtime_ns, MOTION_SIDE, SSIM_WINDOW, MAX_CANDIDATES, self.VERSION))
        return self.directory / f"{hashlib.sha1(identity.encode()).hexdigest()}.npz"

    def get(self, path: str | Path) -> tuple[list[float], np.ndarray] | None:
        """``(times, scores)`` of the video's candidates, or ``None`` when it has not been scored."""
        entry = self.entry(path)
        if not entry.exists():
            return None
        try:
            with np.load(entry, allow_pickle=False) as data:
                times, scores = data["times"], data["scores"]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
            log.warning("%s: motion index entry %s unreadable (%s); scoring the video again", path, entry, error)
            return None
        if times.ndim != 1 or times.shape != scores.shape:
            log.warning("%s: motion index entry %s holds %s times for %s scores; scoring the video again",
                        path, entry, times.shape, scores.shape)
            return None
        return times.tolist(), scores

    def put(self, path: str | Path, times: Sequence[float], scores: np.ndarray) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        entry = self.entry(path)
        handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=f".{entry.stem}.", suffix=".npz")
        try:
            with os.fdopen(handle, "wb") as file:
                np.savez(file, times=np.asarray(times, dtype=np.float64), scores=np.asarray(scores, dtype=np.float32))
            os.replace(temporary, entry)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def salient_indices(motion: torch.Tensor | np.ndarray, count: int, rng: np.random.Generator | None = None) -> list[int]:
    """``count`` distinct ascending frame indices at the quantiles of ``sqrt(motion)``.

    Frame ``i`` owns the mass ``sqrt(motion[i]) / sum``; a quantile picks the first frame
    whose cumulative mass reaches it. Zero motion everywhere falls back to uniform bins.
    """
    weights = np.sqrt(np.clip(np.asarray(motion, dtype=np.float64), 0, None))
    total, mass = len(weights), weights.sum()
    if not 1 <= count <= total:
        raise ValueError(f"cannot take {count} distinct frames of {total}")
    if mass <= 0:
        return uniform_indices(total, count, rng)
    cumulative = np.cumsum(weights / mass)
    picks = np.searchsorted(cumulative, _quantiles(count, rng), side="left")
    return _distinct_ascending(np.minimum(picks, total - 1).tolist(), total)


def uniform_indices(total: int, count: int, rng: np.random.Generator | None = None) -> list[int]:
    """``count`` distinct ascending indices at the quantiles of equal bins over ``total`` frames."""
    if not 1 <= count <= total:
        raise ValueError(f"cannot take {count} distinct frames of {total}")
    return _distinct_ascending(np.floor(_quantiles(count, rng) * total).astype(int).tolist(), total)


def random_indices(total: int, count: int, rng: np.random.Generator) -> list[int]:
    """``count`` distinct frames drawn without replacement, ascending."""
    if not 1 <= count <= total:
        raise ValueError(f"cannot take {count} distinct frames of {total}")
    return sorted(rng.choice(total, size=count, replace=False).tolist())


class _LateSeek(Exception):
    """A seek or rewind landed past its target (MPEG-TS seeks by bytes and can land a GOP late)."""


def _landed_late(time: float, target: float, stream: av.video.stream.VideoStream) -> bool:
    """Whether the first frame decoded after a seek to ``target`` starts later than a frame interval after it."""
    rate = float(stream.average_rate or stream.guessed_rate or 0)
    return time > max(target, 0.0) + PTS_TOLERANCE + (1.5 / rate if rate else 0.5)


class _Timeline:
    """Converts between stream pts and seconds from the stream start."""

    def __init__(self, stream: av.video.stream.VideoStream) -> None:
        self.time_base: Fraction = stream.time_base
        self.start_pts = stream.start_time or 0

    def seconds(self, frame: av.VideoFrame) -> float:
        return float((frame.pts - self.start_pts) * self.time_base)

    def pts(self, seconds: float) -> int:
        return self.start_pts + int(seconds / self.time_base)


def _decoded(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> Iterator[av.VideoFrame]:
    """Decoded frames that carry a pts, in presentation order."""
    return (frame for frame in container.decode(stream) if frame.pts is not None)


def _scan(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, targets: list[float]
) -> list[av.VideoFrame]:
    """One sequential pass; the frame on screen at each (ascending) target."""
    timeline, picked, previous = _Timeline(stream), [], None
    for frame in _decoded(container, stream):
        time = timeline.seconds(frame)
        if previous is None and targets and _landed_late(time, 0.0, stream):
            raise _LateSeek  # a rewind left the stream's first frames behind
        while len(picked) < len(targets) and time > targets[len(picked)] + PTS_TOLERANCE:
            picked.append(frame if previous is None else previous)
        if len(picked) == len(targets):
            return picked
        previous = frame
    return [] if previous is None else picked + [previous] * (len(targets) - len(picked))


def _frame_at(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, target: float
) -> tuple[av.VideoFrame | None, float]:
    """Seek to the keyframe before ``target`` and decode to it.

    Returns the frame on screen at ``target`` and the time of the frame after it
    (``inf`` at the end of the stream), so later targets before that time reuse it.
    """
    timeline = _Timeline(stream)
    container.seek(timeline.pts(max(target, 0.0)), stream=stream, backward=True)
    previous = None
    for frame in _decoded(container, stream):
        time = timeline.seconds(frame)
        if previous is None and _landed_late(time, target, stream):
            raise _LateSeek
        if time > target + PTS_TOLERANCE:
            return (frame if previous is None else previous), time
        previous = frame
    return previous, math.inf


def _seek(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, targets: list[float]
) -> list[av.VideoFrame]:
    """One seek per distinct frame; the frame on screen at each (ascending) target."""
    picked, frame, next_time = [], None, -math.inf
    for target in targets:
        if frame is None or target + PTS_TOLERANCE >= next_time:
            frame, next_time = _frame_at(container, stream, target)
            if frame is None:
                return []
        picked.append(frame)
    return picked


def _gop_length(container: av.container.InputContainer, stream: av.video.stream.VideoStream, limit: int) -> int | None:
    """Packets from the first keyframe to the next, ``None`` if none within ``limit``; rewinds.

    Only the first GOP is read, so this costs a few milliseconds however long the video.
    """
    count, seen_key, found = 0, False, False
    for packet in container.demux(stream):
        if packet.is_keyframe and seen_key:
            found = True
            break
        seen_key = seen_key or packet.is_keyframe
        count += seen_key
        if count >= limit:
            break
    container.seek(_Timeline(stream).start_pts, stream=stream, backward=True)
    return count if found else None


def _prefer_seek(info: VideoInfo, targets: list[float], gop: int) -> bool:
    """Whether seeking is expected to decode fewer frames than scanning.

    Scan decodes every frame up to the last target. Seek decodes, per distinct target
    frame, on average half a GOP plus ``SEEK_OVERHEAD_FRAMES``.
    """
    scan_cost = min(targets[-1] * info.fps + 1, info.num_frames)
    distinct = len({min(int(t * info.fps + PTS_TOLERANCE), info.num_frames - 1) for t in targets})
    seek_cost = distinct * (min(gop, info.num_frames) / 2 + SEEK_OVERHEAD_FRAMES)
    return seek_cost < scan_cost


def _quarter_turns(frame: av.VideoFrame) -> int:
    """Counter-clockwise quarter turns that put a decoded frame upright: its display matrix's rotation (phone
    footage), rounded to a multiple of 90 degrees."""
    return round((frame.rotation or 0) / 90) % 4


def _to_array(frame: av.VideoFrame, size: tuple[int, int] | None) -> np.ndarray:
    """``uint8 (H, W, 3)`` RGB as displayed: resized during conversion to ``size`` (``(height, width)`` of the
    upright frame), then turned upright."""
    turns = _quarter_turns(frame)
    height, width = size if size else (None, None)
    if turns % 2:  # the coded frame is the displayed one on its side
        height, width = width, height
    array = frame.to_ndarray(format="rgb24", width=width, height=height)
    return np.ascontiguousarray(np.rot90(array, turns)) if turns else array


def _to_tensor(frames: list[av.VideoFrame], size: tuple[int, int] | None) -> torch.Tensor:
    """``uint8 (T, H, W, 3)`` RGB as displayed (rotation applied), resizing during conversion; repeated frames
    convert once."""
    arrays: dict[int, np.ndarray] = {}
    for frame in frames:
        if id(frame) not in arrays:
            arrays[id(frame)] = _to_array(frame, size)
    return torch.from_numpy(np.stack([arrays[id(frame)] for frame in frames]))


def read_video(
    path: str | Path,
    fps: float | None = None,
    num_frames: int | None = None,
    max_frames: int | None = None,
    size: tuple[int, int] | None = None,
    method: Method = "auto",
    strategy: Strategy = "uniform",
    rng: np.random.Generator | None = None,
    on_short: Literal["fewer", "raise"] = "fewer",
    motion_index: MotionIndex | None = None,
) -> Clip:
    """Decode the frames on screen at the times ``sample_timestamps`` picks, or the frames a strategy picks.

    Args:
        path: video file.
        fps: sample ``fps`` frames per second (see ``sample_timestamps``).
        num_frames: sample this many frames at bin centres.
        max_frames: cap on the number of frames.
        size: ``(height, width)`` of the upright frame to resize to while converting, or ``None`` for native.
        method: ``"scan"``, ``"seek"`` or ``"auto"`` (cheaper of the two by decoded frames).
        strategy: ``"uniform"`` (the times above), ``"motion"`` or ``"random"``: as many
            distinct frames as ``fps``/``num_frames``/``max_frames`` ask for, chosen by motion
            salience or at random (see the module docstring).
        rng: for ``motion``, draw within the quantile bins (training) instead of taking their
            centres; for ``random``, the draw (default: seeded by the path, so reproducible).
        on_short: a ``motion``/``random`` video with fewer distinct frames than asked:
            ``"fewer"`` returns them all (logged), ``"raise"`` raises ``ShortVideoError``.
        motion_index: for ``motion``, where each video's motion pass is kept (see ``MotionIndex``).

    Raises:
        VideoError: the file is missing, unreadable, corrupt, empty or has no video stream.
        ShortVideoError: too few frames for the strategy, with ``on_short="raise"``.
        ValueError: bad sampling arguments or ``size``.
    """
    _check_options(size, method, strategy, on_short)
    with _open_video(path) as (container, stream):
        info = _info(path, container, stream)
        targets = sample_timestamps(info.duration, fps, num_frames, max_frames)
        stream.thread_type = "AUTO"
        try:
            if strategy == "uniform":
                picked = _decode_targets(container, stream, info, targets, method)
            else:
                picked = _select(path, (container, stream, info), len(targets), method, strategy, rng, on_short,
                                 motion_index)
            frames = _to_tensor(picked, size) if picked else None
            times = [_Timeline(stream).seconds(frame) for frame in picked]
            if picked and strategy == "uniform":
                _check_length(path, (container, stream, info), targets, max(times))
        except av.FFmpegError as error:
            raise VideoError(path, f"decoding failed ({error})") from error
    if frames is None:
        raise VideoError(path, "no decodable frames")
    return Clip(frames, torch.tensor(times, dtype=torch.float64), info.duration, str(path))


TRUNCATION_TOLERANCE = 1.0
"""Seconds (at least two frame intervals) by which the last decoded frame may precede the last sampled time."""


def _check_length(path: str | Path, opened: tuple[av.container.InputContainer, av.video.stream.VideoStream, VideoInfo],
                  targets: list[float], last: float) -> None:
    """Raise :class:`TruncatedVideoError` when the frame on screen at the last target is more than the tolerance
    older than it and no frame follows it: the stream ends before the length the container states, and later
    targets got its last frame again. A held frame that a later one ends (variable frame rate) passes."""
    container, stream, info = opened
    tolerance = max(TRUNCATION_TOLERANCE, 2 / info.fps if info.fps else 0.0)
    if not targets or last >= targets[-1] - tolerance:
        return
    timeline = _Timeline(stream)
    container.seek(timeline.pts(last), stream=stream, backward=True)
    if any(timeline.seconds(frame) > last + PTS_TOLERANCE for frame in _decoded(container, stream)):
        return
    raise TruncatedVideoError(
        path, f"decoded frames end at {last:.2f} s but the container says {info.duration:.2f} s "
              f"(sampled up to {targets[-1]:.2f} s): the file is cut short")


def _check_options(size: tuple[int, int] | None, method: str, strategy: str, on_short: str) -> None:
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise ValueError(f"size must be (height, width) with positive values, got {size}")
    if method not in ("auto", "scan", "seek"):
        raise ValueError(f"method must be 'auto', 'scan' or 'seek', got {method!r}")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if on_short not in ("fewer", "raise"):
        raise ValueError(f"on_short must be 'fewer' or 'raise', got {on_short!r}")


def _candidates(container: av.container.InputContainer, stream: av.video.stream.VideoStream, info: VideoInfo,
                method: Method) -> list[av.VideoFrame]:
    """Every distinct frame (or ``MAX_CANDIDATES`` evenly spaced ones), each decoded once and held."""
    every = sample_timestamps(info.duration, fps=info.fps, max_frames=MAX_CANDIDATES) if info.fps else (
        sample_timestamps(info.duration, num_frames=MAX_CANDIDATES))
    seen: dict[int, av.VideoFrame] = {}
    for frame in _decode_targets(container, stream, info, every, method):
        seen.setdefault(id(frame), frame)
    return list(seen.values())


def _grey(frames: list[av.VideoFrame]) -> torch.Tensor:
    """``(T, MOTION_SIDE, MOTION_SIDE)`` 8-bit grey images for the motion pass.

    Planar 8-bit YUV (what H.264, VP9 and MPEG-4 decode to) is grey already in its luma plane: it is read in place and
    area-resized in one batched call, with limited-range luma (16-235) stretched to 0-255 as a conversion to grey does.
    On freshly decoded frames that took 0.16 ms a frame here against 0.85 ms through libswscale, which other pixel
    formats, and streams whose frame size or format changes midway, still take."""
    first = frames[0]
    alike = len({(f.width, f.height, f.format.name) for f in frames}) == 1
    if not (alike and first.format.name.startswith(("yuv4", "yuvj4")) and first.format.components[0].bits == 8):
        return torch.from_numpy(np.stack([
            f.to_ndarray(format="gray", width=MOTION_SIDE, height=MOTION_SIDE, interpolation="AREA") for f in frames]))
    luma = np.stack([np.frombuffer(f.planes[0], np.uint8).reshape(-1, f.planes[0].line_size)[: f.height, : f.width]
                     for f in frames])
    grey = F.interpolate(torch.from_numpy(luma)[:, None].float(), size=(MOTION_SIDE, MOTION_SIDE), mode="area")[:, 0]
    if not (first.format.name.startswith("yuvj") or first.color_range == 2):  # 2: full (JPEG) range
        grey = (grey - 16) * (255 / 219)
    return grey.round().clamp(0, 255).to(torch.uint8)


def _select(
    path: str | Path,
    opened: tuple[av.container.InputContainer, av.video.stream.VideoStream, VideoInfo],
    count: int,
    method: Method,
    strategy: Strategy,
    rng: np.random.Generator | None,
    on_short: str,
    index: MotionIndex | None = None,
) -> list[av.VideoFrame]:
    """``count`` frames of one decode of the candidates, chosen by ``strategy``; with a motion ``index`` that
    knows the video, the chosen candidates alone, decoded at their times."""
    known = index.get(path) if index is not None and strategy == "motion" else None
    if known is not None:
        times, scores = known
        if not times:
            return []
        chosen = salient_indices(scores, _drawable(path, len(times), count, on_short), rng)
        return _decode_targets(*opened, [times[i] for i in chosen], method)
    candidates = _candidates(*opened, method)
    if not candidates:
        return []
    count = _drawable(path, len(candidates), count, on_short)
    if strategy == "random":
        chosen = random_indices(len(candidates), count, rng or np.random.default_rng(zlib.crc32(str(path).encode())))
    else:
        scores = motion_scores(_grey(candidates))
        if index is not None:
            timeline = _Timeline(opened[1])
            index.put(path, [timeline.seconds(frame) for frame in candidates], scores.numpy())
        chosen = salient_indices(scores, count, rng)
    return [candidates[i] for i in chosen]


def _drawable(path: str | Path, available: int, count: int, on_short: str) -> int:
    """How many distinct frames a draw takes: ``count``, or all ``available`` ones when fewer (``on_short``)."""
    if available >= count:
        return count
    if on_short == "raise":
        raise ShortVideoError(path, f"{available} distinct frames, {count} asked")
    log.warning("%s: %d distinct frames, %d asked; taking all of them", path, available, count)
    return available


def _decode_targets(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    info: VideoInfo,
    targets: list[float],
    method: Method,
) -> list[av.VideoFrame]:
    """Dispatch to ``_scan`` or ``_seek``, resolving ``auto`` by the cost model. When a seek or rewind lands past
    its target, or past the end so that nothing decodes (MPEG-TS seeks by bytes; a 4 s clip lost every frame), the
    video is decoded again from a freshly opened file, in one pass."""
    try:
        if method == "auto":
            gop = _gop_length(container, stream, limit=GOP_PROBE_LIMIT) or info.num_frames
            method = "seek" if _prefer_seek(info, targets, gop) else "scan"
        picked = _seek(container, stream, targets) if method == "seek" else _scan(container, stream, targets)
        if not picked:
            raise _LateSeek
        return picked
    except _LateSeek:
        log.info("%s: a seek landed past its target; decoding from the start instead", info.path)
        with _open_video(info.path) as (fresh, fresh_stream):
            fresh_stream.thread_type = "AUTO"
            return _scan(fresh, fresh_stream, targets)

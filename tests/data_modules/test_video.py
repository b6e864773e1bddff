"""The video reader returns the frame on screen at each target time, by either method."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest
import torch

from data_modules.video import VideoError, probe, read_video, sample_timestamps
from tests.data_modules.conftest import index_frame


@pytest.fixture
def indices(decode_index):
    """Frame indices drawn in a clip's frames."""
    return lambda clip: [decode_index(frame.numpy()) for frame in clip.frames]


def test_probe_reports_stream_facts(index_video: Path) -> None:
    info = probe(index_video)
    assert (info.duration, info.fps, info.num_frames) == (4.0, 10.0, 40)
    assert (info.height, info.width) == (32, 48)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"duration": 4.0, "fps": 1.0}, [0.0, 1.0, 2.0, 3.0]),
        ({"duration": 2.5, "fps": 2.0}, [0.0, 0.5, 1.0, 1.5, 2.0]),
        ({"duration": 4.0, "num_frames": 4}, [0.5, 1.5, 2.5, 3.5]),
        ({"duration": 10.0, "fps": 2.0, "max_frames": 5}, [1.0, 3.0, 5.0, 7.0, 9.0]),
        ({"duration": 4.0, "num_frames": 8, "max_frames": 2}, [1.0, 3.0]),
    ],
)
def test_sample_timestamps(kwargs: dict, expected: list[float]) -> None:
    assert sample_timestamps(**kwargs) == pytest.approx(expected)


@pytest.mark.parametrize("kwargs", [{}, {"fps": 1.0, "num_frames": 2}, {"fps": 0.0}, {"num_frames": 0}])
def test_sample_timestamps_rejects_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        sample_timestamps(4.0, **kwargs)


@pytest.mark.parametrize("method", ["scan", "seek", "auto"])
def test_fps_sampling_returns_frame_on_screen(indices, index_video: Path, method: str) -> None:
    """Targets k/3 s on a 10 fps clip: frame floor(10k/3), e.g. 0.667 s -> frame 6."""
    clip = read_video(index_video, fps=3.0, method=method)
    expected = [int(10 * k / 3 + 1e-9) for k in range(12)]
    assert indices(clip) == expected
    assert clip.timestamps.dtype == torch.float64
    assert clip.timestamps.tolist() == pytest.approx([i / 10 for i in expected])
    assert clip.frames.dtype == torch.uint8 and clip.frames.shape == (12, 32, 48, 3)
    assert clip.duration == 4.0


@pytest.mark.parametrize("method", ["scan", "seek"])
def test_count_sampling_takes_bin_centres(indices, index_video: Path, method: str) -> None:
    """5 bins over 4 s: centres 0.4, 1.2, 2.0, 2.8, 3.6 s -> frames 4, 12, 20, 28, 36."""
    clip = read_video(index_video, num_frames=5, method=method)
    assert indices(clip) == [4, 12, 20, 28, 36]


def test_scan_and_seek_return_identical_frames(tmp_path: Path, write_video) -> None:
    path = write_video(tmp_path / "gop5.mp4", num_frames=60, fps=12, gop=5)
    for kwargs in ({"fps": 1.0}, {"fps": 5.0}, {"num_frames": 7}, {"num_frames": 60}):
        scan, seek = (read_video(path, method=m, **kwargs) for m in ("scan", "seek"))
        assert torch.equal(scan.frames, seek.frames), kwargs
        assert torch.equal(scan.timestamps, seek.timestamps), kwargs


def test_resize_during_decode(indices, index_video: Path) -> None:
    clip = read_video(index_video, num_frames=3, size=(16, 24))
    assert clip.frames.shape == (3, 16, 24, 3)
    assert indices(clip) == [6, 20, 33]


def test_dense_targets_repeat_the_frame_on_screen(indices, index_video: Path) -> None:
    """20 fps on a 10 fps clip: each frame is on screen for two targets."""
    clip = read_video(index_video, fps=20.0, method="seek")
    assert indices(clip)[:6] == [0, 0, 1, 1, 2, 2]


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match=r"nowhere\.mp4"):
        read_video(tmp_path / "nowhere.mp4", fps=1.0)


def test_random_bytes_are_named(tmp_path: Path) -> None:
    path = tmp_path / "noise.mp4"
    path.write_bytes(bytes(range(256)) * 64)
    with pytest.raises(VideoError, match=r"noise\.mp4"):
        read_video(path, fps=1.0)


def test_truncated_mp4_is_named(tmp_path: Path, index_video: Path) -> None:
    path = tmp_path / "truncated.mp4"
    path.write_bytes(index_video.read_bytes()[: index_video.stat().st_size // 2])
    with pytest.raises(VideoError, match=r"truncated\.mp4"):
        read_video(path, fps=1.0)


def test_empty_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.touch()
    with pytest.raises(VideoError, match=r"empty\.mp4.*0 bytes"):
        probe(path)


def test_zero_frame_video_is_named(tmp_path: Path) -> None:
    path = tmp_path / "zero.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
    with pytest.raises(VideoError, match=r"zero\.mp4"):
        read_video(path, fps=1.0)
    with pytest.raises(VideoError, match=r"zero\.mp4"):
        probe(path)


def test_audio_only_file_has_no_video_stream(tmp_path: Path) -> None:
    path = tmp_path / "audio.m4a"
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(torch.zeros(1, 1024).numpy(), format="fltp", layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    with pytest.raises(VideoError, match=r"audio\.m4a.*no video stream"):
        probe(path)


def test_a_video_is_found_whatever_its_container(tmp_path):
    """Annotations name <id>.mp4; a dataset that ships <id>.mkv (or .webm, .ts, ...) is found, one candidate only."""
    from data_modules.video import VideoError, resolve_video

    (tmp_path / "clip.mkv").write_bytes(b"x")
    assert resolve_video(tmp_path / "clip.mp4") == tmp_path / "clip.mkv"
    assert resolve_video(tmp_path / "clip") == tmp_path / "clip.mkv"
    (tmp_path / "clip.webm").write_bytes(b"x")
    with pytest.raises(VideoError, match=r"2 with its name: \['clip.mkv', 'clip.webm'\]"):
        resolve_video(tmp_path / "clip.mp4")
    with pytest.raises(VideoError, match="no such video file"):
        resolve_video(tmp_path / "other.mp4")


def test_each_unreadable_video_names_its_kind(tmp_path: Path, index_video: Path) -> None:
    """The kind is what a counted skip and ``groundlight data check`` file the video under."""
    (tmp_path / "stub.mp4").write_bytes(index_video.read_bytes()[:200])
    (tmp_path / "blank.mp4").touch()
    (tmp_path / "folder.mp4").mkdir()
    kinds = {}
    for name in ("stub.mp4", "blank.mp4", "folder.mp4", "gone.mp4"):
        with pytest.raises(VideoError, match=name) as caught:
            read_video(tmp_path / name, fps=1.0)
        kinds[name] = caught.value.kind
    assert kinds == {"stub.mp4": "corrupt", "blank.mp4": "empty", "folder.mp4": "not_a_file", "gone.mp4": "missing"}


@pytest.mark.parametrize("method", ["scan", "seek", "auto"])
def test_a_short_mpeg_ts_whose_seeks_decode_nothing_still_decodes(tmp_path, method):
    """4 s of flat frames at x264's default preset make a few-KB MPEG-TS file; a seek, and the rewind after the GOP
    probe, landed past every frame (TS seeks by bytes), so seek and auto mode raised "no decodable frames". A seek or
    rewind that decodes nothing now falls back to one pass from the start."""
    import numpy as np

    path = tmp_path / "short.ts"
    with av.open(str(path), "w", format="mpegts") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        for i in range(40):
            frame = av.VideoFrame.from_ndarray(np.full((32, 48, 3), 6 * i, dtype=np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    clip = read_video(path, fps=1.0, method=method)
    assert clip.timestamps.tolist() == [0.0, 1.0, 2.0, 3.0]
    brightness = [float(f.float().mean()) for f in clip.frames]
    assert brightness == sorted(brightness) and brightness[-1] - brightness[0] > 100


@pytest.mark.parametrize("method", ["scan", "seek", "auto"])
def test_mpeg_ts_keeps_its_first_seconds_whatever_the_method(tmp_path, method):
    """MPEG-TS seeks land a GOP late: seek mode raised "no decodable frames" and auto mode lost the first 5 s
    (timestamps 5, 5, 5, 5, 5, 5, 6, ...). A seek or rewind that lands late now falls back to one pass from the start."""
    import av
    import numpy as np

    from data_modules.video import read_video

    path = tmp_path / "clip.ts"
    with av.open(str(path), "w", format="mpegts") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        stream.options = {"g": "50"}
        for i in range(100):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 2 * i, dtype=np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    clip = read_video(path, fps=1.0, method=method)
    assert clip.timestamps.tolist() == [float(t) for t in range(10)]
    brightness = [float(f.float().mean()) for f in clip.frames]
    assert brightness == sorted(brightness) and brightness[0] < 5 and brightness[-1] > 170


def _marked_video(path: Path, rotation: int) -> Path:
    """A 32x48 (HxW) clip whose top-left 8x8 corner is white, with a display matrix turning it ``rotation``
    degrees counter-clockwise (what a phone writes for footage held sideways)."""
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=5)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        stream.set_display_rotation(rotation)
        image = np.zeros((32, 48, 3), np.uint8)
        image[:8, :8] = 255
        for _ in range(5):
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.mark.parametrize(("rotation", "shape", "corner"), [
    (0, (32, 48), (0, 0)), (90, (48, 32), (1, 0)), (180, (32, 48), (1, 1)), (270, (48, 32), (0, 1)),
])
def test_rotation_metadata_is_applied(tmp_path: Path, rotation: int, shape: tuple[int, int], corner: tuple[int, int]) -> None:
    """The frames come upright: turned by the display matrix (counter-clockwise), the white corner moves with
    them, and ``size`` is the upright frame's (height, width)."""
    path = _marked_video(tmp_path / f"r{rotation}.mp4", rotation)
    frame = read_video(path, fps=1.0).frames[0].float().mean(-1)
    assert tuple(frame.shape) == shape
    bright = (frame > 128).nonzero().float().mean(0)  # centre of the white corner
    assert tuple(int(v > s / 2) for v, s in zip(bright.tolist(), shape)) == corner
    resized = read_video(path, fps=1.0, size=(24, 16)).frames
    assert tuple(resized.shape[1:3]) == (24, 16)


def _timed_video(path: Path, times: list[float], movflags: str = "") -> Path:
    """An H.264 clip (ultrafast) at time base 1/10 s with one index frame per time in ``times``."""
    with av.open(str(path), "w", options={"movflags": movflags} if movflags else {}) as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        stream.options = {"preset": "ultrafast", "threads": "1"}
        for index, time in enumerate(times):
            frame = av.VideoFrame.from_ndarray(index_frame(index), format="rgb24")
            frame.pts, frame.time_base = round(time * 10), Fraction(1, 10)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


@pytest.mark.parametrize("method", ["scan", "seek"])
def test_a_file_cut_short_is_an_error_not_a_repeated_last_frame(tmp_path: Path, method: str) -> None:
    """The index (moov at the front) says 10 s; half the bytes hold ~4 s of frames. The reader used to return
    the last decodable frame for every later time."""
    from data_modules.video import TruncatedVideoError

    whole = _timed_video(tmp_path / "whole.mp4", [i / 10 for i in range(100)], movflags="faststart")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert probe(cut).duration == 10.0
    assert read_video(whole, fps=1.0, method=method).timestamps.tolist() == [float(t) for t in range(10)]
    with pytest.raises(TruncatedVideoError, match=r"cut\.mp4: decoded frames end at .* the container says 10\.00 s"):
        read_video(cut, fps=1.0, method=method)


def test_a_held_frame_that_a_later_frame_ends_is_not_a_cut(tmp_path: Path) -> None:
    """Variable frame rate: frames 0-3.9 s, then one at 9.9 s; the frame of 3.9 s is on screen until then."""
    path = _timed_video(tmp_path / "held.mp4", [i / 10 for i in range(40)] + [9.9])
    clip = read_video(path, fps=1.0)
    assert clip.timestamps[-1] == pytest.approx(3.9) and len(clip.timestamps) == 10

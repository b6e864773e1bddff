"""Fixtures for data tests: tiny mp4s whose frames say their own index."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

LEVEL_STEP = 16


def index_frame(index: int, height: int = 32, width: int = 48) -> np.ndarray:
    """Left half grey ``16 * (index % 16) + 8``, right half ``16 * (index // 16) + 8``."""
    frame = np.empty((height, width, 3), np.uint8)
    frame[:, : width // 2] = LEVEL_STEP * (index % 16) + 8
    frame[:, width // 2 :] = LEVEL_STEP * (index // 16) + 8
    return frame


def frame_index(frame: np.ndarray) -> int:
    """Inverse of ``index_frame`` on a decoded (lossy) frame."""
    width = frame.shape[1]
    low = round((float(frame[:, : width // 2].mean()) - 8) / LEVEL_STEP)
    high = round((float(frame[:, width // 2 :].mean()) - 8) / LEVEL_STEP)
    return 16 * high + low


def write_index_video(path: Path, num_frames: int, fps: int, gop: int) -> Path:
    """H.264 mp4 with ``num_frames`` frames, frame ``i`` drawn by ``index_frame(i)``."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        stream.codec_context.gop_size = gop
        stream.options = {"preset": "ultrafast", "threads": "1", "x264-params": "scenecut=0"}
        for index in range(num_frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(index_frame(index), format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="session")
def write_video():
    """``write_index_video``, for tests that need their own clip."""
    return write_index_video


@pytest.fixture(scope="session")
def decode_index():
    """``frame_index``, to read a decoded frame's index."""
    return frame_index


@pytest.fixture(scope="session")
def index_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 fps, 40 frames (4 s), GOP 12."""
    return write_index_video(tmp_path_factory.mktemp("video") / "index.mp4", num_frames=40, fps=10, gop=12)

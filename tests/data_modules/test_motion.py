"""Motion-salient sampling: SSIM by hand, the quantile picks, and one decode per video."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from data_modules import video
from data_modules.datamodule import FrameSampling
from data_modules.video import (
    ShortVideoError,
    motion_scores,
    read_video,
    salient_indices,
    ssim,
    uniform_indices,
)

C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def test_ssim_of_two_constant_images() -> None:
    """Constant a = 100 and b = 150: no variance, so SSIM = (2ab + C1) / (a^2 + b^2 + C1)
    = (30000 + 6.5025) / (32500 + 6.5025) = 0.923092..."""
    x, y = torch.full((1, 16, 16), 100.0), torch.full((1, 16, 16), 150.0)
    assert ssim(x, y).item() == pytest.approx((2 * 100 * 150 + C1) / (100**2 + 150**2 + C1), abs=1e-6)
    assert ssim(x, y).item() == pytest.approx(0.923092, abs=1e-6)


def test_ssim_of_stripes_shifted_by_one_column() -> None:
    """Columns alternate 0/255; shifted by one, y = 255 - x. Any 8-wide window holds four of each:
    mu = 127.5, sigma^2 = 127.5^2, cov = -127.5^2, so SSIM = (C2 - 2 * 127.5^2) / (C2 + 2 * 127.5^2)
    = -32453.9775 / 32571.0225 = -0.996406..."""
    stripes = (torch.arange(16) % 2 * 255.0).expand(16, 16)
    shifted = torch.roll(stripes, 1, dims=1)
    value = ssim(stripes[None], shifted[None], window=8).item()
    assert value == pytest.approx((C2 - 2 * 127.5**2) / (C2 + 2 * 127.5**2), abs=1e-6)
    assert value == pytest.approx(-0.996406, abs=1e-6)
    assert ssim(stripes[None], stripes[None], window=8).item() == pytest.approx(1.0)


def test_motion_scores_put_each_change_on_the_later_frame() -> None:
    frames = torch.stack([torch.full((8, 8), v) for v in (50.0, 50.0, 200.0, 200.0)])
    scores = motion_scores(frames)
    assert scores[[0, 1, 3]].tolist() == [0.0, 0.0, 0.0]
    assert scores[2].item() == pytest.approx(1 - (2 * 50 * 200 + C1) / (50**2 + 200**2 + C1))


def test_motion_scores_equal_one_minus_pairwise_ssim() -> None:
    frames = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (6, 20, 24))).float()
    expected = 1 - ssim(frames[:-1], frames[1:])
    assert torch.allclose(motion_scores(frames)[1:], expected.clamp(min=0), atol=1e-6)


def test_salient_picks_the_quantiles_of_root_motion() -> None:
    """Motion 0, 4, 0, 0, 16, 0 → sqrt 2, 4 → mass 1/3 on frame 1, 2/3 on frame 4; three bins'
    centres 1/6, 1/2, 5/6 land on frames 1, 4, 4, and the tie moves to frame 5."""
    assert salient_indices([0, 4, 0, 0, 16, 0], 3) == [1, 4, 5]


def test_salient_draws_within_bins_with_an_rng() -> None:
    motion = np.linspace(0, 1, 50) ** 2
    draws = {tuple(salient_indices(motion, 4, np.random.default_rng(seed))) for seed in range(20)}
    assert len(draws) > 1
    assert all(list(d) == sorted(set(d)) for d in draws)
    assert salient_indices(motion, 4, np.random.default_rng(3)) == salient_indices(motion, 4, np.random.default_rng(3))


def test_static_video_falls_back_to_uniform() -> None:
    assert salient_indices(np.zeros(10), 3) == uniform_indices(10, 3) == [1, 5, 8]
    assert salient_indices(np.zeros(4), 4) == [0, 1, 2, 3]


def test_concentrated_motion_still_gives_distinct_frames() -> None:
    assert salient_indices([0, 0, 0, 0, 0, 0, 0, 9], 3) == [5, 6, 7]


def _write(path: Path, frames: list[np.ndarray], fps: int = 10) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width, stream.pix_fmt = frames[0].shape[0], frames[0].shape[1], "yuv420p"
        stream.options = {"preset": "ultrafast", "threads": "1"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def _moving_box(still_before: int, moving: int, still_after: int) -> list[np.ndarray]:
    """A grey 64x64 clip whose white box moves only during the middle frames."""
    frames = []
    for k in range(still_before + moving + still_after):
        step = min(max(k - still_before, 0), moving)
        frame = np.full((64, 64, 3), 90, np.uint8)
        frame[20:36, 2 + 3 * step : 18 + 3 * step] = 250
        frames.append(frame)
    return frames


@pytest.fixture(scope="module")
def burst_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 frames at 10 fps; the box moves in frames 20-29 only."""
    return _write(tmp_path_factory.mktemp("motion") / "burst.mp4", _moving_box(20, 10, 10))


def test_motion_strategy_picks_the_moving_frames(burst_video: Path) -> None:
    salient = read_video(burst_video, num_frames=4, strategy="motion")
    uniform = read_video(burst_video, num_frames=4)
    moving = [20 <= round(t * 10) <= 30 for t in salient.timestamps.tolist()]
    assert moving == [True] * 4
    assert [round(t * 10) for t in uniform.timestamps.tolist()] == [5, 15, 25, 35]
    assert salient.frames.shape == (4, 64, 64, 3)


def _count_decoded(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The pts of every frame the reader decodes from here on."""
    decoded = []
    original = video._decoded

    def counting(container, stream):
        for frame in original(container, stream):
            decoded.append(frame.pts)
            yield frame

    monkeypatch.setattr(video, "_decoded", counting)
    return decoded


def test_motion_pass_decodes_each_frame_once(burst_video: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    decoded = _count_decoded(monkeypatch)
    read_video(burst_video, num_frames=6, strategy="motion", size=(32, 32))
    assert len(decoded) == len(set(decoded)) <= 40


def test_random_strategy_is_reproducible_and_distinct(burst_video: Path) -> None:
    first = read_video(burst_video, num_frames=5, strategy="random").timestamps.tolist()
    assert first == read_video(burst_video, num_frames=5, strategy="random").timestamps.tolist()
    assert first == sorted(set(first))
    drawn = read_video(burst_video, num_frames=5, strategy="random", rng=np.random.default_rng(1))
    assert len(set(drawn.timestamps.tolist())) == 5


def test_short_video_gives_fewer_frames_or_raises(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _write(tmp_path / "short.mp4", _moving_box(1, 3, 1))
    with caplog.at_level(logging.WARNING, logger="data_modules.video"):
        clip = read_video(path, num_frames=8, strategy="motion")
    assert clip.frames.shape[0] == 5
    assert "5 distinct frames, 8 asked" in caplog.text
    with pytest.raises(ShortVideoError, match="short.mp4: 5 distinct frames, 8 asked"):
        read_video(path, num_frames=8, strategy="motion", on_short="raise")


def test_bad_strategy_is_rejected() -> None:
    with pytest.raises(ValueError, match="strategy"):
        FrameSampling(strategy="salient")
    assert FrameSampling().strategy == "uniform"


def test_motion_grey_from_the_luma_plane_matches_a_conversion_to_grey(burst_video: Path) -> None:
    """The motion pass reads 8-bit YUV's luma plane in place (limited range stretched to 0-255) instead of converting
    each frame through libswscale: within a grey level of the conversion on average, and the fallback (any other
    pixel format) converts as before."""
    with av.open(str(burst_video)) as container:
        frames = list(container.decode(video=0))
    assert frames[0].format.name == "yuv420p"
    side = video.MOTION_SIDE
    converted = np.stack([f.to_ndarray(format="gray", width=side, height=side, interpolation="AREA") for f in frames])
    fast = video._grey(frames).numpy().astype(float)
    assert fast.shape == converted.shape and abs(fast - converted).mean() < 1.0
    assert abs(fast.mean() - converted.mean()) < 0.5  # unstretched luma: 1.6 levels off on average, 4.0 per pixel
    rgb = [av.VideoFrame.from_ndarray(f.to_ndarray(format="rgb24"), format="rgb24") for f in frames[:3]]
    expected = np.stack([f.to_ndarray(format="gray", width=side, height=side, interpolation="AREA") for f in rgb])
    assert np.array_equal(video._grey(rgb).numpy(), expected)


def _many_motions(seed: int) -> list[np.ndarray]:
    """60 frames whose box moves by a different amount every frame, so that every frame scores differently."""
    rng = np.random.default_rng(seed)
    frames, x = [], 2
    for _ in range(60):
        x = (x + int(rng.integers(0, 6))) % 44
        frame = np.full((64, 64, 3), 90, np.uint8)
        frame[20:36, x : x + 16] = 250
        frames.append(frame)
    return frames


def test_a_motion_index_gives_the_draws_of_a_fresh_pass_without_scoring_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first draw scores the video and keeps the pass; later draws, in training (within bins) and test (bin
    centres), take exactly the frames and timestamps a fresh pass takes, decode only the chosen frames, and never
    score the video again. Another strategy does not touch the index."""
    path = _write(tmp_path / "moves.mp4", _many_motions(0))
    index = video.MotionIndex(tmp_path / "index")
    draws = [(6, None, None), (6, 3, None), (9, 4, (32, 32))]  # frames, rng seed (None: bin centres), size

    def read(frames: int, seed: int | None, size: tuple[int, int] | None, **kwargs):
        rng = None if seed is None else np.random.default_rng(seed)
        return read_video(path, num_frames=frames, size=size, strategy="motion", rng=rng, **kwargs)

    fresh = [read(*draw) for draw in draws]
    first = read(*draws[0], motion_index=index)
    assert torch.equal(first.frames, fresh[0].frames) and len(list(index.directory.glob("*.npz"))) == 1

    def no_scoring(*args, **kwargs):
        raise AssertionError("the indexed video was scored again")

    monkeypatch.setattr(video, "motion_scores", no_scoring)
    decoded = _count_decoded(monkeypatch)
    for draw, expected in zip(draws, fresh):
        again = read(*draw, motion_index=index)
        assert again.timestamps.tolist() == expected.timestamps.tolist()
        assert torch.equal(again.frames, expected.frames)
    assert fresh[1].timestamps.tolist() != fresh[0].timestamps.tolist(), "the draws must differ"
    assert len(decoded) <= 3 * 60  # at most one pass over the video per draw
    random = read_video(path, strategy="random", num_frames=6, motion_index=index)
    assert len(random.timestamps) == 6 and len(list(index.directory.glob("*.npz"))) == 1


def test_a_changed_video_or_an_unreadable_entry_is_scored_again(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _write(tmp_path / "moves.mp4", _many_motions(0))
    index = video.MotionIndex(tmp_path / "index")
    read_video(path, num_frames=6, strategy="motion", motion_index=index)
    entry = index.entry(path)
    times, scores = index.get(path)
    assert entry.exists() and len(times) == len(scores) == 60
    _write(path, _many_motions(1))  # the same name, another video
    assert index.entry(path) != entry and index.get(path) is None
    replaced = read_video(path, num_frames=6, strategy="motion", motion_index=index)
    assert replaced.timestamps.tolist() == read_video(path, num_frames=6, strategy="motion").timestamps.tolist()
    index.entry(path).write_bytes(b"not an npz")
    with caplog.at_level(logging.WARNING, logger="data_modules.video"):
        assert index.get(path) is None
        again = read_video(path, num_frames=6, strategy="motion", motion_index=index)
    assert "unreadable" in caplog.text and again.timestamps.tolist() == replaced.timestamps.tolist()
    assert index.get(path) is not None, "the entry is rewritten"
    assert not list(index.directory.glob(".*")), "no temp file left behind"

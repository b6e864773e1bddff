"""The demo's model-free controls: best constant window, majority answer, shuffled videos."""

import pytest

from data_modules.samples import VideoSample
from groundlight.analysis.controls import ConstantWindow, fit_constant_window, majority_answer
from groundlight.analysis.demo import shuffled_videos


def mr(i, window, video=None):
    return VideoSample(f"s{i}", video or f"v{i}.mp4", "moment_retrieval", "the red circle appears.", windows=[window])


def test_constant_window_fits_the_shared_relative_window():
    """Every train window is the middle half of its video: [0.25, 0.75] of the duration is the exact fit (IoU 1)."""
    samples = [mr(0, (2.5, 7.5)), mr(1, (5.0, 15.0)), mr(2, (1.0, 3.0))]
    window = fit_constant_window(samples, [10.0, 20.0, 4.0], step=0.05)
    assert window.relative
    assert window.start == pytest.approx(0.25) and window.end == pytest.approx(0.75)
    assert window.predict(40.0) == pytest.approx((10.0, 30.0))


def test_constant_window_prefers_absolute_when_windows_share_seconds():
    """Windows are always [2, 4] s in videos of 10, 20 and 40 s: no relative window fits all, [2, 4] s does."""
    samples = [mr(0, (2.0, 4.0)), mr(1, (2.0, 4.0)), mr(2, (2.0, 4.0))]
    window = fit_constant_window(samples, [10.0, 20.0, 40.0], step=0.05)
    assert not window.relative
    assert window.predict(40.0) == pytest.approx((2.0, 4.0))


def test_absolute_window_is_clipped_to_the_video():
    assert ConstantWindow(2.0, 30.0, relative=False).predict(10.0) == (2.0, 10.0)


def test_majority_answer_breaks_ties_to_smallest():
    assert majority_answer([2, 1, 2, 1, 3]) == 1
    assert majority_answer([3, 3, 0]) == 3


def test_shuffled_videos_is_a_derangement_that_keeps_questions():
    samples = [mr(i, (1.0, 2.0)) for i in range(6)] + [mr(9, (0.0, 1.0), video="v0.mp4")]
    shuffled = shuffled_videos(samples, seed=0)
    assert all(a.video_path != b.video_path for a, b in zip(samples, shuffled))
    assert [s.query for s in shuffled] == [s.query for s in samples]
    assert [s.windows for s in shuffled] == [s.windows for s in samples]
    assert shuffled[0].video_path == shuffled[-1].video_path  # the same clip maps to the same other clip

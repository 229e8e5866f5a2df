"""Temporal sampling: windows cover videos, masks, random truncation, exact seconds <-> grid conversion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tadcli.data.sampling import (
    frame_stride_for,
    grid_to_seconds,
    random_truncation,
    resize_indices,
    resize_window,
    seconds_to_grid,
    segments_in_window,
    sliding_window_starts,
    sliding_windows,
    training_window,
)

# (num_frames, window_size, scale_factor, frame_stride, overlap)
SLIDING_CASES = [
    (4000, 768, 1, 4, 0.5),  # THUMOS-like: 1000 steps, two windows
    (3072, 768, 1, 4, 0.5),  # exactly one window
    (12289, 768, 2, 2, 0.5),  # 768x2 giant, ragged end
    (1000, 64, 1, 4, 0.25),  # overlap 0.25: OpenTAD's tail can miss frames; ours must not
    (997, 32, 4, 2, 0.0),  # scale factor 4, no overlap, last step partial
    (50, 64, 1, 2, 0.5),  # shorter than a window
    (1, 16, 1, 4, 0.5),  # a single frame
]


def _valid_frames(window) -> np.ndarray:
    """Frames of the window's valid steps (real frames; padding repeats the last one)."""
    scale = len(window.frame_indices) // len(window.mask)
    return window.frame_indices[: int(window.mask.sum()) * scale]


@pytest.mark.parametrize("num_frames, window_size, scale_factor, frame_stride, overlap", SLIDING_CASES)
def test_sliding_windows_cover_every_sampled_frame(num_frames, window_size, scale_factor, frame_stride, overlap):
    windows = sliding_windows(num_frames, 30.0, window_size, scale_factor, frame_stride, overlap)
    covered = np.unique(np.concatenate([_valid_frames(w) for w in windows]))
    assert covered.tolist() == list(range(0, num_frames, frame_stride))
    starts = [w.window_start_frame for w in windows]
    assert starts == sorted(set(starts)), "windows in time order, none repeated"
    for window in windows:
        assert window.frame_indices.shape == (window_size * scale_factor,)
        assert window.frame_indices.dtype == np.int64
        assert window.mask.shape == (window_size,) and window.mask.dtype == bool
        assert window.frame_indices.max() < num_frames
        # step t of the window starts at frame window_start_frame + t * snippet_stride
        steps = np.flatnonzero(window.mask)
        assert np.array_equal(
            window.frame_indices[steps * scale_factor], window.window_start_frame + steps * window.snippet_stride
        )


def test_sliding_window_starts_match_opentad_at_half_overlap():
    # OpenTAD: stride 384, the window that would pass the end is replaced by the tail window
    assert sliding_window_starts(1000, 768, 0.5) == [0, 232]
    assert sliding_window_starts(2000, 768, 0.5) == [0, 384, 768, 1152, 1232]
    # OpenTAD repeats the tail window when the video is an exact multiple; we do not
    assert sliding_window_starts(1536, 768, 0.5) == [0, 384, 768]
    assert sliding_window_starts(768, 768, 0.5) == [0]
    assert sliding_window_starts(10, 768, 0.5) == [0]
    with pytest.raises(ValueError, match="overlap"):
        sliding_window_starts(1000, 768, 1.0)


def test_short_video_window_is_padded_with_the_last_frame_and_masked():
    # 50 frames, stride 2 -> 25 candidates; scale 2 -> 13 steps valid (the 13th holds one real frame)
    (window,) = sliding_windows(50, 25.0, window_size=32, scale_factor=2, frame_stride=2, overlap=0.5)
    assert window.mask.tolist() == [True] * 13 + [False] * 19
    assert window.frame_indices[:25].tolist() == list(range(0, 50, 2))
    assert (window.frame_indices[25:] == 48).all()
    # scale factor 1: exactly one valid step per sampled frame
    (window,) = sliding_windows(50, 25.0, window_size=64, scale_factor=1, frame_stride=4, overlap=0.5)
    assert window.mask.sum() == 13 and not window.mask[13:].any()


def test_seconds_grid_seconds_round_trip_is_exact():
    rng = np.random.default_rng(0)
    segments = np.sort(rng.uniform(0, 200, size=(50, 2)), axis=1)
    for window in sliding_windows(6000, 29.97, 768, 1, 4, 0.5) + [resize_window(6000, 29.97, 200.2, 192, 4)]:
        grid = window.seconds_to_grid(segments)
        np.testing.assert_allclose(window.grid_to_seconds(grid), segments, rtol=0, atol=1e-9)
    # the same functions on torch tensors
    tensor = torch.tensor(segments)
    back = grid_to_seconds(seconds_to_grid(tensor, 25.0, 4, 1536), 25.0, 4, 1536)
    torch.testing.assert_close(back, tensor, rtol=0, atol=1e-9)


def test_grid_units_follow_the_spec():
    # sliding: step = (seconds * fps - window_start_frame) / snippet_stride
    assert seconds_to_grid(np.array([10.0]), 30.0, 4, 120)[0] == pytest.approx(45.0)
    # resize: step = seconds / duration * T, whatever the fps
    window = resize_window(num_frames=1500, fps=25.0, duration=60.0, window_size=192, scale_factor=4)
    assert window.seconds_to_grid(np.array([30.0, 60.0])) == pytest.approx([96.0, 192.0])
    assert window.mask.all() and window.frame_indices.shape == (768,)
    # clamping to the video on the way back
    assert grid_to_seconds(np.array([-3.0, 500.0]), 30.0, 4, 0, duration=60.0).tolist() == [0.0, 60.0]


def test_resize_indices_are_evenly_spaced_centres():
    assert resize_indices(100, 10).tolist() == [4, 14, 24, 34, 44, 54, 64, 74, 84, 94]
    indices = resize_indices(37, 768)  # upsampling a short video repeats frames
    assert indices.shape == (768,) and indices.min() == 0 and indices.max() == 36
    assert (np.diff(indices) >= 0).all()


def test_random_truncation_keeps_segments_with_enough_overlap():
    rng = np.random.default_rng(1)
    for trial in range(200):
        segments = np.sort(rng.uniform(0, 3000, size=(int(rng.integers(1, 8)), 2)), axis=1)
        result = random_truncation(3000, 768, segments, trunc_thresh=0.75, crop_ratio=(0.9, 1.0), rng=rng)
        assert result.length == 768 and 0 <= result.start <= 3000 - 768
        window_end = result.start + result.length
        inter = np.clip(np.minimum(segments[:, 1], window_end) - np.maximum(segments[:, 0], result.start), 0, None)
        fraction = inter / (segments[:, 1] - segments[:, 0])
        assert np.array_equal(result.keep, fraction >= 0.75)
        kept = segments[result.keep]
        np.testing.assert_allclose(result.segments, kept.clip(result.start, window_end) - result.start)
        assert ((result.segments >= 0) & (result.segments <= 768)).all()


def test_random_truncation_finds_the_one_action_that_fits():
    rng = np.random.default_rng(2)
    segments = np.array([[5000.0, 5100.0]])  # one short action in a long video
    for _ in range(20):
        result = random_truncation(20000, 768, segments, 0.75, None, rng)
        assert result.keep.tolist() == [True]


def test_random_truncation_of_short_videos_crops_by_crop_ratio():
    rng = np.random.default_rng(3)
    segments = np.array([[10.0, 90.0]])
    lengths = {random_truncation(100, 768, segments, 0.75, (0.9, 1.0), rng).length for _ in range(200)}
    assert lengths == set(range(90, 101))
    whole = random_truncation(100, 768, segments, 0.75, None, rng)
    assert (whole.start, whole.length) == (0, 100) and whole.segments.tolist() == [[10.0, 90.0]]


def test_training_window_ground_truth_lands_on_the_decoded_frames():
    rng = np.random.default_rng(4)
    fps, frame_stride, scale_factor = 30.0, 2, 2
    segments = np.array([[20.0, 24.0], [60.0, 61.0]])
    for _ in range(50):
        window, steps, keep = training_window(
            3000, fps, segments, 128, scale_factor, frame_stride, 0.75, (0.9, 1.0), rng
        )
        assert window.frame_indices.shape == (256,) and window.mask.shape == (128,)
        assert window.snippet_stride == 4
        # kept ground truth, mapped back to seconds, is the original (clipped to the window)
        back = window.grid_to_seconds(steps)
        window_seconds = (window.window_start_frame / fps, (window.window_start_frame + 128 * 4) / fps)
        np.testing.assert_allclose(back, segments[keep].clip(*window_seconds), atol=1e-9)
        # the frame at a ground-truth start step is the frame at that time
        for start_step in np.floor(steps[:, 0]).astype(int):
            frame = window.frame_indices[start_step * scale_factor]
            assert frame == window.window_start_frame + start_step * window.snippet_stride


def test_segments_in_window_drops_what_falls_outside():
    segments, keep = segments_in_window(np.array([[-5.0, 3.0], [10.0, 20.0], [70.0, 80.0]]), 64)
    assert segments.tolist() == [[0.0, 3.0], [10.0, 20.0]]
    assert keep.tolist() == [True, True, False]


def test_frame_stride_follows_snippet_stride_and_scale_factor():
    assert frame_stride_for(4, 1) == 4  # THUMOS 768x1
    assert frame_stride_for(4, 2) == 2  # THUMOS 768x2 (giant, 1536 frames)
    assert frame_stride_for(16, 8) == 2  # EPIC 768x8
    with pytest.raises(ValueError, match="not divisible"):
        frame_stride_for(4, 3)

"""Temporal sampling: which frames of a video form a window, its mask, and ground truth on the detector grid.

Spec §6.2-§6.3 (OpenTAD ``LoadFrames``, ``random_trunc``, sliding windows, ActivityNet resize). Units:

* **frame**: a frame of the reader's constant-rate timeline, index ``0 .. num_frames - 1``, ``fps`` per
  second, frame ``k`` shown at ``k / fps`` s (:mod:`tadcli.data.timeline`; for a constant-rate video, the
  ``k``-th decoded frame, decord's count; a variable-frame-rate video is read at its presentation times).
* **candidate**: every ``frame_stride``-th frame, ``c -> frame c * frame_stride``; a window loads
  ``F = window_size * scale_factor`` candidates.
* **step** (detector grid, "snippet"): ``scale_factor`` candidates = ``snippet_stride = frame_stride *
  scale_factor`` frames; a window has ``T = window_size`` steps; step ``t`` of a window starts at frame
  ``window_start_frame + t * snippet_stride``.

Every window maps seconds to steps with one affine map, ``step = (seconds * fps - window_start_frame)
/ snippet_stride`` (:func:`seconds_to_grid`), inverted by :func:`grid_to_seconds`. Resize windows use the
same map with ``window_start_frame = 0`` and a fractional ``snippet_stride = duration * fps / T``, which is
``step = seconds / duration * T`` (spec §5.2, §6.2). Unlike OpenTAD, ground truth is not floored to whole
frames on the way in, so seconds -> grid -> seconds is exact (up to float rounding).

A step is valid (mask True) when at least one of its frames is a real frame of the video; frames past the
end repeat the last real frame (edge padding), so every window has exactly ``F`` frames (spec §2.3).
OpenTAD counts ``n // scale_factor`` valid steps; the two agree whenever ``scale_factor`` is 1.

All functions are pure, on numpy arrays; randomness comes from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Window:
    """One window of a video as the model sees it.

    Attributes:
        frame_indices: int64 ``[F]`` frames to decode, in order, edge-padded to ``F``.
        mask: bool ``[T]``, True for steps that hold real frames (a prefix of the window).
        fps: frames per second of the video.
        window_start_frame: frame at step 0 (fractional only for resize windows, where it is 0).
        snippet_stride: frames per step (fractional for resize windows).
    """

    frame_indices: np.ndarray
    mask: np.ndarray
    fps: float
    window_start_frame: float
    snippet_stride: float

    def seconds_to_grid(self, seconds: np.ndarray) -> np.ndarray:
        """Seconds (any shape) -> positions on this window's grid (steps)."""
        return seconds_to_grid(seconds, self.fps, self.snippet_stride, self.window_start_frame)

    def grid_to_seconds(self, steps: np.ndarray, duration: float | None = None) -> np.ndarray:
        """Positions on this window's grid -> seconds, clamped to ``[0, duration]`` when given."""
        return grid_to_seconds(steps, self.fps, self.snippet_stride, self.window_start_frame, duration)


def seconds_to_grid(seconds, fps: float, snippet_stride: float, window_start_frame: float):
    """Seconds -> detector-grid steps: ``(seconds * fps - window_start_frame) / snippet_stride``.

    Args:
        seconds: numpy array or torch tensor of times in seconds (e.g. segments ``[N, 2]``).
        fps: frames per second of the video.
        snippet_stride: frames per step.
        window_start_frame: frame at step 0 of the window.

    Returns:
        Same type and shape as ``seconds``, in steps (float, not rounded).
    """
    return (seconds * fps - window_start_frame) / snippet_stride


def grid_to_seconds(steps, fps: float, snippet_stride: float, window_start_frame: float, duration: float | None = None):
    """Detector-grid steps -> seconds, the inverse of :func:`seconds_to_grid` (spec §5.2).

    Args:
        steps: numpy array or torch tensor of grid positions.
        fps, snippet_stride, window_start_frame: as in :func:`seconds_to_grid`.
        duration: when given, results are clamped to ``[0, duration]`` seconds.

    Returns:
        Same type and shape as ``steps``, in seconds.
    """
    seconds = (steps * snippet_stride + window_start_frame) / fps
    if duration is None:
        return seconds
    return seconds.clip(0, duration)


def frame_stride_for(snippet_stride: int, scale_factor: int) -> int:
    """Video frames between two sampled frames: ``snippet_stride // scale_factor`` (spec §6.3).

    Raises:
        ValueError: ``scale_factor`` does not divide ``snippet_stride`` (a step would not hold a whole
            number of sampled frames).
    """
    if snippet_stride % scale_factor:
        raise ValueError(f"snippet stride {snippet_stride} is not divisible by scale factor {scale_factor}")
    return snippet_stride // scale_factor


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def num_candidates(num_frames: int, frame_stride: int) -> int:
    """Number of candidate frames ``len(arange(0, num_frames, frame_stride))``."""
    return _ceil_div(num_frames, frame_stride)


def _window_from_candidates(
    start: int, length: int, frame_stride: int, scale_factor: int, window_size: int, fps: float
) -> Window:
    """The window of ``length`` real candidates from candidate ``start``, edge-padded to ``F``."""
    num_window_frames = window_size * scale_factor
    candidates = start + np.minimum(np.arange(num_window_frames), length - 1)  # edge padding
    mask = np.zeros(window_size, dtype=bool)
    mask[: _ceil_div(length, scale_factor)] = True
    return Window(
        frame_indices=(candidates * frame_stride).astype(np.int64),
        mask=mask,
        fps=fps,
        window_start_frame=start * frame_stride,
        snippet_stride=frame_stride * scale_factor,
    )


@dataclass(frozen=True)
class Truncation:
    """Result of :func:`random_truncation`, in candidate units.

    Attributes:
        start: first candidate of the window.
        length: number of real candidates in the window (``<= F``).
        keep: bool ``[N]``, which input segments are kept.
        segments: float ``[M, 2]``, the kept segments clipped to the window and shifted by ``-start``.
    """

    start: int
    length: int
    keep: np.ndarray
    segments: np.ndarray


def random_truncation(
    num_candidates: int,
    window_frames: int,
    segments: np.ndarray,
    trunc_thresh: float,
    crop_ratio: tuple[float, float] | None,
    rng: np.random.Generator,
    max_trials: int = 200,
) -> Truncation:
    """Pick a random training window that keeps enough of at least one action (spec §6.3, random_trunc).

    If the video has no more than ``window_frames`` candidates, the window is the whole video or, with
    ``crop_ratio``, a random crop of ``randint(round(r0 * L), round(r1 * L))`` candidates. Otherwise it
    has ``window_frames`` candidates. Up to ``max_trials`` random starts are tried until one keeps at
    least ``trunc_thresh`` of some segment's length; if none does, the last one is used.

    Args:
        num_candidates: ``L``, candidates in the video.
        window_frames: ``F``, candidates per window.
        segments: float ``[N, 2]`` (start, end) in candidate units.
        trunc_thresh: minimum kept fraction of a segment's length for it to stay (THUMOS 0.75).
        crop_ratio: ``(r0, r1)`` crop range for short videos, or ``None`` to keep them whole.
        rng: source of randomness.
        max_trials: number of random starts tried.

    Returns:
        A :class:`Truncation`. Segments kept are those with kept fraction ``>= trunc_thresh``; when the
        whole video is used they are all kept, unchanged.
    """
    segments = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    length = min(num_candidates, window_frames)
    if num_candidates <= window_frames and crop_ratio is not None:
        low = max(round(crop_ratio[0] * num_candidates), 1)
        high = min(round(crop_ratio[1] * num_candidates), num_candidates)
        length = int(rng.integers(low, high + 1))
    if length == num_candidates:
        return Truncation(0, length, np.ones(len(segments), dtype=bool), segments.copy())
    segment_length = np.maximum(segments[:, 1] - segments[:, 0], 1e-6)
    for _ in range(max_trials if len(segments) else 1):
        start = int(rng.integers(0, num_candidates - length + 1))
        clipped = segments.clip(start, start + length)
        kept_fraction = (clipped[:, 1] - clipped[:, 0]) / segment_length
        keep = kept_fraction >= trunc_thresh
        if keep.any():
            break
    return Truncation(start, length, keep, clipped[keep] - start)


def training_window(
    num_frames: int,
    fps: float,
    segments_seconds: np.ndarray,
    window_size: int,
    scale_factor: int,
    frame_stride: int,
    trunc_thresh: float,
    crop_ratio: tuple[float, float] | None,
    rng: np.random.Generator,
) -> tuple[Window, np.ndarray, np.ndarray]:
    """A random training window by random truncation, with its ground truth on the grid.

    Args:
        num_frames: frames in the video (decoder's count).
        fps: frames per second.
        segments_seconds: float ``[N, 2]`` ground truth in seconds.
        window_size: ``T``, detector steps per window.
        scale_factor: candidates per step.
        frame_stride: frames per candidate.
        trunc_thresh, crop_ratio, rng: as in :func:`random_truncation`.

    Returns:
        ``(window, segments, keep)``: the :class:`Window`; float ``[M, 2]`` kept segments in steps of
        the window (within ``[0, T]``); bool ``[N]`` which input segments were kept.
    """
    segments_seconds = np.asarray(segments_seconds, dtype=np.float64).reshape(-1, 2)
    segments_candidates = segments_seconds * fps / frame_stride
    truncation = random_truncation(
        num_candidates(num_frames, frame_stride),
        window_size * scale_factor,
        segments_candidates,
        trunc_thresh,
        crop_ratio,
        rng,
    )
    window = _window_from_candidates(truncation.start, truncation.length, frame_stride, scale_factor, window_size, fps)
    return window, truncation.segments / scale_factor, truncation.keep


def sliding_window_starts(num_steps: int, window_size: int, overlap: float) -> list[int]:
    """First steps of windows of ``window_size`` steps that cover ``[0, num_steps)``.

    Windows start every ``int(window_size * (1 - overlap))`` steps; the last window ends exactly at
    ``num_steps`` (it is shifted back, as OpenTAD's tail window), so every step is covered for any
    overlap in ``[0, 1)`` and no window is repeated. A video shorter than a window gets one window at 0.

    Args:
        num_steps: steps in the video.
        window_size: steps per window.
        overlap: fraction of a window shared with the next one (THUMOS test: 0.5).
    """
    if not 0 <= overlap < 1:
        raise ValueError(f"window overlap must be in [0, 1), got {overlap}")
    if num_steps <= window_size:
        return [0]
    stride = max(int(window_size * (1 - overlap)), 1)
    last_start = num_steps - window_size
    return list(range(0, last_start, stride)) + [last_start]


def sliding_windows(
    num_frames: int,
    fps: float,
    window_size: int,
    scale_factor: int,
    frame_stride: int,
    overlap: float,
) -> list[Window]:
    """Evaluation windows over the whole video (spec §6.3, sliding_window).

    Args:
        num_frames: frames in the video.
        fps: frames per second.
        window_size: ``T``, steps per window.
        scale_factor: candidates per step.
        frame_stride: frames per candidate.
        overlap: fraction shared by consecutive windows (see :func:`sliding_window_starts`).

    Returns:
        Windows in time order; together their valid steps cover every candidate of the video.
    """
    total_candidates = num_candidates(num_frames, frame_stride)
    num_steps = _ceil_div(total_candidates, scale_factor)
    windows = []
    for start_step in sliding_window_starts(num_steps, window_size, overlap):
        start = start_step * scale_factor
        length = min(window_size * scale_factor, total_candidates - start)
        windows.append(_window_from_candidates(start, length, frame_stride, scale_factor, window_size, fps))
    return windows


def resize_indices(num_frames: int, num_output_frames: int) -> np.ndarray:
    """ActivityNet resize sampling: ``num_output_frames`` evenly spaced frames over the whole video.

    ``stride = num_frames / F``; index ``i`` is the centre of the ``i``-th stretch,
    ``round(stride / 2 - 0.5 + i * stride)``, clipped to ``[0, num_frames - 1]`` (spec §6.3).

    Returns:
        int64 ``[F]``.
    """
    stride = num_frames / num_output_frames
    centres = stride / 2 - 0.5 + stride * np.arange(num_output_frames)
    return np.round(centres).clip(0, num_frames - 1).astype(np.int64)


def resize_window(num_frames: int, fps: float, duration: float, window_size: int, scale_factor: int) -> Window:
    """The whole video resampled to one window of ``window_size`` steps (ActivityNet).

    Args:
        num_frames: frames in the video.
        fps: frames per second.
        duration: video duration in seconds (the grid spans exactly ``[0, duration]``).
        window_size: ``T``, steps per window.
        scale_factor: frames per step.

    Returns:
        A :class:`Window` with every step valid, ``window_start_frame = 0`` and
        ``snippet_stride = duration * fps / T`` (so ``step = seconds / duration * T``).
    """
    return Window(
        frame_indices=resize_indices(num_frames, window_size * scale_factor),
        mask=np.ones(window_size, dtype=bool),
        fps=fps,
        window_start_frame=0.0,
        snippet_stride=duration * fps / window_size,
    )


@dataclass(frozen=True)
class WindowGeometry:
    """How windows are cut: ``T = window_size`` steps of ``scale_factor`` frames taken every ``frame_stride``
    frames; ``sampling`` ``"sliding"`` (windows sharing ``overlap`` of their length) or ``"resize"`` (the whole
    video resampled to one window)."""

    window_size: int
    scale_factor: int
    frame_stride: int
    sampling: str
    overlap: float

    @property
    def snippet_stride(self) -> int:
        return self.frame_stride * self.scale_factor

    def eval_windows(self, num_frames: int, fps: float, duration: float) -> list[Window]:
        """Every evaluation window of a video, in order (spec §6.3)."""
        if self.sampling == "resize":
            return [resize_window(num_frames, fps, duration, self.window_size, self.scale_factor)]
        return sliding_windows(num_frames, fps, self.window_size, self.scale_factor, self.frame_stride, self.overlap)


def segments_in_window(segments_steps: np.ndarray, window_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Segments (steps) clipped to ``[0, window_size]``, keeping those that still have a positive length.

    Returns:
        ``(segments [M, 2], keep bool [N])``.
    """
    segments_steps = np.asarray(segments_steps, dtype=np.float64).reshape(-1, 2)
    clipped = segments_steps.clip(0, window_size)
    keep = clipped[:, 1] > clipped[:, 0]
    return clipped[keep], keep

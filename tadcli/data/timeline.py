"""The constant-rate timeline a video reader presents, built from its frames' presentation times.

Phones, screen recorders and many web videos have a variable frame rate: their frames are not evenly
spaced in time. Counting frames then gives wrong seconds after every slow or fast stretch. A reader
therefore exposes a virtual constant-rate video instead of the file's frames:

* slot ``k`` (a "frame index" everywhere else in tad) is the picture shown at ``k / fps`` seconds after
  the first frame, ``fps`` being the video's nominal rate;
* it is the last real frame presented by then (with half a frame of tolerance for timestamp jitter):
  where frames are sparse, the slots repeat the nearest earlier frame; a frozen stretch repeats it too;
* ``num_frames`` slots cover the real duration (last presentation time + one frame).

So every index-based computation (windows, strides, ``seconds = index / fps``) works in real seconds.
A constant-rate video (every frame within half a frame of an even grid) is its own timeline: the slots
are its frames, one to one, at the decoder's average rate, and its duration is ``frames / fps``, as
before (so frames and times are bit-identical to reading it frame by frame). A variable-rate video gets
``fps`` = its usual rate, the mean of the intervals near the median one, as a fraction with a denominator
up to 1001 (30 for a 30 fps phone clip with slow stretches, 30000/1001 for an NTSC one).

Both decoders give the presentation times as float32 seconds (decord's ``get_frame_timestamp``; PyAV's
packet timestamps converted the same way), so they build the same timeline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

MAX_RATE_DENOMINATOR = 1001  # NTSC rates are n * 1000 / 1001


@dataclass(frozen=True)
class Timeline:
    """A video as a constant-rate sequence of ``num_frames`` slots at ``fps``.

    Attributes:
        fps: slots per second.
        num_frames: slots over the video.
        duration: seconds, the real presentation duration (constant rate: ``num_frames / fps``).
        frame_of_slot: int64 ``[num_frames]``, the real frame shown in each slot; ``None`` when the
            video has a constant rate (slot ``k`` is frame ``k``).
    """

    fps: float
    num_frames: int
    duration: float
    frame_of_slot: np.ndarray | None = None

    @property
    def variable_frame_rate(self) -> bool:
        return self.frame_of_slot is not None

    def source_frames(self, slots: np.ndarray) -> np.ndarray:
        """Real frame indices (presentation order) of ``slots`` (int64 array, any shape)."""
        return slots if self.frame_of_slot is None else self.frame_of_slot[slots]


def presentation_timeline(frame_times: np.ndarray, average_fps: float) -> Timeline:
    """The timeline of a video whose frames are presented at ``frame_times``.

    Args:
        frame_times: presentation time of every frame in seconds, in presentation order (any origin).
        average_fps: the decoder's average frame rate, the rate of a constant-rate video.

    Returns:
        A :class:`Timeline`; constant-rate videos keep their frames one to one at ``average_fps``.
    """
    times = np.asarray(frame_times, dtype=np.float64)
    times = times - times[0]  # [N] seconds from the first frame
    count = len(times)
    constant = Timeline(average_fps, count, count / average_fps)
    if count < 3:
        return constant
    intervals = np.diff(times)
    median = float(np.median(intervals))
    if median <= 0:
        return constant  # timestamps that say nothing (repeated): frames as they come
    even_grid = np.arange(count) * (times[-1] / (count - 1))
    if np.abs(times - even_grid).max() < median / 2:  # steady, up to timestamp rounding
        return constant
    usual = intervals[np.abs(intervals - median) < median / 2]
    # the usual rate, averaged over its intervals (float32 times round each one), as a simple fraction
    fps = float(Fraction(1 / float(usual.mean())).limit_denominator(MAX_RATE_DENOMINATOR))
    frame_seconds = 1 / fps
    duration = round(float(times[-1]) + frame_seconds, 6)
    num_slots = max(1, math.ceil(round(duration * fps, 6)))
    slot_times = np.arange(num_slots) / fps
    # the last frame presented by each slot's time; half a frame of tolerance absorbs timestamp rounding
    shown = np.searchsorted(times, slot_times + frame_seconds / 2, side="right") - 1
    return Timeline(fps, num_slots, duration, shown.clip(0, count - 1).astype(np.int64))

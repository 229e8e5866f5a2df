"""Anchor points of the feature pyramid (spec ``shared/spec/ADATAD.md`` §4.4)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

DEFAULT_REGRESSION_RANGES = ((0.0, 4.0), (4.0, 8.0), (8.0, 16.0), (16.0, 32.0), (32.0, 64.0), (64.0, 10000.0))


class PointGenerator:
    """Points of every level: row (position, range_lo, range_hi, stride), level 0 first.

    Point i of level l sits at ``i * stride_l`` in level-0 grid units (no half-stride offset); a point
    may regress an action whose larger boundary distance lies in ``[range_lo, range_hi]``.
    Computed on the fly for the actual level lengths, so nothing is stored in checkpoints.

    Args:
        strides: stride of each level in level-0 grid steps (default 1, 2, 4, ...).
        regression_ranges: (lo, hi) per level, in level-0 grid steps.
    """

    def __init__(self, strides: Sequence[int], regression_ranges: Sequence[tuple[float, float]]) -> None:
        assert len(strides) == len(regression_ranges), (
            f"{len(strides)} strides but {len(regression_ranges)} regression ranges"
        )
        self.strides = tuple(int(s) for s in strides)
        self.regression_ranges = tuple((float(lo), float(hi)) for lo, hi in regression_ranges)

    @property
    def num_levels(self) -> int:
        return len(self.strides)

    def __call__(self, level_lengths: Sequence[int], device: torch.device | None = None) -> torch.Tensor:
        """Points for levels of lengths ``level_lengths`` -> float32 [sum(T_l), 4]."""
        assert len(level_lengths) == self.num_levels, f"got {len(level_lengths)} levels, expected {self.num_levels}"
        levels = []
        for length, stride, (lo, hi) in zip(level_lengths, self.strides, self.regression_ranges):
            position = torch.arange(length, dtype=torch.float32, device=device) * stride
            ranges = torch.tensor([lo, hi, float(stride)], dtype=torch.float32, device=device).expand(length, 3)
            # [T_l, 1] + [T_l, 3] -> [T_l, 4]
            levels.append(torch.cat([position[:, None], ranges], dim=1))
        return torch.cat(levels, dim=0)

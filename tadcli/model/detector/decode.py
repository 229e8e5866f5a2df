"""Point offsets <-> segments (spec ``shared/spec/ADATAD.md`` §4.7)."""

from __future__ import annotations

import torch


def decode_segments(points: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Segments from per-point boundary distances.

    Args:
        points: [N, 4] rows (position, range_lo, range_hi, stride).
        offsets: [..., N, 2] distances (to start, to end) in units of each point's stride.

    Returns:
        [..., N, 2] (position - d_start * stride, position + d_end * stride) in level-0 grid units.
    """
    position, stride = points[:, 0], points[:, 3]
    start = position - offsets[..., 0] * stride
    end = position + offsets[..., 1] * stride
    return torch.stack([start, end], dim=-1)

"""Label assignment: which points regress which ground-truth action (spec ``shared/spec/ADATAD.md`` §4.5).

ActionFormer's center sampling with per-level regression ranges, as in OpenTAD's
``AnchorFreeHead.prepare_targets``: a point is positive for an action when it lies strictly inside
the action's center region (radius ``r * stride``, clipped to the action) and its larger boundary
distance falls inside the level's range (both ends inclusive). A point inside several actions takes
the shortest; every action within 1e-3 of that length adds its class (multi-hot target).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

LENGTH_TIE_TOLERANCE = 1e-3


@torch.no_grad()
def assign_targets(
    points: torch.Tensor,
    gt_segments: torch.Tensor,
    gt_labels: torch.Tensor,
    num_classes: int,
    center_sample_radius: float = 1.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets of one video.

    Args:
        points: [N, 4] rows (position, range_lo, range_hi, stride) from :class:`PointGenerator`.
        gt_segments: [M, 2] (start, end) in level-0 grid units, start <= end; M may be 0.
        gt_labels: [M] integer class indices in [0, num_classes).
        num_classes: K.
        center_sample_radius: r, in strides.

    Returns:
        cls_targets: float [N, K] multi-hot (all zero = background).
        reg_targets: float [N, 2] (distance to start, distance to end) / stride of the shortest
            matching action (first on exact ties); zero where the point is background.
    """
    num_points = points.shape[0]
    num_gts = gt_segments.shape[0]
    if num_gts == 0:
        return points.new_zeros((num_points, num_classes)), points.new_zeros((num_points, 2))
    gt_segments = gt_segments.to(points.dtype)
    position, range_lo, range_hi, stride = (points[:, i : i + 1] for i in range(4))  # each [N, 1]
    starts, ends = gt_segments[None, :, 0], gt_segments[None, :, 1]  # each [1, M]

    left = position - starts  # [N, M]
    right = ends - position  # [N, M]
    centers = 0.5 * (starts + ends)
    radius = stride * center_sample_radius  # [N, 1]
    dist_to_center_start = position - torch.maximum(centers - radius, starts)
    dist_to_center_end = torch.minimum(centers + radius, ends) - position
    inside_center = torch.minimum(dist_to_center_start, dist_to_center_end) > 0
    max_distance = torch.maximum(left, right)
    inside_range = (max_distance >= range_lo) & (max_distance <= range_hi)

    lengths = (ends - starts).expand(num_points, num_gts)
    lengths = lengths.masked_fill(~(inside_center & inside_range), float("inf"))
    min_length, min_index = lengths.min(dim=1)  # [N]; first index on exact ties
    close_to_min = (lengths <= min_length[:, None] + LENGTH_TIE_TOLERANCE) & torch.isfinite(lengths)

    one_hot = F.one_hot(gt_labels.long(), num_classes).to(points.dtype)  # [M, K]
    cls_targets = (close_to_min.to(points.dtype) @ one_hot).clamp_(0.0, 1.0)  # [N, M] x [M, K] -> [N, K]
    rows = torch.arange(num_points, device=points.device)
    reg_targets = torch.stack([left[rows, min_index], right[rows, min_index]], dim=1) / stride  # [N, 2]
    reg_targets = reg_targets * torch.isfinite(min_length)[:, None].to(points.dtype)
    return cls_targets, reg_targets


def check_targets(index: int, segments: torch.Tensor, labels: torch.Tensor, num_classes: int) -> None:
    """Validate one video's ground truth (see :func:`assign_batch_targets`)."""
    if segments.dim() != 2 or segments.shape[1] != 2 or labels.shape != (segments.shape[0],):
        raise ValueError(
            f"video {index} of the batch: segments {tuple(segments.shape)} and labels {tuple(labels.shape)} "
            f"must be [M, 2] and [M]"
        )
    if len(labels) == 0:
        return
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        raise ValueError(f"video {index} of the batch: label {low if low < 0 else high} outside [0, {num_classes})")
    inverted = segments[:, 1] < segments[:, 0]
    if bool(inverted.any()):
        start, end = segments[inverted][0].tolist()
        raise ValueError(f"video {index} of the batch: segment ({start}, {end}) ends before it starts")


def assign_batch_targets(
    points: torch.Tensor,
    gt_segments: Sequence[torch.Tensor],
    gt_labels: Sequence[torch.Tensor],
    num_classes: int,
    center_sample_radius: float = 1.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`assign_targets` for each video of a batch -> cls [B, N, K], reg [B, N, 2].

    Raises:
        ValueError: a video whose segments are not [M, 2] with start <= end, or whose labels are not M
            class indices in [0, num_classes); the message names the video's batch index and the value.
    """
    assert len(gt_segments) == len(gt_labels), f"{len(gt_segments)} segment sets but {len(gt_labels)} label sets"
    for index, (segments, labels) in enumerate(zip(gt_segments, gt_labels)):
        check_targets(index, segments, labels, num_classes)
    per_video = [
        assign_targets(points, segments.to(points.device), labels.to(points.device), num_classes, center_sample_radius)
        for segments, labels in zip(gt_segments, gt_labels)
    ]
    cls_targets = torch.stack([cls for cls, _ in per_video])
    reg_targets = torch.stack([reg for _, reg in per_video])
    return cls_targets, reg_targets

"""From raw detector outputs to scored segments in seconds (spec ``shared/spec/ADATAD.md`` §5).

The pipeline of OpenTAD's ``SingleStageDetector.post_processing`` and ``batched_nms``, in plain
PyTorch (no compiled extension):

1. :func:`select_candidates` per sample (window or resized video): decode, sigmoid, drop padded
   points, then threshold and top-k over all pyramid levels jointly (multi-class only).
2. Resize datasets (ActivityNet): :func:`batched_soft_nms` per sample, then
   :func:`detections_to_seconds`.
   Sliding-window datasets: :func:`detections_to_seconds` per window, then
   :func:`merge_windows` per video (one soft-NMS over all its windows).
3. ActivityNet only: :func:`label_with_video_classifier` labels class-agnostic detections with a video
   classifier as the preset's ``video_classifier`` section says (:func:`fuse_video_classifier`).
4. :func:`round_for_output` gives the rounded rows of the emitted JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch

from tadcli.config.schema import VideoClassifierConfig
from tadcli.data.sampling import grid_to_seconds
from tadcli.errors import PresetError
from tadcli.model.detector.actionformer import DetectorOutput
from tadcli.model.detector.decode import decode_segments

# Added to every length in the soft-NMS IoU (OpenTAD's nms_cpu.cpp).
NMS_LENGTH_EPS = 1e-6


@dataclass(frozen=True)
class PostprocessSettings:
    """Post-processing parameters (spec §5.1, §5.3; per-dataset values in the dataset profiles).

    Args:
        pre_nms_threshold: keep (point, class) scores strictly above this (multi-class only).
        pre_nms_topk: keep at most this many (point, class) pairs per sample (multi-class only).
        sigma: Gaussian soft-NMS: ``score *= exp(-IoU^2 / sigma)``.
        min_score: drop segments whose decayed score falls below this.
        max_segments: detections kept per class (multi-class soft-NMS) and per video in the end.
        multiclass: soft-NMS per class (True) or over all segments (class-agnostic ActivityNet).
        voting_threshold: > 0 refines boundaries by score-weighted voting (class-agnostic only).
    """

    pre_nms_threshold: float = 0.001
    pre_nms_topk: int = 2000
    sigma: float = 0.5
    min_score: float = 0.0
    max_segments: int = 2000
    multiclass: bool = True
    voting_threshold: float = 0.0


class Detection(NamedTuple):
    """One detected action: boundaries (grid units or seconds), class index and score."""

    start: float
    end: float
    label: int
    score: float


@dataclass
class Detections:
    """Detections of one sample or video.

    Args:
        segments: float [M, 2] (start, end), in grid units or seconds depending on the stage.
        scores: float [M].
        labels: long [M] class indices.
    """

    segments: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return self.scores.shape[0]

    @staticmethod
    def empty(device: torch.device | None = None) -> Detections:
        return Detections(
            torch.zeros(0, 2, device=device),
            torch.zeros(0, device=device),
            torch.zeros(0, dtype=torch.long, device=device),
        )

    @staticmethod
    def cat(parts: Sequence[Detections]) -> Detections:
        """Concatenate detections (e.g. of all windows of one video)."""
        if not parts:
            return Detections.empty()
        return Detections(
            torch.cat([p.segments for p in parts]),
            torch.cat([p.scores for p in parts]),
            torch.cat([p.labels for p in parts]),
        )

    def index(self, keep: torch.Tensor) -> Detections:
        return Detections(self.segments[keep], self.scores[keep], self.labels[keep])

    def to_rows(self) -> list[Detection]:
        """Plain Python rows, in the stored order."""
        return [
            Detection(start, end, label, score)
            for (start, end), label, score in zip(self.segments.tolist(), self.labels.tolist(), self.scores.tolist())
        ]


def select_candidates(
    cls_logits: torch.Tensor,
    offsets: torch.Tensor,
    points: torch.Tensor,
    mask: torch.Tensor,
    pre_nms_threshold: float,
    pre_nms_topk: int,
) -> Detections:
    """Decoded candidates of one sample, in level-0 grid units (spec §4.7, §5.1 step 1).

    Multi-class (K > 1): every (point, class) score > ``pre_nms_threshold``, the ``pre_nms_topk``
    best over all levels jointly, sorted by score. Class-agnostic (K = 1): every valid point.

    Args:
        cls_logits: [N, K] logits of one sample.
        offsets: [N, 2] boundary distances in strides.
        points: [N, 4] (position, range_lo, range_hi, stride).
        mask: bool [N], True = valid point.
        pre_nms_threshold: score threshold (multi-class).
        pre_nms_topk: maximum candidates (multi-class).
    """
    segments = decode_segments(points[mask], offsets[mask].float())  # [V, 2]
    scores = torch.sigmoid(cls_logits[mask].float())  # [V, K]
    num_classes = scores.shape[1]
    if num_classes == 1:
        return Detections(segments, scores[:, 0], torch.zeros(len(scores), dtype=torch.long, device=scores.device))
    flat_scores = scores.flatten()  # [V*K], index = point * K + class
    above = torch.nonzero(flat_scores > pre_nms_threshold).squeeze(1)
    kept_scores, order = flat_scores[above].sort(descending=True, stable=True)
    flat_index = above[order[:pre_nms_topk]]
    point_index = torch.div(flat_index, num_classes, rounding_mode="floor")
    return Detections(segments[point_index], kept_scores[:pre_nms_topk], flat_index % num_classes)


def soft_nms(
    segments: torch.Tensor,
    scores: torch.Tensor,
    groups: torch.Tensor,
    sigma: float,
    min_score: float,
    max_per_group: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian soft-NMS run independently inside each group (class), all groups in lockstep.

    Each step picks, in every group, the remaining segment with the highest current score, emits it,
    multiplies the other remaining scores of its group by ``exp(-IoU^2 / sigma)`` (IoU with lengths
    ``end - start + 1e-6``) and drops those that fall below ``min_score``. At most ``max_per_group``
    segments are emitted per group (in emission order, i.e. by decreasing score).

    Args:
        segments: float [M, 2].
        scores: float [M].
        groups: long [M] group of each segment (class index; all equal for class-agnostic NMS).
        sigma: Gaussian decay parameter.
        min_score: drop threshold on decayed scores.
        max_per_group: cap per group.

    Returns:
        kept: long [R] indices into the inputs, in step order (groups interleaved).
        kept_scores: float [R] the decayed score of each kept segment when it was picked.
    """
    device = segments.device
    if len(scores) == 0:
        return torch.zeros(0, dtype=torch.long, device=device), torch.zeros(0, device=device)
    _, group_of = torch.unique(groups, return_inverse=True)  # [M] in 0..G-1
    counts = torch.bincount(group_of)
    num_groups, width = len(counts), int(counts.max())
    # slot of each segment inside its group's row: rank among the group's members in input order
    order = torch.argsort(group_of, stable=True)
    first_of_group = torch.cumsum(counts, 0) - counts
    slot = torch.empty_like(group_of)
    slot[order] = torch.arange(len(order), device=device) - first_of_group[group_of[order]]

    # [M] -> [G, W] tables, padded slots dead
    def table(values: torch.Tensor, fill: float) -> torch.Tensor:
        out = torch.full((num_groups, width), fill, dtype=values.dtype, device=device)
        out[group_of, slot] = values
        return out

    starts = table(segments[:, 0].float(), 0.0)
    ends = table(segments[:, 1].float(), 0.0)
    lengths = ends - starts + NMS_LENGTH_EPS
    live_scores = table(scores.float(), 0.0)
    source_index = table(torch.arange(len(scores), device=device), -1)
    alive = table(torch.ones_like(scores, dtype=torch.bool), False)
    rows = torch.arange(num_groups, device=device)

    kept, kept_scores = [], []
    for _ in range(min(width, max_per_group)):
        has_alive = alive.any(dim=1)  # [G]
        if not bool(has_alive.any()):
            break
        best_score, best = live_scores.masked_fill(~alive, float("-inf")).max(dim=1)  # [G]
        kept.append(source_index[rows, best][has_alive])
        kept_scores.append(best_score[has_alive])
        alive[rows, best] = False
        best_start, best_end = starts[rows, best][:, None], ends[rows, best][:, None]  # [G, 1]
        inter = (torch.minimum(best_end, ends) - torch.maximum(best_start, starts)).clamp(min=0)  # [G, W]
        iou = inter / (lengths[rows, best][:, None] + lengths - inter)
        live_scores = live_scores * torch.exp(-(iou * iou) / sigma)
        alive &= live_scores >= min_score
    if not kept:
        return torch.zeros(0, dtype=torch.long, device=device), torch.zeros(0, device=device)
    return torch.cat(kept), torch.cat(kept_scores)


def segment_voting(
    kept_segments: torch.Tensor, all_segments: torch.Tensor, all_scores: torch.Tensor, threshold: float
) -> torch.Tensor:
    """Boundary voting: each kept segment becomes the score-weighted mean of all pre-NMS segments
    whose IoU with it is >= ``threshold`` (weights = original scores). [R, 2], [M, 2], [M] -> [R, 2]."""
    inter = (
        torch.minimum(kept_segments[:, None, 1], all_segments[None, :, 1])
        - torch.maximum(kept_segments[:, None, 0], all_segments[None, :, 0])
    ).clamp(min=0)  # [R, M]
    kept_lengths = kept_segments[:, 1] - kept_segments[:, 0]
    all_lengths = all_segments[:, 1] - all_segments[:, 0]
    iou = inter / (kept_lengths[:, None] + all_lengths[None, :] - inter)
    weights = (iou >= threshold).to(all_scores.dtype) * all_scores[None, :]  # [R, M]
    return (weights / weights.sum(dim=1, keepdim=True)) @ all_segments


def batched_soft_nms(detections: Detections, settings: PostprocessSettings) -> Detections:
    """Soft-NMS per class (or class-agnostic with optional voting), then the ``max_segments`` best (spec §5.3)."""
    if len(detections) == 0:
        return detections
    segments, scores = detections.segments.float(), detections.scores.float()
    if settings.multiclass:
        groups = detections.labels
    else:
        groups = torch.zeros_like(detections.labels)
    kept, kept_scores = soft_nms(segments, scores, groups, settings.sigma, settings.min_score, settings.max_segments)
    kept_segments = segments[kept]
    if not settings.multiclass and settings.voting_threshold > 0:
        kept_segments = segment_voting(kept_segments, segments, scores, settings.voting_threshold)
    final_scores, order = kept_scores.sort(descending=True, stable=True)
    order = order[: settings.max_segments]
    return Detections(kept_segments[order], final_scores[: settings.max_segments], detections.labels[kept][order])


def detections_to_seconds(
    detections: Detections, fps: float, snippet_stride: float, window_start_frame: float, duration: float
) -> Detections:
    """Grid units of one sample -> seconds, clamped to [0, duration] (spec §5.2).

    ``(t * snippet_stride + window_start_frame) / fps`` (:func:`tadcli.data.sampling.grid_to_seconds`, no
    half-snippet centering). For a video resized to T steps, ``window_start_frame = 0`` and
    ``snippet_stride = duration * fps / T`` give ``t / T * duration``; a
    :class:`tadcli.data.sampling.Window` carries all three values.
    """
    seconds = grid_to_seconds(detections.segments, fps, snippet_stride, window_start_frame, duration)
    return Detections(seconds, detections.scores, detections.labels)


def detect_batch(outputs: DetectorOutput, settings: PostprocessSettings, apply_nms: bool) -> list[Detections]:
    """Candidates of every sample of a batch in grid units, on the CPU; soft-NMS per sample when ``apply_nms``
    (resize datasets; sliding-window datasets run it per video in :func:`merge_windows`).

    The outputs move to the CPU first: soft-NMS is a loop of small steps, faster there than as GPU launches.
    """
    cls_logits, offsets, masks, points = (tensor.detach().cpu() for tensor in outputs)
    samples = []
    for sample_logits, sample_offsets, sample_mask in zip(cls_logits, offsets, masks):
        candidates = select_candidates(
            sample_logits, sample_offsets, points, sample_mask, settings.pre_nms_threshold, settings.pre_nms_topk
        )
        samples.append(batched_soft_nms(candidates, settings) if apply_nms else candidates)
    return samples


def merge_windows(windows: Sequence[Detections], settings: PostprocessSettings) -> Detections:
    """All windows of one video (already in seconds) -> one soft-NMS over their union (spec §5.4).

    OpenTAD rounds each window's results (0.01 s, 1e-4 score) before this step; for bit-level
    parity with it, pass windows through :func:`round_detections` first.
    """
    return batched_soft_nms(Detections.cat(windows), settings)


def fuse_video_classifier(
    detections: Detections, class_scores: torch.Tensor, topk: int = 2, geometric_mean: bool = False
) -> Detections:
    """Label class-agnostic detections with a video-level classifier (ActivityNet, spec §5.5).

    For each of the ``topk`` best classes of the video, every segment is repeated with that class and the
    fused score ``seg_score * class_score`` (CUHK classifier) or ``sqrt(seg_score * class_score)``
    (``geometric_mean``: the InternVideo classifiers); best class first.

    Args:
        detections: class-agnostic detections of one video.
        class_scores: float [K] video-level class scores.
        topk: classes kept per video.
        geometric_mean: fuse by the square root of the product instead of the product.
    """
    top_scores, top_classes = class_scores.float().topk(topk)
    parts = []
    for class_score, label in zip(top_scores, top_classes):
        fused = detections.scores * class_score
        parts.append(
            Detections(
                detections.segments,
                fused.sqrt() if geometric_mean else fused,
                torch.full_like(detections.labels, int(label)),
            )
        )
    return Detections.cat(parts)


def label_with_video_classifier(
    detections: Detections, class_scores: torch.Tensor, classifier: VideoClassifierConfig
) -> Detections:
    """Label one video's class-agnostic detections with its classifier scores, fused as the preset says.

    ``fusion: product`` (CUHK) and ``geometric-mean`` (InternVideo) with ``topk`` classes, through
    :func:`fuse_video_classifier` (spec §5.5).

    Args:
        detections: class-agnostic detections of one video (labels ignored).
        class_scores: float [K] video-level scores in the dataset's class order
            (:func:`tadcli.data.video_classifier.video_class_scores`).
        classifier: the preset's ``video_classifier`` section.

    Raises:
        PresetError: ``topk`` is larger than the number of classes.
    """
    if classifier.topk > class_scores.numel():
        raise PresetError(f"video_classifier.topk {classifier.topk} exceeds the {class_scores.numel()} classes")
    return fuse_video_classifier(
        detections, class_scores, topk=classifier.topk, geometric_mean=classifier.fusion == "geometric-mean"
    )


def round_detections(detections: Detections) -> Detections:
    """Boundaries rounded to 0.01 s and scores to 1e-4, as OpenTAD emits them (spec §5.1 step 6)."""
    return Detections(
        torch.round(detections.segments, decimals=2), torch.round(detections.scores, decimals=4), detections.labels
    )


def round_for_output(detections: Detections) -> list[Detection]:
    """Rows for the results JSON: start and end rounded to 0.01 s, score to 1e-4 (computed in float64)."""
    as_double = Detections(detections.segments.double(), detections.scores.double(), detections.labels)
    return round_detections(as_double).to_rows()

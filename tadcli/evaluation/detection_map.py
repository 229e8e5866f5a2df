"""Temporal action detection mAP, identical to the official ActivityNet detection evaluator.

Reference: github.com/activitynet/ActivityNet, ``Evaluation/eval_detection.py``
(``ANETdetection``, ``compute_average_precision_detection``, ``segment_iou``,
``interpolated_prec_rec``). The per-class AP, mAP per threshold and average mAP computed here are
bit-for-bit those of the official code on every input where the official result is defined; the
official per-detection Python loops are replaced by a vectorised equivalent (see
:func:`_greedy_match`).

Rules, as in the official evaluator:

- Classes are the labels that have ground truth, in order of first appearance in the ground truth.
  Detections whose label has no ground truth are ignored (the official code crashes on them; ignoring
  them gives the same per-class APs).
- Ground truth is used as given: duplicates are not removed (each needs its own detection) and
  segments are not clipped to the video duration.
- Detections are never filtered by video: detections on videos without ground truth of their class
  (or absent from the ground truth) are false positives.
- For each threshold independently, detections are visited in descending score order; each one tries
  the ground truth of its class in its video by decreasing tIoU, skipping instances already matched
  at that threshold; the first with ``tIoU >= threshold`` is a true positive and is locked, otherwise
  the detection is a false positive. ``tIoU = inter / ((e_gt - s_gt) + (e_det - s_det) - inter)``
  in float64.
- AP is the all-point interpolated area (VOC 2011); a class with ground truth and no detections has
  AP 0 and counts in the mean. mAP@t is the mean over classes, average mAP the mean over thresholds.

Choices where the official result is not reproducible or not defined (documented, tested):

- Equal scores: the official order comes from numpy's unstable quicksort. Here ties keep file order
  (the detection given first is visited first).
- Equal tIoU between one detection and several ground-truth instances: the instance given first in
  the ground truth is tried first.
- Zero-length segments (``end == start``) are accepted; their tIoU with a positive-length segment is
  0, as in the official code. Two zero-length segments give 0/0 there (NaN, which the official code
  counts as a match wherever the two instants are); here their tIoU is 1 when they are at the same
  instant and 0 otherwise. So a zero-length detection that repeats a zero-length ground-truth
  instance matches it, as officially (the official sample ActivityNet submission has three), and one
  elsewhere does not. Inverted ground truth (``end < start``) is rejected with ``ValueError`` (callers
  report it with file and entry first).
- Inverted detections (``end < start``), and inverted ground-truth instances alike, are scored exactly as the
  official code scores them: its
  intersection is 0 and its union ``len_gt + len_det`` (``len_det < 0``), so the tIoU is 0 (no match
  above threshold 0) unless the two lengths cancel; then it is 0/0, NaN, which the official comparisons
  count as a match at every threshold, tried before any other instance. :func:`segment_tiou` returns
  NaN there and the matching treats it so.

Recall (the official evaluator returns none): ``recall[k]`` is the number of ground-truth instances
matched at threshold k by the greedy matching above, with every detection taken into account,
divided by the total number of ground-truth instances over all classes (micro average).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GroundTruth:
    """Ground-truth instances of the evaluated subset, one row per instance, in file order.

    Args:
        video_ids: [N] video id of each instance.
        starts: [N] float64 start times (seconds, or any unit shared with the detections).
        ends: [N] float64 end times (an instance that ends before it starts is scored as the official code
            scores it, like an inverted detection).
        labels: [N] class name of each instance.
    """

    video_ids: Sequence[str]
    starts: np.ndarray
    ends: np.ndarray
    labels: Sequence[str]

    def __post_init__(self) -> None:
        _check_columns("ground truth", self.video_ids, self.starts, self.ends, self.labels, allow_inverted=True)

    def __len__(self) -> int:
        return len(self.video_ids)


@dataclass(frozen=True)
class DetectionTable:
    """Detections to score, one row per detection, in file order (which breaks score ties).

    Args:
        video_ids: [M] video id of each detection.
        starts: [M] float64 start times, same unit as the ground truth.
        ends: [M] float64 end times (``ends < starts`` is scored as officially, see the module doc).
        labels: [M] predicted class name.
        scores: [M] float64 confidence; higher is visited first.
    """

    video_ids: Sequence[str]
    starts: np.ndarray
    ends: np.ndarray
    labels: Sequence[str]
    scores: np.ndarray

    def __post_init__(self) -> None:
        _check_columns("detections", self.video_ids, self.starts, self.ends, self.labels, allow_inverted=True)
        if np.shape(self.scores) != (len(self.video_ids),):
            raise ValueError(f"detections: scores have shape {np.shape(self.scores)}, expected ({len(self.video_ids)},)")
        if not np.all(np.isfinite(self.scores)):
            raise ValueError("detections: scores must be finite")

    def __len__(self) -> int:
        return len(self.video_ids)


@dataclass(frozen=True)
class DetectionMetrics:
    """Scores of one evaluation.

    Attributes:
        tiou_thresholds: [K] thresholds, in the order given.
        classes: [C] labels with ground truth, in order of first appearance in the ground truth.
        average_precision: [K, C] AP of each class at each threshold.
        mean_average_precision: [K] mAP at each threshold (mean over the C classes).
        average_map: mean of ``mean_average_precision`` over the thresholds.
        recall: [K] matched ground-truth instances / all ground-truth instances, at each threshold.
        num_ground_truth: number of ground-truth instances (duplicates included).
        class_instances: [C] ground-truth instances of each class.
        num_detections: number of detections given.
        num_ignored_detections: detections whose label has no ground truth (not scored).
        num_detections_without_ground_truth: scored detections on videos that have no ground truth
            at all (all false positives).
    """

    tiou_thresholds: tuple[float, ...]
    classes: tuple[str, ...]
    average_precision: np.ndarray
    mean_average_precision: np.ndarray
    average_map: float
    recall: np.ndarray
    num_ground_truth: int
    class_instances: np.ndarray
    num_detections: int
    num_ignored_detections: int
    num_detections_without_ground_truth: int


def evaluate_detections(
    ground_truth: GroundTruth,
    detections: DetectionTable,
    tiou_thresholds: Sequence[float],
) -> DetectionMetrics:
    """Score detections against ground truth at each tIoU threshold, as the official evaluator does.

    Args:
        ground_truth: instances of the evaluated subset (at least one).
        detections: detections of any videos and labels (labels without ground truth are ignored).
        tiou_thresholds: thresholds in [0, 1], used as given (no rounding).

    Returns:
        Per-class AP, mAP per threshold, average mAP and recall; see :class:`DetectionMetrics`.
    """
    thresholds = np.asarray(tiou_thresholds, dtype=np.float64)  # [K]
    if thresholds.ndim != 1 or thresholds.size == 0:
        raise ValueError("tiou_thresholds: need at least one threshold")
    if not np.all((thresholds >= 0.0) & (thresholds <= 1.0)):
        raise ValueError(f"tiou_thresholds must lie in [0, 1], got {thresholds.tolist()}")
    if len(ground_truth) == 0:
        raise ValueError("ground truth has no instances")

    class_index: dict[str, int] = {}
    matching = match_detections(ground_truth, detections, thresholds, class_index)
    det_class, gt_class, num_gt = matching.det_class, matching.gt_class, len(ground_truth)
    is_true_positive = matching.matched_gt >= 0  # [K, D]

    num_positives = np.bincount(gt_class, minlength=len(class_index))  # [C]
    class_bounds = np.searchsorted(det_class, np.arange(len(class_index) + 1))  # [C+1]
    average_precision = np.zeros((len(thresholds), len(class_index)))  # [K, C], C-contiguous as officially
    for c in range(len(class_index)):
        tp = is_true_positive[:, class_bounds[c] : class_bounds[c + 1]]  # [K, D_c]
        if tp.shape[1] > 0:
            average_precision[:, c] = _class_average_precision(tp, float(num_positives[c]))
    mean_ap = average_precision.mean(axis=1)  # [K]

    return DetectionMetrics(
        tiou_thresholds=tuple(float(t) for t in thresholds),
        classes=tuple(class_index),
        average_precision=average_precision,
        mean_average_precision=mean_ap,
        average_map=float(mean_ap.mean()),
        recall=is_true_positive.sum(axis=1) / num_gt,
        num_ground_truth=num_gt,
        class_instances=num_positives,
        num_detections=len(detections),
        num_ignored_detections=len(detections) - len(matching.det_rows),
        num_detections_without_ground_truth=int(np.count_nonzero(matching.det_video < 0)),
    )


@dataclass(frozen=True)
class DetectionMatching:
    """The official greedy matching of ranked detections to ground truth, at each threshold.

    Attributes:
        det_rows: [D] rows of the detections whose label is a class, grouped by class code and ranked inside a
            class by descending score (ties: file order); position = rank.
        det_class: [D] class code of each ranked detection (non-decreasing).
        det_video: [D] video code of each (-1: a video without ground truth).
        gt_class: [N] class code of each ground-truth row.
        gt_video: [N] video code of each ground-truth row.
        matched_gt: [K, D] ground-truth row each ranked detection is matched to at each threshold (-1: none).
    """

    det_rows: np.ndarray
    det_class: np.ndarray
    det_video: np.ndarray
    gt_class: np.ndarray
    gt_video: np.ndarray
    matched_gt: np.ndarray


def match_detections(
    ground_truth: GroundTruth,
    detections: DetectionTable,
    thresholds: np.ndarray,
    class_index: dict[str, int],
) -> DetectionMatching:
    """Rank the detections and match them to ground truth at each threshold as the official evaluator does
    (the rules of the module doc).

    Args:
        ground_truth: the instances (at least one).
        detections: any detections; those whose label is not in ``class_index`` (after it grows) are left out.
        thresholds: [K] tIoU thresholds.
        class_index: label -> class code; ground-truth labels missing from it are added in order of first
            appearance (an empty dict: the official classes). A class may have no ground truth.
    """
    gt_class = _codes(ground_truth.labels, class_index, grow=True)  # [N]
    video_index: dict[str, int] = {}
    gt_video = _codes(ground_truth.video_ids, video_index, grow=True)  # [N]
    det_rows, det_class, det_video = _rank_detections(detections, class_index, video_index)
    num_dets, num_gt = len(det_rows), len(ground_truth)

    pair_group, pair_det, pair_gt, pair_tiou = _candidate_pairs(
        ground_truth, detections, det_rows, det_class, det_video, gt_class, gt_video, len(video_index), thresholds.min()
    )
    matched_gt = np.full((len(thresholds), num_dets), -1, dtype=np.int64)  # [K, D]
    for k, threshold in enumerate(thresholds):
        candidate = _matches(pair_tiou, threshold)
        matched_gt[k] = _greedy_match(pair_group[candidate], pair_det[candidate], pair_gt[candidate], num_dets, num_gt)
    return DetectionMatching(det_rows, det_class, det_video, gt_class, gt_video, matched_gt)


def segment_tiou(det_starts: np.ndarray, det_ends: np.ndarray, gt_starts: np.ndarray, gt_ends: np.ndarray) -> np.ndarray:
    """Element-wise temporal IoU of paired segments, with the official formula and operation order.

    ``inter = max(min(e_det, e_gt) - max(s_det, s_gt), 0)``,
    ``union = (e_gt - s_gt) + (e_det - s_det) - inter``, ``tIoU = inter / union`` in float64.
    A zero union of two zero-length segments (the official code gives NaN) gives 1 when both are at the
    same instant and 0 otherwise. An inverted segment (``e < s``, detection or ground truth) has ``inter = 0``:
    the tIoU is 0 for a non-zero union and NaN, as officially, for a zero one (a match at every threshold).

    Args:
        det_starts, det_ends, gt_starts, gt_ends: [P] float64 arrays, one pair per position.

    Returns:
        [P] float64 tIoU.
    """
    intersection = np.clip(np.minimum(det_ends, gt_ends) - np.maximum(det_starts, gt_starts), 0, None)
    union = (gt_ends - gt_starts) + (det_ends - det_starts) - intersection
    same_instant = (union == 0) & (det_starts == gt_starts)
    tiou = same_instant.astype(np.float64)
    np.divide(intersection, union, out=tiou, where=union > 0)
    tiou[(union == 0) & ((det_ends < det_starts) | (gt_ends < gt_starts))] = np.nan
    return tiou


def interpolated_average_precision(precision: np.ndarray, recall: np.ndarray) -> float:
    """All-point interpolated AP (VOC 2011), the official ``interpolated_prec_rec``.

    Precision is padded with 0 at both ends and recall with 0 and 1, precision is made
    non-increasing from the right, and ``sum((r[i] - r[i-1]) * p[i])`` is taken at the points where
    recall changes (the same values summed in the same order as the official code).

    Args:
        precision: [D] cumulative precision in ranking order.
        recall: [D] cumulative recall in ranking order.
    """
    padded_precision = np.concatenate([[0.0], precision, [0.0]])  # [D+2]
    padded_recall = np.concatenate([[0.0], recall, [1.0]])  # [D+2]
    padded_precision = np.maximum.accumulate(padded_precision[::-1])[::-1]
    change = np.flatnonzero(padded_recall[1:] != padded_recall[:-1]) + 1
    return float(np.sum((padded_recall[change] - padded_recall[change - 1]) * padded_precision[change]))


def _class_average_precision(is_true_positive: np.ndarray, num_positives: float) -> np.ndarray:
    """AP at each threshold of one class from its ranked true-positive flags [K, D] -> [K]."""
    tp_cumsum = np.cumsum(is_true_positive, axis=1).astype(np.float64)  # [K, D]
    fp_cumsum = np.cumsum(~is_true_positive, axis=1).astype(np.float64)  # [K, D]
    recall = tp_cumsum / num_positives
    precision = tp_cumsum / (tp_cumsum + fp_cumsum)
    return np.array([interpolated_average_precision(p, r) for p, r in zip(precision, recall)])


def _rank_detections(
    detections: DetectionTable, class_index: dict[str, int], video_index: dict[str, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detections with a ground-truth class, grouped by class and ranked by descending score.

    ``lexsort`` is stable, so equal scores keep file order.

    Returns:
        det_rows [D] (rows of ``detections``; position = rank), det_class [D] (non-decreasing),
        det_video [D] (-1: a video without ground truth).
    """
    det_class = _codes(detections.labels, class_index, grow=False)  # [M], -1: label without ground truth
    scored = np.flatnonzero(det_class >= 0)  # [D]
    scores = np.asarray(detections.scores, dtype=np.float64)[scored]
    det_rows = scored[np.lexsort((-scores, det_class[scored]))]
    det_video = _codes(detections.video_ids, video_index, grow=False)[det_rows]
    return det_rows, det_class[det_rows], det_video


def _candidate_pairs(
    ground_truth: GroundTruth,
    detections: DetectionTable,
    det_rows: np.ndarray,
    det_class: np.ndarray,
    det_video: np.ndarray,
    gt_class: np.ndarray,
    gt_video: np.ndarray,
    num_videos: int,
    min_threshold: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(detection, ground truth) pairs of one class and video with ``tIoU >= min_threshold``.

    Returns:
        pair_group, pair_det, pair_gt, pair_tiou, each [P], sorted by (class, video) group, then in
        the official visiting order: detection rank, then decreasing tIoU, then ground-truth file
        order (pairs are generated in that order and the sort is stable).
    """
    pair_det, pair_gt = same_class_video_pairs(det_class, det_video, gt_class, gt_video, num_videos)
    pair_tiou = segment_tiou(
        np.asarray(detections.starts, dtype=np.float64)[det_rows[pair_det]],
        np.asarray(detections.ends, dtype=np.float64)[det_rows[pair_det]],
        np.asarray(ground_truth.starts, dtype=np.float64)[pair_gt],
        np.asarray(ground_truth.ends, dtype=np.float64)[pair_gt],
    )
    reachable = _matches(pair_tiou, min_threshold)  # the others match at no threshold
    pair_det, pair_gt, pair_tiou = pair_det[reachable], pair_gt[reachable], pair_tiou[reachable]
    pair_group = det_class[pair_det] * num_videos + det_video[pair_det]  # [P]
    visit_key = np.where(np.isnan(pair_tiou), -np.inf, -pair_tiou)  # NaN first, as the official argsort
    order = np.lexsort((visit_key, pair_group * len(det_rows) + pair_det))
    return pair_group[order], pair_det[order], pair_gt[order], pair_tiou[order]


def _matches(tiou: np.ndarray, threshold: float) -> np.ndarray:
    """Where a pair can match at ``threshold``: ``tIoU >= threshold``, or NaN, which the official test
    ``tiou < threshold`` (false for NaN) lets through."""
    return (tiou >= threshold) | np.isnan(tiou)


def _greedy_match(
    pair_group: np.ndarray,
    pair_det: np.ndarray,
    pair_gt: np.ndarray,
    num_dets: int,
    num_gt: int,
) -> np.ndarray:
    """The official greedy matching at one threshold, vectorised over (class, video) groups.

    The official code visits detections one by one in rank order. Detections of different
    (class, video) groups never compete for the same ground truth, and inside a group the lock state
    only changes at true positives: after a match, the next true positive of the group is the
    first-ranked detection that still has an unlocked candidate (every detection ranked between them
    has only locked candidates, or none: a false positive), and it takes its best unlocked candidate.
    So each round takes the first remaining pair of every group as a match, then drops the pairs of
    the matched detections and of the newly locked ground truth. Rounds <= instances per group.

    Args:
        pair_group: [P] group id (class * num_videos + video) of each candidate pair.
        pair_det: [P] detection rank; pairs sorted by group, rank, tIoU desc., ground-truth order.
        pair_gt: [P] ground-truth row of each pair; only pairs with tIoU >= threshold.
        num_dets: number of ranked detections D.
        num_gt: number of ground-truth instances N.

    Returns:
        [D] int64: the ground-truth row each detection is matched to (a true positive), -1 where none.
    """
    matched_gt = np.full(num_dets, -1, dtype=np.int64)
    locked = np.zeros(num_gt, dtype=bool)
    while pair_det.size:
        first_of_group = np.flatnonzero(np.concatenate([[True], pair_group[1:] != pair_group[:-1]]))
        matched_gt[pair_det[first_of_group]] = pair_gt[first_of_group]
        locked[pair_gt[first_of_group]] = True
        alive = ~((matched_gt[pair_det] >= 0) | locked[pair_gt])
        pair_group, pair_det, pair_gt = pair_group[alive], pair_det[alive], pair_gt[alive]
    return matched_gt


def same_class_video_pairs(
    det_class: np.ndarray,
    det_video: np.ndarray,
    gt_class: np.ndarray,
    gt_video: np.ndarray,
    num_videos: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Every (detection, ground truth) pair of the same class and video.

    Args:
        det_class, det_video: [D] codes of the ranked detections (video -1: no ground truth).
        gt_class, gt_video: [N] codes of the ground truth.
        num_videos: number of video codes.

    Returns:
        pair_det [P], pair_gt [P]: detection ranks and ground-truth rows.
    """
    gt_group = gt_class.astype(np.int64) * num_videos + gt_video  # [N]
    gt_by_group = np.argsort(gt_group, kind="stable")  # [N] rows grouped, file order inside a group
    group_starts = np.searchsorted(gt_group[gt_by_group], np.arange(gt_group.max() + 2))
    det_group = np.where(det_video >= 0, det_class.astype(np.int64) * num_videos + det_video, -1)  # [D]
    has_group = (det_group >= 0) & (det_group <= gt_group.max())
    safe_group = np.where(has_group, det_group, 0)
    counts = np.where(has_group, group_starts[safe_group + 1] - group_starts[safe_group], 0)  # [D]
    pair_det = np.repeat(np.arange(len(det_group)), counts)  # [P]
    # Position of each pair inside its detection's run of candidates: 0, 1, ..., counts - 1.
    run_starts = np.cumsum(counts) - counts  # [D]
    within = np.arange(len(pair_det)) - np.repeat(run_starts, counts)  # [P]
    pair_gt = gt_by_group[np.repeat(group_starts[safe_group], counts) + within]  # [P]
    return pair_det, pair_gt


def _codes(values: Sequence[str], index: dict[str, int], grow: bool) -> np.ndarray:
    """Integer code of each value [len(values)]; unseen values get a new code, or -1 if not ``grow``."""
    if grow:
        return np.fromiter((index.setdefault(v, len(index)) for v in values), dtype=np.int64, count=len(values))
    return np.fromiter((index.get(v, -1) for v in values), dtype=np.int64, count=len(values))


def _check_columns(
    what: str,
    video_ids: Sequence[str],
    starts: np.ndarray,
    ends: np.ndarray,
    labels: Sequence[str],
    allow_inverted: bool = False,
) -> None:
    """Raise ``ValueError`` unless the columns have one length, finite times and (unless ``allow_inverted``)
    ``ends >= starts``."""
    n = len(video_ids)
    if np.shape(starts) != (n,) or np.shape(ends) != (n,) or len(labels) != n:
        raise ValueError(
            f"{what}: columns differ in length (video_ids {n}, starts {np.shape(starts)}, "
            f"ends {np.shape(ends)}, labels {len(labels)})"
        )
    if not (np.all(np.isfinite(starts)) and np.all(np.isfinite(ends))):
        raise ValueError(f"{what}: segment times must be finite")
    inverted = np.flatnonzero(np.asarray(ends) < np.asarray(starts))
    if inverted.size and not allow_inverted:
        i = int(inverted[0])
        raise ValueError(f"{what}: row {i} ({video_ids[i]}) has end {ends[i]} < start {starts[i]}")

"""Hand-computed cases for every rule of the official ActivityNet detection evaluator."""

from __future__ import annotations

import numpy as np
import pytest

from tadcli.evaluation.detection_map import (
    DetectionTable,
    GroundTruth,
    evaluate_detections,
    interpolated_average_precision,
    segment_tiou,
)


def make_gt(*rows: tuple[str, float, float, str]) -> GroundTruth:
    return GroundTruth(
        video_ids=[r[0] for r in rows],
        starts=np.array([r[1] for r in rows], dtype=np.float64),
        ends=np.array([r[2] for r in rows], dtype=np.float64),
        labels=[r[3] for r in rows],
    )


def make_dets(*rows: tuple[str, float, float, str, float]) -> DetectionTable:
    return DetectionTable(
        video_ids=[r[0] for r in rows],
        starts=np.array([r[1] for r in rows], dtype=np.float64),
        ends=np.array([r[2] for r in rows], dtype=np.float64),
        labels=[r[3] for r in rows],
        scores=np.array([r[4] for r in rows], dtype=np.float64),
    )


def ap_of(gt: GroundTruth, dets: DetectionTable, thresholds=(0.5,)) -> list[float]:
    """AP of the only class at each threshold."""
    metrics = evaluate_detections(gt, dets, thresholds)
    assert len(metrics.classes) == 1
    return metrics.average_precision[:, 0].tolist()


def test_perfect_predictions_score_one_everywhere() -> None:
    gt = make_gt(("a", 0, 10, "run"), ("a", 20, 30, "jump"), ("b", 5, 6, "run"))
    dets = make_dets(("a", 0, 10, "run", 0.9), ("a", 20, 30, "jump", 0.8), ("b", 5, 6, "run", 0.7))

    metrics = evaluate_detections(gt, dets, [0.3, 0.5, 0.95])

    assert metrics.average_precision.tolist() == [[1.0, 1.0]] * 3
    assert metrics.mean_average_precision.tolist() == [1.0, 1.0, 1.0]
    assert metrics.average_map == 1.0
    assert metrics.recall.tolist() == [1.0, 1.0, 1.0]


def test_interpolated_ap_by_hand() -> None:
    # Ranked: TP, FP, TP with 2 GT -> precision 1, 1/2, 2/3; recall 1/2, 1/2, 1.
    # Interpolated precision at the recall changes: 1 (at 1/2) and 2/3 (at 1) -> 1/2 * 1 + 1/2 * 2/3.
    gt = make_gt(("a", 0, 10, "run"), ("a", 20, 30, "run"))
    dets = make_dets(("a", 0, 10, "run", 0.9), ("a", 40, 50, "run", 0.8), ("a", 20, 30, "run", 0.7))

    assert ap_of(gt, dets) == [0.5 * 1.0 + 0.5 * (2.0 / 3.0)]


def test_interpolation_takes_the_best_precision_to_the_right() -> None:
    # FP, TP, TP with 2 GT: precision 0, 1/2, 2/3 -> interpolated 2/3 at both recall steps.
    precision = np.array([0.0, 0.5, 2.0 / 3.0])
    recall = np.array([0.0, 0.5, 1.0])
    assert interpolated_average_precision(precision, recall) == 0.5 * (2.0 / 3.0) + 0.5 * (2.0 / 3.0)
    # Recall never reaching 1: the missing part counts as precision 0.
    assert interpolated_average_precision(np.array([1.0]), np.array([0.25])) == 0.25


def test_threshold_is_inclusive() -> None:
    gt = make_gt(("a", 0, 10, "run"))
    dets = make_dets(("a", 0, 5, "run", 0.9))  # tIoU = 5 / 10 = 0.5 exactly
    assert ap_of(gt, dets, [0.5, 0.50001]) == [1.0, 0.0]


def test_tiou_uses_the_official_float64_formula_and_thresholds_as_given() -> None:
    # 1.8 / 2.0 is 0.9 on paper, but (2.0 - 0.0) + (1.9 - 0.1) - 1.8 in float64 gives 0.8999999999999999,
    # which passes numpy.linspace(0.5, 0.95, 10)[8] (0.8999999999999999) and fails the literal 0.9.
    tiou = segment_tiou(np.array([0.1]), np.array([1.9]), np.array([0.0]), np.array([2.0]))
    assert tiou[0] == 0.8999999999999999
    gt = make_gt(("a", 0.0, 2.0, "run"))
    dets = make_dets(("a", 0.1, 1.9, "run", 0.9))
    linspace_threshold = float(np.linspace(0.5, 0.95, 10)[8])
    assert ap_of(gt, dets, [linspace_threshold, 0.9]) == [1.0, 0.0]


def test_duplicate_detection_is_a_false_positive() -> None:
    gt = make_gt(("a", 0, 10, "run"))
    dets = make_dets(("a", 0, 10, "run", 0.9), ("a", 0, 10, "run", 0.8))
    # TP then FP: precision 1, 1/2; recall 1, 1 -> AP 1 (the FP after full recall costs nothing)
    assert ap_of(gt, dets) == [1.0]
    metrics = evaluate_detections(gt, make_dets(("a", 0, 10, "run", 0.8), ("a", 0, 10, "run", 0.9), ("b", 0, 1, "run", 0.95)), [0.5])
    # The unknown-video FP ranks first: precision 0, 1/2, 1/3 with recall 0, 1, 1 -> AP 1/2.
    assert metrics.average_precision.tolist() == [[0.5]]


def test_duplicate_ground_truth_needs_its_own_detection() -> None:
    gt = make_gt(("a", 0, 10, "run"), ("a", 0, 10, "run"))
    assert ap_of(gt, make_dets(("a", 0, 10, "run", 0.9))) == [0.5]
    assert ap_of(gt, make_dets(("a", 0, 10, "run", 0.9), ("a", 0, 10, "run", 0.8))) == [1.0]


def test_locked_ground_truth_falls_through_to_the_next_candidate_above_threshold() -> None:
    gt = make_gt(("a", 0, 10, "run"), ("a", 2, 12, "run"))
    # d1 takes GT0 (tIoU 1); d2 = [1, 11] has tIoU 9/11 with both: GT0 locked -> GT1 (>= 0.5) -> TP.
    dets = make_dets(("a", 0, 10, "run", 0.9), ("a", 1, 11, "run", 0.8))
    assert ap_of(gt, dets, [0.5, 0.85]) == [1.0, 0.5]


def test_best_candidate_locked_and_next_below_threshold_is_a_false_positive() -> None:
    gt = make_gt(("a", 0, 10, "run"), ("a", 30, 40, "run"))
    # d2 overlaps only GT0 (locked by d1); GT1 has tIoU 0 < 0.5 -> FP, and d3 still finds GT1.
    dets = make_dets(("a", 0, 10, "run", 0.9), ("a", 0, 9, "run", 0.8), ("a", 30, 40, "run", 0.7))
    assert ap_of(gt, dets) == [0.5 * 1.0 + 0.5 * (2.0 / 3.0)]


def test_equal_scores_keep_file_order() -> None:
    gt = make_gt(("a", 0, 10, "run"))
    hit, miss = ("a", 0, 10, "run", 0.5), ("a", 50, 60, "run", 0.5)
    assert ap_of(gt, make_dets(hit, miss)) == [1.0]  # TP first
    assert ap_of(gt, make_dets(miss, hit)) == [0.5]  # FP first: precision 0 then 1/2 at recall 1


def test_equal_tiou_tries_ground_truth_in_file_order() -> None:
    # d1 = [5, 15] has tIoU 1/3 with both [0, 10] and [10, 20]; it takes the one listed first.
    # d2 = [0, 10] then finds [0, 10] free (AP 1) or locked (FP: AP 1/2).
    dets = make_dets(("a", 5, 15, "run", 0.9), ("a", 0, 10, "run", 0.8))
    first_0_10 = make_gt(("a", 0, 10, "run"), ("a", 10, 20, "run"))
    first_10_20 = make_gt(("a", 10, 20, "run"), ("a", 0, 10, "run"))
    assert ap_of(first_0_10, dets, [0.3]) == [0.5]
    assert ap_of(first_10_20, dets, [0.3]) == [1.0]


def test_matching_is_independent_per_threshold() -> None:
    gt = make_gt(("a", 0, 10, "run"), ("a", 20, 30, "run"))
    # d1 = [0, 8]: tIoU 0.8 -> TP at 0.5 and 0.7, FP at 0.9; d2 = [0, 10] is FP at 0.5 and 0.7
    # (GT0 locked) but TP at 0.9 (GT0 still free there).
    dets = make_dets(("a", 0, 8, "run", 0.9), ("a", 0, 10, "run", 0.8))
    assert ap_of(gt, dets, [0.5, 0.7, 0.9]) == [0.5, 0.5, 0.25]


def test_detections_on_videos_without_ground_truth_are_false_positives() -> None:
    gt = make_gt(("a", 0, 10, "run"), ("b", 0, 10, "jump"))
    dets = make_dets(("x", 0, 10, "run", 0.9), ("a", 0, 10, "run", 0.8), ("b", 0, 10, "run", 0.85), ("b", 0, 10, "jump", 0.5))
    metrics = evaluate_detections(gt, dets, [0.5])
    # run: FP (unknown video), FP (video b has no 'run'), TP -> precision 1/3 at recall 1.
    assert metrics.classes == ("run", "jump")
    assert metrics.average_precision.tolist() == [[1.0 / 3.0, 1.0]]
    assert metrics.num_detections_without_ground_truth == 1


def test_labels_without_ground_truth_are_ignored() -> None:
    gt = make_gt(("a", 0, 10, "run"))
    with_unknown = make_dets(("a", 0, 10, "swim", 0.99), ("a", 0, 10, "run", 0.9), ("a", 0, 10, "swim", 0.5))
    metrics = evaluate_detections(gt, with_unknown, [0.5])
    assert metrics.classes == ("run",)
    assert metrics.average_precision.tolist() == [[1.0]]
    assert metrics.num_detections == 3
    assert metrics.num_ignored_detections == 2


def test_class_without_detections_counts_as_zero_in_the_mean() -> None:
    gt = make_gt(("a", 0, 10, "run"), ("a", 20, 30, "jump"))
    metrics = evaluate_detections(gt, make_dets(("a", 0, 10, "run", 0.9)), [0.3, 0.7])
    assert metrics.average_precision.tolist() == [[1.0, 0.0], [1.0, 0.0]]
    assert metrics.mean_average_precision.tolist() == [0.5, 0.5]
    assert metrics.average_map == 0.5


def test_classes_in_order_of_first_appearance_in_ground_truth() -> None:
    gt = make_gt(("a", 0, 1, "zeta"), ("b", 0, 1, "alpha"), ("c", 0, 1, "zeta"), ("c", 2, 3, "mid"))
    metrics = evaluate_detections(gt, make_dets(("a", 0, 1, "alpha", 0.5)), [0.5])
    assert metrics.classes == ("zeta", "alpha", "mid")


def test_recall_is_matched_ground_truth_over_all_classes() -> None:
    gt = make_gt(("a", 0, 10, "run"), ("a", 20, 30, "run"), ("a", 40, 50, "jump"))
    dets = make_dets(("a", 0, 10, "run", 0.9), ("a", 40, 46, "jump", 0.8))  # jump tIoU 0.6
    metrics = evaluate_detections(gt, dets, [0.5, 0.7])
    assert metrics.recall.tolist() == [2 / 3, 1 / 3]


def test_zero_length_segments() -> None:
    # Zero-length GT matched by a zero-length detection at the same instant (official: 0/0 counted
    # as a match); at another instant, or against a positive-length segment, tIoU is 0.
    gt = make_gt(("a", 5, 5, "run"), ("a", 10, 20, "run"))
    assert segment_tiou(np.array([5.0, 6.0, 4.0]), np.array([5.0, 6.0, 6.0]), np.array([5.0] * 3), np.array([5.0] * 3)).tolist() == [1.0, 0.0, 0.0]
    metrics = evaluate_detections(gt, make_dets(("a", 5, 5, "run", 0.9), ("a", 12, 12, "run", 0.8)), [0.5])
    assert metrics.recall.tolist() == [0.5]


def test_inverted_ground_truth_and_detections_are_scored_officially() -> None:
    # An inverted instance overlaps nothing; against its exact reversal the official 0/0 (NaN) is a match.
    inverted_gt = make_gt(("a", 5, 4, "run"), ("a", 20, 30, "run"))
    metrics = evaluate_detections(inverted_gt, make_dets(("a", 4, 5, "run", 0.9), ("a", 3, 6, "run", 0.8)), [0.5])
    assert metrics.recall.tolist() == [0.5] and metrics.average_precision[:, 0].tolist() == [0.5]
    gt = make_gt(("a", 0, 10, "run"), ("a", 20, 24, "run"))
    # The official tIoU of an inverted detection: 0 / (len_gt + len_det); 0/0 (NaN) when the lengths cancel.
    det_starts, det_ends = np.array([3.0, 10.0, 24.0]), np.array([2.0, 0.0, 20.0])
    tiou = segment_tiou(det_starts, det_ends, np.array([0.0] * 3), np.array([10.0] * 3))
    assert tiou[[0, 2]].tolist() == [0.0, 0.0] and np.isnan(tiou[1])
    # [3, 2] overlaps nothing; [24, 20] reverses the second instance: NaN, which the official code matches.
    metrics = evaluate_detections(gt, make_dets(("a", 3, 2, "run", 0.9), ("a", 24, 20, "run", 0.8)), [0.5, 0.95])
    assert metrics.recall.tolist() == [0.5, 0.5]
    assert metrics.average_precision[:, 0].tolist() == [0.25, 0.25]  # FP then TP: precision 1/2 at recall 1/2
    # Only the lengths count: [50, 40] lies nowhere near [0, 10] and still matches it, as officially.
    metrics = evaluate_detections(gt, make_dets(("a", 50, 40, "run", 0.9)), [0.5])
    assert metrics.recall.tolist() == [0.5]


def test_thresholds_kept_in_given_order_and_checked() -> None:
    gt = make_gt(("a", 0, 10, "run"))
    dets = make_dets(("a", 0, 6, "run", 0.9))  # tIoU 0.6
    metrics = evaluate_detections(gt, dets, [0.7, 0.3])
    assert metrics.tiou_thresholds == (0.7, 0.3)
    assert metrics.mean_average_precision.tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        evaluate_detections(gt, dets, [0.5, 1.5])
    with pytest.raises(ValueError, match="at least one"):
        evaluate_detections(gt, dets, [])


def test_no_detections_give_zero() -> None:
    gt = make_gt(("a", 0, 10, "run"))
    metrics = evaluate_detections(gt, make_dets(), [0.5])
    assert metrics.average_map == 0.0
    assert metrics.recall.tolist() == [0.0]

"""The vectorised evaluator against a line-by-line port of the official ActivityNet evaluator.

``official_average_precision_detection`` below is ``compute_average_precision_detection``,
``segment_iou`` and ``interpolated_prec_rec`` of github.com/activitynet/ActivityNet
``Evaluation/eval_detection.py`` (pandas and loops kept; ``np.float`` -> ``float`` for numpy 2).
Random inputs with continuous scores and times have no ties, where the official order is
well defined, so the two must agree bit for bit. ``bench/bench_eval.py`` times this port too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tadcli.evaluation.detection_map import DetectionTable, GroundTruth, evaluate_detections


def official_segment_iou(target_segment, candidate_segments):
    tt1 = np.maximum(target_segment[0], candidate_segments[:, 0])
    tt2 = np.minimum(target_segment[1], candidate_segments[:, 1])
    segments_intersection = (tt2 - tt1).clip(0)
    segments_union = (candidate_segments[:, 1] - candidate_segments[:, 0]) + (
        target_segment[1] - target_segment[0]
    ) - segments_intersection
    return segments_intersection.astype(float) / segments_union


def official_interpolated_prec_rec(prec, rec):
    mprec = np.hstack([[0], prec, [0]])
    mrec = np.hstack([[0], rec, [1]])
    for i in range(len(mprec) - 1)[::-1]:
        mprec[i] = max(mprec[i], mprec[i + 1])
    idx = np.where(mrec[1::] != mrec[0:-1])[0] + 1
    return np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx])


def official_average_precision_detection(ground_truth, prediction, tiou_thresholds):
    ap = np.zeros(len(tiou_thresholds))
    if prediction.empty:
        return ap
    npos = float(len(ground_truth))
    lock_gt = np.ones((len(tiou_thresholds), len(ground_truth))) * -1
    sort_idx = prediction["score"].values.argsort()[::-1]
    prediction = prediction.loc[sort_idx].reset_index(drop=True)
    tp = np.zeros((len(tiou_thresholds), len(prediction)))
    fp = np.zeros((len(tiou_thresholds), len(prediction)))
    ground_truth_gbvn = ground_truth.groupby("video-id")
    for idx, this_pred in prediction.iterrows():
        try:
            ground_truth_videoid = ground_truth_gbvn.get_group(this_pred["video-id"])
        except KeyError:  # the official code catches Exception
            fp[:, idx] = 1
            continue
        this_gt = ground_truth_videoid.reset_index()
        tiou_arr = official_segment_iou(this_pred[["t-start", "t-end"]].values, this_gt[["t-start", "t-end"]].values)
        tiou_sorted_idx = tiou_arr.argsort()[::-1]
        for tidx, tiou_thr in enumerate(tiou_thresholds):
            for jdx in tiou_sorted_idx:
                if tiou_arr[jdx] < tiou_thr:
                    fp[tidx, idx] = 1
                    break
                if lock_gt[tidx, this_gt.loc[jdx]["index"]] >= 0:
                    continue
                tp[tidx, idx] = 1
                lock_gt[tidx, this_gt.loc[jdx]["index"]] = idx
                break
            if fp[tidx, idx] == 0 and tp[tidx, idx] == 0:
                fp[tidx, idx] = 1
    tp_cumsum = np.cumsum(tp, axis=1).astype(float)
    fp_cumsum = np.cumsum(fp, axis=1).astype(float)
    recall_cumsum = tp_cumsum / npos
    precision_cumsum = tp_cumsum / (tp_cumsum + fp_cumsum)
    for tidx in range(len(tiou_thresholds)):
        ap[tidx] = official_interpolated_prec_rec(precision_cumsum[tidx, :], recall_cumsum[tidx, :])
    return ap


def official_evaluate(gt_rows, det_rows, tiou_thresholds):
    """``ANETdetection.evaluate`` on row lists: returns (ap [K, C], mAP [K], average mAP, classes)."""
    activity_index: dict[str, int] = {}
    for _, _, _, label in gt_rows:
        activity_index.setdefault(label, len(activity_index))
    ground_truth = pd.DataFrame(
        {
            "video-id": [r[0] for r in gt_rows],
            "t-start": [float(r[1]) for r in gt_rows],
            "t-end": [float(r[2]) for r in gt_rows],
            "label": [activity_index[r[3]] for r in gt_rows],
        }
    )
    det_rows = [r for r in det_rows if r[3] in activity_index]  # the official code crashes on them
    prediction = pd.DataFrame(
        {
            "video-id": [r[0] for r in det_rows],
            "t-start": [float(r[1]) for r in det_rows],
            "t-end": [float(r[2]) for r in det_rows],
            "label": [activity_index[r[3]] for r in det_rows],
            "score": [r[4] for r in det_rows],
        }
    )
    ap = np.zeros((len(tiou_thresholds), len(activity_index)))
    gt_by_label = ground_truth.groupby("label")
    pred_by_label = prediction.groupby("label")
    for cidx in activity_index.values():
        try:
            pred = pred_by_label.get_group(cidx).reset_index(drop=True)
        except KeyError:
            pred = pd.DataFrame()
        ap[:, cidx] = official_average_precision_detection(
            gt_by_label.get_group(cidx).reset_index(drop=True), pred, tiou_thresholds
        )
    mean_ap = ap.mean(axis=1)
    return ap, mean_ap, mean_ap.mean(), list(activity_index)


def random_case(rng: np.random.Generator, num_videos: int, num_classes: int, num_gt: int, num_dets: int):
    """Ground truth and detections with continuous times and scores (no ties), some videos unknown."""
    classes = [f"class_{c}" for c in rng.permutation(num_classes)]
    videos = [f"video_{v}" for v in range(num_videos)]
    gt_rows = []
    for _ in range(num_gt):
        start = rng.uniform(0, 100)
        gt_rows.append((videos[rng.integers(num_videos)], start, start + rng.uniform(0.5, 20), classes[rng.integers(num_classes)]))
    det_rows = []
    for _ in range(num_dets):
        if rng.random() < 0.6:  # near a ground-truth instance, often of its class
            video, s, e, label = gt_rows[rng.integers(len(gt_rows))]
            if rng.random() < 0.3:
                label = classes[rng.integers(num_classes)]
            jitter = rng.normal(0, 0.2 * (e - s), size=2)
            start, end = sorted((s + jitter[0], e + jitter[1]))
        else:
            video = f"video_{rng.integers(num_videos + 2)}"  # two videos have no ground truth
            label = classes[rng.integers(num_classes)] if rng.random() < 0.95 else "unknown_label"
            start = rng.uniform(0, 100)
            end = start + rng.uniform(0.1, 20) if rng.random() < 0.9 else start  # some zero-length
        det_rows.append((video, start, end, label, rng.random()))
    return gt_rows, det_rows


def to_inputs(gt_rows, det_rows):
    gt = GroundTruth(
        video_ids=[r[0] for r in gt_rows],
        starts=np.array([r[1] for r in gt_rows], dtype=np.float64),
        ends=np.array([r[2] for r in gt_rows], dtype=np.float64),
        labels=[r[3] for r in gt_rows],
    )
    dets = DetectionTable(
        video_ids=[r[0] for r in det_rows],
        starts=np.array([r[1] for r in det_rows], dtype=np.float64),
        ends=np.array([r[2] for r in det_rows], dtype=np.float64),
        labels=[r[3] for r in det_rows],
        scores=np.array([r[4] for r in det_rows], dtype=np.float64),
    )
    return gt, dets


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bit_identical_to_official_on_random_cases(seed: int) -> None:
    rng = np.random.default_rng(seed)
    gt_rows, det_rows = random_case(rng, num_videos=6, num_classes=4, num_gt=40, num_dets=400)
    thresholds = {0: np.linspace(0.5, 0.95, 10), 1: [0.1, 0.3, 0.4, 0.5, 0.6, 0.7], 2: [0.0, 0.5, 1.0]}[seed]
    ap, mean_ap, average_map, classes = official_evaluate(gt_rows, det_rows, thresholds)

    metrics = evaluate_detections(*to_inputs(gt_rows, det_rows), thresholds)

    assert list(metrics.classes) == classes
    assert metrics.average_precision.tobytes() == ap.tobytes()
    assert metrics.mean_average_precision.tobytes() == mean_ap.tobytes()
    assert metrics.average_map == average_map
    assert 0.0 < average_map < 1.0


def test_bit_identical_to_official_with_duplicate_detections_and_ground_truth() -> None:
    # Duplicates of ground truth and detections (shifted by tiny amounts so that no tie exists).
    rng = np.random.default_rng(7)
    gt_rows, det_rows = random_case(rng, num_videos=3, num_classes=2, num_gt=15, num_dets=150)
    gt_rows = gt_rows + [(v, s + 1e-9, e, label) for v, s, e, label in gt_rows[:5]]
    det_rows = det_rows + [(v, s, e + 1e-7, label, score * 0.999) for v, s, e, label, score in det_rows[:50]]
    thresholds = [0.3, 0.5, 0.7]
    ap, _, average_map, _ = official_evaluate(gt_rows, det_rows, thresholds)

    metrics = evaluate_detections(*to_inputs(gt_rows, det_rows), thresholds)

    assert metrics.average_precision.tobytes() == ap.tobytes()
    assert metrics.average_map == average_map


@pytest.mark.parametrize("seed", [3, 4])
def test_bit_identical_to_official_with_inverted_detections(seed: int) -> None:
    # Results files from other tools can hold segments whose end precedes their start: the official code
    # scores them (tIoU 0, or 0/0 = NaN, a match, for an exact reversal of a ground-truth segment).
    rng = np.random.default_rng(seed)
    gt_rows, det_rows = random_case(rng, num_videos=4, num_classes=3, num_gt=30, num_dets=300)
    det_rows = [(v, e, s, label, p) if rng.random() < 0.3 else (v, s, e, label, p) for v, s, e, label, p in det_rows]
    det_rows += [(v, e, s, label, rng.random()) for v, s, e, label in gt_rows[:8]]  # reversed copies
    thresholds = {3: np.linspace(0.5, 0.95, 10), 4: [0.0, 0.3, 0.5, 0.7]}[seed]
    with np.errstate(invalid="ignore"):  # the official 0/0
        ap, mean_ap, average_map, classes = official_evaluate(gt_rows, det_rows, thresholds)

    metrics = evaluate_detections(*to_inputs(gt_rows, det_rows), thresholds)

    assert sum(e < s for _, s, e, _, _ in det_rows) > 90
    assert list(metrics.classes) == classes
    assert metrics.average_precision.tobytes() == ap.tobytes()
    assert metrics.mean_average_precision.tobytes() == mean_ap.tobytes()
    assert metrics.average_map == average_map


def test_bit_identical_to_official_with_inverted_ground_truth() -> None:
    # An annotation file can hold an instance whose end precedes its start: the official code reads it (it
    # overlaps nothing; 0/0 = NaN, a match, against its exact reversal).
    rng = np.random.default_rng(5)
    gt_rows, det_rows = random_case(rng, num_videos=4, num_classes=3, num_gt=30, num_dets=300)
    gt_rows = [(v, e, s, label) if k % 4 == 0 else (v, s, e, label) for k, (v, s, e, label) in enumerate(gt_rows)]
    det_rows += [(v, e, s, label, rng.random()) for v, s, e, label in gt_rows[:8]]  # reversed copies
    thresholds = [0.0, 0.3, 0.5, 0.7]
    with np.errstate(invalid="ignore", divide="ignore"):  # the official 0/0
        ap, mean_ap, average_map, classes = official_evaluate(gt_rows, det_rows, thresholds)

    metrics = evaluate_detections(*to_inputs(gt_rows, det_rows), thresholds)

    assert sum(e < s for _, s, e, _ in gt_rows) == 8
    assert list(metrics.classes) == classes
    assert metrics.average_precision.tobytes() == ap.tobytes()
    assert metrics.average_map == average_map

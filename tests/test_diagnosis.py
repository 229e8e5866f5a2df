"""DETAD's diagnosis (tadcli.evaluation.diagnosis): each error type, bin and analysis on hand-built cases, and
the vectorised implementation against a direct, loop-by-loop reading of design/DIAGNOSIS.md on seeded cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tadcli.evaluation.detection_map import DetectionTable, GroundTruth
from tadcli.evaluation.diagnosis import (
    FLAVOUR_BINS,
    FLAVOUR_TIOU,
    BinFlavour,
    CharacteristicBins,
    diagnose,
    diagnosis_ground_truth,
    flavour_for,
    normalized_average_precision,
)

TYPES = ("true_positive", "double_detection", "wrong_label", "localization", "confusion", "background")


def ground_truth(rows: list[tuple[str, float, float, str]]) -> GroundTruth:
    return GroundTruth(
        [r[0] for r in rows], np.array([r[1] for r in rows], float), np.array([r[2] for r in rows], float), [r[3] for r in rows]
    )


def detections(rows: list[tuple[str, float, float, str, float]]) -> DetectionTable:
    return DetectionTable(
        [r[0] for r in rows],
        np.array([r[1] for r in rows], float),
        np.array([r[2] for r in rows], float),
        [r[3] for r in rows],
        np.array([r[4] for r in rows], float),
    )


def run(gt_rows, pred_rows, durations, thresholds=(0.5,), flavour=BinFlavour.THUMOS14) -> dict:
    counts = {video: sum(r[0] == video for r in gt_rows) for video in durations}
    truth = diagnosis_ground_truth(ground_truth(gt_rows), durations, counts)
    return diagnose(truth, detections(pred_rows), list(thresholds), flavour).to_json()


# ------------------------------------------------------------------------------------------ error types
def one_false_positive_type(gt_rows, prediction, durations=None) -> str:
    """The type of ``prediction``, ranked after a true positive on the first instance, at tIoU 0.5."""
    video, start, end, label = gt_rows[0]
    result = run(gt_rows, [(video, start, end, label, 0.9), prediction], durations or {"v": 100.0, "w": 100.0})
    group = result["false_positives"]["top"]["1G"]
    shares = {name: group[name] * group["count"] for name in TYPES}
    assert shares["true_positive"] == pytest.approx(1.0)
    (found,) = [name for name in TYPES[1:] if shares[name] > 0.5]
    return found


def test_each_error_type_by_construction() -> None:
    # two instances, so that the top-10G list of 'a' holds both predictions in group 1G (G_a = 2: 1G = 2 predictions)
    gt = [("v", 10.0, 20.0, "a"), ("v", 50.0, 60.0, "b"), ("v", 80.0, 90.0, "a")]
    assert one_false_positive_type(gt, ("v", 10.0, 19.0, "a", 0.8)) == "double_detection"  # tIoU 0.9, matched GT
    assert one_false_positive_type(gt, ("v", 50.0, 59.0, "a", 0.8)) == "wrong_label"  # tIoU 0.9 with a 'b'
    assert one_false_positive_type(gt, ("v", 80.0, 83.0, "a", 0.8)) == "localization"  # tIoU 0.3, same label
    assert one_false_positive_type(gt, ("v", 50.0, 53.0, "a", 0.8)) == "confusion"  # tIoU 0.3, other label
    assert one_false_positive_type(gt, ("v", 30.0, 40.0, "a", 0.8)) == "background"  # overlaps nothing
    assert one_false_positive_type(gt, ("w", 10.0, 20.0, "a", 0.8)) == "background"  # a video without ground truth


def test_background_starts_below_tiou_0_1() -> None:
    gt = [("v", 10.0, 20.0, "a"), ("v", 50.0, 60.0, "b"), ("v", 80.0, 90.0, "a")]
    assert one_false_positive_type(gt, ("v", 80.0, 81.0, "a", 0.8)) == "localization"  # tIoU exactly 0.1
    assert one_false_positive_type(gt, ("v", 80.0, 80.9, "a", 0.8)) == "background"  # tIoU 0.09


def test_the_best_overlap_of_any_label_decides_and_file_order_breaks_its_ties() -> None:
    # own class at 0.7 and another class at 0.8: wrong label, not double detection
    gt = [("v", 0.0, 10.0, "a"), ("v", 100.0, 110.0, "a"), ("v", 100.0, 108.0, "b")]
    prediction = ("v", 100.0, 107.0, "a", 0.8)  # tIoU 0.7 with the 'a' at 100, 0.875 with 'b'
    # that 'a' instance taken first by a better prediction leaves this one unmatched
    rows = [("v", 0.0, 10.0, "a", 0.95), ("v", 100.0, 110.0, "a", 0.9), prediction]
    group = run(gt, rows, {"v": 200.0})["false_positives"]["top"]["2G"]  # G_a = 2: the third prediction
    assert group["count"] == 1 and group["wrong_label"] == 1.0
    # CliffDiving duplicated as Diving: which one the file lists first decides
    same = [("v", 0.0, 10.0, "a"), ("v", 20.0, 30.0, "b"), ("v", 20.0, 30.0, "a")]
    rows = [("v", 0.0, 10.0, "a", 0.99), ("v", 20.0, 30.0, "a", 0.9), ("v", 20.0, 30.0, "a", 0.8)]
    assert run(same, rows, {"v": 200.0})["false_positives"]["top"]["2G"]["wrong_label"] == 1.0
    same[1], same[2] = same[2], same[1]
    assert run(same, rows, {"v": 200.0})["false_positives"]["top"]["2G"]["double_detection"] == 1.0


def test_groups_are_disjoint_blocks_of_g_predictions_and_stop_at_10g() -> None:
    gt = [("v", 0.0, 10.0, "a"), ("v", 20.0, 30.0, "a")]  # G = 2: top 20 predictions, 10 groups of 2
    rows = [("v", 100.0 + i, 101.0 + i, "a", 1.0 - i / 100) for i in range(25)]
    result = run(gt, rows, {"v": 200.0})["false_positives"]
    assert [result["top"][f"{k}G"]["count"] for k in range(1, 11)] == [2] * 10
    assert result["groups"] == 10 and result["min_tiou"] == 0.1
    assert all(result["top"][f"{k}G"]["background"] == 1.0 for k in range(1, 11))


def test_empty_groups_are_null() -> None:
    result = run([("v", 0.0, 10.0, "a")], [("v", 0.0, 10.0, "a", 0.5)], {"v": 200.0})["false_positives"]["top"]
    assert result["1G"]["count"] == 1 and result["1G"]["true_positive"] == 1.0
    assert result["2G"] == {"count": 0, **{name: None for name in TYPES}}


# ------------------------------------------------------------------------------------------ mAP_N and gains
def test_normalized_ap_uses_the_global_average_of_instances() -> None:
    flags = np.array([True, False, False, True])
    # R = .5 .5 .5 1; P_N = R N / (R N + FP) with N = 1.5: 1, 0.75/1.75, 0.75/2.75, 1.5/3.5
    assert normalized_average_precision(flags, 2.0, 1.5) == pytest.approx(0.5 * 1.0 + 0.5 * 1.5 / 3.5)
    assert normalized_average_precision(np.zeros(0, bool), 2.0, 1.5) == 0.0


def test_removing_an_error_type_raises_map_by_the_hand_computed_amount() -> None:
    gt = [("v", 0.0, 5.0, "x"), ("v", 10.0, 20.0, "y"), ("w", 5.0, 8.0, "x")]
    rows = [
        ("v", 0.0, 5.0, "x", 0.9),  # true positive
        ("v", 0.0, 4.0, "x", 0.8),  # double detection
        ("v", 10.0, 19.0, "x", 0.7),  # wrong label
        ("w", 5.0, 7.0, "x", 0.6),  # true positive
        ("u", 1.0, 2.0, "y", 0.5),  # background (video without ground truth)
    ]
    result = run(gt, rows, {"v": 100.0, "w": 50.0})
    fp = result["false_positives"]
    # N = 3 / 2; class x: T F F T -> 0.5 + 0.5 * 1.5 / 3.5; class y: F -> 0
    average = (0.5 + 0.5 * 1.5 / 3.5) / 2
    assert fp["average_mAP_N"] == pytest.approx(average)
    assert result["sensitivity"]["average_mAP_N"] == pytest.approx(average)
    # without the double detection: T F T -> 0.5 + 0.5 * 1.5 / 2.5
    assert fp["map_gain"]["double_detection"] == pytest.approx((0.5 + 0.5 * 0.6) / 2 - average)
    assert fp["map_gain"]["wrong_label"] == pytest.approx((0.5 + 0.5 * 0.6) / 2 - average)
    assert fp["map_gain"]["background"] == pytest.approx(0.0, abs=1e-12)  # y has no TP: AP stays 0
    assert fp["map_gain"]["localization"] == pytest.approx(0.0, abs=1e-12)  # absent type


# ------------------------------------------------------------------------------------------ bins
def test_bins_are_pandas_cut_right_closed_with_the_lowest_edge_included() -> None:
    coverage = FLAVOUR_BINS[BinFlavour.THUMOS14]["coverage"]
    values = np.array([0.0, 0.02, np.nextafter(0.02, 1), 0.08, 1.0, np.nextafter(1.0, 2), -0.1, np.nan])
    assert coverage.assign(values).tolist() == [0, 0, 1, 3, 4, -1, -1, -1]
    anet = FLAVOUR_BINS[BinFlavour.ACTIVITYNET]["coverage"]
    assert anet.edges[3] == 0.6000000000000001
    assert anet.assign(np.array([0.6, 0.6000000000000001, np.nextafter(0.6000000000000001, 1)])).tolist() == [2, 2, 3]
    instances = FLAVOUR_BINS[BinFlavour.THUMOS14]["num_instances"]
    assert instances.assign(np.array([1.0, 2.0, 40.0, 41.0, 80.0, 1e9])).tolist() == [0, 1, 1, 2, 2, 3]
    assert CharacteristicBins((0.0, 3.0, np.inf), ("XS", "S")).assign(np.array([3.0, 3.5, 1e300])).tolist() == [0, 1, 1]


def test_instances_are_binned_by_coverage_length_and_instances_per_video() -> None:
    gt = [("v", 0.0, 3.0, "a"), ("v", 10.0, 13.5, "a"), ("w", 0.0, 40.0, "a")]  # lengths 3 (XS), 3.5 (S), 40 (XL)
    result = run(gt, [("v", 0.0, 3.0, "a", 0.9)], {"v": 150.0, "w": 40.0})
    sensitivity = result["sensitivity"]
    assert [sensitivity["length"][b]["count"] for b in ("XS", "S", "M", "L", "XL")] == [1, 1, 0, 0, 1]
    # coverage 3/150 = 0.02 (XS, right-closed), 3.5/150 (S), 40/40 = 1 (XL, kept: only > 1 is removed)
    assert [sensitivity["coverage"][b]["count"] for b in ("XS", "S", "M", "L", "XL")] == [1, 1, 0, 0, 1]
    assert [sensitivity["num_instances"][b]["count"] for b in ("XS", "S", "M", "L")] == [1, 2, 0, 0]
    assert sensitivity["length"]["M"]["mAP_N"] is None and result["false_negatives"]["length"]["M"] is None


def test_instances_with_coverage_above_one_or_no_length_are_removed_but_their_class_stays() -> None:
    gt = [("v", 0.0, 10.0, "a"), ("v", 0.0, 200.0, "b"), ("v", 5.0, 5.0, "c")]
    truth = diagnosis_ground_truth(ground_truth(gt), {"v": 100.0}, {"v": 3})
    assert len(truth.instances) == 1 and truth.num_removed == 2
    assert truth.classes == ("a", "b", "c") and truth.average_num_instance_per_class == pytest.approx(1 / 3)
    assert truth.characteristics["num_instances"].tolist() == [3.0]  # counts every annotation of the video


def test_flavour_follows_the_dataset_or_the_data() -> None:
    assert flavour_for("thumos14", np.array([0.5])) is BinFlavour.THUMOS14
    assert flavour_for("multithumos", np.array([0.5])) is BinFlavour.THUMOS14
    assert flavour_for("charades", np.array([0.01])) is BinFlavour.ACTIVITYNET
    assert flavour_for(None, np.array([0.01, 0.05, 0.5])) is BinFlavour.THUMOS14
    assert flavour_for("custom", np.array([0.3, 0.5])) is BinFlavour.ACTIVITYNET
    assert FLAVOUR_TIOU[BinFlavour.THUMOS14] == (0.5,)
    assert FLAVOUR_TIOU[BinFlavour.ACTIVITYNET][8] == 0.8999999999999999


# ------------------------------------------------------------------------------------------ sensitivity, FN
def test_sensitivity_drops_predictions_matched_outside_the_bin_and_keeps_false_positives() -> None:
    gt = [("v", 0.0, 2.0, "a"), ("v", 10.0, 30.0, "a")]  # lengths 2 (XS) and 20 (XL)
    rows = [("v", 10.0, 30.0, "a", 0.9), ("v", 50.0, 52.0, "a", 0.8), ("v", 0.0, 2.0, "a", 0.7)]
    sensitivity = run(gt, rows, {"v": 100.0})["sensitivity"]["length"]
    # XS: the XL match is dropped; FP then TP against 1 instance, N = 2: R = 0, 1; P = 0, 2 / (2 + 1)
    assert sensitivity["XS"]["mAP_N"] == pytest.approx(2 / 3)
    # XL: TP first -> AP 1
    assert sensitivity["XL"]["mAP_N"] == pytest.approx(1.0)


def test_false_negatives_count_matches_below_the_precision_floor_as_missed() -> None:
    gt = [("v", 0.0, 10.0, "a")]
    late = [("v", 100.0 + i, 101.0 + i, "a", 1.0 - i / 100) for i in range(30)] + [("v", 0.0, 10.0, "a", 0.1)]
    # N = 1: P at the match = 1 / (1 + 30) <= 0.05: discarded, the instance counts as missed
    assert run(gt, late, {"v": 200.0})["false_negatives"]["length"]["M"] == 1.0
    early = late[:10] + late[-1:]  # P = 1 / 11 > 0.05
    assert run(gt, early, {"v": 200.0})["false_negatives"]["length"]["M"] == 0.0
    assert run(gt, late, {"v": 200.0})["false_negatives"]["min_normalized_precision"] == 0.05


def test_rates_average_over_thresholds() -> None:
    gt = [("v", 0.0, 10.0, "a")]
    result = run(gt, [("v", 0.0, 6.0, "a", 0.9)], {"v": 200.0}, thresholds=(0.5, 0.7))  # tIoU 0.6
    assert result["false_negatives"]["length"]["M"] == pytest.approx(0.5)
    assert result["false_positives"]["top"]["1G"]["true_positive"] == pytest.approx(0.5)
    assert result["false_positives"]["top"]["1G"]["localization"] == pytest.approx(0.5)


# ------------------------------------------------------------------------------------------ layout
def test_json_layout_is_the_documented_one() -> None:
    result = run([("v", 0.0, 10.0, "a")], [("v", 0.0, 10.0, "a", 0.5)], {"v": 200.0}, flavour=BinFlavour.ACTIVITYNET)
    assert {"tiou_thresholds", "characteristics", "average_num_instance_per_class", "false_positives",
            "sensitivity", "false_negatives"} <= set(result)
    assert list(result["characteristics"]) == ["coverage", "length", "num_instances"]
    assert result["characteristics"]["length"]["edges"] == [0.0, 30.0, 60.0, 120.0, 180.0, "inf"]
    assert result["characteristics"]["num_instances"] == {"edges": [-1.0, 1.0, 4.0, 8.0, "inf"], "bins": ["XS", "S", "M", "L"]}
    assert list(result["false_positives"]["top"]) == [f"{k}G" for k in range(1, 11)]
    assert list(result["false_positives"]["top"]["1G"]) == ["count", *TYPES]
    assert list(result["false_positives"]["map_gain"]) == list(TYPES[1:])
    assert list(result["sensitivity"]) == ["average_mAP_N", "coverage", "length", "num_instances"]
    assert list(result["sensitivity"]["coverage"]) == ["XS", "S", "M", "L", "XL"]
    assert set(result["sensitivity"]["coverage"]["XS"]) == {"count", "mAP_N"}
    assert list(result["false_negatives"]) == ["min_normalized_precision", "coverage", "length", "num_instances"]


# ------------------------------------------------------------------------------------------ reference
def reference_diagnosis(gt_rows, durations, pred_rows, thresholds, flavour) -> dict:
    """design/DIAGNOSIS.md read literally, one loop per sentence (slow, obviously right)."""
    counts = {video: sum(r[0] == video for r in gt_rows) for video in durations}
    classes = list(dict.fromkeys(r[3] for r in gt_rows))
    rows = []
    for video, start, end, label in gt_rows:
        length, coverage = end - start, (end - start) / durations[video]
        if coverage > 1 or length <= 0:
            continue
        rows.append({"video": video, "s": start, "e": end, "label": label, "length": length,
                     "coverage": coverage, "num_instances": counts[video]})
    n_avg = len(rows) / len(classes)
    num_pos = {c: sum(r["label"] == c for r in rows) for c in classes}
    preds = [p for p in pred_rows if p[3] in classes]
    ranked = {c: sorted((i for i, p in enumerate(preds) if p[3] == c), key=lambda i: -preds[i][4]) for c in classes}
    K = len(thresholds)

    def tiou(p, r):
        inter = max(0.0, min(r["e"], p[2]) - max(r["s"], p[1]))
        return inter / ((r["e"] - r["s"]) + (p[2] - p[1]) - inter)

    match = {}
    for c in classes:
        for k, alpha in enumerate(thresholds):
            used = set()
            for i in ranked[c]:
                candidates = sorted(
                    (j for j, r in enumerate(rows) if r["label"] == c and r["video"] == preds[i][0]),
                    key=lambda j: -tiou(preds[i], rows[j]),
                )
                match[k, i] = None
                for j in candidates:
                    if tiou(preds[i], rows[j]) < alpha:
                        break
                    if j in used:
                        continue
                    match[k, i] = j
                    used.add(j)
                    break

    def with_floor(floor):
        out = dict(match)
        for c in classes:
            for k in range(K):
                tp = fp = 0
                for i in ranked[c]:
                    tp, fp = (tp + 1, fp) if match[k, i] is not None else (tp, fp + 1)
                    r = tp / num_pos[c]
                    if r * n_avg / (r * n_avg + fp) <= floor:
                        out[k, i] = None
        return out

    def ap_n(flags, npos):
        if not flags:
            return 0.0
        tp = fp = 0
        prec, rec = [0.0], [0.0]
        for flag in flags:
            tp, fp = (tp + 1, fp) if flag else (tp, fp + 1)
            rec.append(tp / npos)
            prec.append(rec[-1] * n_avg / (rec[-1] * n_avg + fp))
        prec.append(0.0)
        rec.append(1.0)
        for i in range(len(prec) - 2, -1, -1):
            prec[i] = max(prec[i], prec[i + 1])
        return sum((rec[i] - rec[i - 1]) * prec[i] for i in range(1, len(rec)) if rec[i] != rec[i - 1])

    def mean(values):
        return sum(values) / len(values)

    bins = FLAVOUR_BINS[flavour]

    def bin_of(value, edges):
        for b in range(len(edges) - 1):
            if (edges[b] <= value if b == 0 else edges[b] < value) and value <= edges[b + 1]:
                return b
        return None

    # false positives
    top = {c: ranked[c][: 10 * num_pos[c]] for c in classes}

    def fp_type(k, i):
        if match[k, i] is not None:
            return "true_positive"
        p = preds[i]
        in_video = [r for r in rows if r["video"] == p[0]]
        if not in_video:
            return "background"
        overlaps = [tiou(p, r) for r in in_video]
        best = max(overlaps)
        same = in_video[overlaps.index(best)]["label"] == p[3]
        if best >= thresholds[k]:
            return "double_detection" if same else "wrong_label"
        if best >= 0.1:
            return "localization" if same else "confusion"
        return "background"

    groups = [[] for _ in range(10)]
    for c in classes:
        for position, i in enumerate(top[c]):
            groups[position // num_pos[c]].append(i)
    fp_top = {}
    for g, members in enumerate(groups):
        entry = {"count": len(members)}
        for name in TYPES:
            entry[name] = mean([sum(fp_type(k, i) == name for i in members) / len(members) for k in range(K)]) if members else None
        fp_top[f"{g + 1}G"] = entry
    average_fp = mean([mean([ap_n([match[k, i] is not None for i in top[c]], num_pos[c]) for c in classes]) for k in range(K)])
    gains = {
        name: mean([mean([ap_n([match[k, i] is not None for i in top[c] if fp_type(k, i) != name], num_pos[c]) for c in classes]) for k in range(K)]) - average_fp
        for name in TYPES[1:]
    }
    # sensitivity and false negatives
    average = mean([mean([ap_n([match[k, i] is not None for i in ranked[c]], num_pos[c]) for c in classes]) for k in range(K)])
    sensitivity = {"average_mAP_N": average}
    missed_floor = with_floor(0.05)
    false_negatives = {}
    for name, characteristic in bins.items():
        sensitivity[name], false_negatives[name] = {}, {}
        for b, bin_name in enumerate(characteristic.names):
            in_bin = [j for j, r in enumerate(rows) if bin_of(r[name], characteristic.edges) == b]
            if not in_bin:
                sensitivity[name][bin_name] = {"count": 0, "mAP_N": None}
                false_negatives[name][bin_name] = None
                continue
            aps = []
            for c in classes:
                of_class = [j for j in in_bin if rows[j]["label"] == c]
                if not of_class:
                    continue
                kept = [i for i in ranked[c] if all(match[k, i] is None or match[k, i] in of_class for k in range(K))]
                aps.append(mean([ap_n([match[k, i] is not None for i in kept], len(of_class)) for k in range(K)]))
            sensitivity[name][bin_name] = {"count": len(in_bin), "mAP_N": mean(aps)}
            detected = [{missed_floor[k, i] for i in range(len(preds)) if (k, i) in missed_floor} for k in range(K)]
            false_negatives[name][bin_name] = mean([sum(j not in detected[k] for j in in_bin) / len(in_bin) for k in range(K)])
    return {"average_num_instance_per_class": n_avg, "fp_top": fp_top, "average_fp": average_fp, "gains": gains,
            "sensitivity": sensitivity, "false_negatives": false_negatives}


def random_case(seed: int, predictions_per_instance: int = 4):
    rng = np.random.default_rng(seed)
    durations = {"v0": 60.0, "v1": 90.0, "v2": 12.0, "v3": 200.0}
    labels = ["a", "b", "c"]
    gt_rows = []
    for video, duration in durations.items():
        for _ in range(int(rng.integers(1, 7))):
            start = float(np.round(rng.uniform(0, duration), 1))
            length = float(np.round(rng.choice([rng.uniform(0.5, 4), rng.uniform(4, 40)]), 1))
            gt_rows.append((video, start, start + length, str(rng.choice(labels))))
    gt_rows.append(("v2", 1.0, 20.0, "a"))  # coverage above 1: removed
    gt_rows.append(("v0", 5.0, 5.0, "b"))  # no length: removed
    gt_rows.append(gt_rows[0])  # an exact duplicate instance
    for label in labels:  # every class keeps an instance
        gt_rows.append(("v3", float(rng.uniform(0, 150)), 0.0, label))
        gt_rows[-1] = (gt_rows[-1][0], gt_rows[-1][1], gt_rows[-1][1] + 5.0, label)
    pred_rows = []
    for video, start, end, label in gt_rows:
        for _ in range(int(rng.integers(0, predictions_per_instance))):
            jitter = rng.normal(0, 0.25 * max(end - start, 0.5), 2)
            s, e = sorted((start + jitter[0], end + jitter[1]))
            other = str(rng.choice(labels)) if rng.random() < 0.3 else label
            pred_rows.append((video, float(s), float(e), other, float(np.round(rng.random(), 1))))  # ties on purpose
    for _ in range(15):  # background, a video without ground truth, an unknown label
        video = str(rng.choice(["v0", "v1", "v3", "nogt"]))
        start = float(rng.uniform(0, 100))
        pred_rows.append((video, start, start + float(rng.uniform(0.5, 10)), str(rng.choice(labels + ["zzz"])), float(np.round(rng.random(), 1))))
    return gt_rows, durations, pred_rows


@pytest.mark.parametrize(
    "seed, thresholds, flavour",
    [
        (0, (0.5,), BinFlavour.THUMOS14),
        (1, FLAVOUR_TIOU[BinFlavour.ACTIVITYNET], BinFlavour.ACTIVITYNET),
        (2, (0.3, 0.5, 0.7), BinFlavour.THUMOS14),
        (3, (0.1, 0.5), BinFlavour.ACTIVITYNET),
        (4, (0.5, 0.75), BinFlavour.THUMOS14),  # more than 10 G_c predictions per class: the top-10G cut
    ],
)
def test_matches_the_definitions_read_literally(seed: int, thresholds, flavour) -> None:
    gt_rows, durations, pred_rows = random_case(seed, predictions_per_instance=4 if seed < 4 else 40)
    expected = reference_diagnosis(gt_rows, durations, pred_rows, thresholds, flavour)
    result = run(gt_rows, pred_rows, durations, thresholds, flavour)
    assert result["tiou_thresholds"] == list(thresholds)
    assert result["average_num_instance_per_class"] == pytest.approx(expected["average_num_instance_per_class"], abs=1e-12)
    fp = result["false_positives"]
    assert fp["average_mAP_N"] == pytest.approx(expected["average_fp"], abs=1e-9)
    for name, gain in expected["gains"].items():
        assert fp["map_gain"][name] == pytest.approx(gain, abs=1e-9), name
    for group, entry in expected["fp_top"].items():
        assert fp["top"][group]["count"] == entry["count"]
        for name in TYPES:
            assert (fp["top"][group][name] is None) == (entry[name] is None)
            if entry[name] is not None:
                assert fp["top"][group][name] == pytest.approx(entry[name], abs=1e-9), (group, name)
    assert result["sensitivity"]["average_mAP_N"] == pytest.approx(expected["sensitivity"]["average_mAP_N"], abs=1e-9)
    for name in ("coverage", "length", "num_instances"):
        for bin_name, entry in expected["sensitivity"][name].items():
            got = result["sensitivity"][name][bin_name]
            assert got["count"] == entry["count"]
            assert (got["mAP_N"] is None) == (entry["mAP_N"] is None)
            if entry["mAP_N"] is not None:
                assert got["mAP_N"] == pytest.approx(entry["mAP_N"], abs=1e-9), (name, bin_name)
            rate = expected["false_negatives"][name][bin_name]
            assert (result["false_negatives"][name][bin_name] is None) == (rate is None)
            if rate is not None:
                assert result["false_negatives"][name][bin_name] == pytest.approx(rate, abs=1e-9), (name, bin_name)


def test_a_class_whose_instances_were_all_removed_gives_null_as_detad() -> None:
    gt = [("v", 0.0, 10.0, "a"), ("v", 0.0, 500.0, "b")]  # 'b' covers more than its video: removed
    rows = [("v", 0.0, 10.0, "a", 0.9), ("v", 0.0, 400.0, "b", 0.8)]
    result = run(gt, rows, {"v": 100.0})
    assert result["false_positives"]["average_mAP_N"] == pytest.approx(0.5)  # 'b' keeps 10 * 0 predictions: AP 0
    assert result["sensitivity"]["average_mAP_N"] is None  # DETAD: 0 / 0 for 'b'
    assert math.isclose(result["sensitivity"]["length"]["M"]["mAP_N"], 1.0)

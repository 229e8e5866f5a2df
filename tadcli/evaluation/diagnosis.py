"""DETAD's error diagnosis of a detector: false-positive, sensitivity and false-negative analyses.

Reference: Alwassel et al., *Diagnosing Error in Temporal Action Detectors* (ECCV 2018), and its code
(github.com/HumamAlwassel/DETAD, snapshot ``24f7d95``, the Python 3 version). Every number is what that code
computes when run as its README says; the definitions, parameters and bins are written out in the project's
``design/DIAGNOSIS.md`` and summarised here.

What DETAD does differently from the official mAP of :mod:`tadcli.evaluation.detection_map` (so it is computed
here, on top of the same matching):

- Ground truth (:func:`diagnosis_ground_truth`): instances with ``coverage = length / duration > 1`` or
  ``length <= 0`` are removed (the official mAP keeps both). The classes are still those with an annotation in
  the subset before that removal (a class may keep no instance).
- Every AP is the *normalized* AP: ``P_i = R_i N / (R_i N + FP_i)`` with ``N`` the average number of instances
  per class, one global value (:func:`normalized_average_precision`), instead of ``TP_i / (TP_i + FP_i)``.
- A precision floor: after matching, predictions at ranks whose normalized precision is ``<= floor`` become
  unmatched (nothing is re-matched). 0 (no effect) for the false-positive and sensitivity analyses, 0.05 for
  the false-negative analysis.

The matching itself is the official one (:func:`tadcli.evaluation.detection_map.match_detections`: rank by
descending score, ties in file order; each prediction takes the best-overlapping unmatched instance of its class
and video with ``tIoU >= threshold``; equal tIoU: the instance first in file order). One matching serves the
three analyses: the greedy matching of a rank prefix (the top-10G predictions of a class) is the prefix of the
full matching, and the floor only removes matches.

False-positive analysis (:class:`FalsePositiveAnalysis`): per class c the top ``10 G_c`` predictions
(``G_c`` instances of c). An unmatched prediction is typed by the instance of *any* label in its video that
overlaps it most (``t*``; equal overlaps: the first in file order): same label and ``t* >= threshold``: double
detection; other label and ``t* >= threshold``: wrong label; ``0.1 <= t* < threshold``: localization (same label)
or confusion (other); else, or with no instance in the video, background. Group ``kG`` is the k-th block of
``G_c`` predictions of every class. ``map_gain[E]``: the average mAP_N with the predictions of type E removed
(not turned into true positives), minus the average mAP_N.

Sensitivity analysis (:class:`SensitivityAnalysis`): all predictions; for a bin b of a characteristic, per class
with instances in b, the predictions that at every threshold are unmatched or matched to an instance of b (those
matched elsewhere are dropped), scored against the instances of b; mAP_N is the mean over those classes.

False-negative analysis (:class:`FalseNegativeAnalysis`): with the 0.05 floor, the share of a bin's instances
that no prediction matches, averaged over the thresholds.

Where DETAD's code is not followed literally (it crashes, is undefined or has a bug): labels without ground
truth are ignored (DETAD raises ``KeyError``); equal scores keep file order (numpy's unstable sort there);
every false positive on a video without ground truth is background (DETAD types the second and later ones
against the previously visited video's ground truth); a class with instances and no prediction has AP_N 0 in
the sensitivity analysis (DETAD raises ``KeyError``); equal tIoU with two instances of one class: the first in
file order. A class whose instances were all removed has AP_N NaN where it has predictions (DETAD's ``0 / 0``),
which makes the means it enters NaN (``null`` in the JSON), as in DETAD.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np

from tadcli.evaluation.detection_map import (
    DetectionMatching,
    DetectionTable,
    GroundTruth,
    interpolated_average_precision,
    match_detections,
    same_class_video_pairs,
    segment_tiou,
)

__all__ = [
    "ERROR_TYPES",
    "PREDICTION_TYPES",
    "CHARACTERISTICS",
    "LIMIT_FACTOR",
    "MIN_TIOU",
    "FALSE_NEGATIVE_MIN_PRECISION",
    "BinFlavour",
    "CharacteristicBins",
    "FLAVOUR_BINS",
    "FLAVOUR_TIOU",
    "flavour_for",
    "DiagnosisGroundTruth",
    "diagnosis_ground_truth",
    "FalsePositiveAnalysis",
    "SensitivityAnalysis",
    "FalseNegativeAnalysis",
    "Diagnosis",
    "DiagnosisOutput",
    "diagnose",
    "normalized_average_precision",
]

ERROR_TYPES = ("double_detection", "wrong_label", "localization", "confusion", "background")
PREDICTION_TYPES = ("true_positive", *ERROR_TYPES)  # codes 0..5 in the arrays below
TRUE_POSITIVE, DOUBLE_DETECTION, WRONG_LABEL, LOCALIZATION, CONFUSION, BACKGROUND = range(len(PREDICTION_TYPES))
CHARACTERISTICS = ("coverage", "length", "num_instances")
LIMIT_FACTOR = 10  # DETAD's limit_factor: top 10 G_c predictions per class, 10 groups 1G..10G
MIN_TIOU = 0.1  # DETAD's min_tiou_thr: below it (exclusive) an error is background
FALSE_NEGATIVE_MIN_PRECISION = 0.05  # DETAD's minimum_normalized_precision_threshold_for_detection (false negatives)


class BinFlavour(StrEnum):
    """Which of DETAD's two sets of characteristic bins (and default thresholds) a diagnosis uses."""

    THUMOS14 = "thumos14"
    ACTIVITYNET = "activitynet"


@dataclass(frozen=True)
class CharacteristicBins:
    """Bins of one characteristic, as ``pandas.cut(values, edges, right=True, include_lowest=True)``: the first
    bin is ``[e0, e1]``, the others ``(e_k, e_k+1]``; values outside every bin (or NaN) have none.

    Attributes:
        edges: [B+1] increasing edges (the exact floats DETAD uses; ``inf`` allowed).
        names: [B] bin names, e.g. ``XS`` .. ``XL``.
    """

    edges: tuple[float, ...]
    names: tuple[str, ...]

    def assign(self, values: np.ndarray) -> np.ndarray:
        """[N] bin index of each value, -1 where none."""
        edges = np.asarray(self.edges, dtype=np.float64)
        index = np.searchsorted(edges, values, side="left") - 1  # edges[i] < v <= edges[i+1] -> i
        index[values == edges[0]] = 0  # include_lowest
        index[(index < 0) | (index >= len(self.names)) | np.isnan(values)] = -1
        return index


_SIZES5 = ("XS", "S", "M", "L", "XL")
_SIZES4 = ("XS", "S", "M", "L")
FLAVOUR_BINS: dict[BinFlavour, dict[str, CharacteristicBins]] = {
    BinFlavour.ACTIVITYNET: {
        "coverage": CharacteristicBins(tuple(float(e) for e in np.linspace(0, 1, 6)), _SIZES5),
        "length": CharacteristicBins((0.0, 30.0, 60.0, 120.0, 180.0, np.inf), _SIZES5),
        "num_instances": CharacteristicBins((-1.0, 1.0, 4.0, 8.0, np.inf), _SIZES4),
    },
    BinFlavour.THUMOS14: {
        "coverage": CharacteristicBins((0.0, 0.02, 0.04, 0.06, 0.08, 1.0), _SIZES5),
        "length": CharacteristicBins((0.0, 3.0, 6.0, 12.0, 18.0, np.inf), _SIZES5),
        "num_instances": CharacteristicBins((-1.0, 1.0, 40.0, 80.0, np.inf), _SIZES4),
    },
}
# DETAD's own thresholds: THUMOS14 only 0.5; ActivityNet numpy.linspace(0.5, 0.95, 10) (its 9th is 0.8999999999999999)
FLAVOUR_TIOU: dict[BinFlavour, tuple[float, ...]] = {
    BinFlavour.THUMOS14: (0.5,),
    BinFlavour.ACTIVITYNET: tuple(float(t) for t in np.linspace(0.5, 0.95, 10)),
}
# dataset profile -> the closer of DETAD's two bin sets: short actions in long videos with many instances
# (Multi-THUMOS are THUMOS videos; EPIC-Kitchens) take THUMOS14's; Charades' actions cover a large share of short
# videos with a few instances each: ActivityNet's coverage and instance bins spread them, THUMOS14's put nearly all
# in one bin.
_PROFILE_FLAVOUR = {
    "thumos14": BinFlavour.THUMOS14,
    "multithumos": BinFlavour.THUMOS14,
    "epic-kitchens": BinFlavour.THUMOS14,
    "activitynet": BinFlavour.ACTIVITYNET,
    "charades": BinFlavour.ACTIVITYNET,
}
_THUMOS_MAX_MEDIAN_COVERAGE = 0.08  # the start of THUMOS14's XL coverage bin


def flavour_for(profile: str | None, coverage: np.ndarray) -> BinFlavour:
    """The bins of ``profile`` (see ``_PROFILE_FLAVOUR``); for other data (custom, synthetic, no profile) the
    closer of the two by the data: THUMOS14's when the median coverage is at most 0.08 (below THUMOS14's XL
    coverage bin), else ActivityNet's."""
    if profile in _PROFILE_FLAVOUR:
        return _PROFILE_FLAVOUR[profile]
    if coverage.size and float(np.median(coverage)) <= _THUMOS_MAX_MEDIAN_COVERAGE:
        return BinFlavour.THUMOS14
    return BinFlavour.ACTIVITYNET


# ------------------------------------------------------------------------------------------ ground truth
@dataclass(frozen=True)
class DiagnosisGroundTruth:
    """The ground truth of a diagnosis: the subset's instances that DETAD keeps, with their characteristics.

    Attributes:
        classes: [C] labels with an annotation in the subset before the removal, in order of first appearance.
        instances: the kept instances (``coverage <= 1`` and ``length > 0``), in file order.
        characteristics: ``coverage``, ``length`` (seconds), ``num_instances`` -> [N] float64 per kept instance.
        num_removed: instances removed (coverage above 1 or length not positive).
    """

    classes: tuple[str, ...]
    instances: GroundTruth
    characteristics: dict[str, np.ndarray]
    num_removed: int

    @property
    def average_num_instance_per_class(self) -> float:
        """N = kept instances / classes (float division, DETAD's Python 3 code)."""
        return len(self.instances) / len(self.classes)


def diagnosis_ground_truth(
    ground_truth: GroundTruth, durations: Mapping[str, float], annotation_counts: Mapping[str, int]
) -> DiagnosisGroundTruth:
    """DETAD's ground truth from the subset's instances.

    Args:
        ground_truth: every instance of the subset, in file order (videos in file order, annotations in list order).
        durations: video id -> duration in seconds, used exactly as written.
        annotation_counts: video id -> number of annotations of the video in the file (all labels).

    Raises:
        KeyError: a video of ``ground_truth`` missing from ``durations`` or ``annotation_counts``.
    """
    starts = np.asarray(ground_truth.starts, dtype=np.float64)
    ends = np.asarray(ground_truth.ends, dtype=np.float64)
    length = ends - starts  # [N]
    duration = np.array([durations[video] for video in ground_truth.video_ids], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        coverage = length / duration
    num_instances = np.array([annotation_counts[video] for video in ground_truth.video_ids], dtype=np.float64)
    kept = np.flatnonzero((coverage <= 1.0) & (starts < ends))  # DETAD keeps coverage <= 1, then t-start < t-end
    instances = GroundTruth(
        [ground_truth.video_ids[i] for i in kept], starts[kept], ends[kept], [ground_truth.labels[i] for i in kept]
    )
    return DiagnosisGroundTruth(
        classes=tuple(dict.fromkeys(ground_truth.labels)),
        instances=instances,
        characteristics={"coverage": coverage[kept], "length": length[kept], "num_instances": num_instances[kept]},
        num_removed=len(ground_truth) - len(kept),
    )


# ------------------------------------------------------------------------------------------ results
@dataclass(frozen=True)
class FalsePositiveAnalysis:
    """Attributes:
    average_map_n: average mAP_N of the top-10G predictions.
    group_counts: [10] predictions in groups 1G..10G.
    group_shares: [10, 6] share of each of :data:`PREDICTION_TYPES` in each group, averaged over the thresholds
        (NaN rows for empty groups).
    map_gain: error type -> average mAP_N gain from removing its predictions.
    """

    average_map_n: float
    group_counts: np.ndarray
    group_shares: np.ndarray
    map_gain: dict[str, float]


@dataclass(frozen=True)
class BinScores:
    """Attributes: counts [B] instances per bin; values [B] the bin's number (NaN: empty bin)."""

    counts: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class SensitivityAnalysis:
    """Attributes: average_map_n over all predictions; bins: characteristic -> mAP_N per bin."""

    average_map_n: float
    bins: dict[str, BinScores]


@dataclass(frozen=True)
class FalseNegativeAnalysis:
    """Attributes: bins: characteristic -> missed share per bin (averaged over the thresholds)."""

    bins: dict[str, BinScores]


@dataclass(frozen=True)
class Diagnosis:
    """The three analyses of one detector on one ground truth (see the module doc)."""

    tiou_thresholds: tuple[float, ...]
    flavour: BinFlavour
    bins: dict[str, CharacteristicBins]
    average_num_instance_per_class: float
    false_positives: FalsePositiveAnalysis
    sensitivity: SensitivityAnalysis
    false_negatives: FalseNegativeAnalysis

    def to_json(self) -> dict:
        """The ``diagnosis.json`` content; NaN is ``null``, infinite edges are ``"inf"``; bins always all listed.

        ===========================================  ========================================================
        ``tiou_thresholds``                          the thresholds T of the whole diagnosis
        ``bins_flavour``                             ``thumos14`` or ``activitynet``: which bins
        ``characteristics.X.edges`` / ``.bins``      edges and names of the bins of X (coverage, length,
                                                     num_instances)
        ``average_num_instance_per_class``           N (kept instances / classes)
        ``false_positives.min_tiou`` / ``.groups``   0.1 and 10 (fixed)
        ``false_positives.average_mAP_N``            average mAP_N of the top-10G predictions
        ``false_positives.top.kG``                   ``count`` of group k and the share of each of the six
                                                     types, averaged over T (``null`` when empty)
        ``false_positives.map_gain.E``               average mAP_N gain from removing error type E
        ``sensitivity.average_mAP_N``                average mAP_N of all predictions
        ``sensitivity.X.b``                          ``count`` of instances in bin b, its ``mAP_N``
        ``false_negatives.min_normalized_precision`` 0.05 (fixed)
        ``false_negatives.X.b``                      share of bin b's instances not matched, averaged over T
        ===========================================  ========================================================
        """
        fp = self.false_positives
        top = {}
        for k, count in enumerate(fp.group_counts):
            shares = {name: _number(fp.group_shares[k, t]) for t, name in enumerate(PREDICTION_TYPES)}
            top[f"{k + 1}G"] = {"count": int(count), **shares}
        sensitivity: dict = {"average_mAP_N": _number(self.sensitivity.average_map_n)}
        false_negatives: dict = {"min_normalized_precision": FALSE_NEGATIVE_MIN_PRECISION}
        for name, bins in self.bins.items():
            scores = self.sensitivity.bins[name]
            sensitivity[name] = {
                bin_name: {"count": int(scores.counts[b]), "mAP_N": _number(scores.values[b])}
                for b, bin_name in enumerate(bins.names)
            }
            missed = self.false_negatives.bins[name]
            false_negatives[name] = {bin_name: _number(missed.values[b]) for b, bin_name in enumerate(bins.names)}
        return {
            "tiou_thresholds": list(self.tiou_thresholds),
            "bins_flavour": self.flavour.value,
            "characteristics": {
                name: {"edges": [e if np.isfinite(e) else "inf" for e in bins.edges], "bins": list(bins.names)}
                for name, bins in self.bins.items()
            },
            "average_num_instance_per_class": self.average_num_instance_per_class,
            "false_positives": {
                "min_tiou": MIN_TIOU,
                "groups": LIMIT_FACTOR,
                "average_mAP_N": _number(fp.average_map_n),
                "top": top,
                "map_gain": {name: _number(gain) for name, gain in fp.map_gain.items()},
            },
            "sensitivity": sensitivity,
            "false_negatives": false_negatives,
        }

    def largest_error_at_1g(self) -> tuple[str, float] | None:
        """(error type, share) of the most frequent error among the top-1G predictions (``None``: no prediction)."""
        shares = self.false_positives.group_shares[0, 1:]  # [5] error types of 1G
        if self.false_positives.group_counts[0] == 0:
            return None
        worst = int(np.argmax(shares))
        return ERROR_TYPES[worst], float(shares[worst])

    def weakest_bin(self) -> tuple[str, str, float] | None:
        """(characteristic, bin, mAP_N) of the non-empty bin with the lowest sensitivity mAP_N (``None``: none
        has a number)."""
        candidates = [
            (float(scores.values[b]), name, self.bins[name].names[b])
            for name, scores in self.sensitivity.bins.items()
            for b in range(len(scores.values))
            if not np.isnan(scores.values[b])
        ]
        if not candidates:
            return None
        value, name, bin_name = min(candidates, key=lambda candidate: candidate[0])
        return name, bin_name, value


@dataclass(frozen=True)
class DiagnosisOutput:
    """What ``tad eval --diagnose DIR`` computed and wrote.

    Attributes:
        diagnosis: the analyses.
        json_path: ``DIR/diagnosis.json``.
        plot_paths: the PNG figures written (none without matplotlib).
        notes: one line per thing the user should know (removed instances, missing plots).
    """

    diagnosis: Diagnosis
    json_path: Path
    plot_paths: list[Path]
    notes: list[str]


def _number(value: float) -> float | None:
    """A JSON number, ``None`` for NaN."""
    value = float(value)
    return None if np.isnan(value) else value


# ------------------------------------------------------------------------------------------ computation
def diagnose(
    ground_truth: DiagnosisGroundTruth,
    detections: DetectionTable,
    tiou_thresholds: Sequence[float],
    flavour: BinFlavour,
) -> Diagnosis:
    """Run DETAD's three analyses.

    Args:
        ground_truth: from :func:`diagnosis_ground_truth` (at least one kept instance).
        detections: the predictions, any videos and labels (labels that are not classes are ignored).
        tiou_thresholds: [K] thresholds, used exactly as given.
        flavour: which bins (:data:`FLAVOUR_BINS`).

    Raises:
        ValueError: no kept instance, or no threshold.
    """
    thresholds = np.asarray(tiou_thresholds, dtype=np.float64)  # [K]
    if thresholds.ndim != 1 or thresholds.size == 0:
        raise ValueError("tiou_thresholds: need at least one threshold")
    if len(ground_truth.instances) == 0:
        raise ValueError("no ground-truth instance is left after removing those with coverage above 1 or no length")
    class_index = {label: c for c, label in enumerate(ground_truth.classes)}
    matching = match_detections(ground_truth.instances, detections, thresholds, class_index)
    ranking = _ClassRanking(matching, len(ground_truth.classes), ground_truth.average_num_instance_per_class)
    bins = FLAVOUR_BINS[flavour]
    gt_bins = {name: bins[name].assign(ground_truth.characteristics[name]) for name in CHARACTERISTICS}
    types = _prediction_types(ground_truth.instances, detections, matching, ranking.in_top(), thresholds)
    return Diagnosis(
        tiou_thresholds=tuple(float(t) for t in thresholds),
        flavour=flavour,
        bins=bins,
        average_num_instance_per_class=ground_truth.average_num_instance_per_class,
        false_positives=_false_positive_analysis(ranking, types),
        sensitivity=_sensitivity_analysis(ranking, gt_bins, {name: len(bins[name].names) for name in bins}),
        false_negatives=_false_negative_analysis(ranking, gt_bins, {name: len(bins[name].names) for name in bins}),
    )


def normalized_average_precision(
    is_true_positive: np.ndarray, num_positives: float, normalizer: float
) -> float:
    """DETAD's AP_N of one ranked list: ``R_i = TP_i / num_positives``, ``P_i = R_i N / (R_i N + FP_i)``, then
    the official all-point interpolated area (:func:`interpolated_average_precision`). An empty list gives 0;
    ``num_positives == 0`` with predictions gives NaN (DETAD's ``0 / 0``).

    Args:
        is_true_positive: [D] bool flags in rank order.
        num_positives: instances the list is scored against.
        normalizer: N, the average number of instances per class.
    """
    if is_true_positive.size == 0:
        return 0.0
    tp = np.cumsum(is_true_positive).astype(np.float64)  # [D]
    fp = np.cumsum(~is_true_positive).astype(np.float64)  # [D]
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = tp / num_positives
        precision = recall * normalizer / (recall * normalizer + fp)
    return interpolated_average_precision(precision, recall)


class _ClassRanking:
    """The ranked predictions of a matching, per class, with the class counts the analyses share."""

    def __init__(self, matching: DetectionMatching, num_classes: int, normalizer: float) -> None:
        self.matching = matching
        self.normalizer = normalizer
        self.num_positives = np.bincount(matching.gt_class, minlength=num_classes)  # [C] G_c
        self.bounds = np.searchsorted(matching.det_class, np.arange(num_classes + 1))  # [C+1]
        self.rank_in_class = np.arange(len(matching.det_class)) - self.bounds[matching.det_class]  # [D]

    @property
    def num_classes(self) -> int:
        return len(self.num_positives)

    def in_top(self) -> np.ndarray:
        """[D] bool: the prediction is among the top ``10 G_c`` of its class."""
        return self.rank_in_class < LIMIT_FACTOR * self.num_positives[self.matching.det_class]

    def class_slice(self, c: int) -> slice:
        return slice(self.bounds[c], self.bounds[c + 1])

    def matched_with_floor(self, floor: float) -> np.ndarray:
        """[K, D] matched instance rows after DETAD's precision floor: predictions at ranks whose normalized
        precision (cumulative over the class's list) is ``<= floor`` become unmatched; nothing is re-matched."""
        matched = self.matching.matched_gt
        is_tp = matched >= 0  # [K, D]
        cumulative_tp = np.cumsum(is_tp, axis=1)  # [K, D] over all classes
        class_start = self.bounds[self.matching.det_class]  # [D]
        before = np.where(class_start > 0, cumulative_tp[:, np.maximum(class_start - 1, 0)], 0)  # [K, D]
        tp = (cumulative_tp - before).astype(np.float64)
        fp = (self.rank_in_class + 1) - tp
        with np.errstate(divide="ignore", invalid="ignore"):
            recall = tp / self.num_positives[self.matching.det_class]
            precision = recall * self.normalizer / (recall * self.normalizer + fp)
        return np.where(precision <= floor, -1, matched)

    def mean_ap(self, matched: np.ndarray, keep: np.ndarray, num_positives: np.ndarray, classes: Sequence[int]) -> float:
        """Mean over thresholds of the mean over ``classes`` of AP_N of each class's kept predictions.

        Args:
            matched: [K, D] matched instance rows.
            keep: [K, D] bool, the predictions in the lists.
            num_positives: [C] instances each class is scored against.
            classes: the class codes averaged over.
        """
        ap = np.zeros((matched.shape[0], len(classes)))  # [K, C']
        for j, c in enumerate(classes):
            span = self.class_slice(c)
            for k in range(matched.shape[0]):
                flags = matched[k, span][keep[k, span]] >= 0
                ap[k, j] = normalized_average_precision(flags, float(num_positives[c]), self.normalizer)
        return float(ap.mean(axis=1).mean())


def _prediction_types(
    instances: GroundTruth,
    detections: DetectionTable,
    matching: DetectionMatching,
    in_top: np.ndarray,
    thresholds: np.ndarray,
) -> np.ndarray:
    """[K, D] type code (:data:`PREDICTION_TYPES`) of each ranked prediction among the top-10G at each threshold
    (-1 for the others), from its match and its best overlap with an instance of any label in its video."""
    top = np.flatnonzero(in_top)  # [S]
    best_tiou, same_label = _best_overlap(instances, detections, matching, top)
    over = best_tiou[None, :] >= thresholds[:, None]  # [K, S]; NaN: False
    near = (best_tiou >= MIN_TIOU)[None, :]  # [1, S]
    same = same_label[None, :]
    error = np.where(
        over,
        np.where(same, DOUBLE_DETECTION, WRONG_LABEL),
        np.where(near, np.where(same, LOCALIZATION, CONFUSION), BACKGROUND),
    )  # [K, S]
    types = np.full(matching.matched_gt.shape, -1, dtype=np.int64)  # [K, D]
    types[:, top] = np.where(matching.matched_gt[:, top] >= 0, TRUE_POSITIVE, error)
    return types


def _best_overlap(
    instances: GroundTruth, detections: DetectionTable, matching: DetectionMatching, ranks: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For the predictions at ``ranks`` [S]: the largest tIoU with an instance of any label in the same video
    (-inf: none there; NaN where a tIoU is NaN) and whether the first instance (file order) reaching it has the
    prediction's label."""
    det_video = matching.det_video[ranks]  # [S]
    no_class = np.zeros(len(ranks), dtype=np.int64)
    pair_det, pair_gt = same_class_video_pairs(
        no_class, det_video, np.zeros(len(instances), dtype=np.int64), matching.gt_video, int(matching.gt_video.max()) + 1
    )  # [P] pairs grouped by prediction (ascending), instances in file order
    rows = matching.det_rows[ranks[pair_det]]
    tiou = segment_tiou(
        np.asarray(detections.starts, dtype=np.float64)[rows],
        np.asarray(detections.ends, dtype=np.float64)[rows],
        instances.starts[pair_gt],
        instances.ends[pair_gt],
    )  # [P]
    best_tiou = np.full(len(ranks), -np.inf)
    same_label = np.zeros(len(ranks), dtype=bool)
    if pair_det.size == 0:
        return best_tiou, same_label
    with_pairs, run_starts = np.unique(pair_det, return_index=True)
    best_tiou[with_pairs] = np.maximum.reduceat(tiou, run_starts)  # NaN propagates: background
    reaching = np.flatnonzero(tiou == best_tiou[pair_det])  # pairs at their prediction's maximum
    first_dets, first = np.unique(pair_det[reaching], return_index=True)
    best_gt = pair_gt[reaching[first]]
    same_label[first_dets] = matching.gt_class[best_gt] == matching.det_class[ranks[first_dets]]
    return best_tiou, same_label


def _false_positive_analysis(ranking: _ClassRanking, types: np.ndarray) -> FalsePositiveAnalysis:
    """Type shares per group 1G..10G and the mAP_N gain of removing each error type, on the top-10G predictions
    (matched with floor 0, which changes nothing)."""
    matched = ranking.matched_with_floor(0.0)  # [K, D]
    in_top = types[0] >= 0  # [D]
    classes = range(ranking.num_classes)
    average = ranking.mean_ap(matched, np.broadcast_to(in_top, matched.shape), ranking.num_positives, classes)
    map_gain = {}
    for code, name in enumerate(PREDICTION_TYPES):
        if code != TRUE_POSITIVE:
            kept = in_top[None, :] & (types != code)  # [K, D]
            map_gain[name] = ranking.mean_ap(matched, kept, ranking.num_positives, classes) - average

    top = np.flatnonzero(in_top)  # [S]
    group = ranking.rank_in_class[top] // ranking.num_positives[ranking.matching.det_class[top]]  # [S] 0..9
    group_counts = np.bincount(group, minlength=LIMIT_FACTOR)  # [10]
    num_types = len(PREDICTION_TYPES)
    shares = np.zeros((LIMIT_FACTOR, num_types))
    with np.errstate(divide="ignore", invalid="ignore"):
        for k in range(types.shape[0]):
            counts = np.bincount(group * num_types + types[k, top], minlength=LIMIT_FACTOR * num_types)
            shares += counts.reshape(LIMIT_FACTOR, num_types) / group_counts[:, None]  # [10, 6]; empty group: NaN
    return FalsePositiveAnalysis(average, group_counts, shares / types.shape[0], map_gain)


def _sensitivity_analysis(
    ranking: _ClassRanking, gt_bins: dict[str, np.ndarray], num_bins: dict[str, int]
) -> SensitivityAnalysis:
    """mAP_N of all predictions, and per bin of each characteristic (module doc)."""
    matched = ranking.matched_with_floor(0.0)  # [K, D]
    everything = np.ones(matched.shape, dtype=bool)
    average = ranking.mean_ap(matched, everything, ranking.num_positives, range(ranking.num_classes))
    gt_class = ranking.matching.gt_class
    bins = {}
    for name, gt_bin in gt_bins.items():
        # bin of the instance each prediction is matched to: -1 unmatched, -2 an instance in no bin
        matched_bin = np.where(matched >= 0, np.where(gt_bin[matched] >= 0, gt_bin[matched], -2), -1)  # [K, D]
        counts = np.bincount(gt_bin[gt_bin >= 0], minlength=num_bins[name])
        values = np.full(num_bins[name], np.nan)
        for b in np.flatnonzero(counts):
            in_bin = gt_bin == b
            positives = np.bincount(gt_class[in_bin], minlength=ranking.num_classes)  # [C] |GT_{b,c}|
            kept = np.all((matched_bin == -1) | (matched_bin == b), axis=0)  # [D]
            values[b] = ranking.mean_ap(
                matched, np.broadcast_to(kept, matched.shape), positives, np.flatnonzero(positives)
            )
        bins[name] = BinScores(counts, values)
    return SensitivityAnalysis(average, bins)


def _false_negative_analysis(
    ranking: _ClassRanking, gt_bins: dict[str, np.ndarray], num_bins: dict[str, int]
) -> FalseNegativeAnalysis:
    """Share of each bin's instances matched by no prediction (floor 0.05), averaged over the thresholds."""
    matched = ranking.matched_with_floor(FALSE_NEGATIVE_MIN_PRECISION)  # [K, D]
    num_gt = len(ranking.matching.gt_class)
    detected = np.zeros((matched.shape[0], num_gt), dtype=bool)  # [K, N]
    for k in range(matched.shape[0]):
        detected[k, matched[k][matched[k] >= 0]] = True
    bins = {}
    for name, gt_bin in gt_bins.items():
        counts = np.bincount(gt_bin[gt_bin >= 0], minlength=num_bins[name])
        values = np.full(num_bins[name], np.nan)
        for b in np.flatnonzero(counts):
            missed = (~detected[:, gt_bin == b]).sum(axis=1)  # [K]
            values[b] = float(np.mean(missed / counts[b]))
        bins[name] = BinScores(counts, values)
    return FalseNegativeAnalysis(bins)

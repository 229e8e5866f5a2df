"""Detection metrics: the official ActivityNet detection mAP (:mod:`.detection_map`), the results-file reader
(:mod:`.results`), the choice of ground truth a results file is scored against (:mod:`.ground_truth`) and the
report the user reads (:mod:`.report`)."""

from __future__ import annotations

from tadcli.evaluation.detection_map import (
    DetectionMetrics,
    DetectionTable,
    GroundTruth,
    evaluate_detections,
    interpolated_average_precision,
    segment_tiou,
)
from tadcli.evaluation.results import read_detection_results

__all__ = [
    "DetectionMetrics",
    "DetectionTable",
    "GroundTruth",
    "evaluate_detections",
    "interpolated_average_precision",
    "read_detection_results",
    "segment_tiou",
]

"""Detection metrics: the official ActivityNet detection mAP and the results-file reader."""

from __future__ import annotations

from tadcli.evaluation.detection_map import (
    DetectionMetrics,
    Detections,
    GroundTruth,
    evaluate_detections,
    interpolated_average_precision,
    segment_tiou,
)
from tadcli.evaluation.results import read_detection_results

__all__ = [
    "DetectionMetrics",
    "Detections",
    "GroundTruth",
    "evaluate_detections",
    "interpolated_average_precision",
    "read_detection_results",
    "segment_tiou",
]

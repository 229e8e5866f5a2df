"""The scores of one evaluation as the user reads them: :class:`EvalReport` (what ``tad eval`` prints, its
``--json`` content and its per-class ``--csv`` table), built from metrics by :func:`report_from_metrics`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tadcli.evaluation.detection_map import DetectionMetrics
from tadcli.evaluation.diagnosis import DiagnosisOutput

if TYPE_CHECKING:
    import pandas

__all__ = ["NUM_LOWEST_CLASSES", "EvalReport", "report_from_metrics"]

NUM_LOWEST_CLASSES = 5


@dataclass(frozen=True)
class EvalReport:
    """The scores of one ``tad eval`` and what the user should know about the inputs.

    Attributes:
        subset: the ground-truth subset scored.
        tiou_thresholds: [K] thresholds.
        mAP: [K] mean AP over classes at each threshold.
        average_mAP: mean of ``mAP``.
        per_class: {label: [K] AP}, classes in order of first appearance in the ground truth.
        recall: [K] matched ground-truth instances / all instances (micro average).
        num_ground_truth: ground-truth instances scored.
        num_predictions: detections in the results file.
        num_ignored_predictions: detections whose label has no ground truth in the subset.
        num_predictions_without_ground_truth: detections on videos without ground truth (false positives).
        lowest_classes: up to 5 (label, AP averaged over thresholds), lowest first.
        instances_per_class: {label: ground-truth instances}, same order as ``per_class``.
        notes: one line per thing the user should know (left-out instances, unknown videos, ...).
        warnings: one line per questionable input that was scored anyway (inverted predictions).
        json_path: the file written for ``json_out``, if any.
        csv_path: the file written for ``csv_out``, if any.
        diagnosis: DETAD's diagnosis and the files written for ``--diagnose``, if asked.
    """

    subset: str
    tiou_thresholds: list[float]
    mAP: list[float]
    average_mAP: float
    per_class: dict[str, list[float]]
    recall: list[float]
    num_ground_truth: int
    num_predictions: int
    num_ignored_predictions: int
    num_predictions_without_ground_truth: int
    lowest_classes: list[tuple[str, float]]
    instances_per_class: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    json_path: Path | None = None
    csv_path: Path | None = None
    diagnosis: DiagnosisOutput | None = None

    def to_json(self) -> dict:
        """The ``--json`` content."""
        return {
            "tiou_thresholds": self.tiou_thresholds,
            "mAP": self.mAP,
            "average_mAP": self.average_mAP,
            "per_class": self.per_class,
            "recall": self.recall,
            "num_ground_truth": self.num_ground_truth,
            "num_predictions": self.num_predictions,
            "subset": self.subset,
        }

    def per_class_table(self) -> pandas.DataFrame:
        """One row per class (ground-truth order): ``class``, ``instances``, ``AP@t`` per threshold, ``mean AP``."""
        import pandas  # on use: the table is the only pandas use of tad eval

        table = pandas.DataFrame(self.per_class, index=[f"AP@{t:g}" for t in self.tiou_thresholds]).T
        table.insert(0, "instances", [self.instances_per_class[label] for label in table.index])
        table["mean AP"] = table.filter(like="AP@").mean(axis=1)
        return table.rename_axis("class").reset_index()


def report_from_metrics(
    metrics: DetectionMetrics, subset: str, notes: list[str], warnings: Sequence[str] = ()
) -> EvalReport:
    """The report of ``metrics`` scored on ``subset``, with the notes and warnings gathered on the way."""
    per_class = {label: metrics.average_precision[:, c].tolist() for c, label in enumerate(metrics.classes)}
    class_means = metrics.average_precision.mean(axis=0)  # [C]
    lowest = np.argsort(class_means, kind="stable")[:NUM_LOWEST_CLASSES]
    return EvalReport(
        subset=subset,
        tiou_thresholds=list(metrics.tiou_thresholds),
        mAP=metrics.mean_average_precision.tolist(),
        average_mAP=metrics.average_map,
        per_class=per_class,
        recall=metrics.recall.tolist(),
        num_ground_truth=metrics.num_ground_truth,
        num_predictions=metrics.num_detections,
        num_ignored_predictions=metrics.num_ignored_detections,
        num_predictions_without_ground_truth=metrics.num_detections_without_ground_truth,
        lowest_classes=[(metrics.classes[c], float(class_means[c])) for c in lowest],
        instances_per_class=dict(zip(metrics.classes, metrics.class_instances.tolist(), strict=True)),
        notes=notes,
        warnings=list(warnings),
    )

"""Evaluate a model on videos with ground truth: the inference engine, then the official detection mAP."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tadcli.config.schema import Preset
from tadcli.data.dataset import VideoRecord
from tadcli.evaluation.detection_map import DetectionMetrics, GroundTruth, evaluate_detections
from tadcli.evaluation.results import results_columns
from tadcli.inference.detector import events_from_detections
from tadcli.inference.engine import ProgressCallback, VideoStep, classifier_video_step, detect_videos
from tadcli.inference.plan import InferencePlan
from tadcli.io.events import Event, results_content
from tadcli.model.adatad import AdaTAD


@dataclass(frozen=True)
class RecordsEvaluation:
    """Scores of a model on a list of videos.

    Attributes:
        events: ``{video_id: events}`` of the decoded videos, as ``tad detect`` reports them
            (:func:`tadcli.inference.detector.events_from_detections`, no threshold); the scores below are
            computed on their results file (:func:`tadcli.io.events.results_content`).
        metrics: per-class AP, mAP per threshold, average mAP, recall.
        failed: ``(video_id, error)`` of the videos that could not be decoded (no detections, scored as misses).
    """

    events: dict[str, list[Event]]
    metrics: DetectionMetrics
    failed: list[tuple[str, str]]


def ground_truth_of(records: Sequence[VideoRecord], classes: Sequence[str]) -> GroundTruth:
    """The records' ground truth as evaluation columns (seconds, class names)."""
    video_ids = [r.video_id for r in records for _ in range(len(r.labels))]
    segments = np.concatenate([r.segments.reshape(-1, 2) for r in records]) if records else np.zeros((0, 2))
    labels = [classes[int(label)] for r in records for label in r.labels]
    return GroundTruth(video_ids, segments[:, 0].astype(np.float64), segments[:, 1].astype(np.float64), labels)


def evaluate_on_records(
    model: AdaTAD,
    records: Sequence[VideoRecord],
    classes: Sequence[str],
    preset: Preset,
    plan: InferencePlan,
    tiou_thresholds: Sequence[float],
    batch_size: int = 1,
    num_workers: int = 0,
    video_step: VideoStep | None = None,
    progress: ProgressCallback | None = None,
) -> RecordsEvaluation:
    """Detect on every video of ``records`` with ``model`` (put in eval mode here: a model being trained comes
    in train mode) on ``plan.device``, and score the detections against their ground truth.

    A class-agnostic ``preset``'s segments are labelled by its external video classifier
    (:func:`tadcli.inference.engine.classifier_video_step`) unless ``video_step`` is given.
    """
    if video_step is None:
        video_step = classifier_video_step(preset, classes, [r.video_id for r in records])
    model.eval()
    events: dict[str, list[Event]] = {}
    failed = []
    for record, video in zip(records, detect_videos(model, records, plan, batch_size, num_workers, video_step, progress)):
        if video.result is None:
            failed.append((record.video_id, video.error or "decoding failed"))
            continue
        events[record.video_id] = events_from_detections(video.result, classes, record.duration)
    results = results_content(events)["results"]
    metrics = evaluate_detections(ground_truth_of(records, classes), results_columns(results, "the detections"), tiou_thresholds)
    return RecordsEvaluation(events, metrics, failed)

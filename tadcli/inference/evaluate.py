"""Evaluate a model on videos with ground truth: the inference engine, then the official detection mAP."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from tadcli.config.schema import Preset
from tadcli.data.dataset import VideoRecord
from tadcli.data.prepared import PreparedDataset, load_prepared_dataset, records_from_prepared
from tadcli.data.proxy import proxy_use
from tadcli.errors import DatasetError
from tadcli.evaluation.detection_map import DetectionMetrics, GroundTruth, evaluate_detections
from tadcli.evaluation.report import EvalReport, report_from_metrics
from tadcli.evaluation.results import results_columns
from tadcli.inference.detector import events_from_detections
from tadcli.inference.engine import ProgressCallback, VideoStep, classifier_video_step, detect_videos
from tadcli.inference.plan import InferencePlan, inference_plan
from tadcli.io.atomic import write_text_atomic
from tadcli.io.events import Event, format_results, results_content
from tadcli.io.jsonio import write_json_atomic
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


@dataclass(frozen=True)
class DatasetScores:
    """What a validation during training records (``metrics.jsonl``'s ``eval`` lines).

    Attributes:
        subset: the subset scored.
        tiou_thresholds: [K] thresholds.
        mAP: [K] mean AP over classes at each threshold.
        average_mAP: mean of ``mAP``.
        failed_videos: videos that could not be decoded (no detections: scored as misses).
    """

    subset: str
    tiou_thresholds: list[float]
    mAP: list[float]
    average_mAP: float
    failed_videos: int


class DatasetEvaluator:
    """Detect on a subset of a prepared dataset with a model and score it, as ``tad eval --run`` does.

    The dataset's records are read once, here; each call detects and scores. Writes
    ``out_dir/{tag}_results.json`` (ActivityNet format, what ``tad eval --predictions`` reads) and
    ``out_dir/{tag}_metrics.json`` (the ``--json`` content). Sliding windows or resizing as the dataset profile
    says, per-window decoding, one soft-NMS per video (spec §5.4); the tIoU thresholds are the preset's
    ``evaluation.tiou_thresholds`` or the profile's. Called as ``evaluator(model, epoch)`` (the trainer's
    validation) it writes ``epoch_NNN_*`` files and returns the :class:`DatasetScores`.

    Raises:
        DatasetError: absent subset, or classes that differ from the model's.
    """

    def __init__(
        self,
        dataset: PreparedDataset,
        classes: Sequence[str],
        preset: Preset,
        subset: str | None,
        out_dir: str | Path,
        device: torch.device | str = "cpu",
        batch_size: int = 1,
        num_workers: int = 0,
    ) -> None:
        profile = dataset.dataset_profile
        if list(dataset.classes) != list(classes):
            raise DatasetError(
                f"{dataset.root}: its {len(dataset.classes)} classes differ from the model's {len(classes)} "
                f"(first difference: {_first_difference(dataset.classes, classes)})"
            )
        self.classes = list(classes)
        self.preset = preset
        self.profile = profile
        self.subset = subset or profile.eval_subset
        self.proxy_use = proxy_use(dataset, preset)  # the proxies when they serve the preset; times in seconds
        self.records = records_from_prepared(dataset, self.subset, self.proxy_use.proxies)
        self.tiou_thresholds = preset.evaluation.tiou_thresholds or list(profile.tiou_thresholds)
        self.plan = inference_plan(preset, profile, device, self.proxy_use.frame_step)
        self.out_dir = Path(out_dir)
        self.batch_size = batch_size
        self.num_workers = num_workers

    def evaluate(self, model: AdaTAD, tag: str | None = None, progress: ProgressCallback | None = None) -> EvalReport:
        """Detect, score and write ``{tag}_results.json`` and ``{tag}_metrics.json`` (``tag``: the subset)."""
        return self._evaluate(model, tag, progress)[0]

    def __call__(self, model: AdaTAD, epoch: int) -> DatasetScores:
        report, evaluation = self._evaluate(model, f"epoch_{epoch:03d}", None)
        return DatasetScores(report.subset, report.tiou_thresholds, report.mAP, report.average_mAP, len(evaluation.failed))

    def _evaluate(
        self, model: AdaTAD, tag: str | None, progress: ProgressCallback | None
    ) -> tuple[EvalReport, RecordsEvaluation]:
        evaluation = evaluate_on_records(
            model,
            self.records,
            self.classes,
            self.preset,
            self.plan,
            self.tiou_thresholds,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            progress=progress,
        )
        notes = [f"video {video} could not be decoded and has no detections: {error}" for video, error in evaluation.failed]
        report = report_from_metrics(evaluation.metrics, self.subset, notes)
        tag = tag or self.subset
        write_text_atomic(self.out_dir / f"{tag}_results.json", format_results(evaluation.events))
        report = replace(report, json_path=write_json_atomic(self.out_dir / f"{tag}_metrics.json", report.to_json()))
        return report, evaluation


def evaluate_on_dataset(
    model: AdaTAD,
    dataset_dir: str | Path,
    classes: Sequence[str],
    preset: Preset,
    subset: str | None,
    out_dir: str | Path,
    tag: str | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = 1,
    num_workers: int = 0,
    progress: ProgressCallback | None = None,
) -> EvalReport:
    """One evaluation of ``model`` on a prepared dataset's subset (:class:`DatasetEvaluator`), as ``tad eval
    --run`` does.

    Raises:
        DatasetError: unreadable dataset, absent subset, or classes that differ from the model's.
    """
    evaluator = DatasetEvaluator(load_prepared_dataset(dataset_dir), classes, preset, subset, out_dir, device, batch_size, num_workers)
    return evaluator.evaluate(model, tag, progress)


def _first_difference(a: Sequence[str], b: Sequence[str]) -> str:
    for index, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"class {index} is '{x}' vs '{y}'"
    return f"{len(a)} vs {len(b)} classes"

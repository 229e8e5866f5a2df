"""``tad eval``: score a results file (``--predictions``) or a trained run (``--run``) with the official
ActivityNet detection mAP.

The scores are those of the official evaluator (see :mod:`tadcli.evaluation.detection_map` for
the rules and the documented choices on ties and zero-length segments). Which ground truth, subset and
thresholds a results file is scored with, and what the user must know about the inputs, is decided in
:mod:`tadcli.evaluation.ground_truth`; the report is :class:`tadcli.evaluation.report.EvalReport`. This
module checks the paths, calls them and writes the files.

Ground truth: any format of :func:`tadcli.data.annotations.read_annotations` (ActivityNet-style
JSON incl. ActionFormer's ``thumos14.json`` and OpenTAD's ``thumos_14_anno.json``, the official
THUMOS14 per-class txt folder, BSN's ActivityNet copy, Charades, Multi-THUMOS, EPIC-Kitchens,
custom), or a prepared dataset folder (its ``manifest.json``, whose profile gives the defaults).

``strict=True`` makes the first prediction whose end precedes its start an error naming its video and
entry instead of a warning. ``csv_out`` writes the per-class AP table (one row per class: instances, AP
at each threshold, mean).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from tadcli.data.annotations import AnnotationFormat, read_annotations
from tadcli.data.prepared import MANIFEST_FILE, load_prepared_dataset
from tadcli.errors import DatasetError
from tadcli.evaluation.detection_map import evaluate_detections
from tadcli.evaluation.ground_truth import (
    check_predictions_meet_ground_truth,
    choose_subset,
    inverted_predictions_warning,
    scoring_profile,
    scoring_thresholds,
    subset_ground_truth,
)
from tadcli.evaluation.report import EvalReport, report_from_metrics
from tadcli.evaluation.results import read_detection_results
from tadcli.io.atomic import write_text_atomic
from tadcli.io.jsonio import write_json_atomic
from tadcli.io.paths import check_input_dir, check_input_file, check_input_path, check_output_dir, check_output_file
from tadcli.progress import ProgressCallback



def evaluate_predictions(
    predictions: str | Path,
    annotations: str | Path,
    subset: str | None = None,
    tiou: Sequence[float] | None = None,
    dataset: str | None = None,
    json_out: str | Path | None = None,
    progress: ProgressCallback | None = None,
    annotation_format: AnnotationFormat | str | None = None,
    strict: bool = False,
    csv_out: str | Path | None = None,
) -> EvalReport:
    """Score an ActivityNet-format results file against ground truth.

    Args:
        predictions: results JSON ``{"results": {video: [{"segment", "label", "score"}]}}``.
        annotations: ground-truth file or folder, in any format ``tad prepare`` reads, or a prepared
            dataset folder.
        subset: ground-truth subset to score (exact, case-sensitive); ``None``: see the module doc.
        tiou: tIoU thresholds in [0, 1], used exactly as given; ``None``: the dataset's.
        dataset: profile name (thumos14, activitynet, charades, multithumos, epic-kitchens, ...)
            giving default thresholds and subset.
        json_out: also write :meth:`EvalReport.to_json` there, atomically.
        progress: optional ``(description, done, total)`` callback.
        annotation_format: a :class:`tadcli.data.annotations.AnnotationFormat` (or its value); ``None``
            detects it (EPIC-Kitchens CSVs need ``epic-kitchens-verb`` or ``epic-kitchens-noun``).
        strict: a prediction whose end precedes its start is an error instead of a warning.
        csv_out: also write :meth:`EvalReport.per_class_table` there as CSV, atomically.

    Raises:
        PathError: a path is missing, of the wrong kind, or ``json_out`` cannot be written.
        AnnotationError: unreadable or malformed files (naming file, video and entry), no results
            video in the subset, no predicted label among the ground-truth classes, or (``strict``)
            an inverted prediction.
        DatasetError: the subset has no ground-truth instances (the message lists the subsets).
        PresetError: unknown dataset profile.
    """
    predictions = check_input_file(predictions, "results file")
    annotations = check_input_path(annotations, "ground truth")
    if json_out is not None:
        json_out = check_output_file(json_out, "scores file")
    if csv_out is not None:
        csv_out = check_output_file(csv_out, "per-class AP table")
    report_progress = progress or (lambda description, done, total: None)
    steps = 4
    report_progress("reading ground truth", 0, steps)
    prepared_profile = _prepared_profile(annotations)
    if prepared_profile is not None and annotations.is_dir():
        annotations = annotations / MANIFEST_FILE
    annotation_set = read_annotations(annotations, format=annotation_format)
    profile = scoring_profile(annotation_set, dataset, prepared_profile)
    thresholds = scoring_thresholds(tiou, profile)
    notes: list[str] = []
    if subset is None:
        subset = choose_subset(annotation_set, profile, notes)
    ground_truth, subset_videos = subset_ground_truth(annotation_set, Path(annotations), subset, notes)

    report_progress("reading predictions", 1, steps)
    detections = read_detection_results(predictions, strict=strict)
    check_predictions_meet_ground_truth(
        detections, ground_truth, subset_videos, annotation_set, Path(predictions), subset, notes
    )
    warnings = inverted_predictions_warning(detections)

    report_progress("scoring", 2, steps)
    metrics = evaluate_detections(ground_truth, detections, thresholds)
    report = report_from_metrics(metrics, subset, notes, warnings)
    report_progress("writing scores", 3, steps)
    if json_out is not None:
        report = replace(report, json_path=write_json_atomic(json_out, report.to_json()))
    if csv_out is not None:
        report = replace(report, csv_path=write_text_atomic(csv_out, report.per_class_table().to_csv(index=False)))
    report_progress("done", steps, steps)
    return report


def _prepared_profile(annotations: Path) -> str | None:
    """The profile of the prepared dataset that ``annotations`` is, as its folder or its ``manifest.json``
    (``None``: not a prepared dataset that :func:`load_prepared_dataset` reads; it is read as annotations)."""
    manifest = annotations / MANIFEST_FILE if annotations.is_dir() else annotations
    if manifest.name != MANIFEST_FILE or not manifest.is_file():
        return None
    try:
        return load_prepared_dataset(manifest.parent).profile
    except (DatasetError, OSError):
        return None


# ------------------------------------------------------------------------------------- tad eval --run
def evaluate_run(
    run_dir: str | Path,
    dataset_dir: str | Path | None = None,
    subset: str | None = None,
    json_out: str | Path | None = None,
    out_dir: str | Path | None = None,
    device: str = "auto",
    batch_size: int = 1,
    num_workers: int = 0,
    progress: ProgressCallback | None = None,
) -> EvalReport:
    """``tad eval --run``: the run's saved (EMA) model on a prepared dataset's evaluation subset.

    Args:
        run_dir: a run directory written by ``tad train``.
        dataset_dir: the prepared dataset (default: the one the run trained on).
        subset: subset to score (default: the profile's evaluation subset).
        json_out: also write the scores there.
        out_dir: where the results and metrics files go (default ``RUN/eval``); their names start with the subset.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        batch_size: windows per forward.
        num_workers: decoding processes.
        progress: ``(description, done, total)`` callback.
    """
    from tadcli.io.rundir import run_paths

    check_input_dir(run_dir, "run folder")
    if dataset_dir is not None:
        check_input_dir(dataset_dir, "prepared dataset")
    if json_out is not None:
        json_out = check_output_file(json_out, "scores file")
    out_dir = check_output_dir(out_dir if out_dir is not None else run_paths(run_dir).eval, "evaluation folder")
    from tadcli.inference.evaluate import evaluate_on_dataset
    from tadcli.inference.loading import load_run_model  # torch: after the checks, a wrong path is answered at once
    from tadcli.devices import resolve_device

    torch_device = resolve_device(device)
    config, model = load_run_model(run_dir, torch_device)
    report = evaluate_on_dataset(
        model,
        dataset_dir if dataset_dir is not None else config.dataset,
        config.classes,
        config.preset,
        subset,
        out_dir,
        device=torch_device,
        batch_size=batch_size,
        num_workers=num_workers,
        progress=progress,
    )
    if json_out is not None:
        report = replace(report, json_path=write_json_atomic(json_out, report.to_json()))
    return report

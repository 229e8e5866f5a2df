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

``diagnose_dir`` adds DETAD's error diagnosis (:mod:`tadcli.evaluation.diagnosis`): ``diagnosis.json`` and,
with matplotlib, its PNG figures in that folder. Its bins follow the dataset profile (the closer of DETAD's
THUMOS14 and ActivityNet bins, :func:`tadcli.evaluation.diagnosis.flavour_for`) and its thresholds are ``tiou``
when given, else DETAD's own for those bins (THUMOS14: 0.5; ActivityNet: 0.5:0.05:0.95); the mAP report is the
same with or without it.

``strict=True`` makes the first prediction (or ground-truth instance) whose end precedes its start an error
naming its video and entry instead of a warning (a note). ``csv_out`` writes the per-class AP table (one row per class: instances, AP
at each threshold, mean).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from tadcli.data.annotations import AnnotationFormat, read_annotations
from tadcli.data.prepared import MANIFEST_FILE, load_prepared_dataset
from tadcli.data.annotations import AnnotationSet
from tadcli.errors import AnnotationError, DatasetError
from tadcli.evaluation.detection_map import DetectionTable, GroundTruth, evaluate_detections
from tadcli.evaluation.diagnosis import (
    FLAVOUR_TIOU,
    DiagnosisOutput,
    diagnose,
    diagnosis_ground_truth,
    flavour_for,
)
from tadcli.evaluation.ground_truth import (
    check_predictions_meet_ground_truth,
    choose_subset,
    inverted_predictions_warning,
    scoring_profile,
    scoring_thresholds,
    subset_ground_truth,
    subset_videos_by_scored_id,
)
from tadcli.evaluation.report import EvalReport, report_from_metrics
from tadcli.evaluation.results import read_detection_results
from tadcli.io.atomic import write_bytes_atomic, write_text_atomic
from tadcli.io.jsonio import write_json_atomic
from tadcli.io.paths import check_input_dir, check_input_file, check_input_path, check_output_dir, check_output_file
from tadcli.progress import ProgressCallback

DIAGNOSIS_FILE = "diagnosis.json"
PLOTS_EXTRA_NOTE = "plots need matplotlib: pip install 'tadcli[plots]' (diagnosis.json is complete without them)"


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
    diagnose_dir: str | Path | None = None,
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
        strict: a prediction or ground-truth instance whose end precedes its start is an error instead of a
            warning or note.
        csv_out: also write :meth:`EvalReport.per_class_table` there as CSV, atomically.
        diagnose_dir: also write DETAD's diagnosis there (``diagnosis.json``, PNG figures with matplotlib;
            see the module doc); the folder is created.

    Raises:
        PathError: a path is missing, of the wrong kind, or ``json_out`` / ``diagnose_dir`` cannot be written.
        AnnotationError: unreadable or malformed files (naming file, video and entry), no results
            video in the subset, no predicted label among the ground-truth classes, or (``strict``)
            an inverted prediction or ground-truth instance.
        DatasetError: the subset has no ground-truth instances (the message lists the subsets).
        PresetError: unknown dataset profile.
    """
    predictions = check_input_file(predictions, "results file")
    if diagnose_dir is not None:
        diagnose_dir = check_output_dir(diagnose_dir, "diagnosis folder")
    annotations = check_input_path(annotations, "ground truth")
    if json_out is not None:
        json_out = check_output_file(json_out, "scores file")
    if csv_out is not None:
        csv_out = check_output_file(csv_out, "per-class AP table")
    report_progress = progress or (lambda description, done, total: None)
    steps = 4 if diagnose_dir is None else 5
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
    ground_truth, subset_videos = subset_ground_truth(annotation_set, Path(annotations), subset, notes, strict)

    report_progress("reading predictions", 1, steps)
    detections = read_detection_results(predictions, strict=strict)
    check_predictions_meet_ground_truth(
        detections, ground_truth, subset_videos, annotation_set, Path(predictions), subset, notes
    )
    warnings = inverted_predictions_warning(detections)

    report_progress("scoring", 2, steps)
    metrics = evaluate_detections(ground_truth, detections, thresholds)
    report = report_from_metrics(metrics, subset, notes, warnings)
    if diagnose_dir is not None:
        report_progress("diagnosing", 3, steps)
        diagnosis = write_diagnosis(
            annotation_set, Path(annotations), subset, ground_truth, detections, profile.name if profile else None, tiou, diagnose_dir
        )
        report = replace(report, diagnosis=diagnosis)
    report_progress("writing scores", steps - 1, steps)
    if json_out is not None:
        report = replace(report, json_path=write_json_atomic(json_out, report.to_json()))
    if csv_out is not None:
        report = replace(report, csv_path=write_text_atomic(csv_out, report.per_class_table().to_csv(index=False)))
    report_progress("done", steps, steps)
    return report


def write_diagnosis(
    annotation_set: AnnotationSet,
    annotations: Path,
    subset: str,
    ground_truth: GroundTruth,
    detections: DetectionTable,
    profile: str | None,
    tiou: Sequence[float] | None,
    out_dir: Path,
) -> DiagnosisOutput:
    """DETAD's diagnosis of ``detections`` on ``subset``: ``out_dir/diagnosis.json`` and, with matplotlib, the PNG
    figures, all written atomically.

    Args:
        annotation_set: the ground-truth file read (durations and annotations per video).
        annotations: its path, for messages.
        subset: the subset scored.
        ground_truth: the subset's instances, as the mAP scores them (file order).
        detections: the predictions.
        profile: dataset profile name (chooses the bins), ``None`` if none.
        tiou: thresholds; ``None``: DETAD's own for the bins.
        out_dir: the folder (created).

    Raises:
        AnnotationError: a video of the subset has no duration (coverage needs it).
        DatasetError: every instance has a coverage above 1 or no length.
    """
    videos = subset_videos_by_scored_id(annotation_set, subset)
    no_duration = [video_id for video_id, video in videos.items() if video.duration is None]
    if no_duration:
        raise AnnotationError(
            f"{annotations}: --diagnose needs each video's duration (coverage = length / duration); {len(no_duration)} "
            f"videos of subset {subset!r} have none (e.g. {no_duration[0]!r}): use an ActivityNet-style JSON with "
            "'duration', or a prepared dataset"
        )
    truth = diagnosis_ground_truth(
        ground_truth,
        {video_id: video.duration for video_id, video in videos.items()},
        {video_id: len(video.instances) for video_id, video in videos.items()},
    )
    if len(truth.instances) == 0:
        raise DatasetError(
            f"{annotations}: subset {subset!r}: every instance has a coverage above 1 or no length; DETAD's "
            "diagnosis removes those and has nothing left"
        )
    flavour = flavour_for(profile, truth.characteristics["coverage"])
    diagnosis = diagnose(truth, detections, list(tiou) if tiou is not None else list(FLAVOUR_TIOU[flavour]), flavour)
    json_path = write_json_atomic(out_dir / DIAGNOSIS_FILE, diagnosis.to_json())
    notes = []
    if truth.num_removed:
        notes.append(
            f"the diagnosis leaves out {truth.num_removed} instances with a coverage above 1 or no length, as DETAD does"
        )
    try:
        from tadcli.evaluation.diagnosis_plots import render_diagnosis_plots  # matplotlib: an optional extra

        plots = render_diagnosis_plots(diagnosis)
    except ModuleNotFoundError as error:
        if error.name != "matplotlib":
            raise
        plots = {}
        notes.append(PLOTS_EXTRA_NOTE)
    plot_paths = [write_bytes_atomic(out_dir / name, content) for name, content in plots.items()]
    return DiagnosisOutput(diagnosis, json_path, plot_paths, notes)


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
    diagnose_dir: str | Path | None = None,
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
        diagnose_dir: also write DETAD's diagnosis of the results file written (``OUT/{subset}_results.json``)
            against the prepared dataset's ``manifest.json``, with the bins and DETAD thresholds of its profile.
    """
    from tadcli.io.rundir import run_paths

    check_input_dir(run_dir, "run folder")
    if dataset_dir is not None:
        check_input_dir(dataset_dir, "prepared dataset")
    if json_out is not None:
        json_out = check_output_file(json_out, "scores file")
    out_dir = check_output_dir(out_dir if out_dir is not None else run_paths(run_dir).eval, "evaluation folder")
    if diagnose_dir is not None:
        diagnose_dir = check_output_dir(diagnose_dir, "diagnosis folder")
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
    if diagnose_dir is not None:
        dataset_root = Path(dataset_dir if dataset_dir is not None else config.dataset)
        report = replace(report, diagnosis=_diagnose_run_results(dataset_root, report.subset, Path(out_dir), diagnose_dir))
    if json_out is not None:
        report = replace(report, json_path=write_json_atomic(json_out, report.to_json()))
    return report


def _diagnose_run_results(dataset_root: Path, subset: str, out_dir: Path, diagnose_dir: Path) -> DiagnosisOutput:
    """The diagnosis of the results file ``tad eval --run`` wrote, against the prepared dataset's subset."""
    manifest = dataset_root / MANIFEST_FILE
    annotation_set = read_annotations(manifest)
    ground_truth, _ = subset_ground_truth(annotation_set, manifest, subset, [])
    detections = read_detection_results(out_dir / f"{subset}_results.json")
    profile = load_prepared_dataset(dataset_root).profile
    return write_diagnosis(annotation_set, manifest, subset, ground_truth, detections, profile, None, diagnose_dir)

"""``tad eval --predictions``: score a results file with the official ActivityNet detection mAP.

The scores are those of the official evaluator (see :mod:`tadcli.evaluation.detection_map` for
the rules and the documented choices on ties and zero-length segments). This module picks the
ground truth and the thresholds and reports what the user must know about the inputs.

Ground truth: any format of :func:`tadcli.data.annotations.read_annotations` (ActivityNet-style
JSON incl. ActionFormer's ``thumos14.json`` and OpenTAD's ``thumos_14_anno.json``, the official
THUMOS14 per-class txt folder, BSN's ActivityNet copy, Charades, Multi-THUMOS, EPIC-Kitchens,
custom). Two conversions, both reported in :attr:`EvalReport.notes`:

- THUMOS14 txt: instances labelled ``Ambiguous`` are not a class and are left out (OpenTAD does
  the same; the official THUMOS Matlab toolkit's special treatment of detections overlapping them
  is not reproduced: this is the ActivityNet evaluator).
- BSN's ActivityNet copy: its ``v_`` file prefix is removed from the video ids, which makes them the
  YouTube ids that ActivityNet results files use.

Subset (``subset=None``), first that applies:

1. formats whose subset names are fixed by their reader score the split results are reported on:
   THUMOS14 txt ``test``, Multi-THUMOS and Charades ``testing``, BSN ActivityNet ``validation``,
   EPIC-Kitchens ``val``;
2. the dataset profile's evaluation subset (thumos14, activitynet, multithumos: ``validation``;
   charades: ``testing``; epic-kitchens, custom, synthetic: ``val``), under the name it has in the
   file before ``tad prepare`` renames it (:data:`tadcli.config.profiles.SUBSET_RENAMES`: ActionFormer's
   ``thumos14.json`` ``Test``, custom ``validation``) when the file uses that name. ``dataset=None``
   takes the profile of those fixed formats, or the one a prepared ``manifest.json`` names;
3. ``validation`` if the file has it, else the file's only subset.

A subset without ground truth is an error listing the subsets with their counts.

Thresholds (``tiou=None``): the dataset profile's, else the official evaluator's default
``numpy.linspace(0.5, 0.95, 10)``.

Predictions whose end precedes their start are scored as the official evaluator scores them (see
:mod:`tadcli.evaluation.detection_map`) with one warning that counts them; ``strict=True`` makes the
first of them an error naming its video and entry instead.

``csv_out`` writes the per-class AP table (one row per class: instances, AP at each threshold, mean).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tadcli.config.profiles import ACTIVITYNET_TIOU, get_profile, subset_renames
from tadcli.data.annotations import AMBIGUOUS_LABEL, BSN_VIDEO_PREFIX, AnnotationFormat, AnnotationSet, read_annotations
from tadcli.data.manifest import MANIFEST_FILE
from tadcli.errors import AnnotationError, DatasetError
from tadcli.evaluation.detection_map import (
    DetectionMetrics,
    Detections,
    GroundTruth,
    evaluate_detections,
)
from tadcli.evaluation.results import read_detection_results
from tadcli.io.atomic import write_text_atomic
from tadcli.io.jsonio import write_json_atomic
from tadcli.io.paths import check_input_dir, check_input_file, check_input_path, check_output_dir, check_output_file
from tadcli.progress import ProgressCallback

if TYPE_CHECKING:
    import pandas


NUM_LOWEST_CLASSES = 5
DEFAULT_SUBSET = "validation"


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
    rules = annotation_set.format.rules  # formats whose reader fixes the subset names name a profile and subset
    profile_name = dataset or rules.profile or prepared_profile
    profile = get_profile(profile_name) if profile_name is not None else None
    thresholds = list(tiou) if tiou is not None else list(profile.tiou_thresholds if profile else ACTIVITYNET_TIOU)
    notes: list[str] = []
    if subset is None:
        preferred = rules.eval_subset
        if preferred is None and profile is not None:
            preferred = _named_in_file(annotation_set, profile.name, profile.eval_subset, notes)
        subset = _default_subset(annotation_set, preferred)
    ground_truth, subset_videos = _subset_ground_truth(annotation_set, Path(annotations), subset, notes)

    report_progress("reading predictions", 1, steps)
    detections = read_detection_results(predictions, strict=strict)
    _check_predictions_meet_ground_truth(detections, ground_truth, subset_videos, annotation_set, Path(predictions), subset, notes)
    warnings = _inverted_predictions_warning(detections)

    report_progress("scoring", 2, steps)
    metrics = evaluate_detections(ground_truth, detections, thresholds)
    report = _report(metrics, subset, notes, warnings)
    report_progress("writing scores", 3, steps)
    if json_out is not None:
        report = replace(report, json_path=write_json_atomic(json_out, report.to_json()))
    if csv_out is not None:
        report = replace(report, csv_path=write_text_atomic(csv_out, report.per_class_table().to_csv(index=False)))
    report_progress("done", steps, steps)
    return report


def _prepared_profile(annotations: Path) -> str | None:
    """The profile a prepared dataset names, when ``annotations`` is its folder or its manifest."""
    manifest = annotations / MANIFEST_FILE if annotations.is_dir() else annotations
    if manifest.name != MANIFEST_FILE or not manifest.is_file():
        return None
    try:
        content = json.loads(manifest.read_text())
        return str(content["profile"]) if isinstance(content, dict) and "profile" in content else None
    except (OSError, ValueError):
        return None


def _named_in_file(annotation_set: AnnotationSet, profile: str, eval_subset: str, notes: list[str]) -> str:
    """The profile's evaluation subset under the name the file gives it (before ``tad prepare``'s renames)."""
    subsets = annotation_set.subsets()
    if eval_subset in subsets:
        return eval_subset
    renames = subset_renames(profile, annotation_set.format)
    original = next((old for old, new in renames.items() if new == eval_subset and old in subsets), None)
    if original is None:
        return eval_subset
    notes.append(f"scored subset {original!r}: the '{profile}' evaluation subset {eval_subset!r}, as tad prepare renames it")
    return original


def _default_subset(annotation_set: AnnotationSet, preferred: str | None) -> str:
    """The subset scored when none is given (see the module doc); may be absent from the file."""
    if preferred is not None:
        return preferred
    subsets = annotation_set.subsets()
    if DEFAULT_SUBSET in subsets or len(subsets) != 1:
        return DEFAULT_SUBSET
    return subsets[0]


def _subset_ground_truth(
    annotation_set: AnnotationSet, path: Path, subset: str, notes: list[str]
) -> tuple[GroundTruth, set[str]]:
    """Ground truth of ``subset`` in file order, and the ids of all the subset's videos."""
    drop_ambiguous = annotation_set.format.rules.drops_ambiguous
    strip_prefix = annotation_set.format.rules.strips_bsn_prefix
    video_ids, starts, ends, labels = [], [], [], []
    subset_videos: set[str] = set()
    num_ambiguous = 0
    num_zero_length = 0
    for video in annotation_set.videos.values():
        if video.subset != subset:
            continue
        video_id = video.video_id.removeprefix(BSN_VIDEO_PREFIX) if strip_prefix else video.video_id
        subset_videos.add(video_id)
        for index, instance in enumerate(video.instances):
            if drop_ambiguous and instance.label == AMBIGUOUS_LABEL:
                num_ambiguous += 1
                continue
            if instance.end < instance.start:
                raise AnnotationError(
                    f"{path}: video {video.video_id!r}: annotation {index} ({instance.label}): "
                    f"segment [{instance.start}, {instance.end}] ends before it starts"
                )
            num_zero_length += instance.end == instance.start
            video_ids.append(video_id)
            starts.append(instance.start)
            ends.append(instance.end)
            labels.append(instance.label)
    if not video_ids:
        raise DatasetError(f"{path}: subset {subset!r} has no ground-truth instances; {_describe_subsets(annotation_set)}")
    if num_ambiguous:
        notes.append(f"{num_ambiguous} '{AMBIGUOUS_LABEL}' instances are not a class and were left out")
    if strip_prefix:
        notes.append(f"video ids of {path.name} were taken without their '{BSN_VIDEO_PREFIX}' prefix (ActivityNet ids)")
    if num_zero_length:
        notes.append(f"{num_zero_length} ground-truth instances have zero length: only a detection at the same instant matches them")
    ground_truth = GroundTruth(video_ids, np.array(starts, dtype=np.float64), np.array(ends, dtype=np.float64), labels)
    return ground_truth, subset_videos


def _describe_subsets(annotation_set: AnnotationSet) -> str:
    """'subsets in the file: training (200 videos, 3003 instances), validation (...)'."""
    videos = Counter(video.subset for video in annotation_set.videos.values())
    instances = Counter()
    for video in annotation_set.videos.values():
        instances[video.subset] += len(video.instances)
    described = ", ".join(f"{name!r} ({videos[name]} videos, {instances[name]} instances)" for name in annotation_set.subsets())
    return f"subsets in the file: {described or 'none'}"


def _check_predictions_meet_ground_truth(
    detections: Detections,
    ground_truth: GroundTruth,
    subset_videos: set[str],
    annotation_set: AnnotationSet,
    path: Path,
    subset: str,
    notes: list[str],
) -> None:
    """Fail when no results video is in the subset or no label is a class; note partial mismatches."""
    if len(detections) == 0:
        raise AnnotationError(f"{path}: the results file holds no detections")
    result_videos = list(dict.fromkeys(detections.video_ids))
    outside = [video for video in result_videos if video not in subset_videos]
    if len(outside) == len(result_videos):
        raise AnnotationError(
            f"{path}: none of its {len(result_videos)} videos (e.g. {result_videos[0]!r}) is in subset {subset!r} "
            f"of the ground truth ({len(subset_videos)} videos, e.g. {next(iter(sorted(subset_videos)))!r})"
            f"{_mismatch_hint(result_videos, subset_videos, annotation_set)}"
        )
    if outside:
        count = sum(1 for video in detections.video_ids if video not in subset_videos)
        notes.append(
            f"{len(outside)} of the {len(result_videos)} results videos are not in subset {subset!r} "
            f"(e.g. {outside[0]!r}): their {count} detections count as false positives"
        )
    classes = set(ground_truth.labels)
    unknown = Counter(label for label in detections.labels if label not in classes)
    if sum(unknown.values()) == len(detections):
        raise AnnotationError(
            f"{path}: none of the predicted labels is a ground-truth class of subset {subset!r} "
            f"(predicted e.g. {next(iter(unknown))!r}; classes e.g. {min(classes)!r})"
        )
    if unknown:
        examples = ", ".join(repr(label) for label, _ in unknown.most_common(3))
        notes.append(
            f"{sum(unknown.values())} detections with labels that have no ground truth in subset {subset!r} "
            f"were ignored ({examples})"
        )


def _inverted_predictions_warning(detections: Detections) -> list[str]:
    """One line counting the predictions whose end precedes their start (none: no line)."""
    inverted = np.flatnonzero(detections.ends < detections.starts)
    if inverted.size == 0:
        return []
    first = int(inverted[0])
    return [
        f"{inverted.size} predictions end before they start (e.g. video {detections.video_ids[first]!r}: "
        f"[{detections.starts[first]:g}, {detections.ends[first]:g}]): scored as the official evaluator scores "
        "them (they overlap nothing, so false positives, except where minus their length equals a ground-truth "
        "instance's: a 0/0 that it counts as a match); --strict rejects them"
    ]


def _mismatch_hint(result_videos: list[str], subset_videos: set[str], annotation_set: AnnotationSet) -> str:
    """Why the results videos may miss the subset: they are in another subset, or differ by 'v_'."""
    other = Counter(annotation_set.videos[v].subset for v in result_videos if v in annotation_set.videos)
    if other:
        return "; they are in " + ", ".join(f"subset {name!r} ({count} videos)" for name, count in other.most_common())
    toggled = {v[len(BSN_VIDEO_PREFIX) :] if v.startswith(BSN_VIDEO_PREFIX) else BSN_VIDEO_PREFIX + v for v in result_videos}
    if toggled & subset_videos:
        return f"; the ids differ by the '{BSN_VIDEO_PREFIX}' prefix"
    return ""


def _report(metrics: DetectionMetrics, subset: str, notes: list[str], warnings: Sequence[str] = ()) -> EvalReport:
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


# ------------------------------------------------------------------------------------- tad eval --run
def evaluate_model(
    model,  # noqa: ANN001 - tadcli.model.adatad.AdaTAD (torch is imported lazily)
    dataset_dir: str | Path,
    classes: Sequence[str],
    preset,  # noqa: ANN001 - tadcli.config.schema.Preset
    subset: str | None,
    out_dir: str | Path,
    tag: str | None = None,
    device="cpu",  # noqa: ANN001 - torch.device or name
    batch_size: int = 1,
    num_workers: int = 0,
    progress: ProgressCallback | None = None,
) -> EvalReport:
    """Detect on a subset of a prepared dataset with ``model`` and score it, as ``tad eval --run`` does.

    Writes ``out_dir/{tag}_results.json`` (ActivityNet format, what ``tad eval --predictions`` reads) and
    ``out_dir/{tag}_metrics.json`` (the ``--json`` content; ``tag`` defaults to the subset). Sliding windows or resizing as the dataset
    profile says, per-window decoding, one soft-NMS per video (spec §5.4); the tIoU thresholds are the
    preset's ``evaluation.tiou_thresholds`` or the profile's.

    Raises:
        DatasetError: unreadable dataset, absent subset, or classes that differ from the model's.
    """
    from tadcli.data.dataset import records_from_prepared
    from tadcli.data.manifest import load_prepared_dataset
    from tadcli.inference.evaluate import evaluate_on_records
    from tadcli.io.events import format_results
    from tadcli.model.build import postprocess_settings

    dataset = load_prepared_dataset(dataset_dir)
    profile = dataset.dataset_profile
    if list(dataset.classes) != list(classes):
        raise DatasetError(
            f"{dataset.root}: its {len(dataset.classes)} classes differ from the model's {len(classes)} "
            f"(first difference: {_first_difference(dataset.classes, classes)})"
        )
    subset = subset or profile.eval_subset
    records = records_from_prepared(dataset, subset)
    thresholds = preset.evaluation.tiou_thresholds or list(profile.tiou_thresholds)
    evaluation = evaluate_on_records(
        model,
        records,
        classes,
        preset,
        profile,
        postprocess_settings(preset, profile),
        thresholds,
        device=device,
        batch_size=batch_size,
        num_workers=num_workers,
        progress=progress,
    )
    notes = [f"video {video} could not be decoded and has no detections: {error}" for video, error in evaluation.failed]
    report = _report(evaluation.metrics, subset, notes)
    out_dir, tag = Path(out_dir), tag or subset
    write_text_atomic(out_dir / f"{tag}_results.json", format_results(evaluation.events))
    return replace(report, json_path=write_json_atomic(out_dir / f"{tag}_metrics.json", report.to_json()))


def _first_difference(a: Sequence[str], b: Sequence[str]) -> str:
    for index, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"class {index} is '{x}' vs '{y}'"
    return f"{len(a)} vs {len(b)} classes"


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
    out_dir = check_output_dir(out_dir if out_dir is not None else run_paths(run_dir)["eval"], "evaluation folder")
    from tadcli.inference.loading import load_run_model  # torch: after the checks, a wrong path is answered at once
    from tadcli.training.distributed import resolve_device

    torch_device = resolve_device(device)
    config, model = load_run_model(run_dir, torch_device)
    report = evaluate_model(
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

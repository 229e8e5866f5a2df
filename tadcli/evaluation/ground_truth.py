"""Which ground truth a results file is scored against, and what the user must know about the inputs.

Ground truth: any format of :func:`tadcli.data.annotations.read_annotations`. Two conversions, both
reported as notes:

- THUMOS14 txt: instances labelled ``Ambiguous`` are not a class and are left out (OpenTAD does
  the same; the official THUMOS Matlab toolkit's special treatment of detections overlapping them
  is not reproduced: this is the ActivityNet evaluator).
- BSN's ActivityNet copy: its ``v_`` file prefix is removed from the video ids, which makes them the
  YouTube ids that ActivityNet results files use.

Subset (:func:`choose_subset`), first that applies:

1. formats whose subset names are fixed by their reader score the split results are reported on:
   THUMOS14 txt ``test``, Multi-THUMOS and Charades ``testing``, BSN ActivityNet ``validation``,
   EPIC-Kitchens ``val``;
2. the dataset profile's evaluation subset (thumos14, activitynet, multithumos: ``validation``;
   charades: ``testing``; epic-kitchens, custom, synthetic: ``val``), under the name it has in the
   file before ``tad prepare`` renames it (:data:`tadcli.config.profiles.SUBSET_RENAMES`: ActionFormer's
   ``thumos14.json`` ``Test``, custom ``validation``) when the file uses that name. The profile
   (:func:`scoring_profile`) is the one asked for, else that of those fixed formats, else the one a
   prepared ``manifest.json`` names;
3. ``validation`` if the file has it, else the file's only subset.

A subset without ground truth is an error listing the subsets with their counts.

Thresholds (:func:`scoring_thresholds`): those asked for, else the dataset profile's, else the official
evaluator's default ``numpy.linspace(0.5, 0.95, 10)``.

Predictions whose end precedes their start are scored as the official evaluator scores them (see
:mod:`tadcli.evaluation.detection_map`) with one warning that counts them (:func:`inverted_predictions_warning`).
Ground-truth instances whose end precedes their start are kept the same way (the official evaluator reads them,
DETAD's diagnosis removes them) with one note; ``strict`` makes the first one an error.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tadcli.config.profiles import ACTIVITYNET_TIOU, DatasetProfile, get_profile, subset_renames
from tadcli.data.annotations import (
    AMBIGUOUS_LABEL,
    BSN_VIDEO_PREFIX,
    AnnotationSet,
    VideoAnnotation,
    other_bsn_spelling,
    without_bsn_prefix,
)
from tadcli.errors import AnnotationError, DatasetError
from tadcli.evaluation.detection_map import DetectionTable, GroundTruth

__all__ = [
    "DEFAULT_SUBSET",
    "scoring_profile",
    "scoring_thresholds",
    "choose_subset",
    "subset_ground_truth",
    "subset_videos_by_scored_id",
    "check_predictions_meet_ground_truth",
    "inverted_predictions_warning",
]

DEFAULT_SUBSET = "validation"


def scoring_profile(
    annotation_set: AnnotationSet, dataset: str | None, prepared_profile: str | None
) -> DatasetProfile | None:
    """The dataset profile that gives default thresholds and subset: ``dataset``, else the one the format's
    reader fixes, else the one a prepared dataset names (``None``: none of them)."""
    profile_name = dataset or annotation_set.format.rules.profile or prepared_profile
    return get_profile(profile_name) if profile_name is not None else None


def scoring_thresholds(tiou: Sequence[float] | None, profile: DatasetProfile | None) -> list[float]:
    """``tiou`` exactly as given, else the profile's thresholds, else the official evaluator's default."""
    if tiou is not None:
        return list(tiou)
    return list(profile.tiou_thresholds if profile else ACTIVITYNET_TIOU)


def choose_subset(annotation_set: AnnotationSet, profile: DatasetProfile | None, notes: list[str]) -> str:
    """The subset scored when none is given (see the module doc); may be absent from the file."""
    preferred = annotation_set.format.rules.eval_subset
    if preferred is None and profile is not None:
        preferred = _named_in_file(annotation_set, profile.name, profile.eval_subset, notes)
    return _default_subset(annotation_set, preferred)


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
    """``preferred``, else ``validation`` if the file has it, else the file's only subset."""
    if preferred is not None:
        return preferred
    subsets = annotation_set.subsets()
    if DEFAULT_SUBSET in subsets or len(subsets) != 1:
        return DEFAULT_SUBSET
    return subsets[0]


def subset_ground_truth(
    annotation_set: AnnotationSet, path: Path, subset: str, notes: list[str], strict: bool = False
) -> tuple[GroundTruth, set[str]]:
    """Ground truth of ``subset`` in file order, and the ids of all the subset's videos.

    Raises:
        AnnotationError: (``strict``) an instance ends before it starts. DatasetError: the subset has no instance.
    """
    drop_ambiguous = annotation_set.format.rules.drops_ambiguous
    strip_prefix = annotation_set.format.rules.strips_bsn_prefix
    video_ids, starts, ends, labels = [], [], [], []
    subset_videos: set[str] = set()
    num_ambiguous = 0
    num_zero_length = 0
    inverted: list[str] = []  # where each instance that ends before it starts is
    for video in annotation_set.videos.values():
        if video.subset != subset:
            continue
        video_id = without_bsn_prefix(video.video_id) if strip_prefix else video.video_id
        subset_videos.add(video_id)
        for index, instance in enumerate(video.instances):
            if drop_ambiguous and instance.label == AMBIGUOUS_LABEL:
                num_ambiguous += 1
                continue
            if instance.end < instance.start:
                inverted.append(
                    f"video {video.video_id!r}: annotation {index} ({instance.label}): "
                    f"segment [{instance.start}, {instance.end}]"
                )
                if strict:
                    raise AnnotationError(f"{path}: {inverted[0]} ends before it starts")
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
    if inverted:
        notes.append(
            f"{len(inverted)} ground-truth instances end before they start (e.g. {inverted[0]}): scored as the "
            "official evaluator scores them (they overlap nothing); DETAD's diagnosis leaves them out; --strict "
            "rejects them"
        )
    if num_zero_length:
        notes.append(f"{num_zero_length} ground-truth instances have zero length: only a detection at the same instant matches them")
    ground_truth = GroundTruth(video_ids, np.array(starts, dtype=np.float64), np.array(ends, dtype=np.float64), labels)
    return ground_truth, subset_videos


def subset_videos_by_scored_id(annotation_set: AnnotationSet, subset: str) -> dict[str, VideoAnnotation]:
    """The subset's videos under the ids their instances have in :func:`subset_ground_truth` (BSN's without
    the ``v_`` prefix), in file order."""
    strip_prefix = annotation_set.format.rules.strips_bsn_prefix
    return {
        (without_bsn_prefix(video.video_id) if strip_prefix else video.video_id): video
        for video in annotation_set.videos.values()
        if video.subset == subset
    }


def _describe_subsets(annotation_set: AnnotationSet) -> str:
    """'subsets in the file: training (200 videos, 3003 instances), validation (...)'."""
    videos = Counter(video.subset for video in annotation_set.videos.values())
    instances = Counter()
    for video in annotation_set.videos.values():
        instances[video.subset] += len(video.instances)
    described = ", ".join(f"{name!r} ({videos[name]} videos, {instances[name]} instances)" for name in annotation_set.subsets())
    return f"subsets in the file: {described or 'none'}"


def check_predictions_meet_ground_truth(
    detections: DetectionTable,
    ground_truth: GroundTruth,
    subset_videos: set[str],
    annotation_set: AnnotationSet,
    path: Path,
    subset: str,
    notes: list[str],
) -> None:
    """Fail when no results video is in the subset or no label is a class; note partial mismatches.

    Raises:
        AnnotationError: no detection, no results video in the subset, or no predicted label among its classes.
    """
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


def _mismatch_hint(result_videos: list[str], subset_videos: set[str], annotation_set: AnnotationSet) -> str:
    """Why the results videos may miss the subset: they differ by 'v_', or they are in another subset. The
    prefix comes first: BSN's file keys its videos with 'v_' while the scored ids have none, so 'v_' ids are
    found in the file, in the very subset scored."""
    if {other_bsn_spelling(video) for video in result_videos} & subset_videos:
        return f"; the ids differ by the '{BSN_VIDEO_PREFIX}' prefix"
    other = Counter(annotation_set.videos[v].subset for v in result_videos if v in annotation_set.videos)
    if other:
        return "; they are in " + ", ".join(f"subset {name!r} ({count} videos)" for name, count in other.most_common())
    return ""


def inverted_predictions_warning(detections: DetectionTable) -> list[str]:
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

"""The checks of ``tad prepare`` and ``tad prepare --check``: every rule that decides what a prepared dataset
keeps, drops or corrects, each decision recorded as an :class:`Issue` of an :class:`IssueKind`.

Rules that take the raw annotations to the profile's dataset, in the order ``tad prepare`` applies them:
:func:`choose_annotation_format` (EPIC-Kitchens: nouns unless told otherwise), :func:`check_dataset_format`,
:func:`rename_subsets` (the profile's subset names), :func:`drop_blocked_videos`, :func:`find_video_files`
(the file of each video id). Then, shared with ``--check``: :func:`clean_videos` (per video and
instance) and :func:`check_subsets` (the training and evaluation subsets must have instances).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

from tadcli.config.profiles import DatasetProfile
from tadcli.data.annotations import (
    AMBIGUOUS_LABEL,
    DATASET_FORMATS,
    AnnotationFormat,
    AnnotationSet,
    Instance,
    VideoAnnotation,
    bsn_prefix_variants,
    without_bsn_prefix,
)
from tadcli.data.probe import VideoProbe
from tadcli.data.video import VIDEO_EXTENSIONS
from tadcli.errors import DatasetError

__all__ = [
    "Severity",
    "IssueKind",
    "Issue",
    "SubsetCounts",
    "DEFAULT_EPIC_FORMAT",
    "DUPLICATE_TOLERANCE_S",
    "DURATION_TOLERANCE_S",
    "DURATION_TOLERANCE_RELATIVE",
    "FPS_TOLERANCE_RELATIVE",
    "choose_annotation_format",
    "check_dataset_format",
    "rename_subsets",
    "drop_blocked_videos",
    "find_video_files",
    "clean_videos",
    "check_subsets",
    "count_subsets",
]


class Severity(StrEnum):
    """``error``: the dataset is unusable; ``dropped``: a video or an instance was removed; ``changed``: a
    value was corrected; ``note``: kept as is, worth knowing."""

    ERROR = "error"
    DROPPED = "dropped"
    CHANGED = "changed"
    NOTE = "note"


class IssueKind(StrEnum):
    """A kind of questionable thing, with its :attr:`severity` and the :attr:`decision` taken for it.

    Members are in report order: the most severe first.
    """

    severity: Severity
    decision: str

    def __new__(cls, value: str, severity: Severity, decision: str) -> IssueKind:
        member = str.__new__(cls, value)
        member._value_ = value
        member.severity = severity
        member.decision = decision
        return member

    SUBSET_EMPTY = (
        "subset_empty",
        Severity.ERROR,
        "a subset the profile trains or evaluates on has no instance: nothing to train or a NaN mAP",
    )
    PROXY_STALE = (
        "proxy_stale",
        Severity.ERROR,
        "a proxy video is missing or was made from another version of its video (training would skip it): "
        "run 'tad prepare ... --proxy' again",
    )
    VIDEO_MISSING = ("video_missing", Severity.DROPPED, "video dropped: no file for it in the video folder")
    VIDEO_FILE_AMBIGUOUS = ("video_file_ambiguous", Severity.DROPPED, "video dropped: several files match its id")
    VIDEO_UNREADABLE = (
        "video_unreadable", Severity.DROPPED, "video dropped: the file cannot be decoded or has no frames"
    )
    AMBIGUOUS_INSTANCE = (
        "ambiguous_instance", Severity.DROPPED, "instance dropped: THUMOS14 'Ambiguous' is not a class"
    )
    UNKNOWN_LABEL = ("unknown_label", Severity.DROPPED, "instance dropped: label absent from the class list")
    SEGMENT_EMPTY = ("segment_empty", Severity.DROPPED, "instance dropped: zero-length or inverted segment")
    SEGMENT_TOO_SHORT = (
        "segment_too_short",
        Severity.DROPPED,
        "training instance dropped: no longer than the profile's fraction of its video (ActivityNet 1 %, "
        "OpenTAD's filter_gt); evaluated subsets keep such instances, as the official evaluator does",
    )
    VIDEO_BLOCKED = (
        "video_blocked", Severity.DROPPED, "video dropped from the evaluated subset: it is on the blocked-video list"
    )
    SEGMENT_OUTSIDE_VIDEO = (
        "segment_outside_video",
        Severity.DROPPED,
        "instance dropped: starts at or after the video end, or ends before 0",
    )
    DUPLICATE_INSTANCE = (
        "duplicate_instance",
        Severity.DROPPED,
        "instance dropped: same label and segment (within 1 ms) as another",
    )
    SEGMENT_PAST_END = ("segment_past_end", Severity.CHANGED, "segment end clipped to the video duration")
    SEGMENT_BEFORE_START = ("segment_before_start", Severity.CHANGED, "segment start clipped to 0")
    DURATION_MISMATCH = ("duration_mismatch", Severity.CHANGED, "the probed duration of the file is used")
    FPS_MISMATCH = ("fps_mismatch", Severity.CHANGED, "the probed fps of the file is used")
    VIDEO_TRUNCATED = (
        "video_truncated",
        Severity.NOTE,
        "kept with the frames that decode: the file looks truncated, segments are checked against them",
    )
    FPS_NOT_PROFILE = ("fps_not_profile", Severity.NOTE, "kept: the profile expects videos re-encoded to its fixed fps")
    VIDEO_VARIABLE_FRAME_RATE = (
        "video_variable_frame_rate",
        Severity.NOTE,
        "kept: a variable frame rate; frames are read at their presentation times on an even grid of the fps "
        "shown (sparse stretches repeat the frame shown), so every time is a real second",
    )
    VIDEO_ROTATED = (
        "video_rotated", Severity.NOTE, "kept: frames are turned upright as players show them (display rotation)"
    )
    SUBSET_RENAMED = ("subset_renamed", Severity.NOTE, "subset renamed to the profile's name")
    SUBSET_UNUSED = (
        "subset_unused", Severity.NOTE, "kept: neither the training nor the evaluation subset of the profile"
    )
    VIDEO_WITHOUT_INSTANCES = (
        "video_without_instances",
        Severity.NOTE,
        "kept: a video without actions (detections on it are false positives)",
    )
    CLASS_WITHOUT_INSTANCES = (
        "class_without_instances", Severity.NOTE, "kept in the class list: no instance in the training subset"
    )
    VIDEOS_NOT_CHECKED = (
        "videos_not_checked",
        Severity.NOTE,
        "no video folder given: durations from the annotations, files not probed",
    )
    DEFAULT_CHOICE = ("default_choice", Severity.NOTE, "a default was used where the dataset offers a choice")
    BLOCKED_VIDEO_ABSENT = (
        "blocked_video_absent", Severity.NOTE, "on the blocked-video list but not in the evaluated subset"
    )
    PREVIOUS_DATASET_KEPT = (
        "previous_dataset_kept",
        Severity.NOTE,
        "nothing of this run was written: the usable dataset already in the folder was left as it was",
    )


DUPLICATE_TOLERANCE_S = 1e-3  # the GT de-duplication tolerance of OpenTAD/ActionFormer (spec §7)
DURATION_TOLERANCE_S = 0.5
DURATION_TOLERANCE_RELATIVE = 0.01
FPS_TOLERANCE_RELATIVE = 0.01

DEFAULT_EPIC_FORMAT = AnnotationFormat.EPIC_KITCHENS_NOUN


@dataclass(frozen=True)
class Issue:
    """One questionable thing found in the annotations or the videos, and the decision taken."""

    kind: IssueKind
    detail: str
    video_id: str | None = None
    subset: str | None = None

    @property
    def severity(self) -> Severity:
        return self.kind.severity

    @property
    def decision(self) -> str:
        return self.kind.decision


@dataclass(frozen=True)
class SubsetCounts:
    videos: int
    instances: int
    classes: int  # classes with at least one instance


# ----------------------------------------------------------------------------------------------
# from the raw annotations to the profile's dataset (tad prepare)


def choose_annotation_format(
    dataset: str, annotations: Path, annotation_format: AnnotationFormat | str | None
) -> tuple[AnnotationFormat | str | None, list[Issue]]:
    """The format to read ``annotations`` with (``None``: detect it), and the default taken, if any: an
    EPIC-Kitchens CSV is read for nouns unless a format is given."""
    if dataset != "epic-kitchens" or annotation_format is not None or annotations.suffix.lower() == ".json":
        return annotation_format, []
    note = f"EPIC-Kitchens task: noun (format {DEFAULT_EPIC_FORMAT}); use epic-kitchens-verb for verbs"
    return DEFAULT_EPIC_FORMAT, [Issue(IssueKind.DEFAULT_CHOICE, note)]


def check_dataset_format(annotation_set: AnnotationSet, annotations: Path, dataset: str) -> None:
    """Raise :class:`DatasetError` unless the annotations are in a format of ``dataset`` (:data:`DATASET_FORMATS`)."""
    if annotation_set.format not in DATASET_FORMATS[dataset]:
        raise DatasetError(
            f"{annotations}: {annotation_set.format} annotations are not a {dataset} format "
            f"(expected {', '.join(DATASET_FORMATS[dataset])})"
        )


def rename_subsets(annotation_set: AnnotationSet, renames: dict[str, str]) -> list[Issue]:
    """Rename subsets in place (all at once: renames may swap names); one issue per renamed subset.

    A name spelled exactly as a key of ``renames`` is renamed, one spelled exactly as a profile name is kept
    (OpenTAD's THUMOS14 file already says ``validation`` for the evaluated test videos, which ActionFormer's
    file calls ``Test``); any other name matches case-insensitively (``Validation`` -> ``val`` for custom data).
    """
    targets = set(renames.values())
    by_lower = {new.lower(): new for new in targets} | {old.lower(): new for old, new in renames.items()}
    members = {old: [v for v in annotation_set.videos.values() if v.subset == old] for old in annotation_set.subsets()}
    issues = []
    for old, videos in members.items():
        if old in renames:
            new = renames[old]
        elif old in targets:
            new = old
        else:
            new = by_lower.get(old.lower(), old)
        if new != old:
            for video in videos:
                video.subset = new
            issues.append(Issue(IssueKind.SUBSET_RENAMED, f"'{old}' -> '{new}' ({len(videos)} videos)", subset=new))
    return issues


def drop_blocked_videos(
    annotation_set: AnnotationSet, blocked: list[str], eval_subset: str, dataset: str
) -> list[Issue]:
    """Remove the listed videos from the evaluated subset, in place; one issue per video, one note for
    the listed ids that are not in it. ActivityNet ids match with or without BSN's ``v_`` prefix."""

    def key(video_id: str) -> str:
        return without_bsn_prefix(video_id) if dataset == "activitynet" else video_id

    wanted = {key(video_id) for video_id in blocked}
    issues, found = [], set()
    for video_id, video in list(annotation_set.videos.items()):
        if video.subset == eval_subset and key(video_id) in wanted:
            found.add(key(video_id))
            issues.append(Issue(IssueKind.VIDEO_BLOCKED, f"{len(video.instances)} instances", video_id, eval_subset))
            del annotation_set.videos[video_id]
    absent = sorted(wanted - found)
    if absent:
        issues.append(
            Issue(IssueKind.BLOCKED_VIDEO_ABSENT, f"{len(absent)} listed ids, e.g. {absent[:3]}", subset=eval_subset)
        )
    return issues


def find_video_files(
    videos_dir: Path, annotation_set: AnnotationSet, try_v_prefix: bool
) -> tuple[dict[str, Path], list[Issue]]:
    """video id -> its file, for the videos with exactly one matching file; an issue for each video
    that several files match. An id is a file name without extension (:data:`VIDEO_EXTENSIONS`), found
    anywhere below ``videos_dir``, or a path relative to it (``cam1/clip``: videos with the same name in
    different folders). ``try_v_prefix``: ActivityNet ids match files with or without ``v_``."""
    by_name: dict[str, list[Path]] = {}
    for file in sorted(videos_dir.rglob("*")):
        if file.suffix.lower() in VIDEO_EXTENSIONS and file.is_file():
            by_name.setdefault(file.stem, []).append(file.absolute())
            relative = file.relative_to(videos_dir).with_suffix("").as_posix()
            if relative != file.stem:
                by_name.setdefault(relative, []).append(file.absolute())
    found, issues = {}, []
    for video_id, video in annotation_set.videos.items():
        names = bsn_prefix_variants(video_id) if try_v_prefix else (video_id,)
        matches = [file for name in names for file in by_name.get(name.replace("\\", "/"), [])]
        if len(matches) == 1:
            found[video_id] = matches[0]
        elif len(matches) > 1:
            listed = " and ".join(str(file) for file in matches)
            example = matches[0].relative_to(videos_dir.absolute()).with_suffix("").as_posix()
            hint = f"; name one by its path relative to {videos_dir} (e.g. {example})"
            issues.append(Issue(IssueKind.VIDEO_FILE_AMBIGUOUS, listed + hint, video_id, video.subset))
    return found, issues


# ----------------------------------------------------------------------------------------------
# checks shared by prepare and --check


def clean_videos(
    videos: dict[str, VideoAnnotation],
    classes: list[str],
    probes: dict[str, VideoProbe | None] | None,
    profile: DatasetProfile,
) -> tuple[dict[str, VideoAnnotation], list[Issue]]:
    """Apply every per-video and per-instance check, returning the kept videos and the issues.

    Args:
        videos: video id -> annotation, subsets already named as in the profile.
        classes: the class list; other labels are dropped.
        probes: video id -> probe of its file (``None``: no file found); ``None`` altogether when
            videos are not checked (durations then come from the annotations, when they give one).
        profile: the dataset profile (its fixed fps, when it has one, is compared with the files).

    Returns:
        ``(kept, issues)``: kept videos carry the probed duration, fps and frame count, and their
        segments are cleaned; ``issues`` record every decision (see :class:`IssueKind`).
    """
    class_set = set(classes)
    kept: dict[str, VideoAnnotation] = {}
    issues: list[Issue] = []
    if probes is None:
        issues.append(Issue(IssueKind.VIDEOS_NOT_CHECKED, "prepare was run without a video folder"))
    for video_id, video in videos.items():
        if probes is not None:
            probe = probes.get(video_id)
            video = _check_video_file(video, probe, profile, issues)
            if video is None:
                continue
        min_fraction = profile.min_training_fraction if video.subset == profile.train_subset else 0.0
        instances = _clean_instances(video, class_set, min_fraction, issues)
        if not instances:
            issues.append(Issue(IssueKind.VIDEO_WITHOUT_INSTANCES, "no instance left", video_id, video.subset))
        kept[video_id] = replace(video, instances=instances)
    return kept, issues


def _check_video_file(
    video: VideoAnnotation, probe: VideoProbe | None, profile: DatasetProfile, issues: list[Issue]
) -> VideoAnnotation | None:
    """The video with its probed measures, or ``None`` (with an issue) when it cannot be used."""
    where = dict(video_id=video.video_id, subset=video.subset)
    if probe is None:
        issues.append(Issue(IssueKind.VIDEO_MISSING, "no video file with this id", **where))
        return None
    if not probe.readable:
        issues.append(Issue(IssueKind.VIDEO_UNREADABLE, f"{probe.path}: {probe.error}", **where))
        return None
    if probe.warning is not None:
        issues.append(Issue(IssueKind.VIDEO_TRUNCATED, f"{probe.path}: {probe.warning}", **where))
    if probe.variable_frame_rate:
        issues.append(
            Issue(
                IssueKind.VIDEO_VARIABLE_FRAME_RATE,
                f"{probe.path}: read at {probe.fps:g} fps, real duration {probe.duration:.3f} s",
                **where,
            )
        )
    if probe.rotation:
        issues.append(
            Issue(
                IssueKind.VIDEO_ROTATED,
                f"{probe.path}: turned {probe.rotation} degrees counter-clockwise, upright {probe.width}x{probe.height}",
                **where,
            )
        )
    if video.duration is not None and abs(video.duration - probe.duration) > max(
        DURATION_TOLERANCE_S, DURATION_TOLERANCE_RELATIVE * probe.duration
    ):
        issues.append(
            Issue(
                IssueKind.DURATION_MISMATCH,
                f"annotation says {video.duration:.3f} s, the file has {probe.duration:.3f} s",
                **where,
            )
        )
    if video.fps is not None and abs(video.fps - probe.fps) > FPS_TOLERANCE_RELATIVE * probe.fps:
        issues.append(
            Issue(IssueKind.FPS_MISMATCH, f"annotation says {video.fps:g} fps, the file has {probe.fps:g} fps", **where)
        )
    if profile.fps is not None and abs(profile.fps - probe.fps) > FPS_TOLERANCE_RELATIVE * profile.fps:
        issues.append(
            Issue(
                IssueKind.FPS_NOT_PROFILE,
                f"the file has {probe.fps:g} fps, profile '{profile.name}' expects {profile.fps:g}",
                **where,
            )
        )
    return replace(video, duration=probe.duration, fps=probe.fps, num_frames=probe.num_frames)


def _clean_instances(
    video: VideoAnnotation, class_set: set[str], min_fraction: float, issues: list[Issue]
) -> list[Instance]:
    """The instances kept; ``min_fraction`` > 0 also drops those no longer than that fraction of the video."""
    kept: list[Instance] = []
    for instance in video.instances:
        where = dict(video_id=video.video_id, subset=video.subset)
        text = f"{instance.label} [{instance.start:g}, {instance.end:g}]"
        if instance.label not in class_set:
            kind = IssueKind.AMBIGUOUS_INSTANCE if instance.label == AMBIGUOUS_LABEL else IssueKind.UNKNOWN_LABEL
            issues.append(Issue(kind, text, **where))
            continue
        if instance.end <= instance.start:
            issues.append(Issue(IssueKind.SEGMENT_EMPTY, text, **where))
            continue
        if video.duration and (instance.end - instance.start) / video.duration <= min_fraction:
            issues.append(Issue(IssueKind.SEGMENT_TOO_SHORT, f"{text}, video {video.duration:g} s", **where))
            continue
        start, end = instance.start, instance.end
        if end <= 0:
            issues.append(Issue(IssueKind.SEGMENT_OUTSIDE_VIDEO, f"{text}, ends before the video starts", **where))
            continue
        if video.duration is not None:
            if start >= video.duration:
                issues.append(Issue(IssueKind.SEGMENT_OUTSIDE_VIDEO, f"{text}, video ends at {video.duration:g} s", **where))
                continue
            if end > video.duration:
                issues.append(Issue(IssueKind.SEGMENT_PAST_END, f"{text} -> end {video.duration:g}", **where))
                end = video.duration
        if start < 0:
            issues.append(Issue(IssueKind.SEGMENT_BEFORE_START, f"{text} -> start 0", **where))
            start = 0.0
        cleaned = Instance(start, end, instance.label)
        if any(_same_instance(cleaned, other) for other in kept):
            issues.append(Issue(IssueKind.DUPLICATE_INSTANCE, text, **where))
            continue
        kept.append(cleaned)
    return kept


def _same_instance(a: Instance, b: Instance) -> bool:
    return (
        a.label == b.label
        and abs(a.start - b.start) <= DUPLICATE_TOLERANCE_S
        and abs(a.end - b.end) <= DUPLICATE_TOLERANCE_S
    )


def check_subsets(videos: dict[str, VideoAnnotation], classes: list[str], profile: DatasetProfile) -> list[Issue]:
    """Subset-level checks: the profile's training and evaluation subsets must have instances."""
    issues = []
    counts = count_subsets(videos)
    protocol = f"profile '{profile.name}' trains on '{profile.train_subset}' and evaluates '{profile.eval_subset}'"
    for subset in dict.fromkeys((profile.train_subset, profile.eval_subset)):
        if subset not in counts:
            present = ", ".join(repr(name) for name in counts) or "none"
            issues.append(
                Issue(
                    IssueKind.SUBSET_EMPTY,
                    f"no video in subset '{subset}' (subsets present: {present}; {protocol})",
                    subset=subset,
                )
            )
        elif counts[subset].instances == 0:
            issues.append(Issue(IssueKind.SUBSET_EMPTY, f"{counts[subset].videos} videos but 0 instances", subset=subset))
    for subset in counts:
        if subset not in (profile.train_subset, profile.eval_subset):
            issues.append(
                Issue(
                    IssueKind.SUBSET_UNUSED,
                    f"{counts[subset].videos} videos, {counts[subset].instances} instances",
                    subset=subset,
                )
            )
    trained = {i.label for v in videos.values() if v.subset == profile.train_subset for i in v.instances}
    if profile.train_subset in counts:
        for name in classes:
            if name not in trained:
                issues.append(Issue(IssueKind.CLASS_WITHOUT_INSTANCES, name, subset=profile.train_subset))
    return issues


def count_subsets(videos: dict[str, VideoAnnotation]) -> dict[str, SubsetCounts]:
    """subset -> videos, instances and classes with instances, subsets in order of first appearance."""
    counts: dict[str, SubsetCounts] = {}
    for subset in dict.fromkeys(video.subset for video in videos.values()):
        members = [video for video in videos.values() if video.subset == subset]
        instances = [instance for video in members for instance in video.instances]
        counts[subset] = SubsetCounts(len(members), len(instances), len({i.label for i in instances}))
    return counts

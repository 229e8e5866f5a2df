"""The prepared dataset: what ``tad prepare`` writes and ``tad train``/``eval``/``detect`` read, and the
checks that ``tad prepare`` and ``tad prepare --check`` share.

Layout of a prepared dataset folder::

    manifest.json     {"version": 1, "profile": "thumos14", "classes": ["BaseballPitch", ...],
                       "database": {video_id: {"subset": "training", "duration": 33.83 (seconds),
                                               "fps": 29.97, "num_frames": 1014,
                                               "video_path": "videos/a.mp4" (relative to this folder,
                                                             or absolute; null: videos not checked),
                                               "annotations": [{"segment": [0.2, 1.1], "label": "Diving"}]}}}
    classes.txt       the class list, one name per line (class index = line number, from 0)
    report.json       what prepare found and decided: counts per subset, every issue
    report.txt        the same, for people
    probe_cache.json  video probes keyed by path, size and mtime (:mod:`tadcli.data.probe`)

``manifest.json`` is ActivityNet-style, so ``read_annotations("manifest.json")`` reads it too (its
``classes`` list is used). Subset names are those of the dataset profile (``train_subset`` and
``eval_subset`` of :func:`tadcli.config.profiles.get_profile`). Durations, fps and frame counts are
the probed values of the video files; segments are in seconds, inside ``[0, duration]``, with
``end > start``, labels in ``classes``, no duplicates. Every file is written atomically.

The checks (:func:`clean_videos`, :func:`check_subsets`) decide each questionable thing explicitly and
record it as an :class:`Issue`; see :data:`ISSUE_KINDS` for the decision taken for each kind.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

from tadcli.config.profiles import DatasetProfile, get_profile
from tadcli.data.annotations import AMBIGUOUS_LABEL, AnnotationSet, Instance, VideoAnnotation
from tadcli.data.probe import VideoProbe
from tadcli.errors import DatasetError
from tadcli.io.atomic import write_text_atomic
from tadcli.io.jsonio import write_json_atomic

MANIFEST_VERSION = 1
MANIFEST_FILE = "manifest.json"
CLASSES_FILE = "classes.txt"
REPORT_JSON_FILE = "report.json"
REPORT_TEXT_FILE = "report.txt"
PROBE_CACHE_FILE = "probe_cache.json"

Severity = Literal["error", "dropped", "changed", "note"]

# kind -> (severity, the decision taken). "error": the dataset is unusable; "dropped": a video or
# an instance was removed; "changed": a value was corrected; "note": kept as is, worth knowing.
ISSUE_KINDS: dict[str, tuple[Severity, str]] = {
    "subset_empty": (
        "error",
        "a subset the profile trains or evaluates on has no instance: nothing to train or a NaN mAP",
    ),
    "video_missing": ("dropped", "video dropped: no file for it in the video folder"),
    "video_file_ambiguous": ("dropped", "video dropped: several files match its id"),
    "video_unreadable": ("dropped", "video dropped: the file cannot be decoded or has no frames"),
    "ambiguous_instance": ("dropped", "instance dropped: THUMOS14 'Ambiguous' is not a class"),
    "unknown_label": ("dropped", "instance dropped: label absent from the class list"),
    "segment_empty": ("dropped", "instance dropped: zero-length or inverted segment"),
    "segment_too_short": (
        "dropped",
        "training instance dropped: no longer than the profile's fraction of its video (ActivityNet 1 %, "
        "OpenTAD's filter_gt); evaluated subsets keep such instances, as the official evaluator does",
    ),
    "video_blocked": ("dropped", "video dropped from the evaluated subset: it is on the blocked-video list"),
    "segment_outside_video": ("dropped", "instance dropped: starts at or after the video end, or ends before 0"),
    "duplicate_instance": ("dropped", "instance dropped: same label and segment (within 1 ms) as another"),
    "segment_past_end": ("changed", "segment end clipped to the video duration"),
    "segment_before_start": ("changed", "segment start clipped to 0"),
    "duration_mismatch": ("changed", "the probed duration of the file is used"),
    "fps_mismatch": ("changed", "the probed fps of the file is used"),
    "video_truncated": (
        "note",
        "kept with the frames that decode: the file looks truncated, segments are checked against them",
    ),
    "fps_not_profile": ("note", "kept: the profile expects videos re-encoded to its fixed fps"),
    "video_variable_frame_rate": (
        "note",
        "kept: a variable frame rate; frames are read at their presentation times on an even grid of the fps "
        "shown (sparse stretches repeat the frame shown), so every time is a real second",
    ),
    "video_rotated": ("note", "kept: frames are turned upright as players show them (display rotation)"),
    "subset_renamed": ("note", "subset renamed to the profile's name"),
    "subset_unused": ("note", "kept: neither the training nor the evaluation subset of the profile"),
    "video_without_instances": ("note", "kept: a video without actions (detections on it are false positives)"),
    "class_without_instances": ("note", "kept in the class list: no instance in the training subset"),
    "videos_not_checked": ("note", "no video folder given: durations from the annotations, files not probed"),
    "default_choice": ("note", "a default was used where the dataset offers a choice"),
    "blocked_video_absent": ("note", "on the blocked-video list but not in the evaluated subset"),
    "previous_dataset_kept": (
        "note",
        "nothing of this run was written: the usable dataset already in the folder was left as it was",
    ),
}
SEVERITY_ORDER: tuple[Severity, ...] = ("error", "dropped", "changed", "note")

DUPLICATE_TOLERANCE_S = 1e-3  # the GT de-duplication tolerance of OpenTAD/ActionFormer (spec §7)
DURATION_TOLERANCE_S = 0.5
DURATION_TOLERANCE_RELATIVE = 0.01
FPS_TOLERANCE_RELATIVE = 0.01


@dataclass(frozen=True)
class Issue:
    """One questionable thing found in the annotations or the videos, and the decision taken."""

    kind: str  # a key of ISSUE_KINDS
    detail: str
    video_id: str | None = None
    subset: str | None = None

    @property
    def severity(self) -> Severity:
        return ISSUE_KINDS[self.kind][0]

    @property
    def decision(self) -> str:
        return ISSUE_KINDS[self.kind][1]


@dataclass(frozen=True)
class SubsetCounts:
    videos: int
    instances: int
    classes: int  # classes with at least one instance


@dataclass
class DatasetReport:
    """What ``tad prepare`` (``mode="prepare"``) or ``tad prepare --check`` (``mode="check"``) found.

    A prepared dataset is usable when no issue is an error. A check also fails on anything dropped or
    changed: the folder no longer matches what was prepared.
    """

    mode: Literal["prepare", "check"]
    dataset_dir: str
    profile: str
    source: str  # annotation path and format, or the manifest checked
    counts: dict[str, SubsetCounts]
    issues: list[Issue]
    videos_probed: int = 0
    videos_from_cache: int = 0
    annotations: str | None = None  # absolute path of the annotations prepared (None: a check)

    @property
    def usable(self) -> bool:
        return not self.failing_issues()

    def failing_issues(self) -> list[Issue]:
        """The issues that make the dataset unusable (errors; for a check also anything dropped or changed)."""
        failing = ("error",) if self.mode == "prepare" else ("error", "dropped", "changed")
        return [issue for issue in self.issues if issue.severity in failing]

    def issue_counts(self) -> dict[str, int]:
        """kind -> number of issues, most severe kinds first."""
        counts = Counter(issue.kind for issue in self.issues)
        return {kind: counts[kind] for kind in ISSUE_KINDS if counts[kind]}

    def to_json(self) -> dict:
        return {
            "mode": self.mode,
            "usable": self.usable,
            "dataset_dir": self.dataset_dir,
            "profile": self.profile,
            "source": self.source,
            "annotations": self.annotations,
            "videos_probed": self.videos_probed,
            "videos_from_cache": self.videos_from_cache,
            "counts": {subset: asdict(counts) for subset, counts in self.counts.items()},
            "issue_counts": self.issue_counts(),
            "decisions": {kind: ISSUE_KINDS[kind][1] for kind in self.issue_counts()},
            "issues": [dict(asdict(issue), severity=issue.severity) for issue in self.issues],
        }

    def summary(self, examples_per_kind: int = 5) -> str:
        """A human-readable report: verdict, counts per subset, then each issue kind with examples."""
        verb = "prepared" if self.mode == "prepare" else "checked"
        verdict = "usable" if self.usable else f"NOT usable ({self._why_not_usable()})"
        lines = [f"{self.dataset_dir}: {verb}, profile '{self.profile}', {verdict}", f"source: {self.source}"]
        lines.append(f"videos probed: {self.videos_probed} (from cache: {self.videos_from_cache})")
        for subset, counts in self.counts.items():
            lines.append(f"  {subset}: {counts.videos} videos, {counts.instances} instances, {counts.classes} classes")
        for kind, count in self.issue_counts().items():
            severity, decision = ISSUE_KINDS[kind]
            lines.append(f"{severity.upper()} {kind} x{count}: {decision}")
            examples = [issue for issue in self.issues if issue.kind == kind][:examples_per_kind]
            lines.extend(f"    {_issue_where(issue)}{issue.detail}" for issue in examples)
            if count > len(examples):
                lines.append(f"    ... {count - len(examples)} more in {REPORT_JSON_FILE}")
        return "\n".join(lines)


    def _why_not_usable(self) -> str:
        counts = Counter(issue.kind for issue in self.failing_issues())
        reasons = ", ".join(f"{kind} x{counts[kind]}" for kind in ISSUE_KINDS if counts[kind])  # errors first
        if self.mode == "check":
            return f"{reasons}: the folder no longer matches what was prepared; run 'tad prepare' again"
        return reasons


def _issue_where(issue: Issue) -> str:
    parts = [part for part in (issue.subset, issue.video_id) if part]
    return f"{'/'.join(parts)}: " if parts else ""


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
        segments are cleaned; ``issues`` record every decision (see :data:`ISSUE_KINDS`).
    """
    class_set = set(classes)
    kept: dict[str, VideoAnnotation] = {}
    issues: list[Issue] = []
    if probes is None:
        issues.append(Issue("videos_not_checked", "prepare was run without a video folder"))
    for video_id, video in videos.items():
        if probes is not None:
            probe = probes.get(video_id)
            video = _check_video_file(video, probe, profile, issues)
            if video is None:
                continue
        min_fraction = profile.min_training_fraction if video.subset == profile.train_subset else 0.0
        instances = _clean_instances(video, class_set, min_fraction, issues)
        if not instances:
            issues.append(Issue("video_without_instances", "no instance left", video_id, video.subset))
        kept[video_id] = replace(video, instances=instances)
    return kept, issues


def _check_video_file(
    video: VideoAnnotation, probe: VideoProbe | None, profile: DatasetProfile, issues: list[Issue]
) -> VideoAnnotation | None:
    """The video with its probed measures, or ``None`` (with an issue) when it cannot be used."""
    where = dict(video_id=video.video_id, subset=video.subset)
    if probe is None:
        issues.append(Issue("video_missing", "no video file with this id", **where))
        return None
    if not probe.readable:
        issues.append(Issue("video_unreadable", f"{probe.path}: {probe.error}", **where))
        return None
    if probe.warning is not None:
        issues.append(Issue("video_truncated", f"{probe.path}: {probe.warning}", **where))
    if probe.variable_frame_rate:
        issues.append(
            Issue(
                "video_variable_frame_rate",
                f"{probe.path}: read at {probe.fps:g} fps, real duration {probe.duration:.3f} s",
                **where,
            )
        )
    if probe.rotation:
        issues.append(
            Issue(
                "video_rotated",
                f"{probe.path}: turned {probe.rotation} degrees counter-clockwise, upright {probe.width}x{probe.height}",
                **where,
            )
        )
    if video.duration is not None and abs(video.duration - probe.duration) > max(
        DURATION_TOLERANCE_S, DURATION_TOLERANCE_RELATIVE * probe.duration
    ):
        issues.append(
            Issue(
                "duration_mismatch",
                f"annotation says {video.duration:.3f} s, the file has {probe.duration:.3f} s",
                **where,
            )
        )
    if video.fps is not None and abs(video.fps - probe.fps) > FPS_TOLERANCE_RELATIVE * probe.fps:
        issues.append(
            Issue("fps_mismatch", f"annotation says {video.fps:g} fps, the file has {probe.fps:g} fps", **where)
        )
    if profile.fps is not None and abs(profile.fps - probe.fps) > FPS_TOLERANCE_RELATIVE * profile.fps:
        issues.append(
            Issue(
                "fps_not_profile",
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
            kind = "ambiguous_instance" if instance.label == AMBIGUOUS_LABEL else "unknown_label"
            issues.append(Issue(kind, text, **where))
            continue
        if instance.end <= instance.start:
            issues.append(Issue("segment_empty", text, **where))
            continue
        if video.duration and (instance.end - instance.start) / video.duration <= min_fraction:
            issues.append(Issue("segment_too_short", f"{text}, video {video.duration:g} s", **where))
            continue
        start, end = instance.start, instance.end
        if end <= 0:
            issues.append(Issue("segment_outside_video", f"{text}, ends before the video starts", **where))
            continue
        if video.duration is not None:
            if start >= video.duration:
                issues.append(Issue("segment_outside_video", f"{text}, video ends at {video.duration:g} s", **where))
                continue
            if end > video.duration:
                issues.append(Issue("segment_past_end", f"{text} -> end {video.duration:g}", **where))
                end = video.duration
        if start < 0:
            issues.append(Issue("segment_before_start", f"{text} -> start 0", **where))
            start = 0.0
        cleaned = Instance(start, end, instance.label)
        if any(_same_instance(cleaned, other) for other in kept):
            issues.append(Issue("duplicate_instance", text, **where))
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
                    "subset_empty",
                    f"no video in subset '{subset}' (subsets present: {present}; {protocol})",
                    subset=subset,
                )
            )
        elif counts[subset].instances == 0:
            issues.append(Issue("subset_empty", f"{counts[subset].videos} videos but 0 instances", subset=subset))
    for subset in counts:
        if subset not in (profile.train_subset, profile.eval_subset):
            issues.append(
                Issue(
                    "subset_unused",
                    f"{counts[subset].videos} videos, {counts[subset].instances} instances",
                    subset=subset,
                )
            )
    trained = {i.label for v in videos.values() if v.subset == profile.train_subset for i in v.instances}
    if profile.train_subset in counts:
        for name in classes:
            if name not in trained:
                issues.append(Issue("class_without_instances", name, subset=profile.train_subset))
    return issues


def count_subsets(videos: dict[str, VideoAnnotation]) -> dict[str, SubsetCounts]:
    """subset -> videos, instances and classes with instances, subsets in order of first appearance."""
    counts: dict[str, SubsetCounts] = {}
    for subset in dict.fromkeys(video.subset for video in videos.values()):
        members = [video for video in videos.values() if video.subset == subset]
        instances = [instance for video in members for instance in video.instances]
        counts[subset] = SubsetCounts(len(members), len(instances), len({i.label for i in instances}))
    return counts


# ----------------------------------------------------------------------------------------------
# reading and writing the folder


@dataclass
class PreparedVideo:
    """One video of a prepared dataset. ``path`` is absolute (``None``: videos were not checked)."""

    video_id: str
    subset: str
    path: Path | None
    duration: float | None  # seconds
    fps: float | None
    num_frames: int | None
    instances: list[Instance] = field(default_factory=list)


@dataclass
class PreparedDataset:
    """A prepared dataset folder, loaded by :func:`load_prepared_dataset`.

    ``classes[i]`` is the name of class index ``i``; ``profile`` is the dataset profile name.
    """

    root: Path
    profile: str
    classes: list[str]
    videos: dict[str, PreparedVideo]

    @property
    def dataset_profile(self) -> DatasetProfile:
        return get_profile(self.profile)

    def subset(self, name: str) -> list[PreparedVideo]:
        """The videos of one subset, in manifest order; an absent subset is a :class:`DatasetError`."""
        videos = [video for video in self.videos.values() if video.subset == name]
        if not videos:
            present = sorted({video.subset for video in self.videos.values()})
            raise DatasetError(f"{self.root / MANIFEST_FILE}: no video in subset '{name}' (subsets: {present})")
        return videos

    def annotation_set(self) -> AnnotationSet:
        """The ground truth as an :class:`AnnotationSet` (format ``"prepared"``), e.g. for evaluation."""
        videos = {
            video.video_id: VideoAnnotation(
                video.video_id, video.subset, video.duration, video.fps, video.num_frames, list(video.instances)
            )
            for video in self.videos.values()
        }
        return AnnotationSet(videos=videos, classes=list(self.classes), format="prepared")


def load_prepared_dataset(dataset_dir: str | Path) -> PreparedDataset:
    """Read ``manifest.json`` of a prepared dataset folder.

    Raises:
        DatasetError: the folder or its manifest is missing or malformed (the message names the field).
    """
    root = Path(dataset_dir).absolute()
    manifest_path = root / MANIFEST_FILE
    if not manifest_path.is_file():
        raise DatasetError(f"{root}: not a prepared dataset ({MANIFEST_FILE} missing); run 'tad prepare' first")
    try:
        content = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as error:
        raise DatasetError(f"{manifest_path}: invalid JSON at line {error.lineno}: {error.msg}") from None
    if not isinstance(content, dict) or content.get("version") != MANIFEST_VERSION:
        version = content.get("version") if isinstance(content, dict) else None
        raise DatasetError(f"{manifest_path}: manifest version {version!r}, this tad reads version {MANIFEST_VERSION}")
    try:
        profile, classes = str(content["profile"]), [str(name) for name in content["classes"]]
        videos = {video_id: _prepared_video(root, video_id, entry) for video_id, entry in content["database"].items()}
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise DatasetError(f"{manifest_path}: malformed manifest ({type(error).__name__}: {error})") from None
    return PreparedDataset(root=root, profile=profile, classes=classes, videos=videos)


def _prepared_video(root: Path, video_id: str, entry: dict) -> PreparedVideo:
    path = entry["video_path"]
    return PreparedVideo(
        video_id=video_id,
        subset=str(entry["subset"]),
        path=None if path is None else root / path,  # an absolute path stays absolute
        duration=None if entry["duration"] is None else float(entry["duration"]),
        fps=None if entry["fps"] is None else float(entry["fps"]),
        num_frames=None if entry["num_frames"] is None else int(entry["num_frames"]),
        instances=[
            Instance(float(a["segment"][0]), float(a["segment"][1]), str(a["label"])) for a in entry["annotations"]
        ],
    )


def write_prepared_dataset(
    dataset_dir: str | Path,
    profile: str,
    classes: list[str],
    videos: dict[str, VideoAnnotation],
    video_paths: dict[str, Path] | None,
) -> Path:
    """Write ``manifest.json`` and ``classes.txt`` (atomically); returns the manifest path.

    Args:
        dataset_dir: the prepared dataset folder.
        profile: the dataset profile name.
        classes: the class list (class index = position).
        videos: the cleaned videos.
        video_paths: video id -> file (stored relative to ``dataset_dir`` when inside it); ``None``
            when videos were not checked.
    """
    root = Path(dataset_dir).absolute()
    database = {
        video_id: {
            "subset": video.subset,
            "duration": video.duration,
            "fps": video.fps,
            "num_frames": video.num_frames,
            "video_path": None if video_paths is None else _relative_if_inside(Path(video_paths[video_id]), root),
            "annotations": [{"segment": [i.start, i.end], "label": i.label} for i in video.instances],
        }
        for video_id, video in videos.items()
    }
    content = {"version": MANIFEST_VERSION, "profile": profile, "classes": list(classes), "database": database}
    write_text_atomic(root / CLASSES_FILE, "".join(f"{name}\n" for name in classes))
    return write_json_atomic(root / MANIFEST_FILE, content, indent=1)


def write_report(dataset_dir: str | Path, report: DatasetReport) -> Path:
    """Write ``report.json`` and ``report.txt`` (atomically); returns the text report's path."""
    root = Path(dataset_dir)
    write_json_atomic(root / REPORT_JSON_FILE, report.to_json(), indent=1)
    return write_text_atomic(root / REPORT_TEXT_FILE, report.summary(examples_per_kind=20) + "\n")


def _relative_if_inside(path: Path, root: Path) -> str:
    path = path.absolute()
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


__all__ = [
    "ISSUE_KINDS",
    "Issue",
    "SubsetCounts",
    "DatasetReport",
    "PreparedVideo",
    "PreparedDataset",
    "clean_videos",
    "check_subsets",
    "count_subsets",
    "load_prepared_dataset",
    "write_prepared_dataset",
    "write_report",
]

"""`tad prepare`: official annotation files + a video folder -> one checked dataset folder.

``prepare_dataset`` reads the annotations raw (:mod:`tadcli.data.annotations`), renames subsets to the
dataset profile's names, finds and probes every video (:mod:`tadcli.data.probe`, cached), applies the
checks of :mod:`tadcli.data.manifest` and writes the folder described there. ``check_dataset`` runs the
same checks on a prepared folder; ``prepare_synthetic`` writes the built-in synthetic dataset and
prepares it. Each returns a :class:`~tadcli.data.manifest.DatasetReport`: ``report.usable`` decides the
exit code, ``report.summary()`` is the text to show.

Subset names follow the OpenTAD / ActionFormer convention of each profile:

* THUMOS14 trains on the 200 THUMOS14 *validation* videos and evaluates the 213 *test* videos; the
  profile calls them ``training`` and ``validation``. The official text files (``validation`` /
  ``test``) and ActionFormer's ``thumos14.json`` (``Validation`` / ``Test``) are renamed accordingly;
  OpenTAD's ``thumos_14_anno.json`` already uses these names.
* Multi-THUMOS (same videos): ``training`` / ``testing`` -> ``training`` / ``validation``.
* ActivityNet ``training`` / ``validation`` (``testing`` has no labels and is kept, unused);
  Charades ``training`` / ``testing``; EPIC-Kitchens ``train`` / ``val``.
* custom and synthetic: ``train`` / ``val`` (``test`` kept); ``training``, ``validation`` and ``testing``
  are accepted for them.

Every rename is listed in the report.

ActivityNet: training instances no longer than 1 % of their video are dropped (OpenTAD's ``filter_gt``;
the profile's ``min_training_fraction``); the validation ground truth keeps them, because the official
evaluator scores against all of it. ``blocked`` (OpenTAD's ``blocked.json``, or a text file of ids)
removes the listed videos from the evaluated subset (ActivityNet: videos no longer available). Both are
counted in the report.

Video files are looked up recursively in the video folder by id: ``<id>.<ext>`` for ext in mp4, mkv, avi,
mov, webm; ActivityNet ids are also tried with and without the ``v_`` prefix. A video that several
files match is dropped and reported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from tadcli.config.profiles import get_profile
from tadcli.data.annotations import VIDEO_EXTENSIONS, AnnotationSet, read_annotations, read_video_list
from tadcli.data.manifest import (
    CLASSES_FILE,
    MANIFEST_FILE,
    PROBE_CACHE_FILE,
    DatasetReport,
    Issue,
    check_subsets,
    clean_videos,
    count_subsets,
    load_prepared_dataset,
    write_prepared_dataset,
    write_report,
)
from tadcli.data.probe import VideoProbe, probe_videos
from tadcli.errors import DatasetError

ProgressCallback = Callable[[str, int, int], None]

DATASET_FORMATS: dict[str, tuple[str, ...]] = {
    "thumos14": ("thumos14-txt", "activitynet-json"),
    "activitynet": ("activitynet-json", "activitynet-bsn"),
    "charades": ("charades-csv", "activitynet-json"),
    "multithumos": ("multithumos-json", "activitynet-json"),
    "epic-kitchens": ("epic-kitchens-noun", "epic-kitchens-verb", "activitynet-json"),
    "custom": ("custom-csv", "custom-json", "activitynet-json"),
    "synthetic": ("custom-json",),
}
DEFAULT_EPIC_FORMAT = "epic-kitchens-noun"

_CUSTOM_SUBSETS = {"training": "train", "validation": "val", "testing": "test"}
# (dataset, annotation format) -> {subset name in the file: subset name of the profile}
SUBSET_RENAMES: dict[tuple[str, str], dict[str, str]] = {
    ("thumos14", "thumos14-txt"): {"validation": "training", "test": "validation"},
    ("thumos14", "activitynet-json"): {"Validation": "training", "Test": "validation"},
    ("multithumos", "multithumos-json"): {"testing": "validation"},
    ("custom", "custom-csv"): _CUSTOM_SUBSETS,
    ("custom", "custom-json"): _CUSTOM_SUBSETS,
    ("custom", "activitynet-json"): _CUSTOM_SUBSETS,
    ("synthetic", "custom-json"): _CUSTOM_SUBSETS,
}


def prepare_dataset(
    dataset: str,
    annotations: str | Path,
    videos_dir: str | Path | None,
    out_dir: str | Path,
    *,
    annotation_format: str | None = None,
    class_list: str | Path | None = None,
    blocked: str | Path | None = None,
    workers: int = 2,
    progress: ProgressCallback | None = None,
) -> DatasetReport:
    """Prepare a dataset folder from the official annotations and a video folder.

    Args:
        dataset: a dataset profile name (``thumos14``, ``activitynet``, ``charades``, ``multithumos``,
            ``epic-kitchens``, ``custom``, ``synthetic``).
        annotations: the annotation file or folder (see :mod:`tadcli.data.annotations`).
        videos_dir: the folder of the video files (searched recursively); ``None`` prepares the
            annotations alone (usable as evaluation ground truth; nothing is probed).
        out_dir: the prepared dataset folder (created; files of an earlier run are replaced).
        annotation_format: force a format; detected when ``None`` (EPIC-Kitchens: ``epic-kitchens-noun``
            unless ``epic-kitchens-verb`` is given).
        class_list: a class list file for formats whose files do not name the classes.
        blocked: a list of videos to remove from the evaluated subset (JSON list or one id per line;
            ActivityNet ids match with or without ``v_``).
        workers: videos probed at once.
        progress: ``(description, done, total)`` callback.

    Returns:
        The report, also written to ``out_dir/report.json`` and ``report.txt``. ``manifest.json`` and
        ``classes.txt`` are written only when ``report.usable``; an unusable run removes those of an
        earlier run so that nothing trains on a stale manifest.

    Raises:
        PresetError: unknown dataset. AnnotationError: unreadable annotations. DatasetError: the
        annotations are not of a format of this dataset, or the video folder does not exist.
    """
    profile = get_profile(dataset)
    annotations, out_dir = Path(annotations), Path(out_dir).absolute()
    issues: list[Issue] = []
    if dataset == "epic-kitchens" and annotation_format is None and annotations.suffix.lower() != ".json":
        annotation_format = DEFAULT_EPIC_FORMAT
        issues.append(
            Issue(
                "default_choice",
                f"EPIC-Kitchens task: noun (format {DEFAULT_EPIC_FORMAT}); use epic-kitchens-verb for verbs",
            )
        )
    _report_progress(progress, "reading annotations", 0, 1)
    annotation_set = read_annotations(annotations, annotation_format, class_list=class_list)
    _report_progress(progress, "reading annotations", 1, 1)
    if annotation_set.format not in DATASET_FORMATS[dataset]:
        raise DatasetError(
            f"{annotations}: {annotation_set.format} annotations are not a {dataset} format "
            f"(expected {', '.join(DATASET_FORMATS[dataset])})"
        )
    issues += _rename_subsets(annotation_set, SUBSET_RENAMES.get((dataset, annotation_set.format), {}))
    if blocked is not None:
        issues += _drop_blocked_videos(annotation_set, read_video_list(blocked), profile.eval_subset, dataset)

    video_paths, probes, probed, from_cache = None, None, 0, 0
    if videos_dir is not None:
        video_paths, ambiguous = _find_video_files(Path(videos_dir), annotation_set, dataset == "activitynet")
        for issue in ambiguous:  # dropped here, so that they are not also reported missing
            del annotation_set.videos[issue.video_id]
        issues += ambiguous
        run = probe_videos(list(video_paths.values()), out_dir / PROBE_CACHE_FILE, workers, progress)
        probes = _probes_by_video(annotation_set, video_paths, run.probes)
        probed, from_cache = run.probed, run.from_cache

    videos, check_issues = clean_videos(annotation_set.videos, annotation_set.classes, probes, profile)
    issues += check_issues + check_subsets(videos, annotation_set.classes, profile)
    report = DatasetReport(
        mode="prepare",
        dataset_dir=str(out_dir),
        profile=profile.name,
        source=f"{annotations} ({annotation_set.format})",
        counts=count_subsets(videos),
        issues=issues,
        videos_probed=probed,
        videos_from_cache=from_cache,
    )
    write_report(out_dir, report)
    if report.usable:
        write_prepared_dataset(out_dir, profile.name, annotation_set.classes, videos, video_paths)
    else:
        for stale in (MANIFEST_FILE, CLASSES_FILE):
            (out_dir / stale).unlink(missing_ok=True)
    return report


def check_dataset(
    dataset_dir: str | Path, *, workers: int = 2, progress: ProgressCallback | None = None
) -> DatasetReport:
    """Re-validate a prepared dataset folder with the checks of :func:`prepare_dataset`.

    Every video file is probed again (unchanged files from the probe cache). The check fails
    (``report.usable`` is False) when anything would be dropped or changed: a deleted, replaced or
    unreadable video, a segment outside its video, an empty training or evaluation subset.

    Raises:
        DatasetError: the folder has no readable manifest.
    """
    dataset = load_prepared_dataset(dataset_dir)
    profile = dataset.dataset_profile
    annotation_set = dataset.annotation_set()
    probes, probed, from_cache = None, 0, 0
    if all(video.path is not None for video in dataset.videos.values()):
        existing = [video.path for video in dataset.videos.values() if video.path.is_file()]
        run = probe_videos(existing, dataset.root / PROBE_CACHE_FILE, workers, progress)
        probes = {video.video_id: run.probes.get(str(video.path.absolute())) for video in dataset.videos.values()}
        probed, from_cache = run.probed, run.from_cache
    videos, issues = clean_videos(annotation_set.videos, dataset.classes, probes, profile)
    issues += check_subsets(videos, dataset.classes, profile)
    return DatasetReport(
        mode="check",
        dataset_dir=str(dataset.root),
        profile=profile.name,
        source=str(dataset.root / MANIFEST_FILE),
        counts=count_subsets(videos),
        issues=issues,
        videos_probed=probed,
        videos_from_cache=from_cache,
    )


def prepare_synthetic(
    out_dir: str | Path,
    *,
    num_videos: int = 24,
    num_classes: int = 4,
    seed: int = 0,
    workers: int = 2,
    progress: ProgressCallback | None = None,
) -> DatasetReport:
    """Write the synthetic dataset (:func:`tadcli.data.synthetic.write_synthetic_videos`) into ``out_dir``
    and prepare it with the ``synthetic`` profile; the videos stay in ``out_dir/videos``."""
    from tadcli.data.synthetic import VIDEO_DIRNAME, write_synthetic_videos

    out_dir = Path(out_dir)
    _report_progress(progress, "writing synthetic videos", 0, 1)
    annotation_file = write_synthetic_videos(out_dir, num_videos=num_videos, num_classes=num_classes, seed=seed)
    _report_progress(progress, "writing synthetic videos", 1, 1)
    return prepare_dataset(
        "synthetic",
        annotation_file,
        out_dir / VIDEO_DIRNAME,
        out_dir,
        annotation_format="custom-json",
        workers=workers,
        progress=progress,
    )


def _rename_subsets(annotation_set: AnnotationSet, renames: dict[str, str]) -> list[Issue]:
    """Rename subsets in place (all at once: renames may swap names); one issue per renamed subset."""
    members = {old: [v for v in annotation_set.videos.values() if v.subset == old] for old in annotation_set.subsets()}
    issues = []
    for old, videos in members.items():
        if old in renames:
            for video in videos:
                video.subset = renames[old]
            issues.append(
                Issue("subset_renamed", f"'{old}' -> '{renames[old]}' ({len(videos)} videos)", subset=renames[old])
            )
    return issues


def _drop_blocked_videos(
    annotation_set: AnnotationSet, blocked: list[str], eval_subset: str, dataset: str
) -> list[Issue]:
    """Remove the listed videos from the evaluated subset, in place; one issue per video, one note for
    the listed ids that are not in it."""
    def key(video_id: str) -> str:
        return video_id.removeprefix("v_") if dataset == "activitynet" else video_id

    wanted = {key(video_id) for video_id in blocked}
    issues, found = [], set()
    for video_id, video in list(annotation_set.videos.items()):
        if video.subset == eval_subset and key(video_id) in wanted:
            found.add(key(video_id))
            issues.append(Issue("video_blocked", f"{len(video.instances)} instances", video_id, eval_subset))
            del annotation_set.videos[video_id]
    absent = sorted(wanted - found)
    if absent:
        issues.append(Issue("blocked_video_absent", f"{len(absent)} listed ids, e.g. {absent[:3]}", subset=eval_subset))
    return issues


def _find_video_files(
    videos_dir: Path, annotation_set: AnnotationSet, try_v_prefix: bool
) -> tuple[dict[str, Path], list[Issue]]:
    """video id -> its file, for the videos with exactly one matching file; an issue for each video
    that several files match. ``try_v_prefix``: ActivityNet ids match files with or without ``v_``."""
    if not videos_dir.is_dir():
        raise DatasetError(f"{videos_dir}: video folder not found")
    by_stem: dict[str, list[Path]] = {}
    for file in sorted(videos_dir.rglob("*")):
        if file.suffix.lower() in VIDEO_EXTENSIONS and file.is_file():
            by_stem.setdefault(file.stem, []).append(file.absolute())
    found, issues = {}, []
    for video_id, video in annotation_set.videos.items():
        names = dict.fromkeys((video_id, f"v_{video_id}", video_id.removeprefix("v_")) if try_v_prefix else (video_id,))
        matches = [file for name in names for file in by_stem.get(name, [])]
        if len(matches) == 1:
            found[video_id] = matches[0]
        elif len(matches) > 1:
            listed = ", ".join(str(file) for file in matches)
            issues.append(Issue("video_file_ambiguous", listed, video_id, video.subset))
    return found, issues


def _probes_by_video(
    annotation_set: AnnotationSet, video_paths: dict[str, Path], probes: dict[str, VideoProbe]
) -> dict[str, VideoProbe | None]:
    """video id -> probe of its file (``None``: no file found)."""
    return {
        video_id: probes[str(video_paths[video_id])] if video_id in video_paths else None
        for video_id in annotation_set.videos
    }


def _report_progress(progress: ProgressCallback | None, description: str, done: int, total: int) -> None:
    if progress is not None:
        progress(description, done, total)

"""`tad prepare`: official annotation files + a video folder -> one checked dataset folder.

``prepare_dataset`` reads the annotations raw (:mod:`tadcli.data.annotations`), applies the rules of
:mod:`tadcli.data.checks` (subsets renamed to the dataset profile's names, blocked videos, video files
found by id, then every per-video and per-instance check), probes every video (:mod:`tadcli.data.probe`,
cached) and writes the folder described in :mod:`tadcli.data.prepared`. ``check_dataset`` runs the
same checks on a prepared folder; ``prepare_synthetic`` writes the built-in synthetic dataset and
prepares it. Each returns a :class:`~tadcli.data.report.DatasetReport`: ``report.usable`` decides the
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

Every rename is listed in the report (the table is :data:`tadcli.config.profiles.SUBSET_RENAMES`).

The output folder is never left half-written: the new dataset is built in a folder beside it and
swapped in, in one step, only when the run is complete (:mod:`tadcli.io.staging`). A failure or a
Ctrl-C leaves the folder exactly as it was; so does an unusable re-run over a usable dataset (the
report says so; an unusable first run is written, without ``manifest.json``, for its report). A
folder that holds another dataset (another profile or annotation file) or files that tad did not
write is refused unless ``force`` is set; the annotations and videos may not lie inside it.

ActivityNet: training instances no longer than 1 % of their video are dropped (OpenTAD's ``filter_gt``;
the profile's ``min_training_fraction``); the validation ground truth keeps them, because the official
evaluator scores against all of it. ``blocked`` (OpenTAD's ``blocked.json``, or a text file of ids)
removes the listed videos from the evaluated subset (ActivityNet: videos no longer available). Both are
counted in the report.

With ``proxy`` (``tad prepare --proxy``), every kept video is also transcoded once to a proxy
(:mod:`tadcli.data.proxy`: the short side and frame rate that ``proxy_presets`` read, default the dataset's
presets), in parallel processes. They are built in a work folder beside the output folder
(``.<name>.tad-proxies``), which survives Ctrl-C so that a re-run transcodes only what is missing, then linked
into the new dataset's ``proxies/`` when it is put in place (the work folder is then removed); an earlier
dataset's proxies are reused the same way. A video that cannot be transcoded is dropped and reported
(``video_unreadable``), as a video that cannot be probed.

Video files are looked up recursively in the video folder by id: ``<id>.<ext>`` for ext in mp4, mkv, avi,
mov, webm; ActivityNet ids are also tried with and without the ``v_`` prefix. A video that several
files match is dropped and reported.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from tadcli.config.profiles import get_profile, subset_renames
from tadcli.data.annotations import AnnotationFormat, AnnotationSet, VideoAnnotation, read_annotations, read_video_list
from tadcli.data.checks import (
    Issue,
    IssueKind,
    check_dataset_format,
    check_subsets,
    choose_annotation_format,
    clean_videos,
    count_subsets,
    drop_blocked_videos,
    find_video_files,
    rename_subsets,
)
from tadcli.data.prepared import (
    MANIFEST_FILE,
    PROBE_CACHE_FILE,
    REPORT_JSON_FILE,
    PreparedDataset,
    ProxyFile,
    ProxySettings,
    load_prepared_dataset,
    write_prepared_dataset,
)
from tadcli.data.probe import VideoProbe, probe_videos
from tadcli.data.report import DatasetReport, write_report
from tadcli.errors import DatasetError
from tadcli.io.paths import check_input_dir, check_input_file, check_input_path, check_output_dir
from tadcli.io.staging import StagedFolder, staged_folder
from tadcli.progress import ProgressCallback



def prepare_dataset(
    dataset: str,
    annotations: str | Path,
    videos_dir: str | Path | None,
    out_dir: str | Path,
    *,
    annotation_format: AnnotationFormat | str | None = None,
    class_list: str | Path | None = None,
    blocked: str | Path | None = None,
    workers: int = 2,
    force: bool = False,
    proxy: bool = False,
    proxy_presets: Sequence[str] | None = None,
    progress: ProgressCallback | None = None,
) -> DatasetReport:
    """Prepare a dataset folder from the official annotations and a video folder.

    Args:
        dataset: a dataset profile name (``thumos14``, ``activitynet``, ``charades``, ``multithumos``,
            ``epic-kitchens``, ``custom``, ``synthetic``).
        annotations: the annotation file or folder (see :mod:`tadcli.data.annotations`).
        videos_dir: the folder of the video files (searched recursively); ``None`` prepares the
            annotations alone (usable as evaluation ground truth; nothing is probed).
        out_dir: the prepared dataset folder, built aside and put in place in one step (see the
            module doc); neither the annotations nor the videos may lie inside it.
        annotation_format: force a format; detected when ``None`` (EPIC-Kitchens: ``epic-kitchens-noun``
            unless ``epic-kitchens-verb`` is given).
        class_list: a class list file for formats whose files do not name the classes.
        blocked: a list of videos to remove from the evaluated subset (JSON list or one id per line;
            ActivityNet ids match with or without ``v_``).
        workers: videos probed (and proxies transcoded) at once.
        force: replace an ``out_dir`` that holds another dataset or files that are not a dataset.
        proxy: transcode every video to a proxy (see the module doc); needs ``videos_dir``.
        proxy_presets: the presets the proxies serve (names or YAML files; default: the dataset's presets,
            :func:`tadcli.data.proxy.default_proxy_presets`).
        progress: ``(description, done, total)`` callback.

    Returns:
        The report, also written to ``out_dir/report.json`` and ``report.txt`` unless an earlier
        dataset was kept. ``manifest.json`` and ``classes.txt`` are written only when ``report.usable``.

    Raises:
        PathError: a path is missing, of the wrong kind, or cannot be written. PresetError: unknown
        dataset. AnnotationError: unreadable annotations. DatasetError: the annotations are not of a
        format of this dataset, an input lies inside ``out_dir``, or ``out_dir`` holds something else
        and ``force`` is not set.
    """
    profile = get_profile(dataset)
    annotations = check_input_path(annotations, "annotations")
    videos_dir = None if videos_dir is None else check_input_dir(videos_dir, "video folder")
    class_list = None if class_list is None else check_input_file(class_list, "class list")
    blocked = None if blocked is None else check_input_file(blocked, "blocked-video list")
    out_dir = check_output_dir(out_dir, "output folder").absolute()
    inputs = {"annotations": annotations, "video folder": videos_dir, "class list": class_list, "blocked": blocked}
    _refuse_inputs_inside(out_dir, {role: path for role, path in inputs.items() if path is not None})
    _refuse_other_content(out_dir, profile.name, annotations, force)
    if proxy and videos_dir is None:
        raise DatasetError("--proxy transcodes the videos: give their folder with --videos")
    settings = _proxy_settings(profile.name, proxy, proxy_presets)
    with staged_folder(out_dir) as staged:
        return _prepare_staged(
            staged, profile.name, annotations, videos_dir, annotation_format, class_list, workers, progress,
            shown_annotations=annotations,
            blocked=blocked,
            proxy=settings,
        )


def _proxy_settings(dataset: str, proxy: bool, presets: Sequence[str] | None) -> ProxySettings | None:
    """The proxies' settings when asked for (checked before any work: an unknown preset is an error at once)."""
    if not proxy:
        if presets:
            raise DatasetError("--proxy-preset chooses what the proxies hold: add --proxy")
        return None
    from tadcli.data.proxy import default_proxy_presets, proxy_settings

    profile = get_profile(dataset)
    return proxy_settings(list(presets) if presets else default_proxy_presets(profile), profile)


def _prepare_staged(
    staged: StagedFolder,
    dataset: str,
    annotations: Path,
    videos_dir: Path | None,
    annotation_format: AnnotationFormat | str | None,
    class_list: Path | None,
    workers: int,
    progress: ProgressCallback | None,
    shown_annotations: Path,
    blocked: Path | None = None,
    proxy: ProxySettings | None = None,
) -> DatasetReport:
    """Prepare into ``staged.path`` and commit it, unless the run is unusable and would replace a dataset.
    ``shown_annotations``: the annotation path the report names (and records, see :func:`_recorded_path`);
    ``blocked``: videos removed from the evaluated subset; ``proxy``: make proxies with these settings."""
    profile = get_profile(dataset)
    out_dir = staged.target
    annotation_format, issues = choose_annotation_format(dataset, annotations, annotation_format)
    _report_progress(progress, "reading annotations", 0, 1)
    annotation_set = read_annotations(annotations, annotation_format, class_list=class_list)
    _report_progress(progress, "reading annotations", 1, 1)
    check_dataset_format(annotation_set, annotations, dataset)
    issues += rename_subsets(annotation_set, subset_renames(dataset, annotation_set.format))
    if blocked is not None:
        issues += drop_blocked_videos(annotation_set, read_video_list(blocked), profile.eval_subset, dataset)

    video_paths, probes, probed, from_cache, run = None, None, 0, 0, None
    if videos_dir is not None:
        video_paths, ambiguous = find_video_files(videos_dir, annotation_set, dataset == "activitynet")
        for issue in ambiguous:  # dropped here, so that they are not also reported missing
            del annotation_set.videos[issue.video_id]
        issues += ambiguous
        if (out_dir / PROBE_CACHE_FILE).is_file():  # the earlier run's probes of unchanged files are reused
            shutil.copy2(out_dir / PROBE_CACHE_FILE, staged.path / PROBE_CACHE_FILE)
        run = probe_videos(list(video_paths.values()), staged.path / PROBE_CACHE_FILE, workers, progress)
        probes = _probes_by_video(annotation_set, video_paths, run.probes)
        probed, from_cache = run.probed, run.from_cache

    videos, check_issues = clean_videos(annotation_set.videos, annotation_set.classes, probes, profile)
    short_sides = None if probes is None else {
        video_id: min(probe.width, probe.height)
        for video_id, probe in probes.items()
        if probe is not None and probe.readable
    }
    proxies, proxy_work = None, None
    if proxy is not None and video_paths is not None:
        proxy_work = _proxy_work_dir(out_dir)
        proxies, proxy_issues = _make_proxies(
            staged, out_dir, proxy_work, videos, video_paths, short_sides, proxy, workers, progress
        )
        check_issues += proxy_issues
    issues += check_issues + check_subsets(videos, annotation_set.classes, profile)
    report = DatasetReport(
        mode="prepare",
        dataset_dir=str(out_dir),
        profile=profile.name,
        source=f"{shown_annotations} ({annotation_set.format})",
        counts=count_subsets(videos),
        issues=issues,
        videos_probed=probed,
        videos_from_cache=from_cache,
        annotations=_recorded_path(shown_annotations, out_dir),
        decoder=run.decoder if run is not None else None,
        videos_per_decoder=run.videos_per_decoder() if run is not None else {},
    )
    if not report.usable and (out_dir / MANIFEST_FILE).is_file():
        kept = Issue(IssueKind.PREVIOUS_DATASET_KEPT, f"{out_dir} still holds the dataset prepared before")
        report.issues.append(kept)
        return report  # the staged folder is removed: the earlier dataset stays byte for byte
    write_report(staged.path, report)
    if report.usable:
        write_prepared_dataset(
            staged.path, profile.name, annotation_set.classes, videos, video_paths, short_sides,
            proxy=proxy if proxies is not None else None, proxies=proxies,
        )
    staged.commit()
    if proxy_work is not None:
        shutil.rmtree(proxy_work, ignore_errors=True)  # its proxies are linked into the dataset now
    return report


def _proxy_work_dir(out_dir: Path) -> Path:
    """Where proxies are built: beside the output folder, kept across Ctrl-C until the dataset holds them."""
    return out_dir.parent / f".{out_dir.name}.tad-proxies"


def _make_proxies(
    staged: StagedFolder,
    out_dir: Path,
    work: Path,
    videos: dict[str, VideoAnnotation],
    video_paths: dict[str, Path],
    short_sides: dict[str, int] | None,
    settings: ProxySettings,
    workers: int,
    progress: ProgressCallback | None,
) -> tuple[dict[str, ProxyFile], list[Issue]]:
    """Proxies of the kept ``videos`` in ``staged``'s proxy folder; videos that cannot be transcoded are removed
    from ``videos`` and reported. The earlier dataset's proxies and those of an interrupted run are reused."""
    from tadcli.data.proxy import build_proxies

    _link_files(out_dir / settings.folder, work)  # the earlier dataset's proxies: reused when still valid
    sources = {video_id: (video_paths[video_id], (short_sides or {}).get(video_id)) for video_id in videos}
    run = build_proxies(sources, work, settings, workers, progress)
    issues = []
    for video_id, error in run.failed.items():
        subset = videos.pop(video_id).subset
        detail = f"{video_paths[video_id]}: cannot be transcoded to a proxy: {error}"
        issues.append(Issue(IssueKind.VIDEO_UNREADABLE, detail, video_id=video_id, subset=subset))
    folder = staged.path / settings.folder
    _link_files(work, folder)
    proxies = {video_id: ProxyFile(folder / proxy.path.name, proxy.fps, proxy.num_frames, proxy.short_side)
               for video_id, proxy in run.proxies.items() if video_id in videos}
    return proxies, issues


def _link_files(source: Path, destination: Path) -> None:
    """Hard-link (copy where links are not possible) the files of ``source`` missing in ``destination``."""
    if not source.is_dir():
        return
    destination.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        target = destination / entry.name
        if entry.is_file() and not target.exists():
            try:
                os.link(entry, target)
            except OSError:
                shutil.copy2(entry, target)


def _refuse_inputs_inside(out_dir: Path, inputs: dict[str, Path]) -> None:
    """The output folder is replaced as a whole: nothing it must read may lie inside it."""
    for role, path in inputs.items():
        if path.resolve().is_relative_to(out_dir.resolve()):
            raise DatasetError(
                f"{path}: {role} inside the output folder {out_dir}, which prepare replaces as a whole; "
                "choose another output folder"
            )


def _refuse_other_content(out_dir: Path, profile: str, annotations: Path, force: bool) -> None:
    """Refuse (unless ``force``) an output folder that holds anything but an earlier run of this dataset:
    the dataset of another profile or annotation file, or files that tad did not write."""
    if force or not out_dir.is_dir():
        return
    entries = sorted(entry.name for entry in out_dir.iterdir())
    if not entries:
        return
    earlier = _earlier_run(out_dir)
    if earlier is None:
        raise DatasetError(
            f"{out_dir}: the output folder is not empty and holds no tad dataset ({', '.join(entries[:3])}"
            f"{', ...' if len(entries) > 3 else ''}); choose an empty folder, or use --force to replace its content"
        )
    recorded = _recorded_path(annotations, out_dir)
    if earlier[0] != profile or earlier[1] not in (None, recorded):
        raise DatasetError(
            f"{out_dir}: the output folder holds the '{earlier[0]}' dataset prepared from {earlier[1]}, not from "
            f"{annotations.absolute()}; choose another folder, or use --force to replace it"
        )


def _recorded_path(annotations: Path, out_dir: Path) -> str:
    """How a dataset records the annotations it was prepared from: relative when inside its folder (the
    synthetic ``annotations.json``, so that a moved or copied folder still knows them), else absolute."""
    annotations = annotations.absolute()
    return annotations.relative_to(out_dir).as_posix() if annotations.is_relative_to(out_dir) else str(annotations)


def _earlier_run(out_dir: Path) -> tuple[str, str | None] | None:
    """(profile, annotations) of the prepare that wrote ``out_dir``, from its report (annotations ``None``:
    a report of a tad that did not record them); ``None``: not a folder tad prepared."""
    try:
        content = json.loads((out_dir / REPORT_JSON_FILE).read_text())
        annotations = content.get("annotations")
        return str(content["profile"]), None if annotations is None else str(annotations)
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def check_dataset(
    dataset_dir: str | Path, *, workers: int = 2, progress: ProgressCallback | None = None
) -> DatasetReport:
    """Re-validate a prepared dataset folder with the checks of :func:`prepare_dataset`.

    Every video file is probed again (unchanged files from the probe cache). The check fails
    (``report.usable`` is False) when anything would be dropped or changed: a deleted, replaced or
    unreadable video, a segment outside its video, an empty training or evaluation subset, a proxy that is
    missing or no longer matches its video.

    Raises:
        PathError: the folder is missing or is a file. DatasetError: the folder has no readable manifest.
    """
    dataset = load_prepared_dataset(check_input_dir(dataset_dir, "dataset folder"))
    profile = dataset.dataset_profile
    probes, probed, from_cache, run = None, 0, 0, None
    if all(video.path is not None for video in dataset.videos.values()):
        existing = [video.path for video in dataset.videos.values() if video.path.is_file()]
        run = probe_videos(existing, dataset.root / PROBE_CACHE_FILE, workers, progress)
        probes = {video.video_id: run.probes.get(str(video.path.absolute())) for video in dataset.videos.values()}
        probed, from_cache = run.probed, run.from_cache
    videos, issues = clean_videos(dataset.video_annotations(), dataset.classes, probes, profile)
    issues += check_subsets(videos, dataset.classes, profile) + _stale_proxies(dataset)
    return DatasetReport(
        mode="check",
        dataset_dir=str(dataset.root),
        profile=profile.name,
        source=str(dataset.root / MANIFEST_FILE),
        counts=count_subsets(videos),
        issues=issues,
        videos_probed=probed,
        videos_from_cache=from_cache,
        decoder=run.decoder if run is not None else None,
        videos_per_decoder=run.videos_per_decoder() if run is not None else {},
    )


def _stale_proxies(dataset: PreparedDataset) -> list[Issue]:
    """An issue per proxy that is missing or no longer matches its video (:func:`tadcli.data.proxy.finished_proxy`)."""
    if dataset.proxy is None:
        return []
    from tadcli.data.proxy import ProxyJob, finished_proxy

    issues = []
    for video in dataset.videos.values():
        if video.proxy is None or video.path is None or not video.path.is_file():
            continue  # a missing video is reported by the checks
        if finished_proxy(ProxyJob(video.video_id, video.path, video.proxy.path, dataset.proxy)) is None:
            detail = f"{video.proxy.path}: missing, changed, or made from another version of {video.path}"
            issues.append(Issue(IssueKind.PROXY_STALE, detail, video_id=video.video_id, subset=video.subset))
    return issues


def prepare_synthetic(
    out_dir: str | Path,
    *,
    num_videos: int = 24,
    num_classes: int = 4,
    seed: int = 0,
    workers: int = 2,
    force: bool = False,
    proxy: bool = False,
    proxy_presets: Sequence[str] | None = None,
    progress: ProgressCallback | None = None,
) -> DatasetReport:
    """Write the synthetic dataset (:func:`tadcli.data.synthetic.write_synthetic_videos`) into ``out_dir``
    and prepare it with the ``synthetic`` profile; the videos stay in ``out_dir/videos``. Like
    :func:`prepare_dataset`, everything is built aside and put in place only when it is complete; ``proxy`` and
    ``proxy_presets`` as there."""
    from tadcli.data.synthetic import ANNOTATION_FILENAME, VIDEO_DIRNAME, write_synthetic_videos

    out_dir = check_output_dir(out_dir, "output folder").absolute()
    _refuse_other_content(out_dir, "synthetic", out_dir / ANNOTATION_FILENAME, force)
    settings = _proxy_settings("synthetic", proxy, proxy_presets)
    with staged_folder(out_dir) as staged:
        annotation_file = write_synthetic_videos(
            staged.path,
            num_videos=num_videos,
            num_classes=num_classes,
            seed=seed,
            progress=None if progress is None else lambda done, total: progress("writing synthetic videos", done, total),
        )
        return _prepare_staged(
            staged, "synthetic", annotation_file, staged.path / VIDEO_DIRNAME, "custom-json", None, workers, progress,
            shown_annotations=out_dir / ANNOTATION_FILENAME,
            proxy=settings,
        )


def _probes_by_video(
    annotation_set: AnnotationSet, video_paths: dict[str, Path], probes: dict[str, VideoProbe]
) -> dict[str, VideoProbe | None]:
    """video id -> probe of its file (``None``: no file found)."""
    return {
        video_id: probes[str(video_paths[video_id])] if video_id in video_paths else None
        for video_id in annotation_set.videos
    }


def proxy_summary(dataset_dir: str | Path) -> str:
    """One line on a prepared dataset's proxies: where, what they hold, for which presets."""
    dataset = load_prepared_dataset(dataset_dir)
    settings = dataset.proxy
    if settings is None:
        return f"{dataset.root}: no proxies"
    count = sum(video.proxy is not None for video in dataset.videos.values())
    return (
        f"proxies: {count} video(s) in {dataset.root / settings.folder}, short side {settings.short_side} px (at most "
        f"the source's), 1 frame in {settings.frame_step}, a key frame every {settings.keyframe_interval}, "
        f"{settings.codec}; for presets {', '.join(settings.presets)}"
    )


def _report_progress(progress: ProgressCallback | None, description: str, done: int, total: int) -> None:
    if progress is not None:
        progress(description, done, total)

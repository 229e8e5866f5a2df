"""The prepared dataset: what ``tad prepare`` writes and ``tad train``/``eval``/``detect`` read.

Layout of a prepared dataset folder::

    manifest.json     {"version": 1, "profile": "thumos14", "classes": ["BaseballPitch", ...],
                       "database": {video_id: {"subset": "training", "duration": 33.83 (seconds),
                                               "fps": 29.97, "num_frames": 1014,
                                               "video_path": "videos/a.mp4" (relative to this folder,
                                                             or absolute; null: videos not checked),
                                               "annotations": [{"segment": [0.2, 1.1], "label": "Diving"}]}}}
    classes.txt       the class list, one name per line (class index = line number, from 0)
    report.json       what prepare found and decided: counts per subset, every issue (:mod:`tadcli.data.report`)
    report.txt        the same, for people
    probe_cache.json  video probes keyed by path, size and mtime (:mod:`tadcli.data.probe`)

``manifest.json`` is ActivityNet-style, so ``read_annotations("manifest.json")`` reads it too (its
``classes`` list is used). Subset names are those of the dataset profile (``train_subset`` and
``eval_subset`` of :func:`tadcli.config.profiles.get_profile`). Durations, fps and frame counts are
the probed values of the video files; segments are in seconds, inside ``[0, duration]``, with
``end > start``, labels in ``classes``, no duplicates (the checks of :mod:`tadcli.data.checks`). Every
file is written atomically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tadcli.config.profiles import DatasetProfile, get_profile
from tadcli.data.annotations import Instance, VideoAnnotation
from tadcli.errors import DatasetError
from tadcli.io.atomic import write_text_atomic
from tadcli.io.jsonio import write_json_atomic

if TYPE_CHECKING:
    from tadcli.data.dataset import VideoRecord

__all__ = [
    "MANIFEST_VERSION",
    "MANIFEST_FILE",
    "CLASSES_FILE",
    "REPORT_JSON_FILE",
    "REPORT_TEXT_FILE",
    "PROBE_CACHE_FILE",
    "PreparedVideo",
    "PreparedDataset",
    "load_prepared_dataset",
    "write_prepared_dataset",
    "records_from_prepared",
]

MANIFEST_VERSION = 1
MANIFEST_FILE = "manifest.json"
CLASSES_FILE = "classes.txt"
REPORT_JSON_FILE = "report.json"
REPORT_TEXT_FILE = "report.txt"
PROBE_CACHE_FILE = "probe_cache.json"


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

    def video_annotations(self) -> dict[str, VideoAnnotation]:
        """video id -> its annotation, in manifest order: what the checks of :mod:`tadcli.data.checks` take."""
        return {
            video.video_id: VideoAnnotation(
                video.video_id, video.subset, video.duration, video.fps, video.num_frames, list(video.instances)
            )
            for video in self.videos.values()
        }


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


def _relative_if_inside(path: Path, root: Path) -> str:
    path = path.absolute()
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def records_from_prepared(dataset: PreparedDataset, subset: str) -> list[VideoRecord]:
    """The videos of one subset of a prepared dataset (:func:`load_prepared_dataset`).

    Raises:
        DatasetError: the subset is absent, or the dataset was prepared without videos (no path, fps or
            frame count to read frames with).
    """
    from tadcli.data.dataset import VideoRecord  # torch: on use, ``tad prepare`` reads manifests without it

    class_index = {name: index for index, name in enumerate(dataset.classes)}
    records = []
    for video in dataset.subset(subset):
        if video.path is None or video.fps is None or video.num_frames is None or video.duration is None:
            raise DatasetError(
                f"{dataset.root}: video '{video.video_id}' has no probed file (prepared without --videos); "
                "prepare the dataset with its videos to train or evaluate on it"
            )
        records.append(
            VideoRecord(
                video_id=video.video_id,
                path=video.path,
                fps=video.fps,
                num_frames=video.num_frames,
                duration=video.duration,
                segments=np.array([[i.start, i.end] for i in video.instances], dtype=np.float64).reshape(-1, 2),
                labels=np.array([class_index[i.label] for i in video.instances], dtype=np.int64),
            )
        )
    return records

"""The prepared dataset: what ``tad prepare`` writes and ``tad train``/``eval``/``detect`` read.

Layout of a prepared dataset folder::

    manifest.json     {"version": 1, "profile": "thumos14", "classes": ["BaseballPitch", ...],
                       "database": {video_id: {"subset": "training", "duration": 33.83 (seconds),
                                               "fps": 29.97, "num_frames": 1014,
                                               "video_path": "videos/a.mp4" (relative to this folder,
                                                             or absolute; null: videos not checked),
                                               "short_side": 720 (pixels, upright; absent: not probed),
                                               "proxy": {"path": "proxies/a.mp4", "fps": 7.5,
                                                         "num_frames": 254, "short_side": 182} (absent: none),
                                               "annotations": [{"segment": [0.2, 1.1], "label": "Diving"}]}},
                       "proxy": {"folder": "proxies", "short_side": 182, "frame_step": 4,
                                 "keyframe_interval": 16, "codec": "libx264",
                                 "presets": ["small-768"]} (absent: prepared without --proxy)}
    classes.txt       the class list, one name per line (class index = line number, from 0)
    report.json       what prepare found and decided: counts per subset, every issue (:mod:`tadcli.data.report`)
    report.txt        the same, for people
    probe_cache.json  video probes keyed by path, size and mtime (:mod:`tadcli.data.probe`)
    proxies/          with ``tad prepare --proxy``: one proxy video and its sidecar per video
                      (:mod:`tadcli.data.proxy`)

``manifest.json`` is ActivityNet-style, so ``read_annotations("manifest.json")`` reads it too (its
``classes`` list is used). Subset names are those of the dataset profile (``train_subset`` and
``eval_subset`` of :func:`tadcli.config.profiles.get_profile`). Durations, fps and frame counts are
the probed values of the video files; segments are in seconds, inside ``[0, duration]``, with
``end > start``, labels in ``classes``, no duplicates (the checks of :mod:`tadcli.data.checks`). Every
file is written atomically.

A video's own ``duration``, ``fps`` and ``num_frames`` stay those of the original file even when it has a
proxy: times are the original's seconds; the proxy's own fps and frame count (``fps / frame_step``) say how to
read it (:func:`records_from_prepared` with ``proxies=True``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
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
    "ProxyFile",
    "ProxySettings",
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


@dataclass(frozen=True)
class ProxySettings:
    """What the proxies of a dataset hold (:mod:`tadcli.data.proxy`): frames of ``short_side`` pixels (short side,
    at most the source's), one source frame in ``frame_step``, a key frame every ``keyframe_interval`` frames,
    encoded with ``codec``; made for ``presets``; in ``folder`` (relative to the dataset)."""

    folder: str
    short_side: int
    frame_step: int
    keyframe_interval: int
    codec: str
    presets: list[str]

    def fingerprint(self) -> dict:
        """What makes two proxies of one source the same (not the folder or the presets' names)."""
        return {"short_side": self.short_side, "frame_step": self.frame_step,
                "keyframe_interval": self.keyframe_interval, "codec": self.codec}


@dataclass(frozen=True)
class ProxyFile:
    """One video's proxy: the file (absolute), its timeline (``fps`` = the source's / frame step) and its short side."""

    path: Path
    fps: float
    num_frames: int
    short_side: int


@dataclass
class PreparedVideo:
    """One video of a prepared dataset. ``path`` is absolute (``None``: videos were not checked); ``duration``,
    ``fps`` and ``num_frames`` are the original file's; ``short_side`` its probed short side (``None``: unknown);
    ``proxy`` its proxy (``None``: none)."""

    video_id: str
    subset: str
    path: Path | None
    duration: float | None  # seconds
    fps: float | None
    num_frames: int | None
    instances: list[Instance] = field(default_factory=list)
    short_side: int | None = None
    proxy: ProxyFile | None = None


@dataclass
class PreparedDataset:
    """A prepared dataset folder, loaded by :func:`load_prepared_dataset`.

    ``classes[i]`` is the name of class index ``i``; ``profile`` is the dataset profile name; ``proxy`` the
    settings of its proxies (``None``: prepared without ``--proxy``).
    """

    root: Path
    profile: str
    classes: list[str]
    videos: dict[str, PreparedVideo]
    proxy: ProxySettings | None = None

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
        proxy = None if content.get("proxy") is None else ProxySettings(**content["proxy"])
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise DatasetError(f"{manifest_path}: malformed manifest ({type(error).__name__}: {error})") from None
    return PreparedDataset(root=root, profile=profile, classes=classes, videos=videos, proxy=proxy)


def _prepared_video(root: Path, video_id: str, entry: dict) -> PreparedVideo:
    path, proxy = entry["video_path"], entry.get("proxy")
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
        short_side=None if entry.get("short_side") is None else int(entry["short_side"]),
        proxy=None if proxy is None else ProxyFile(
            root / proxy["path"], float(proxy["fps"]), int(proxy["num_frames"]), int(proxy["short_side"])
        ),
    )


def write_prepared_dataset(
    dataset_dir: str | Path,
    profile: str,
    classes: list[str],
    videos: dict[str, VideoAnnotation],
    video_paths: dict[str, Path] | None,
    short_sides: dict[str, int] | None = None,
    proxy: ProxySettings | None = None,
    proxies: dict[str, ProxyFile] | None = None,
) -> Path:
    """Write ``manifest.json`` and ``classes.txt`` (atomically); returns the manifest path.

    Args:
        dataset_dir: the prepared dataset folder.
        profile: the dataset profile name.
        classes: the class list (class index = position).
        videos: the cleaned videos.
        video_paths: video id -> file (stored relative to ``dataset_dir`` when inside it); ``None``
            when videos were not checked.
        short_sides: video id -> probed short side of the upright frames (pixels).
        proxy: the proxies' settings, with ``proxies`` (video id -> proxy) for every video.
    """
    root = Path(dataset_dir).absolute()
    database = {
        video_id: _manifest_entry(video, video_id, root, video_paths, short_sides, proxies)
        for video_id, video in videos.items()
    }
    content = {"version": MANIFEST_VERSION, "profile": profile, "classes": list(classes), "database": database}
    if proxy is not None:
        content["proxy"] = asdict(proxy)
    write_text_atomic(root / CLASSES_FILE, "".join(f"{name}\n" for name in classes))
    return write_json_atomic(root / MANIFEST_FILE, content, indent=1)


def _manifest_entry(
    video: VideoAnnotation,
    video_id: str,
    root: Path,
    video_paths: dict[str, Path] | None,
    short_sides: dict[str, int] | None,
    proxies: dict[str, ProxyFile] | None,
) -> dict:
    entry = {
        "subset": video.subset,
        "duration": video.duration,
        "fps": video.fps,
        "num_frames": video.num_frames,
        "video_path": None if video_paths is None else _relative_if_inside(Path(video_paths[video_id]), root),
        "annotations": [{"segment": [i.start, i.end], "label": i.label} for i in video.instances],
    }
    if short_sides is not None and short_sides.get(video_id) is not None:
        entry["short_side"] = short_sides[video_id]
    if proxies is not None:
        proxy = proxies[video_id]
        entry["proxy"] = {"path": _relative_if_inside(proxy.path, root), "fps": proxy.fps,
                          "num_frames": proxy.num_frames, "short_side": proxy.short_side}
    return entry


def _relative_if_inside(path: Path, root: Path) -> str:
    path = path.absolute()
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def records_from_prepared(dataset: PreparedDataset, subset: str, proxies: bool = False) -> list[VideoRecord]:
    """The videos of one subset of a prepared dataset (:func:`load_prepared_dataset`).

    With ``proxies``, each record reads the video's proxy: its file, fps and frame count (one source frame in
    the proxies' ``frame_step``), with the original's duration and ground truth in the original's seconds
    (:func:`tadcli.data.proxy.proxy_use` says whether a preset can).

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
        if proxies and video.proxy is None:
            raise DatasetError(f"{dataset.root}: video '{video.video_id}' has no proxy; run 'tad prepare --proxy' again")
        source = video.proxy if proxies else video
        records.append(
            VideoRecord(
                video_id=video.video_id,
                path=source.path,
                fps=source.fps,
                num_frames=source.num_frames,
                duration=video.duration,
                segments=np.array([[i.start, i.end] for i in video.instances], dtype=np.float64).reshape(-1, 2),
                labels=np.array([class_index[i.label] for i in video.instances], dtype=np.int64),
            )
        )
    return records

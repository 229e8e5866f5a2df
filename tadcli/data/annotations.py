"""Readers for temporal action detection annotation files, as their owners distribute them.

Every reader returns the file's content raw, as an :class:`AnnotationSet`: segments are not
clipped, de-duplicated or dropped, subset names are the file's own, and labels absent from the
class list (THUMOS14 ``Ambiguous``) are kept. Cleaning is an explicit, reported step of
``tad prepare`` (:mod:`tadcli.services.prepare`); the evaluator relies on raw ground truth because
the official ActivityNet evaluator does not de-duplicate it.

``read_annotations(path)`` detects the format; pass ``format=`` to force one.

=====================  ====================================================================
format                 what ``path`` is
=====================  ====================================================================
``activitynet-json``   ``{"database": {video_id: {"subset", "duration", "annotations": [{"segment":
                       [s, e], "label"}]}}}``: ActivityNet 1.3 ``activity_net.v1-3.min.json``,
                       ActionFormer ``thumos14.json`` (``"fps"``), OpenTAD ``thumos_14_anno.json``
                       (``"frame"``), a prepared dataset's ``manifest.json`` (``"num_frames"``,
                       ``"classes"``). Classes: the top-level ``"classes"`` list when present, else
                       ``category_idx.txt`` beside the file (OpenTAD layout, line i = class i) when
                       present, else the sorted distinct labels.
``thumos14-txt``       a directory of official THUMOS14 per-class files ``<Class>_val.txt`` /
                       ``<Class>_test.txt`` (lines ``video start end``), directly inside it or in
                       its sub-directories (``annotations_val/``, ``annotations_test/``). Subsets:
                       ``validation`` (``*_val.txt``) and ``test`` (``*_test.txt``). ``Ambiguous``
                       rows are kept with label ``Ambiguous``, which is not in ``classes``.
``activitynet-bsn``    BSN's copy of ActivityNet 1.3: a directory (or its ``anet_anno_action.json``)
                       holding ``anet_anno_action.json``, ``video_info_new.csv`` (subset, fps,
                       frame count) and ``action_name.csv`` (classes). Ids keep the ``v_`` prefix.
``charades-csv``       ``Charades_v1_train.csv`` / ``Charades_v1_test.csv`` (subsets ``training`` /
                       ``testing``), or a directory holding them; ``actions`` = ``cNNN start end;...``.
                       Labels are class names from ``Charades_v1_classes.txt`` beside the files
                       when present, else the ``cNNN`` codes.
``multithumos-json``   super-events ``multithumos.json``: ``{video_id: {"subset", "duration",
                       "actions": [[class_index, s, e]]}}``, 1-based indices of 65 classes.
                       Names: line i of ``class_list`` when given; else indices 1..20 are the
                       THUMOS14 classes (alphabetical, verified against the official files) and
                       21..65 are ``class_21`` ... ``class_65``.
``epic-kitchens-verb`` ``EPIC_100_train.csv`` / ``EPIC_100_validation.csv`` (subsets ``train`` /
``epic-kitchens-noun`` ``val``), or a directory holding them. Labels are the class ``key`` of
                       ``EPIC_100_verb_classes.csv`` / ``EPIC_100_noun_classes.csv`` (required, beside
                       the files), e.g. ``take`` for verb_class 0; classes are all keys in id
                       order (97 verbs, 300 nouns). Durations and fps come from
                       ``EPIC_100_video_info.csv`` when present. ``hh:mm:ss.ff`` -> seconds.
``custom-csv``         the custom schema below, as CSV.
``custom-json``        the custom schema below, as JSON.
=====================  ====================================================================

Custom schema (``tad prepare custom``)
--------------------------------------
CSV, with a header row; one row per action instance::

    video,start,end,label,subset
    clip01,1.5,4.0,jump,train
    clip01,6.0,7.2,wave,train
    clip02,,,,val

* ``video``: the video id = the video file name without its extension (a trailing ``.mp4``,
  ``.mkv``, ``.avi``, ``.mov`` or ``.webm`` is removed). ``start``, ``end``: seconds from the
  start of the video. ``label``: the class name.
* ``subset`` (optional column): ``train``, ``val`` or ``test``: the ``custom`` profile trains on
  ``train`` and evaluates ``val``; ``tad prepare`` also accepts ``training``, ``validation`` and
  ``testing`` for them. Default ``train``.
* A row whose ``start``, ``end`` and ``label`` are all empty lists a video without actions.
* Any other column is an error (a typo must not be ignored).

JSON, the same content grouped by video::

    {
      "classes": ["jump", "wave"],
      "videos": [
        {"video": "clip01", "subset": "train", "duration": 12.0, "fps": 25.0,
         "annotations": [{"start": 1.5, "end": 4.0, "label": "jump"}]},
        {"video": "clip02", "subset": "val", "annotations": []}
      ]
    }

* ``classes`` (optional): the class list, in class-index order; default: the sorted distinct
  labels. ``subset`` (default ``train``), ``duration`` (seconds) and ``fps`` are optional per
  video: ``tad prepare`` measures both from the file and reports disagreements.
* Unknown keys are errors; a video listed twice is an error.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from tadcli.errors import AnnotationError

__all__ = [
    "ANNOTATION_FORMATS",
    "AMBIGUOUS_LABEL",
    "Instance",
    "VideoAnnotation",
    "AnnotationSet",
    "read_annotations",
    "detect_annotation_format",
    "strip_video_extension",
    "load_json",
    "read_video_list",
]

ANNOTATION_FORMATS = (
    "activitynet-json",
    "thumos14-txt",
    "activitynet-bsn",
    "charades-csv",
    "multithumos-json",
    "epic-kitchens-verb",
    "epic-kitchens-noun",
    "custom-csv",
    "custom-json",
)
AMBIGUOUS_LABEL = "Ambiguous"  # THUMOS14 segments excluded from evaluation; not a class
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".avi", ".mov", ".webm")
DEFAULT_CUSTOM_SUBSET = "train"

THUMOS14_CLASSES = (
    "BaseballPitch", "BasketballDunk", "Billiards", "CleanAndJerk", "CliffDiving",
    "CricketBowling", "CricketShot", "Diving", "FrisbeeCatch", "GolfSwing", "HammerThrow",
    "HighJump", "JavelinThrow", "LongJump", "PoleVault", "Shotput", "SoccerPenalty",
    "TennisSwing", "ThrowDiscus", "VolleyballSpiking",
)  # fmt: skip
MULTITHUMOS_NUM_CLASSES = 65

_THUMOS_TXT_NAME = re.compile(r"^(?P<label>.+)_(?P<split>val|test)\.txt$")
_THUMOS_TXT_SUBSETS = {"val": "validation", "test": "test"}
_CHARADES_SUBSETS = {"train": "training", "test": "testing"}
_EPIC_SUBSETS = {"train": "train", "validation": "val"}
_CUSTOM_CSV_COLUMNS = ("video", "start", "end", "label", "subset")
_CUSTOM_JSON_VIDEO_KEYS = ("video", "subset", "duration", "fps", "annotations")
_CUSTOM_JSON_INSTANCE_KEYS = ("start", "end", "label")


@dataclass(frozen=True)
class Instance:
    """One annotated action: ``start`` and ``end`` in seconds, ``label`` a class name."""

    start: float
    end: float
    label: str


@dataclass
class VideoAnnotation:
    """The annotation of one video, as the file gives it (``None`` where it says nothing)."""

    video_id: str
    subset: str
    duration: float | None  # seconds
    fps: float | None
    num_frames: int | None
    instances: list[Instance]


@dataclass
class AnnotationSet:
    """All videos of an annotation file, its class list (class index = position) and its format."""

    videos: dict[str, VideoAnnotation]
    classes: list[str]
    format: str

    def subsets(self) -> list[str]:
        """Subset names in order of first appearance."""
        return list(dict.fromkeys(video.subset for video in self.videos.values()))


def read_annotations(
    path: str | Path,
    format: str | None = None,
    *,
    class_list: str | Path | None = None,
) -> AnnotationSet:
    """Read an annotation file (or directory) in one of :data:`ANNOTATION_FORMATS`.

    Args:
        path: the annotation file, or the directory the dataset's owners distribute.
        format: one of :data:`ANNOTATION_FORMATS`; detected from the content when ``None``.
        class_list: a text file with one class name per line (class index = line number) that
            replaces the class list of ``activitynet-json``, ``multithumos-json`` or custom files.

    Returns:
        The raw content: nothing clipped, de-duplicated or dropped.

    Raises:
        AnnotationError: the path is missing, its format is unknown or ambiguous, or it is malformed
            (the message names the file, video and field).
    """
    path = Path(path)
    if not path.exists():
        raise AnnotationError(f"{path}: annotation file or directory not found")
    if format is None:
        format = detect_annotation_format(path)
    if format not in ANNOTATION_FORMATS:
        raise AnnotationError(
            f"{path}: unknown annotation format {format!r}; expected one of {', '.join(ANNOTATION_FORMATS)}"
        )
    classes_override = _read_class_list_file(Path(class_list)) if class_list is not None else None
    if classes_override is not None and format not in (
        "activitynet-json",
        "multithumos-json",
        "custom-csv",
        "custom-json",
    ):
        raise AnnotationError(f"{class_list}: a class list file is not used by format {format!r} (it has its own)")
    if format == "activitynet-json":
        return _read_activitynet_json(path, classes_override)
    if format == "thumos14-txt":
        return _read_thumos14_txt(path)
    if format == "activitynet-bsn":
        return _read_activitynet_bsn(path)
    if format == "charades-csv":
        return _read_charades(path)
    if format == "multithumos-json":
        return _read_multithumos(path, classes_override)
    if format in ("epic-kitchens-verb", "epic-kitchens-noun"):
        return _read_epic_kitchens(path, task=format.rsplit("-", 1)[1])
    if format == "custom-csv":
        return _read_custom_csv(path, classes_override)
    return _read_custom_json(path, classes_override)


def detect_annotation_format(path: str | Path) -> str:
    """The format of an annotation file or directory, from its names and content.

    Raises:
        AnnotationError: when no format or more than one format fits; EPIC-Kitchens files need
            ``epic-kitchens-verb`` or ``epic-kitchens-noun`` to be chosen explicitly.
    """
    path = Path(path)
    if path.is_dir():
        return _detect_directory_format(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _detect_json_format(path, load_json(path))
    if suffix == ".csv":
        return _detect_csv_format(path, _read_csv_header(path))
    raise AnnotationError(
        f"{path}: cannot tell the annotation format from a {suffix or 'extension-less'} file; "
        "expected a .json or .csv file, or a directory of THUMOS14 per-class .txt files"
    )


def read_video_list(path: str | Path) -> list[str]:
    """Video ids from a JSON list (OpenTAD's ActivityNet ``blocked.json``) or a text file, one per line
    (``missing_files.txt``); blank lines are ignored.

    Raises:
        AnnotationError: the file is missing, or its JSON is not a list of non-empty strings.
    """
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: video list file not found")
    if path.suffix.lower() == ".json":
        content = load_json(path)
        if not isinstance(content, list) or not all(isinstance(v, str) and v.strip() for v in content):
            raise AnnotationError(f"{path}: expected a JSON list of video ids")
        return [video.strip() for video in content]
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def strip_video_extension(name: str) -> str:
    """``"clip01.mp4"`` -> ``"clip01"``; names without a video extension are returned unchanged."""
    lowered = name.lower()
    for extension in VIDEO_EXTENSIONS:
        if lowered.endswith(extension):
            return name[: -len(extension)]
    return name


# ----------------------------------------------------------------------------------------------
# format detection


def _detect_directory_format(path: Path) -> str:
    found = []
    if (path / "anet_anno_action.json").is_file():
        found.append("activitynet-bsn")
    if _thumos_txt_files(path):
        found.append("thumos14-txt")
    if _charades_csv_files(path):
        found.append("charades-csv")
    if _epic_csv_files(path):
        found.append("epic-kitchens-verb or epic-kitchens-noun")
    if len(found) == 1 and not found[0].startswith("epic"):
        return found[0]
    if len(found) == 1:
        raise AnnotationError(
            f"{path}: EPIC-Kitchens annotations: choose the task, format epic-kitchens-verb or epic-kitchens-noun"
        )
    if found:
        raise AnnotationError(
            f"{path}: ambiguous annotation directory, it holds files of {' and '.join(found)}; pass the format"
        )
    raise AnnotationError(
        f"{path}: no known annotation files in this directory; expected THUMOS14 "
        "'<Class>_val.txt'/'<Class>_test.txt' files, "
        "BSN 'anet_anno_action.json', 'Charades_v1_*.csv' or 'EPIC_100_*.csv' (or pass a .json/.csv file)"
    )


def _detect_json_format(path: Path, content: Any) -> str:
    if isinstance(content, dict):
        if isinstance(content.get("database"), dict):
            return "activitynet-json"
        if "results" in content:
            raise AnnotationError(f"{path}: this is a detection results file ('results'), not an annotation file")
        if isinstance(content.get("videos"), list):
            return "custom-json"
        first = next(iter(content.values()), None)
        if isinstance(first, dict) and "duration_second" in first:
            return "activitynet-bsn"
        if isinstance(first, dict) and "actions" in first and "subset" in first:
            return "multithumos-json"
    raise AnnotationError(
        f"{path}: unknown annotation JSON; expected an ActivityNet-style {{'database': ...}}, the custom "
        "{'videos': [...]} schema, BSN anet_anno_action.json or Multi-THUMOS {video: {'subset', 'actions'}}"
    )


def _detect_csv_format(path: Path, header: list[str]) -> str:
    columns = set(header)
    if {"id", "actions", "length"} <= columns:
        return "charades-csv"
    if {"narration_id", "video_id", "start_timestamp", "stop_timestamp"} <= columns:
        raise AnnotationError(
            f"{path}: EPIC-Kitchens annotations: choose the task, format epic-kitchens-verb or epic-kitchens-noun"
        )
    if "video" in columns:  # the custom reader names the missing and unknown columns
        return "custom-csv"
    raise AnnotationError(
        f"{path}: unknown annotation CSV columns {header}; expected the custom columns video,start,end,label[,subset], "
        "Charades (id,...,actions,length) or EPIC-Kitchens (narration_id,video_id,start_timestamp,...)"
    )


# ----------------------------------------------------------------------------------------------
# ActivityNet-style JSON


def _read_activitynet_json(path: Path, classes_override: list[str] | None) -> AnnotationSet:
    content = load_json(path)
    database = content.get("database") if isinstance(content, dict) else None
    if not isinstance(database, dict):
        raise AnnotationError(f"{path}: expected an ActivityNet-style JSON object with a 'database' mapping")
    videos = {}
    for video_id, entry in database.items():
        where = f"{path}: video {video_id}"
        entry = _require_mapping(entry, where)
        instances = [
            _instance(item.get("segment"), item.get("label"), f"{where}: annotations[{index}]")
            for index, item in enumerate(_require_list(entry.get("annotations", []), f"{where}: annotations"))
        ]
        videos[video_id] = VideoAnnotation(
            video_id=video_id,
            subset=_require_str(entry.get("subset"), f"{where}: subset"),
            duration=_optional_float(entry.get("duration"), f"{where}: duration"),
            fps=_optional_float(entry.get("fps"), f"{where}: fps"),
            num_frames=_optional_int(entry.get("frame", entry.get("num_frames")), f"{where}: frame"),
            instances=instances,
        )
    category_file = path.parent / "category_idx.txt"
    if classes_override is not None:
        classes = classes_override
    elif "classes" in content:  # a prepared dataset's manifest.json
        classes = [
            _require_str(name, f"{path}: classes[{i}]")
            for i, name in enumerate(_require_list(content["classes"], f"{path}: classes"))
        ]
    elif category_file.is_file():
        classes = _read_class_list_file(category_file)
    else:
        classes = _sorted_labels(videos.values())
    return AnnotationSet(videos=videos, classes=classes, format="activitynet-json")


# ----------------------------------------------------------------------------------------------
# THUMOS14 official per-class text files


def _thumos_txt_files(directory: Path) -> list[Path]:
    candidates = list(directory.glob("*.txt")) + list(directory.glob("*/*.txt"))
    return sorted(p for p in candidates if _THUMOS_TXT_NAME.match(p.name))


def _read_thumos14_txt(path: Path) -> AnnotationSet:
    if not path.is_dir():
        raise AnnotationError(
            f"{path}: thumos14-txt expects the directory of '<Class>_val.txt' / '<Class>_test.txt' files"
        )
    files = _thumos_txt_files(path)
    if not files:
        raise AnnotationError(f"{path}: no THUMOS14 '<Class>_val.txt' or '<Class>_test.txt' files found")
    seen_names: dict[str, Path] = {}
    videos: dict[str, VideoAnnotation] = {}
    classes = set()
    for file in files:
        if file.name in seen_names:
            raise AnnotationError(f"{file}: the same class file also exists at {seen_names[file.name]}")
        seen_names[file.name] = file
        match = _THUMOS_TXT_NAME.match(file.name)
        label, subset = match["label"], _THUMOS_TXT_SUBSETS[match["split"]]
        if label != AMBIGUOUS_LABEL:
            classes.add(label)
        for line_number, line in enumerate(file.read_text().splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            where = f"{file}:{line_number}"
            if len(fields) != 3:
                raise AnnotationError(f"{where}: expected 'video start end', got {line.strip()!r}")
            video_id = fields[0]
            video = videos.setdefault(video_id, VideoAnnotation(video_id, subset, None, None, None, []))
            if video.subset != subset:
                raise AnnotationError(f"{where}: video {video_id} is in both subsets {video.subset!r} and {subset!r}")
            video.instances.append(
                Instance(_float(fields[1], f"{where}: start"), _float(fields[2], f"{where}: end"), label)
            )
    return AnnotationSet(videos=videos, classes=sorted(classes), format="thumos14-txt")


# ----------------------------------------------------------------------------------------------
# ActivityNet 1.3, BSN layout


def _read_activitynet_bsn(path: Path) -> AnnotationSet:
    directory = path if path.is_dir() else path.parent
    anno_file = path if path.is_file() else directory / "anet_anno_action.json"
    info_file, names_file = directory / "video_info_new.csv", directory / "action_name.csv"
    for required in (anno_file, info_file, names_file):
        if not required.is_file():
            raise AnnotationError(
                f"{required}: missing; the BSN ActivityNet layout needs anet_anno_action.json, "
                "video_info_new.csv and action_name.csv together"
            )
    info_table = _read_csv_table(info_file, ("video", "numFrame", "fps", "subset"))
    measures = zip(
        info_table["subset"],
        _numbers(info_table, "fps", info_file),
        _numbers(info_table, "numFrame", info_file),
        strict=True,
    )
    info = dict(zip(info_table["video"], measures, strict=True))  # video -> (subset, fps, frames)
    content = _require_mapping(load_json(anno_file), str(anno_file))
    videos = {}
    for video_id, entry in content.items():
        where = f"{anno_file}: video {video_id}"
        entry = _require_mapping(entry, where)
        if video_id not in info:
            raise AnnotationError(f"{where}: not listed in {info_file.name}, so its subset is unknown")
        subset, fps, num_frames = info[video_id]
        instances = [
            _instance(item.get("segment"), item.get("label"), f"{where}: annotations[{index}]")
            for index, item in enumerate(_require_list(entry.get("annotations", []), f"{where}: annotations"))
        ]
        videos[video_id] = VideoAnnotation(
            video_id=video_id,
            subset=subset,
            duration=_optional_float(entry.get("duration_second"), f"{where}: duration_second"),
            fps=float(fps),
            num_frames=_int(num_frames, f"{info_file}: video {video_id}: numFrame"),
            instances=instances,
        )
    classes = _read_csv_table(names_file, ("action",))["action"].tolist()
    return AnnotationSet(videos=videos, classes=classes, format="activitynet-bsn")


# ----------------------------------------------------------------------------------------------
# Charades


def _charades_csv_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("Charades_v1_*.csv") if _charades_subset(p) is not None)


def _charades_subset(file: Path) -> str | None:
    stem = file.stem.lower()
    return next((subset for key, subset in _CHARADES_SUBSETS.items() if stem.endswith(f"_{key}")), None)


def _read_charades(path: Path) -> AnnotationSet:
    files = _charades_csv_files(path) if path.is_dir() else [path]
    if not files:
        raise AnnotationError(f"{path}: no Charades_v1_train.csv or Charades_v1_test.csv found")
    class_file = files[0].parent / "Charades_v1_classes.txt"
    names = _read_charades_classes(class_file) if class_file.is_file() else None
    videos = {}
    for file in files:
        subset = _charades_subset(file)
        if subset is None:
            raise AnnotationError(
                f"{file}: cannot tell the subset from the name; expected Charades_v1_train.csv or Charades_v1_test.csv"
            )
        table = _read_csv_table(file, ("id", "actions", "length"))
        lengths = _numbers(table, "length", file)
        for (line, row), length in zip(table.iterrows(), lengths, strict=True):
            where = f"{file}:{line}: video {row['id']}"
            instances = []
            for item in filter(None, (part.strip() for part in row["actions"].split(";"))):
                fields = item.split()
                if len(fields) != 3:
                    raise AnnotationError(f"{where}: actions: expected 'cNNN start end', got {item!r}")
                code = fields[0]
                if names is not None and code not in names:
                    raise AnnotationError(f"{where}: actions: class {code!r} is not in {class_file}")
                label = names[code] if names is not None else code
                instances.append(
                    Instance(_float(fields[1], f"{where}: start"), _float(fields[2], f"{where}: end"), label)
                )
            if row["id"] in videos:
                raise AnnotationError(f"{where}: video listed twice")
            videos[row["id"]] = VideoAnnotation(row["id"], subset, float(length), None, None, instances)
    classes = list(names.values()) if names is not None else _sorted_labels(videos.values())
    return AnnotationSet(videos=videos, classes=classes, format="charades-csv")


def _read_charades_classes(file: Path) -> dict[str, str]:
    names = {}
    for line_number, line in enumerate(file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        code, _, name = line.strip().partition(" ")
        if not name:
            raise AnnotationError(f"{file}:{line_number}: expected 'cNNN Class name', got {line!r}")
        names[code] = name.strip()
    return names


# ----------------------------------------------------------------------------------------------
# Multi-THUMOS


def _read_multithumos(path: Path, classes_override: list[str] | None) -> AnnotationSet:
    content = _require_mapping(load_json(path), str(path))
    if classes_override is not None and len(classes_override) != MULTITHUMOS_NUM_CLASSES:
        raise AnnotationError(
            f"class list: Multi-THUMOS has {MULTITHUMOS_NUM_CLASSES} classes, the list has {len(classes_override)}"
        )
    classes = classes_override or list(THUMOS14_CLASSES) + [
        f"class_{index}" for index in range(len(THUMOS14_CLASSES) + 1, MULTITHUMOS_NUM_CLASSES + 1)
    ]
    videos = {}
    for video_id, entry in content.items():
        where = f"{path}: video {video_id}"
        entry = _require_mapping(entry, where)
        instances = []
        for index, action in enumerate(_require_list(entry.get("actions"), f"{where}: actions")):
            item_where = f"{where}: actions[{index}]"
            if not isinstance(action, list) or len(action) != 3:
                raise AnnotationError(f"{item_where}: expected [class_index, start, end], got {action!r}")
            class_index = _int(action[0], f"{item_where}: class index")
            if not 1 <= class_index <= MULTITHUMOS_NUM_CLASSES:
                raise AnnotationError(f"{item_where}: class index {class_index} outside 1..{MULTITHUMOS_NUM_CLASSES}")
            instances.append(
                Instance(
                    _float(action[1], f"{item_where}: start"),
                    _float(action[2], f"{item_where}: end"),
                    classes[class_index - 1],
                )
            )
        videos[video_id] = VideoAnnotation(
            video_id=video_id,
            subset=_require_str(entry.get("subset"), f"{where}: subset"),
            duration=_optional_float(entry.get("duration"), f"{where}: duration"),
            fps=None,
            num_frames=None,
            instances=instances,
        )
    return AnnotationSet(videos=videos, classes=classes, format="multithumos-json")


# ----------------------------------------------------------------------------------------------
# EPIC-Kitchens-100


def _epic_csv_files(directory: Path) -> list[Path]:
    return [
        directory / f"EPIC_100_{name}.csv" for name in _EPIC_SUBSETS if (directory / f"EPIC_100_{name}.csv").is_file()
    ]


def _read_epic_kitchens(path: Path, task: str) -> AnnotationSet:
    files = _epic_csv_files(path) if path.is_dir() else [path]
    if not files:
        raise AnnotationError(f"{path}: no EPIC_100_train.csv or EPIC_100_validation.csv found")
    directory = files[0].parent
    class_file = directory / f"EPIC_100_{task}_classes.csv"
    if not class_file.is_file():
        raise AnnotationError(f"{class_file}: missing; EPIC-Kitchens {task} labels are named by this class list")
    class_table = _read_csv_table(class_file, ("id", "key"))
    class_ids = _numbers(class_table, "id", class_file)
    names = dict(zip(class_table["id"], class_table["key"], strict=True))
    info_file = directory / "EPIC_100_video_info.csv"
    info: dict[str, tuple[float, float]] = {}
    if info_file.is_file():
        info_table = _read_csv_table(info_file, ("video_id", "duration", "fps"))
        durations = _numbers(info_table, "duration", info_file).tolist()
        frame_rates = _numbers(info_table, "fps", info_file).tolist()
        info = dict(zip(info_table["video_id"], zip(durations, frame_rates, strict=True), strict=True))
    class_column = f"{task}_class"
    videos: dict[str, VideoAnnotation] = {}
    for file in files:
        subset = _EPIC_SUBSETS.get(file.stem.removeprefix("EPIC_100_"))
        if subset is None:
            raise AnnotationError(
                f"{file}: cannot tell the subset from the name; expected EPIC_100_train.csv or EPIC_100_validation.csv"
            )
        table = _read_csv_table(file, ("video_id", "start_timestamp", "stop_timestamp", class_column))
        unknown = np.flatnonzero(~table[class_column].isin(list(names)).to_numpy())
        if unknown.size:
            line, value = table.index[unknown[0]], table[class_column].iloc[unknown[0]]
            raise AnnotationError(f"{file}:{line}: {class_column} {value!r} is not an id of {class_file.name}")
        starts = _epic_seconds(table, "start_timestamp", file)
        ends = _epic_seconds(table, "stop_timestamp", file)
        labels = table[class_column].map(names)
        rows = zip(table["video_id"].items(), starts, ends, labels, strict=True)
        for (line, video_id), start, end, label in rows:
            if video_id not in videos:
                duration, fps = info.get(video_id, (None, None))
                videos[video_id] = VideoAnnotation(video_id, subset, duration, fps, None, [])
            elif videos[video_id].subset != subset:
                raise AnnotationError(
                    f"{file}:{line}: video {video_id}: in both subsets {videos[video_id].subset!r} and {subset!r}"
                )
            videos[video_id].instances.append(Instance(float(start), float(end), label))
    classes = class_table["key"].to_numpy()[np.argsort(class_ids, kind="stable")].tolist()
    return AnnotationSet(videos=videos, classes=classes, format=f"epic-kitchens-{task}")


def _epic_seconds(table: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    """``hh:mm:ss.ff`` timestamps -> float64 seconds [N]; a malformed one is an error naming its line."""
    parts = table[column].str.split(":", expand=True).reindex(columns=range(4))  # [N, 4]; column 3: too many parts
    hms = parts.iloc[:, :3].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)  # [N, 3]
    valid = np.isfinite(hms).all(axis=1) & parts[3].isna().to_numpy()
    if not valid.all():
        bad = int(np.flatnonzero(~valid)[0])
        raise AnnotationError(
            f"{path}:{table.index[bad]}: {column}: expected hh:mm:ss.ff, got {table[column].iloc[bad]!r}"
        )
    return hms[:, 0] * 3600.0 + hms[:, 1] * 60.0 + hms[:, 2]


# ----------------------------------------------------------------------------------------------
# custom schema


def _read_custom_csv(path: Path, classes_override: list[str] | None) -> AnnotationSet:
    table = _read_csv_table(path)
    missing = [column for column in _CUSTOM_CSV_COLUMNS[:4] if column not in table.columns]
    unknown = [column for column in table.columns if column not in _CUSTOM_CSV_COLUMNS]
    if missing or unknown:
        problems = ([f"missing column(s) {missing}"] if missing else []) + (
            [f"unknown column(s) {unknown}"] if unknown else []
        )
        raise AnnotationError(
            f"{path}: {'; '.join(problems)}; the custom CSV columns are video,start,end,label[,subset]"
        )
    if "subset" not in table.columns:
        table = table.assign(subset="")
    videos: dict[str, VideoAnnotation] = {}
    for line, row in table.iterrows():
        video_id = strip_video_extension(row["video"])
        where = f"{path}:{line}: video {video_id!r}"
        if not video_id:
            raise AnnotationError(f"{path}:{line}: empty 'video'")
        subset = row["subset"] or DEFAULT_CUSTOM_SUBSET
        video = videos.setdefault(video_id, VideoAnnotation(video_id, subset, None, None, None, []))
        if video.subset != subset:
            raise AnnotationError(f"{where}: subset {subset!r} differs from {video.subset!r} given on an earlier row")
        values = (row["start"], row["end"], row["label"])
        if not any(values):
            continue
        if not all(values):
            raise AnnotationError(
                f"{where}: start, end and label must all be given (or all be empty for a video without actions)"
            )
        video.instances.append(_instance([values[0], values[1]], values[2], where))
    classes = classes_override if classes_override is not None else _sorted_labels(videos.values())
    return AnnotationSet(videos=videos, classes=classes, format="custom-csv")


def _read_custom_json(path: Path, classes_override: list[str] | None) -> AnnotationSet:
    content = _require_mapping(load_json(path), str(path))
    unknown = [key for key in content if key not in ("classes", "videos")]
    if unknown:
        raise AnnotationError(
            f"{path}: unknown key(s) {unknown}; the custom JSON keys are 'classes' (optional) and 'videos'"
        )
    videos: dict[str, VideoAnnotation] = {}
    for index, entry in enumerate(_require_list(content.get("videos"), f"{path}: videos")):
        where = f"{path}: videos[{index}]"
        entry = _require_mapping(entry, where)
        unknown = [key for key in entry if key not in _CUSTOM_JSON_VIDEO_KEYS]
        if unknown:
            raise AnnotationError(f"{where}: unknown key(s) {unknown}; expected {', '.join(_CUSTOM_JSON_VIDEO_KEYS)}")
        video_id = strip_video_extension(_require_str(entry.get("video"), f"{where}: video"))
        where = f"{where} (video {video_id!r})"
        if video_id in videos:
            raise AnnotationError(f"{where}: video listed twice")
        instances = []
        for item_index, item in enumerate(_require_list(entry.get("annotations", []), f"{where}: annotations")):
            item_where = f"{where}: annotations[{item_index}]"
            item = _require_mapping(item, item_where)
            unknown = [key for key in item if key not in _CUSTOM_JSON_INSTANCE_KEYS]
            if unknown:
                raise AnnotationError(f"{item_where}: unknown key(s) {unknown}; expected start, end, label")
            instances.append(_instance([item.get("start"), item.get("end")], item.get("label"), item_where))
        videos[video_id] = VideoAnnotation(
            video_id=video_id,
            subset=_require_str(entry.get("subset", DEFAULT_CUSTOM_SUBSET), f"{where}: subset"),
            duration=_optional_float(entry.get("duration"), f"{where}: duration"),
            fps=_optional_float(entry.get("fps"), f"{where}: fps"),
            num_frames=None,
            instances=instances,
        )
    if classes_override is not None:
        classes = classes_override
    elif "classes" in content:
        classes = [
            _require_str(name, f"{path}: classes[{i}]")
            for i, name in enumerate(_require_list(content["classes"], f"{path}: classes"))
        ]
    else:
        classes = _sorted_labels(videos.values())
    return AnnotationSet(videos=videos, classes=classes, format="custom-json")


# ----------------------------------------------------------------------------------------------
# small helpers


def load_json(path: Path) -> Any:
    """The content of a JSON file; a missing, unreadable or invalid file is an :class:`AnnotationError`."""
    try:
        with path.open("rb") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise AnnotationError(
            f"{path}: invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None
    except OSError as error:
        raise AnnotationError(f"{path}: cannot read: {error.strerror}") from None


def _read_csv_header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle), None)
    if not header:
        raise AnnotationError(f"{path}: empty CSV file (a header row is required)")
    return [column.strip() for column in header]


def _read_csv_table(path: Path, required: Iterable[str] = ()) -> pd.DataFrame:
    """A CSV file with a header as a table of stripped strings, indexed by the line each row starts on.

    Raises:
        AnnotationError: the file is empty, a ``required`` column is missing, or a row has more or fewer
            fields than the header (naming the file, the line and the row).
    """
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [column.strip() for column in next(reader, None) or []]
        if not header:
            raise AnnotationError(f"{path}: empty CSV file (a header row is required)")
        lines, rows = [], []
        first_line = reader.line_num + 1
        for row in reader:
            if row and len(row) != len(header):
                raise AnnotationError(
                    f"{path}:{first_line}: {len(row)} fields where the header has {len(header)} "
                    f"({','.join(header)}): {','.join(row)!r}"
                )
            if row:  # csv gives [] for a blank line
                lines.append(first_line)
                rows.append([field.strip() for field in row])
            first_line = reader.line_num + 1
    missing = [column for column in required if column not in header]
    if missing:
        raise AnnotationError(f"{path}: missing column(s) {missing}; the header has {header}")
    return pd.DataFrame(rows, columns=header, index=pd.Index(lines, name="line"), dtype=object)


def _numbers(table: pd.DataFrame, column: str, path: Path, what: str = "") -> np.ndarray:
    """``table[column]`` as finite float64 [N]; the first other value is an error naming its line."""
    values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        line = table.index[bad[0]]
        raise AnnotationError(
            f"{path}:{line}: {what}{column}: expected a finite number, got {table[column].iloc[bad[0]]!r}"
        )
    return values


def _read_class_list_file(path: Path) -> list[str]:
    """One class name per line (class index = line number); blank lines are ignored."""
    if not path.is_file():
        raise AnnotationError(f"{path}: class list file not found")
    classes = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    duplicates = sorted({name for name in classes if classes.count(name) > 1})
    if duplicates:
        raise AnnotationError(f"{path}: class name(s) listed twice: {duplicates}")
    return classes


def _sorted_labels(videos: Iterable[VideoAnnotation]) -> list[str]:
    return sorted({instance.label for video in videos for instance in video.instances})


def _instance(segment: Any, label: Any, where: str) -> Instance:
    if not isinstance(segment, (list, tuple)) or len(segment) != 2:
        raise AnnotationError(f"{where}: segment: expected [start, end] in seconds, got {segment!r}")
    return Instance(
        _float(segment[0], f"{where}: start"),
        _float(segment[1], f"{where}: end"),
        _require_str(label, f"{where}: label"),
    )


def _float(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise AnnotationError(f"{where}: expected a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise AnnotationError(f"{where}: expected a number, got {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise AnnotationError(f"{where}: expected a finite number, got {value!r}")
    return number


def _int(value: Any, where: str) -> int:
    number = _float(value, where)
    if number != int(number):
        raise AnnotationError(f"{where}: expected an integer, got {value!r}")
    return int(number)


def _optional_float(value: Any, where: str) -> float | None:
    return None if value is None or value == "" else _float(value, where)


def _optional_int(value: Any, where: str) -> int | None:
    return None if value is None or value == "" else _int(value, where)


def _require_str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise AnnotationError(f"{where}: expected a non-empty string, got {value!r}")
    return value.strip()


def _require_mapping(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise AnnotationError(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value


def _require_list(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise AnnotationError(f"{where}: expected a list, got {type(value).__name__}")
    return value

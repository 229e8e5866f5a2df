"""ActivityNet-style annotation JSON, and BSN's copy of ActivityNet 1.3.

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
``activitynet-bsn``    BSN's copy of ActivityNet 1.3: a directory (or its ``anet_anno_action.json``)
                       holding ``anet_anno_action.json``, ``video_info_new.csv`` (subset, fps,
                       frame count) and ``action_name.csv`` (classes). Ids keep the ``v_`` prefix.
=====================  ====================================================================
"""

from __future__ import annotations

from pathlib import Path

from tadcli.data.annotations._fields import (
    as_int,
    load_json,
    numeric_column,
    optional_float,
    optional_int,
    parse_instance,
    read_csv_table,
    require_class_names,
    require_list,
    require_mapping,
    require_str,
    sorted_labels,
)
from tadcli.data.annotations.lists import read_class_list
from tadcli.data.annotations.types import AnnotationFormat, AnnotationSet, Instance, VideoAnnotation
from tadcli.errors import AnnotationError

BSN_ANNOTATION_FILE = "anet_anno_action.json"


def read_activitynet_json(path: Path, classes_override: list[str] | None = None) -> AnnotationSet:
    """Read an ``activitynet-json`` file; ``classes_override`` replaces its class list."""
    content = load_json(path)
    database = content.get("database") if isinstance(content, dict) else None
    if not isinstance(database, dict):
        raise AnnotationError(f"{path}: expected an ActivityNet-style JSON object with a 'database' mapping")
    videos = {}
    for video_id, entry in database.items():
        where = f"{path}: video {video_id}"
        entry = require_mapping(entry, where)
        instances = _instances(entry, where)
        videos[video_id] = VideoAnnotation(
            video_id=video_id,
            subset=require_str(entry.get("subset"), f"{where}: subset"),
            duration=optional_float(entry.get("duration"), f"{where}: duration"),
            fps=optional_float(entry.get("fps"), f"{where}: fps"),
            num_frames=optional_int(entry.get("frame", entry.get("num_frames")), f"{where}: frame"),
            instances=instances,
        )
    category_file = path.parent / "category_idx.txt"
    if classes_override is not None:
        classes = classes_override
    elif "classes" in content:  # a prepared dataset's manifest.json
        classes = require_class_names(content["classes"], f"{path}: classes")
    elif category_file.is_file():
        classes = read_class_list(category_file)
    else:
        classes = sorted_labels(videos.values())
    return AnnotationSet(videos=videos, classes=classes, format=AnnotationFormat.ACTIVITYNET_JSON)


def _instances(entry: dict, where: str) -> list[Instance]:
    """The ``"annotations"`` of a video entry, ``[{"segment": [start, end], "label"}]`` in seconds."""
    return [
        parse_instance(item.get("segment"), item.get("label"), f"{where}: annotations[{index}]")
        for index, item in enumerate(require_list(entry.get("annotations", []), f"{where}: annotations"))
    ]


def read_activitynet_bsn(path: Path) -> AnnotationSet:
    """Read BSN's ActivityNet directory, or its ``anet_anno_action.json`` with the CSV files beside it."""
    directory = path if path.is_dir() else path.parent
    anno_file = path if path.is_file() else directory / BSN_ANNOTATION_FILE
    info_file, names_file = directory / "video_info_new.csv", directory / "action_name.csv"
    for required in (anno_file, info_file, names_file):
        if not required.is_file():
            raise AnnotationError(
                f"{required}: missing; the BSN ActivityNet layout needs anet_anno_action.json, "
                "video_info_new.csv and action_name.csv together"
            )
    info_table = read_csv_table(info_file, ("video", "numFrame", "fps", "subset"))
    measures = zip(
        info_table["subset"],
        numeric_column(info_table, "fps", info_file),
        numeric_column(info_table, "numFrame", info_file),
        strict=True,
    )
    info = dict(zip(info_table["video"], measures, strict=True))  # video -> (subset, fps, frames)
    content = require_mapping(load_json(anno_file), str(anno_file))
    videos = {}
    for video_id, entry in content.items():
        where = f"{anno_file}: video {video_id}"
        entry = require_mapping(entry, where)
        if video_id not in info:
            raise AnnotationError(f"{where}: not listed in {info_file.name}, so its subset is unknown")
        subset, fps, num_frames = info[video_id]
        instances = _instances(entry, where)
        videos[video_id] = VideoAnnotation(
            video_id=video_id,
            subset=subset,
            duration=optional_float(entry.get("duration_second"), f"{where}: duration_second"),
            fps=float(fps),
            num_frames=as_int(num_frames, f"{info_file}: video {video_id}: numFrame"),
            instances=instances,
        )
    classes = read_csv_table(names_file, ("action",))["action"].tolist()
    return AnnotationSet(videos=videos, classes=classes, format=AnnotationFormat.ACTIVITYNET_BSN)

"""The custom annotation schema of ``tad prepare custom``, as CSV (``custom-csv``) or JSON (``custom-json``).

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

from pathlib import Path

from tadcli.data.annotations._fields import (
    load_json,
    optional_float,
    parse_instance,
    read_csv_table,
    require_class_names,
    require_list,
    require_mapping,
    require_str,
    sorted_labels,
)
from tadcli.data.annotations.types import AnnotationFormat, AnnotationSet, VideoAnnotation, strip_video_extension
from tadcli.errors import AnnotationError

DEFAULT_CUSTOM_SUBSET = "train"

_CUSTOM_CSV_COLUMNS = ("video", "start", "end", "label", "subset")
_CUSTOM_JSON_VIDEO_KEYS = ("video", "subset", "duration", "fps", "annotations")
_CUSTOM_JSON_INSTANCE_KEYS = ("start", "end", "label")


def read_custom_csv(path: Path, classes_override: list[str] | None = None) -> AnnotationSet:
    """Read a custom CSV file; the classes are ``classes_override`` or the sorted distinct labels."""
    table = read_csv_table(path)
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
        video.instances.append(parse_instance([values[0], values[1]], values[2], where))
    classes = classes_override if classes_override is not None else sorted_labels(videos.values())
    return AnnotationSet(videos=videos, classes=classes, format=AnnotationFormat.CUSTOM_CSV)


def read_custom_json(path: Path, classes_override: list[str] | None = None) -> AnnotationSet:
    """Read a custom JSON file; ``classes_override`` replaces its ``classes``."""
    content = require_mapping(load_json(path), str(path))
    unknown = [key for key in content if key not in ("classes", "videos")]
    if unknown:
        raise AnnotationError(
            f"{path}: unknown key(s) {unknown}; the custom JSON keys are 'classes' (optional) and 'videos'"
        )
    videos: dict[str, VideoAnnotation] = {}
    for index, entry in enumerate(require_list(content.get("videos"), f"{path}: videos")):
        where = f"{path}: videos[{index}]"
        entry = require_mapping(entry, where)
        unknown = [key for key in entry if key not in _CUSTOM_JSON_VIDEO_KEYS]
        if unknown:
            raise AnnotationError(f"{where}: unknown key(s) {unknown}; expected {', '.join(_CUSTOM_JSON_VIDEO_KEYS)}")
        video_id = strip_video_extension(require_str(entry.get("video"), f"{where}: video"))
        where = f"{where} (video {video_id!r})"
        if video_id in videos:
            raise AnnotationError(f"{where}: video listed twice")
        instances = []
        for item_index, item in enumerate(require_list(entry.get("annotations", []), f"{where}: annotations")):
            item_where = f"{where}: annotations[{item_index}]"
            item = require_mapping(item, item_where)
            unknown = [key for key in item if key not in _CUSTOM_JSON_INSTANCE_KEYS]
            if unknown:
                raise AnnotationError(f"{item_where}: unknown key(s) {unknown}; expected start, end, label")
            instances.append(parse_instance([item.get("start"), item.get("end")], item.get("label"), item_where))
        videos[video_id] = VideoAnnotation(
            video_id=video_id,
            subset=require_str(entry.get("subset", DEFAULT_CUSTOM_SUBSET), f"{where}: subset"),
            duration=optional_float(entry.get("duration"), f"{where}: duration"),
            fps=optional_float(entry.get("fps"), f"{where}: fps"),
            num_frames=None,
            instances=instances,
        )
    if classes_override is not None:
        classes = classes_override
    elif "classes" in content:
        classes = require_class_names(content["classes"], f"{path}: classes")
    else:
        classes = sorted_labels(videos.values())
    return AnnotationSet(videos=videos, classes=classes, format=AnnotationFormat.CUSTOM_JSON)

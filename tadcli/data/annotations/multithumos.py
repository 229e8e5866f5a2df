"""Multi-THUMOS super-events JSON (format ``multithumos-json``).

``path`` is ``multithumos.json``: ``{video_id: {"subset", "duration", "actions": [[class_index, s, e]]}}``,
1-based indices of 65 classes. Names: line i of ``class_list`` when given; else indices 1..20 are the
THUMOS14 classes (alphabetical, verified against the official files) and 21..65 are ``class_21`` ...
``class_65``.
"""

from __future__ import annotations

from pathlib import Path

from tadcli.config.profiles import THUMOS14_CLASSES
from tadcli.data.annotations._fields import (
    as_float,
    as_int,
    load_json,
    optional_float,
    require_list,
    require_mapping,
    require_str,
)
from tadcli.data.annotations.types import AnnotationFormat, AnnotationSet, Instance, VideoAnnotation
from tadcli.errors import AnnotationError

MULTITHUMOS_NUM_CLASSES = 65


def read_multithumos(path: Path, classes_override: list[str] | None = None) -> AnnotationSet:
    """Read ``multithumos.json``; ``classes_override`` names all 65 classes."""
    content = require_mapping(load_json(path), str(path))
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
        entry = require_mapping(entry, where)
        instances = []
        for index, action in enumerate(require_list(entry.get("actions"), f"{where}: actions")):
            item_where = f"{where}: actions[{index}]"
            if not isinstance(action, list) or len(action) != 3:
                raise AnnotationError(f"{item_where}: expected [class_index, start, end], got {action!r}")
            class_index = as_int(action[0], f"{item_where}: class index")
            if not 1 <= class_index <= MULTITHUMOS_NUM_CLASSES:
                raise AnnotationError(f"{item_where}: class index {class_index} outside 1..{MULTITHUMOS_NUM_CLASSES}")
            instances.append(
                Instance(
                    as_float(action[1], f"{item_where}: start"),
                    as_float(action[2], f"{item_where}: end"),
                    classes[class_index - 1],
                )
            )
        videos[video_id] = VideoAnnotation(
            video_id=video_id,
            subset=require_str(entry.get("subset"), f"{where}: subset"),
            duration=optional_float(entry.get("duration"), f"{where}: duration"),
            fps=None,
            num_frames=None,
            instances=instances,
        )
    return AnnotationSet(videos=videos, classes=classes, format=AnnotationFormat.MULTITHUMOS_JSON)

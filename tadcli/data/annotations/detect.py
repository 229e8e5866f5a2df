"""Which format an annotation file or directory is in, from its names and content.

A directory is told by the files it holds (BSN's ``anet_anno_action.json``, THUMOS14 per-class
``.txt`` files, ``Charades_v1_*.csv``, ``EPIC_100_*.csv``); a ``.json`` file by its keys; a ``.csv``
file by its header. EPIC-Kitchens files fit two formats (verb and noun): the caller chooses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tadcli.data.annotations._fields import load_json, read_csv_header
from tadcli.data.annotations.activitynet import BSN_ANNOTATION_FILE
from tadcli.data.annotations.charades import charades_csv_files
from tadcli.data.annotations.epic_kitchens import epic_csv_files
from tadcli.data.annotations.thumos14 import thumos_txt_files
from tadcli.data.annotations.types import AnnotationFormat
from tadcli.errors import AnnotationError

_EPIC_TASKS = "epic-kitchens-verb or epic-kitchens-noun"


def detect_annotation_format(path: str | Path) -> AnnotationFormat:
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
        return _detect_csv_format(path, read_csv_header(path))
    raise AnnotationError(
        f"{path}: cannot tell the annotation format from a {suffix or 'extension-less'} file; "
        "expected a .json or .csv file, or a directory of THUMOS14 per-class .txt files"
    )


def _detect_directory_format(path: Path) -> AnnotationFormat:
    found: list[str] = []
    if (path / BSN_ANNOTATION_FILE).is_file():
        found.append(AnnotationFormat.ACTIVITYNET_BSN)
    if thumos_txt_files(path):
        found.append(AnnotationFormat.THUMOS14_TXT)
    if charades_csv_files(path):
        found.append(AnnotationFormat.CHARADES_CSV)
    if epic_csv_files(path):
        found.append(_EPIC_TASKS)
    if len(found) == 1 and found[0] != _EPIC_TASKS:
        return AnnotationFormat(found[0])
    if len(found) == 1:
        raise AnnotationError(f"{path}: EPIC-Kitchens annotations: choose the task, format {_EPIC_TASKS}")
    if found:
        raise AnnotationError(
            f"{path}: ambiguous annotation directory, it holds files of {' and '.join(found)}; pass the format"
        )
    raise AnnotationError(
        f"{path}: no known annotation files in this directory; expected THUMOS14 "
        "'<Class>_val.txt'/'<Class>_test.txt' files, "
        "BSN 'anet_anno_action.json', 'Charades_v1_*.csv' or 'EPIC_100_*.csv' (or pass a .json/.csv file)"
    )


def _detect_json_format(path: Path, content: Any) -> AnnotationFormat:
    if isinstance(content, dict):
        if isinstance(content.get("database"), dict):
            return AnnotationFormat.ACTIVITYNET_JSON
        if "results" in content:
            raise AnnotationError(f"{path}: this is a detection results file ('results'), not an annotation file")
        if isinstance(content.get("videos"), list):
            return AnnotationFormat.CUSTOM_JSON
        first = next(iter(content.values()), None)
        if isinstance(first, dict) and "duration_second" in first:
            return AnnotationFormat.ACTIVITYNET_BSN
        if isinstance(first, dict) and "actions" in first and "subset" in first:
            return AnnotationFormat.MULTITHUMOS_JSON
    raise AnnotationError(
        f"{path}: unknown annotation JSON; expected an ActivityNet-style {{'database': ...}}, the custom "
        "{'videos': [...]} schema, BSN anet_anno_action.json or Multi-THUMOS {video: {'subset', 'actions'}}"
    )


def _detect_csv_format(path: Path, header: list[str]) -> AnnotationFormat:
    columns = set(header)
    if {"id", "actions", "length"} <= columns:
        return AnnotationFormat.CHARADES_CSV
    if {"narration_id", "video_id", "start_timestamp", "stop_timestamp"} <= columns:
        raise AnnotationError(f"{path}: EPIC-Kitchens annotations: choose the task, format {_EPIC_TASKS}")
    if "video" in columns:  # the custom reader names the missing and unknown columns
        return AnnotationFormat.CUSTOM_CSV
    raise AnnotationError(
        f"{path}: unknown annotation CSV columns {header}; expected the custom columns video,start,end,label[,subset], "
        "Charades (id,...,actions,length) or EPIC-Kitchens (narration_id,video_id,start_timestamp,...)"
    )

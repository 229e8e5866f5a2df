"""Readers for temporal action detection annotation files, as their owners distribute them.

``read_annotations(path)`` detects the format (:mod:`.detect`); pass ``format=`` to force one. Every
reader returns the file's content raw, as an :class:`AnnotationSet` (:mod:`.types`): nothing clipped,
de-duplicated or dropped; cleaning is an explicit, reported step of ``tad prepare``.

One module per dataset, as ActionFormer keeps one file per dataset; each module's docstring says what
its files look like:

======================================================  ==================================================
format (:class:`AnnotationFormat`)                      reader module
======================================================  ==================================================
``activitynet-json``, ``activitynet-bsn``               :mod:`.activitynet` (ActivityNet-style JSON of
                                                        ActivityNet, ActionFormer, OpenTAD, a prepared
                                                        dataset's manifest; BSN's ActivityNet copy)
``thumos14-txt``                                        :mod:`.thumos14` (official per-class text files)
``charades-csv``                                        :mod:`.charades`
``multithumos-json``                                    :mod:`.multithumos`
``epic-kitchens-verb``, ``epic-kitchens-noun``          :mod:`.epic_kitchens`
``custom-csv``, ``custom-json``                         :mod:`.custom` (the schema of ``tad prepare custom``)
======================================================  ==================================================

Class lists and video lists (one name per line) are read by :mod:`.lists`; the JSON, CSV and field
parsing that the readers share is in :mod:`._fields`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tadcli.data.annotations._fields import load_json
from tadcli.data.annotations.activitynet import read_activitynet_bsn, read_activitynet_json
from tadcli.data.annotations.charades import read_charades
from tadcli.data.annotations.custom import read_custom_csv, read_custom_json
from tadcli.data.annotations.detect import detect_annotation_format
from tadcli.data.annotations.epic_kitchens import read_epic_kitchens_nouns, read_epic_kitchens_verbs
from tadcli.data.annotations.lists import read_class_list, read_video_list
from tadcli.data.annotations.multithumos import read_multithumos
from tadcli.data.annotations.thumos14 import read_thumos14_txt
from tadcli.data.annotations.types import (
    AMBIGUOUS_LABEL,
    BSN_VIDEO_PREFIX,
    DATASET_FORMATS,
    AnnotationFormat,
    AnnotationSet,
    FormatRules,
    Instance,
    VideoAnnotation,
    bsn_prefix_variants,
    other_bsn_spelling,
    strip_video_extension,
    without_bsn_prefix,
)
from tadcli.errors import AnnotationError

__all__ = [
    "ANNOTATION_FORMATS",
    "AMBIGUOUS_LABEL",
    "BSN_VIDEO_PREFIX",
    "DATASET_FORMATS",
    "READERS",
    "AnnotationFormat",
    "FormatRules",
    "Instance",
    "VideoAnnotation",
    "AnnotationSet",
    "read_annotations",
    "detect_annotation_format",
    "strip_video_extension",
    "without_bsn_prefix",
    "bsn_prefix_variants",
    "other_bsn_spelling",
    "load_json",
    "read_class_list",
    "read_video_list",
]

ANNOTATION_FORMATS: tuple[AnnotationFormat, ...] = tuple(AnnotationFormat)

# format -> reader of a path; the readers of formats that take a class list (``format.rules.takes_class_list``)
# also take it, as ``classes_override``
READERS: dict[AnnotationFormat, Callable[..., AnnotationSet]] = {
    AnnotationFormat.ACTIVITYNET_JSON: read_activitynet_json,
    AnnotationFormat.THUMOS14_TXT: read_thumos14_txt,
    AnnotationFormat.ACTIVITYNET_BSN: read_activitynet_bsn,
    AnnotationFormat.CHARADES_CSV: read_charades,
    AnnotationFormat.MULTITHUMOS_JSON: read_multithumos,
    AnnotationFormat.EPIC_KITCHENS_VERB: read_epic_kitchens_verbs,
    AnnotationFormat.EPIC_KITCHENS_NOUN: read_epic_kitchens_nouns,
    AnnotationFormat.CUSTOM_CSV: read_custom_csv,
    AnnotationFormat.CUSTOM_JSON: read_custom_json,
}


def read_annotations(
    path: str | Path,
    format: AnnotationFormat | str | None = None,
    *,
    class_list: str | Path | None = None,
) -> AnnotationSet:
    """Read an annotation file (or directory) in one of the :class:`AnnotationFormat` formats.

    Args:
        path: the annotation file, or the directory the dataset's owners distribute.
        format: an :class:`AnnotationFormat` (or its value); detected from the content when ``None``.
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
    try:
        format = AnnotationFormat(format)
    except ValueError:
        raise AnnotationError(
            f"{path}: unknown annotation format {format!r}; expected one of {', '.join(ANNOTATION_FORMATS)}"
        ) from None
    if class_list is None:
        return READERS[format](path)
    classes_override = read_class_list(class_list)
    if not format.rules.takes_class_list:
        raise AnnotationError(
            f"{class_list}: a class list file is not used by format {format.value!r} (it has its own)"
        )
    return READERS[format](path, classes_override=classes_override)

"""Video-level classifier files: the class scores that label a class-agnostic detector's segments.

ActivityNet's class-agnostic AdaTAD presets detect actions without naming them; an external classifier
scores the 200 classes of each whole video and its top-k classes label the segments (spec §5.5,
:func:`tadcli.model.postprocess.label_with_video_classifier`). The files are those OpenTAD reads, e.g.
CUHK's ``cuhk_val_simp_7.json`` or the InternVideo results::

    {"results": {"<video id>": [score of class 0, score of class 1, ...]},
     "class": ["<name of class 0>", ...]}            # or "classes"

Video ids are the dataset's (ActivityNet: YouTube ids, without the ``v_`` file prefix). Scores are
finite and non-negative (probabilities); the file's class order may differ from the dataset's, the
scores are reordered to it. Every problem is an :class:`~tadcli.errors.AnnotationError` naming the file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from tadcli.data.annotations import BSN_VIDEO_PREFIX, load_json, without_bsn_prefix
from tadcli.errors import AnnotationError

_EXAMPLES = 3


def read_video_classifier(
    path: str | Path, classes: Sequence[str], video_ids: Iterable[str] | None = None
) -> dict[str, torch.Tensor]:
    """Read a video-level classifier file and check it against the dataset.

    Args:
        path: the classifier JSON.
        classes: the dataset's class list (class index = position), e.g. a prepared dataset's ``classes``.
        video_ids: when given, every one of these videos must have scores (ids with or without ``v_``).

    Returns:
        video id (as in the file) -> float32 [len(classes)] scores in the dataset's class order.

    Raises:
        AnnotationError: the file is missing or malformed, its class list is not the dataset's
            (missing and extra names listed), a video's scores are not one finite non-negative number
            per class, or a video of ``video_ids`` has no scores.
    """
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: video classifier file not found")
    content = load_json(path)
    if not isinstance(content, dict) or not isinstance(content.get("results"), dict):
        raise AnnotationError(
            f'{path}: expected a video classifier file {{"results": {{video: [scores]}}, "class": [...]}}'
        )
    file_classes = _file_classes(content, path)
    column_of_class = _columns_in_dataset_order(file_classes, classes, path)  # [K] file column of dataset class k
    scores = {}
    for video_id, values in content["results"].items():
        row = _score_row(values, len(file_classes), f"{path}: video {video_id!r}")
        scores[video_id] = torch.from_numpy(row[column_of_class]).float()
    if video_ids is not None:
        missing = [video for video in video_ids if _lookup_key(scores, video) is None]
        if missing:
            examples = ", ".join(repr(video) for video in missing[:_EXAMPLES])
            raise AnnotationError(f"{path}: no scores for {len(missing)} of the evaluated videos (e.g. {examples})")
    return scores


def video_class_scores(scores: Mapping[str, torch.Tensor], video_id: str) -> torch.Tensor:
    """The class scores of one video, found with or without the ``v_`` file prefix.

    Raises:
        AnnotationError: the classifier has no scores for this video.
    """
    key = _lookup_key(scores, video_id)
    if key is None:
        raise AnnotationError(f"the video classifier has no scores for video {video_id!r}")
    return scores[key]


def _lookup_key(scores: Mapping[str, torch.Tensor], video_id: str) -> str | None:
    bare = without_bsn_prefix(video_id)  # ActivityNet ids: file names have the prefix, classifier files may not
    return next((key for key in (video_id, bare, BSN_VIDEO_PREFIX + bare) if key in scores), None)


def _file_classes(content: dict, path: Path) -> list[str]:
    named = {key: content[key] for key in ("class", "classes") if key in content}
    if not named:
        raise AnnotationError(f"{path}: no class list: expected a 'class' or 'classes' list of class names")
    if len(named) == 2 and named["class"] != named["classes"]:
        raise AnnotationError(f"{path}: 'class' and 'classes' are both given and differ; keep one")
    names = next(iter(named.values()))
    if not isinstance(names, list) or not all(isinstance(name, str) and name for name in names):
        raise AnnotationError(f"{path}: the class list must be a list of class names")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise AnnotationError(f"{path}: class names listed twice: {duplicates[:_EXAMPLES]}")
    return names


def _columns_in_dataset_order(file_classes: list[str], classes: Sequence[str], path: Path) -> np.ndarray:
    column = {name: index for index, name in enumerate(file_classes)}
    missing = [name for name in classes if name not in column]
    extra = [name for name in file_classes if name not in set(classes)]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} dataset classes have no scores (e.g. {missing[:_EXAMPLES]})")
        if extra:
            parts.append(f"{len(extra)} of its classes are not dataset classes (e.g. {extra[:_EXAMPLES]})")
        raise AnnotationError(
            f"{path}: its {len(file_classes)} classes are not the dataset's {len(classes)}: {'; '.join(parts)}"
        )
    return np.array([column[name] for name in classes], dtype=np.int64)


def _score_row(values: object, num_classes: int, where: str) -> np.ndarray:
    if not isinstance(values, list) or len(values) != num_classes:
        size = len(values) if isinstance(values, list) else type(values).__name__
        raise AnnotationError(f"{where}: expected a list of {num_classes} class scores, got {size}")
    if not all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in values):
        raise AnnotationError(f"{where}: class scores must be numbers")
    row = np.array(values, dtype=np.float64)  # [K_file]
    bad = np.flatnonzero(~np.isfinite(row) | (row < 0))
    if bad.size:
        raise AnnotationError(f"{where}: score {values[bad[0]]!r} of class index {bad[0]} is not a finite number >= 0")
    return row

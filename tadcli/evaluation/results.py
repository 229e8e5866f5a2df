"""Reading detection results files in the ActivityNet results format.

The format written by the official ActivityNet challenge, OpenTAD, ActionFormer's JSON export and
``tad detect --json``::

    {"version": "...",                          # optional, ignored
     "results": {"<video id>": [{"segment": [start_s, end_s], "label": "<class name>", "score": 0.93}, ...]},
     "external_data": {...}}                     # optional, ignored

Rules: ``segment`` is two finite numbers; an inverted one (``end < start``) is read as written and
scored as the official evaluator scores it (:mod:`tadcli.evaluation.detection_map`), or is an error
with ``strict=True``; a zero-length one is accepted. ``label`` is a non-empty string, used as written;
``score`` a finite number. Extra keys in an entry are ignored. Every error names the file, the video and the entry
index: ``results.json: video 'abc': results[3]: segment: end 1.0 < start 2.0``.
"""

from __future__ import annotations

import json
import math
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from tadcli.errors import AnnotationError
from tadcli.evaluation.detection_map import DetectionTable


def read_detection_results(path: str | Path, strict: bool = False) -> DetectionTable:
    """Read an ActivityNet-format results file into :class:`DetectionTable`, in file order.

    Args:
        path: the results JSON file.
        strict: an inverted segment (``end < start``) is an error instead of a detection.

    Returns:
        One row per entry, videos in file order and entries in list order (this order breaks
        score ties in the evaluation).

    Raises:
        AnnotationError: the file is missing, not JSON, not in the results format, or an entry is
            malformed (the message names file, video and entry index); with ``strict``, an inverted
            segment too.
    """
    path = Path(path)
    content = _load_json(path)
    if not isinstance(content, dict) or "results" not in content:
        hint = " (this looks like an annotation file: it has 'database')" if isinstance(content, dict) and "database" in content else ""
        raise AnnotationError(f"{path}: expected a results file {{\"results\": {{video: [...]}}}}{hint}")
    results = content["results"]
    if not isinstance(results, dict):
        raise AnnotationError(f"{path}: 'results' must map video ids to lists of detections, got {type(results).__name__}")
    return results_columns(results, path, strict)


def results_columns(results: dict, source: str | Path, strict: bool = False) -> DetectionTable:
    """The ``results`` mapping of a results file (``{video: [{"segment", "label", "score"}]}``) as
    :class:`DetectionTable`, in order; ``source`` names it in errors (see :func:`read_detection_results`)."""
    detections = _well_formed_columns(results, strict)
    return detections if detections is not None else _checked_columns(results, source, strict)


def _well_formed_columns(results: dict, strict: bool) -> DetectionTable | None:
    """The detections of a well-formed file, checked in bulk; ``None`` at the first doubt.

    The fast path for large files: columns are gathered with list comprehensions and checked with
    set, numpy and C-level scans. Anything unusual sends the file to :func:`_checked_columns`,
    which finds and names the bad entry (or accepts what this path was too strict about).
    """
    video_ids: list[str] = []
    segments: list = []
    labels: list = []
    scores: list = []
    try:
        for video_id, entries in results.items():
            if type(entries) is not list:
                return None
            video_ids.extend([video_id] * len(entries))
            segments.extend([entry["segment"] for entry in entries])
            labels.extend([entry["label"] for entry in entries])
            scores.extend([entry["score"] for entry in entries])
    except (KeyError, TypeError):
        return None
    if set(map(type, segments)) - {list} or set(map(len, segments)) - {2}:
        return None
    times = list(chain.from_iterable(segments))  # [2M]: start, end, start, end, ...
    if set(map(type, times)) - {int, float} or set(map(type, scores)) - {int, float} or set(map(type, labels)) - {str}:
        return None
    if "" in labels:
        return None
    bounds = np.array(times, dtype=np.float64).reshape(-1, 2)  # [2M] -> [M, 2]
    score_array = np.array(scores, dtype=np.float64)
    if not (np.isfinite(bounds).all() and np.isfinite(score_array).all()):
        return None
    if strict and not (bounds[:, 1] >= bounds[:, 0]).all():
        return None
    return DetectionTable(
        video_ids=video_ids,
        starts=np.ascontiguousarray(bounds[:, 0]),
        ends=np.ascontiguousarray(bounds[:, 1]),
        labels=labels,
        scores=score_array,
    )


def _checked_columns(results: dict, path: str | Path, strict: bool) -> DetectionTable:
    """The detections, entry by entry, raising :class:`AnnotationError` at the first bad one."""
    video_ids: list[str] = []
    starts: list[float] = []
    ends: list[float] = []
    labels: list[str] = []
    scores: list[float] = []
    for video_id, entries in results.items():
        if not isinstance(entries, list):
            raise AnnotationError(f"{path}: video {video_id!r}: expected a list of detections, got {type(entries).__name__}")
        for index, entry in enumerate(entries):
            start, end, label, score = _parse_entry(entry, f"{path}: video {video_id!r}: results[{index}]", strict)
            starts.append(start)
            ends.append(end)
            labels.append(label)
            scores.append(score)
        video_ids.extend([video_id] * len(entries))
    return DetectionTable(
        video_ids=video_ids,
        starts=np.array(starts, dtype=np.float64),
        ends=np.array(ends, dtype=np.float64),
        labels=labels,
        scores=np.array(scores, dtype=np.float64),
    )


def _parse_entry(entry: Any, where: str, strict: bool) -> tuple[float, float, str, float]:
    """(start, end, label, score) of one results entry, or an :class:`AnnotationError` naming ``where``."""
    if not isinstance(entry, dict):
        raise AnnotationError(f"{where}: expected an object with segment, label and score, got {entry!r}")
    missing = [key for key in ("segment", "label", "score") if key not in entry]
    if missing:
        raise AnnotationError(f"{where}: missing {', '.join(missing)} in {entry!r}")
    segment, label, score = entry["segment"], entry["label"], entry["score"]
    if not isinstance(segment, list) or len(segment) != 2 or not all(is_finite_number(t) for t in segment):
        raise AnnotationError(f"{where}: segment: expected [start, end] as two finite numbers, got {segment!r}")
    start, end = float(segment[0]), float(segment[1])
    if strict and end < start:
        raise AnnotationError(f"{where}: segment: end {segment[1]!r} < start {segment[0]!r} (--strict)")
    if not isinstance(label, str) or not label:
        raise AnnotationError(f"{where}: label: expected a class name (non-empty string), got {label!r}")
    if not is_finite_number(score):
        raise AnnotationError(f"{where}: score: expected a finite number, got {score!r}")
    return start, end, label, float(score)


def is_finite_number(value: Any) -> bool:
    """A JSON number (not a bool) that is finite."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond the float range
        return False


def _load_json(path: Path) -> Any:
    if not path.is_file():
        raise AnnotationError(f"{path}: results file not found")
    try:
        with path.open("rb") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise AnnotationError(f"{path}: invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}") from None
    except UnicodeDecodeError as error:
        raise AnnotationError(f"{path}: not a UTF-8 JSON file ({error.reason} at byte {error.start})") from None
    except OSError as error:
        raise AnnotationError(f"{path}: cannot read: {error.strerror}") from None

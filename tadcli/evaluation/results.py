"""Reading detection results files in the ActivityNet results format.

The format written by the official ActivityNet challenge, OpenTAD, ActionFormer's JSON export and
``tad detect --json``::

    {"version": "...",                          # optional, ignored
     "results": {"<video id>": [{"segment": [start_s, end_s], "label": "<class name>", "score": 0.93}, ...]},
     "external_data": {...}}                     # optional, ignored

Rules: ``segment`` is two finite numbers with ``end >= start`` (an inverted segment is an error, a
zero-length one is accepted); ``label`` a non-empty string, used as written; ``score`` a finite
number. Extra keys in an entry are ignored. Every error names the file, the video and the entry
index: ``results.json: video 'abc': results[3]: segment: end 1.0 < start 2.0``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from tadcli.errors import AnnotationError
from tadcli.evaluation.detection_map import Detections


def read_detection_results(path: str | Path) -> Detections:
    """Read an ActivityNet-format results file into :class:`Detections`, in file order.

    Args:
        path: the results JSON file.

    Returns:
        One row per entry, videos in file order and entries in list order (this order breaks
        score ties in the evaluation).

    Raises:
        AnnotationError: the file is missing, not JSON, not in the results format, or an entry is
            malformed (the message names file, video and entry index).
    """
    path = Path(path)
    content = _load_json(path)
    if not isinstance(content, dict) or "results" not in content:
        hint = " (this looks like an annotation file: it has 'database')" if isinstance(content, dict) and "database" in content else ""
        raise AnnotationError(f"{path}: expected a results file {{\"results\": {{video: [...]}}}}{hint}")
    results = content["results"]
    if not isinstance(results, dict):
        raise AnnotationError(f"{path}: 'results' must map video ids to lists of detections, got {type(results).__name__}")

    video_ids: list[str] = []
    starts: list[float] = []
    ends: list[float] = []
    labels: list[str] = []
    scores: list[float] = []
    for video_id, entries in results.items():
        if not isinstance(entries, list):
            raise AnnotationError(f"{path}: video {video_id!r}: expected a list of detections, got {type(entries).__name__}")
        for index, entry in enumerate(entries):
            start, end, label, score = _parse_entry(entry, f"{path}: video {video_id!r}: results[{index}]")
            starts.append(start)
            ends.append(end)
            labels.append(label)
            scores.append(score)
        video_ids.extend([video_id] * len(entries))
    return Detections(
        video_ids=video_ids,
        starts=np.array(starts, dtype=np.float64),
        ends=np.array(ends, dtype=np.float64),
        labels=labels,
        scores=np.array(scores, dtype=np.float64),
    )


def _parse_entry(entry: Any, where: str) -> tuple[float, float, str, float]:
    """(start, end, label, score) of one results entry, or an :class:`AnnotationError` naming ``where``."""
    if not isinstance(entry, dict):
        raise AnnotationError(f"{where}: expected an object with segment, label and score, got {entry!r}")
    missing = [key for key in ("segment", "label", "score") if key not in entry]
    if missing:
        raise AnnotationError(f"{where}: missing {', '.join(missing)} in {entry!r}")
    segment, label, score = entry["segment"], entry["label"], entry["score"]
    if not isinstance(segment, list) or len(segment) != 2 or not all(_is_finite_number(t) for t in segment):
        raise AnnotationError(f"{where}: segment: expected [start, end] as two finite numbers, got {segment!r}")
    start, end = float(segment[0]), float(segment[1])
    if end < start:
        raise AnnotationError(f"{where}: segment: end {segment[1]!r} < start {segment[0]!r}")
    if not isinstance(label, str) or not label:
        raise AnnotationError(f"{where}: label: expected a class name (non-empty string), got {label!r}")
    if not _is_finite_number(score):
        raise AnnotationError(f"{where}: score: expected a finite number, got {score!r}")
    return start, end, label, float(score)


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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

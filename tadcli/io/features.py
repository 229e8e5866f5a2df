"""Backbone features of ``tad extract``: one array file per video and a JSON sidecar that says what it is.

Per video, in ``out_dir``: ``<video_id>.npy`` (or ``<video_id>.safetensors``, tensor ``"features"``), a
float32 array [T, C] (T features in time order, C channels), and ``<video_id>.json``::

    {"video_id": "a", "file": "a.npy", "format": "npy", "dtype": "float32", "layout": "[T, C]",
     "num_features": 192, "feature_dim": 384,
     "fps": 30.0, "frame_stride": 2, "snippet_stride": 4, "window_frames": 768, "image_size": 160,
     "backbone": "small-768", "weights": "vit-s-k400.pth", ...,          # what the caller states
     "feature_seconds": [0.0, 0.1333],                                   # [time of feature 0, step]
     "time_formula": "seconds(i) = feature_seconds[0] + i * feature_seconds[1] ..."}

Time of feature ``i``: ``(i * snippet_stride) / fps`` seconds, the time the detector gives to step ``i``
of its grid over the whole video (spec §5.2, :func:`tadcli.data.sampling.grid_to_seconds` with window
start 0: no half-snippet centering). Feature ``i`` summarises the snippet of frames
``[i * snippet_stride, (i + 1) * snippet_stride)``, sampled every ``frame_stride`` frames. So
``feature_seconds = [0.0, snippet_stride / fps]``, computed here, never passed in. Frames are those of the
reader's constant-rate timeline (:mod:`tadcli.data.timeline`): frame ``k`` is the picture shown ``k / fps``
seconds into the video, so these are real presentation times, also for a variable-frame-rate video.

Both files are written atomically, the array first: a sidecar names a complete array.
"""

from __future__ import annotations

import json
import math
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save

from tadcli.errors import OutputError
from tadcli.io.atomic import atomic_output, write_bytes_atomic
from tadcli.io.jsonio import write_json_atomic


class FeatureFormat(StrEnum):
    """The array file formats of a features file (``tad extract --format``)."""

    NPY = "npy"
    SAFETENSORS = "safetensors"


FEATURE_FORMATS = tuple(FeatureFormat)
SAFETENSORS_KEY = "features"
# What the caller states about the features (the sidecar may hold more, e.g. the preset or the video path).
STATED_KEYS = ("fps", "frame_stride", "snippet_stride", "window_frames", "image_size", "backbone", "weights")
# What write_features computes from the array and the strides.
DERIVED_KEYS = ("video_id", "file", "format", "dtype", "layout", "num_features", "feature_dim", "feature_seconds", "time_formula")
TIME_FORMULA = (
    "seconds(i) = feature_seconds[0] + i * feature_seconds[1] = (i * snippet_stride) / fps; "
    "feature i covers frames [i * snippet_stride, (i + 1) * snippet_stride), frame k being the picture "
    "shown k / fps seconds into the video (real presentation times, also at a variable frame rate)"
)


def write_features(
    out_dir: str | Path, video_id: str, features: np.ndarray, sidecar: dict[str, Any], format: str = "npy"
) -> Path:
    """Write the features of one video and their sidecar ``<video_id>.json`` into ``out_dir``.

    Args:
        out_dir: the folder (created if missing).
        video_id: the video's id, used as the file name (the video file's stem).
        features: float [T, C] (cast to float32).
        sidecar: at least :data:`STATED_KEYS`, JSON-serialisable; ``fps`` and ``snippet_stride``
            positive numbers. Must not hold :data:`DERIVED_KEYS`.
        format: ``npy`` or ``safetensors``.

    Returns:
        The path of the array file.

    Raises:
        ValueError: a bad format, video id, array or sidecar (a caller's mistake).
    """
    if format not in FEATURE_FORMATS:
        raise ValueError(f"unknown features format {format!r}; expected one of {', '.join(FEATURE_FORMATS)}")
    if not video_id or Path(video_id).name != video_id or video_id.startswith("."):
        raise ValueError(f"video id {video_id!r} is not a plain file name")
    given = np.asarray(features)
    if given.ndim != 2 or not np.issubdtype(given.dtype, np.floating):
        raise ValueError(f"features must be a float array [T, C], got {given.dtype} {list(given.shape)}")
    array = np.ascontiguousarray(given, dtype=np.float32)
    out_dir = Path(out_dir)
    path = out_dir / f"{video_id}.{format}"
    content = {**_checked_sidecar(sidecar), **_derived(video_id, path.name, format, array, sidecar)}
    if format == "npy":
        with atomic_output(path) as handle:
            np.save(handle, array, allow_pickle=False)
    else:
        write_bytes_atomic(path, save({SAFETENSORS_KEY: array}))
    write_json_atomic(out_dir / f"{video_id}.json", content)
    return path


def read_features(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """The float32 [T, C] features of ``path`` (``.npy`` or ``.safetensors``) and their sidecar.

    Raises:
        OutputError: the file or its sidecar is missing or unreadable, or they disagree on the shape.
    """
    path = Path(path)
    sidecar_path = path.with_suffix(".json")
    if not path.is_file():
        raise OutputError(f"{path}: features file not found")
    if not sidecar_path.is_file():
        raise OutputError(f"{path}: its sidecar {sidecar_path.name} is missing")
    try:
        sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise OutputError(f"{sidecar_path}: not a JSON sidecar ({error})") from None
    array = _load_array(path)
    expected = [sidecar.get("num_features"), sidecar.get("feature_dim")] if isinstance(sidecar, dict) else None
    if array.ndim != 2 or list(array.shape) != expected:
        raise OutputError(f"{path}: array of shape {list(array.shape)}, its sidecar says [num_features, feature_dim] = {expected}")
    return array, sidecar


def feature_times(sidecar: dict[str, Any]) -> np.ndarray:
    """float64 [T] seconds of every feature, from the sidecar's ``feature_seconds`` and ``num_features``."""
    start, step = sidecar["feature_seconds"]
    return start + step * np.arange(sidecar["num_features"], dtype=np.float64)


def _checked_sidecar(sidecar: dict[str, Any]) -> dict[str, Any]:
    missing = [key for key in STATED_KEYS if key not in sidecar]
    if missing:
        raise ValueError(f"feature sidecar misses {', '.join(missing)}")
    derived = [key for key in DERIVED_KEYS if key in sidecar]
    if derived:
        raise ValueError(f"feature sidecar must not state {', '.join(derived)}: they are computed from the array and strides")
    for key in ("fps", "snippet_stride"):
        value = sidecar[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"feature sidecar: {key} must be a positive number, got {value!r}")
    return dict(sidecar)


def _derived(video_id: str, file: str, format: str, array: np.ndarray, sidecar: dict[str, Any]) -> dict[str, Any]:
    num_features, feature_dim = array.shape  # [T, C]
    return {
        "video_id": video_id,
        "file": file,
        "format": format,
        "dtype": "float32",
        "layout": "[T, C]",
        "num_features": num_features,
        "feature_dim": feature_dim,
        "feature_seconds": [0.0, sidecar["snippet_stride"] / sidecar["fps"]],
        "time_formula": TIME_FORMULA,
    }


def _load_array(path: Path) -> np.ndarray:
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if path.suffix == ".safetensors":
            return load_file(path)[SAFETENSORS_KEY]
    except (ValueError, OSError, SafetensorError, KeyError) as error:
        raise OutputError(f"{path}: not a readable features file ({error})") from None
    raise OutputError(f"{path}: unknown features file type {path.suffix!r}; expected .npy or .safetensors")

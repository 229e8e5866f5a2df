"""EPIC-Kitchens-100 action CSV files (formats ``epic-kitchens-verb`` and ``epic-kitchens-noun``).

``path`` is ``EPIC_100_train.csv`` / ``EPIC_100_validation.csv`` (subsets ``train`` / ``val``), or a
directory holding them. The format picks the task. Labels are the class ``key`` of
``EPIC_100_verb_classes.csv`` / ``EPIC_100_noun_classes.csv`` (required, beside the files), e.g. ``take``
for verb_class 0; classes are all keys in id order (97 verbs, 300 nouns). Durations and fps come from
``EPIC_100_video_info.csv`` when present. ``hh:mm:ss.ff`` -> seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from tadcli.data.annotations._fields import numeric_column, read_csv_table
from tadcli.data.annotations.types import AnnotationFormat, AnnotationSet, Instance, VideoAnnotation
from tadcli.errors import AnnotationError

if TYPE_CHECKING:  # pandas is imported where a table is read: 'tad --help' imports this package
    import pandas as pd

_EPIC_SUBSETS = {"train": "train", "validation": "val"}
_TASK_FORMATS = {"verb": AnnotationFormat.EPIC_KITCHENS_VERB, "noun": AnnotationFormat.EPIC_KITCHENS_NOUN}


def epic_csv_files(directory: Path) -> list[Path]:
    """``EPIC_100_train.csv`` and ``EPIC_100_validation.csv`` where ``directory`` holds them."""
    return [
        directory / f"EPIC_100_{name}.csv" for name in _EPIC_SUBSETS if (directory / f"EPIC_100_{name}.csv").is_file()
    ]


def read_epic_kitchens_verbs(path: Path) -> AnnotationSet:
    """Read EPIC-Kitchens-100 actions labelled by their verb class."""
    return _read_epic_kitchens(path, "verb")


def read_epic_kitchens_nouns(path: Path) -> AnnotationSet:
    """Read EPIC-Kitchens-100 actions labelled by their noun class."""
    return _read_epic_kitchens(path, "noun")


def _read_epic_kitchens(path: Path, task: Literal["verb", "noun"]) -> AnnotationSet:
    files = epic_csv_files(path) if path.is_dir() else [path]
    if not files:
        raise AnnotationError(f"{path}: no EPIC_100_train.csv or EPIC_100_validation.csv found")
    directory = files[0].parent
    class_file = directory / f"EPIC_100_{task}_classes.csv"
    if not class_file.is_file():
        raise AnnotationError(f"{class_file}: missing; EPIC-Kitchens {task} labels are named by this class list")
    class_table = read_csv_table(class_file, ("id", "key"))
    class_ids = numeric_column(class_table, "id", class_file)
    names = dict(zip(class_table["id"], class_table["key"], strict=True))
    info_file = directory / "EPIC_100_video_info.csv"
    info: dict[str, tuple[float, float]] = {}
    if info_file.is_file():
        info_table = read_csv_table(info_file, ("video_id", "duration", "fps"))
        durations = numeric_column(info_table, "duration", info_file).tolist()
        frame_rates = numeric_column(info_table, "fps", info_file).tolist()
        info = dict(zip(info_table["video_id"], zip(durations, frame_rates, strict=True), strict=True))
    class_column = f"{task}_class"
    videos: dict[str, VideoAnnotation] = {}
    for file in files:
        subset = _EPIC_SUBSETS.get(file.stem.removeprefix("EPIC_100_"))
        if subset is None:
            raise AnnotationError(
                f"{file}: cannot tell the subset from the name; expected EPIC_100_train.csv or EPIC_100_validation.csv"
            )
        table = read_csv_table(file, ("video_id", "start_timestamp", "stop_timestamp", class_column))
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
    return AnnotationSet(videos=videos, classes=classes, format=_TASK_FORMATS[task])


def _epic_seconds(table: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    """``hh:mm:ss.ff`` timestamps -> float64 seconds [N]; a malformed one is an error naming its line."""
    import pandas as pd

    parts = table[column].str.split(":", expand=True).reindex(columns=range(4))  # [N, 4]; column 3: too many parts
    hms = parts.iloc[:, :3].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)  # [N, 3]
    valid = np.isfinite(hms).all(axis=1) & parts[3].isna().to_numpy()
    if not valid.all():
        bad = int(np.flatnonzero(~valid)[0])
        raise AnnotationError(
            f"{path}:{table.index[bad]}: {column}: expected hh:mm:ss.ff, got {table[column].iloc[bad]!r}"
        )
    return hms[:, 0] * 3600.0 + hms[:, 1] * 60.0 + hms[:, 2]

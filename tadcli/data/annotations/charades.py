"""Charades annotation CSV files (format ``charades-csv``).

``path`` is ``Charades_v1_train.csv`` / ``Charades_v1_test.csv`` (subsets ``training`` / ``testing``), or a
directory holding them; ``actions`` = ``cNNN start end;...``. Labels are class names from
``Charades_v1_classes.txt`` beside the files when present, else the ``cNNN`` codes.
"""

from __future__ import annotations

from pathlib import Path

from tadcli.data.annotations._fields import as_float, numeric_column, read_csv_table, sorted_labels
from tadcli.data.annotations.types import AnnotationFormat, AnnotationSet, Instance, VideoAnnotation
from tadcli.errors import AnnotationError

_CHARADES_SUBSETS = {"train": "training", "test": "testing"}


def charades_csv_files(directory: Path) -> list[Path]:
    """The ``Charades_v1_{train,test}.csv`` files in ``directory``, sorted."""
    return sorted(p for p in directory.glob("Charades_v1_*.csv") if _charades_subset(p) is not None)


def _charades_subset(file: Path) -> str | None:
    stem = file.stem.lower()
    return next((subset for key, subset in _CHARADES_SUBSETS.items() if stem.endswith(f"_{key}")), None)


def read_charades(path: Path) -> AnnotationSet:
    """Read a Charades CSV file, or the directory of both."""
    files = charades_csv_files(path) if path.is_dir() else [path]
    if not files:
        raise AnnotationError(f"{path}: no Charades_v1_train.csv or Charades_v1_test.csv found")
    class_file = files[0].parent / "Charades_v1_classes.txt"
    names = _read_charades_classes(class_file) if class_file.is_file() else None
    videos = {}
    for file in files:
        subset = _charades_subset(file)
        if subset is None:
            raise AnnotationError(
                f"{file}: cannot tell the subset from the name; expected Charades_v1_train.csv or Charades_v1_test.csv"
            )
        table = read_csv_table(file, ("id", "actions", "length"))
        lengths = numeric_column(table, "length", file)
        for (line, row), length in zip(table.iterrows(), lengths, strict=True):
            where = f"{file}:{line}: video {row['id']}"
            instances = []
            for item in filter(None, (part.strip() for part in row["actions"].split(";"))):
                fields = item.split()
                if len(fields) != 3:
                    raise AnnotationError(f"{where}: actions: expected 'cNNN start end', got {item!r}")
                code = fields[0]
                if names is not None and code not in names:
                    raise AnnotationError(f"{where}: actions: class {code!r} is not in {class_file}")
                label = names[code] if names is not None else code
                instances.append(
                    Instance(as_float(fields[1], f"{where}: start"), as_float(fields[2], f"{where}: end"), label)
                )
            if row["id"] in videos:
                raise AnnotationError(f"{where}: video listed twice")
            videos[row["id"]] = VideoAnnotation(row["id"], subset, float(length), None, None, instances)
    classes = list(names.values()) if names is not None else sorted_labels(videos.values())
    return AnnotationSet(videos=videos, classes=classes, format=AnnotationFormat.CHARADES_CSV)


def _read_charades_classes(file: Path) -> dict[str, str]:
    """``Charades_v1_classes.txt``: code -> class name, from lines ``cNNN Class name``."""
    names = {}
    for line_number, line in enumerate(file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        code, _, name = line.strip().partition(" ")
        if not name:
            raise AnnotationError(f"{file}:{line_number}: expected 'cNNN Class name', got {line!r}")
        names[code] = name.strip()
    return names

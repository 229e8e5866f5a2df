"""Parsing helpers of the annotation readers: JSON and CSV files, and fields checked one by one.

Every helper raises :class:`~tadcli.errors.AnnotationError` with a message that starts with ``where``
(the file, the line or video, the field), so that a malformed file is one line that names the value.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from tadcli.data.annotations.types import Instance, VideoAnnotation
from tadcli.errors import AnnotationError

if TYPE_CHECKING:  # pandas is imported where a table is read: 'tad --help' imports this package
    import pandas as pd


def load_json(path: Path) -> Any:
    """The content of a JSON file; a missing, unreadable or invalid file is an :class:`AnnotationError`."""
    try:
        with path.open("rb") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise AnnotationError(
            f"{path}: invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None
    except OSError as error:
        raise AnnotationError(f"{path}: cannot read: {error.strerror}") from None


def read_csv_header(path: Path) -> list[str]:
    """The stripped column names of a CSV file; an empty file is an error."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle), None)
    if not header:
        raise AnnotationError(f"{path}: empty CSV file (a header row is required)")
    return [column.strip() for column in header]


def read_csv_table(path: Path, required: Iterable[str] = ()) -> pd.DataFrame:
    """A CSV file with a header as a table of stripped strings, indexed by the line each row starts on.

    Raises:
        AnnotationError: the file is empty, a ``required`` column is missing, or a row has more or fewer
            fields than the header (naming the file, the line and the row).
    """
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [column.strip() for column in next(reader, None) or []]
        if not header:
            raise AnnotationError(f"{path}: empty CSV file (a header row is required)")
        lines, rows = [], []
        first_line = reader.line_num + 1
        for row in reader:
            if row and len(row) != len(header):
                raise AnnotationError(
                    f"{path}:{first_line}: {len(row)} fields where the header has {len(header)} "
                    f"({','.join(header)}): {','.join(row)!r}"
                )
            if row:  # csv gives [] for a blank line
                lines.append(first_line)
                rows.append([field.strip() for field in row])
            first_line = reader.line_num + 1
    missing = [column for column in required if column not in header]
    if missing:
        raise AnnotationError(f"{path}: missing column(s) {missing}; the header has {header}")
    import pandas as pd

    return pd.DataFrame(rows, columns=header, index=pd.Index(lines, name="line"), dtype=object)


def numeric_column(table: pd.DataFrame, column: str, path: Path, what: str = "") -> np.ndarray:
    """``table[column]`` as finite float64 [N]; the first other value is an error naming its line."""
    import pandas as pd

    values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        line = table.index[bad[0]]
        raise AnnotationError(
            f"{path}:{line}: {what}{column}: expected a finite number, got {table[column].iloc[bad[0]]!r}"
        )
    return values


def sorted_labels(videos: Iterable[VideoAnnotation]) -> list[str]:
    """The distinct labels of the videos' instances, sorted: the class list of files that name none."""
    return sorted({instance.label for video in videos for instance in video.instances})


def parse_instance(segment: Any, label: Any, where: str) -> Instance:
    """An :class:`Instance` from a ``[start, end]`` pair in seconds and a label."""
    if not isinstance(segment, (list, tuple)) or len(segment) != 2:
        raise AnnotationError(f"{where}: segment: expected [start, end] in seconds, got {segment!r}")
    return Instance(
        as_float(segment[0], f"{where}: start"),
        as_float(segment[1], f"{where}: end"),
        require_str(label, f"{where}: label"),
    )


def as_float(value: Any, where: str) -> float:
    """A finite number (a numeric string too; not a bool)."""
    if isinstance(value, bool):
        raise AnnotationError(f"{where}: expected a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise AnnotationError(f"{where}: expected a number, got {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise AnnotationError(f"{where}: expected a finite number, got {value!r}")
    return number


def as_int(value: Any, where: str) -> int:
    """A finite number without a fractional part."""
    number = as_float(value, where)
    if number != int(number):
        raise AnnotationError(f"{where}: expected an integer, got {value!r}")
    return int(number)


def optional_float(value: Any, where: str) -> float | None:
    """:func:`as_float`, with ``None`` for an absent or empty value."""
    return None if value is None or value == "" else as_float(value, where)


def optional_int(value: Any, where: str) -> int | None:
    """:func:`as_int`, with ``None`` for an absent or empty value."""
    return None if value is None or value == "" else as_int(value, where)


def require_str(value: Any, where: str) -> str:
    """A non-empty string, stripped."""
    if not isinstance(value, str) or not value.strip():
        raise AnnotationError(f"{where}: expected a non-empty string, got {value!r}")
    return value.strip()


def require_mapping(value: Any, where: str) -> dict:
    """A JSON object."""
    if not isinstance(value, dict):
        raise AnnotationError(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value


def require_list(value: Any, where: str) -> list:
    """A JSON list."""
    if not isinstance(value, list):
        raise AnnotationError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def require_class_names(value: Any, where: str) -> list[str]:
    """A JSON list of class names (the ``"classes"`` key of a manifest or a custom JSON file)."""
    return [require_str(name, f"{where}[{i}]") for i, name in enumerate(require_list(value, where))]

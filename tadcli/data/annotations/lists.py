"""Plain list files that come with annotations: class lists and lists of videos.

* A class list is one class name per line, line i naming class index i (a prepared dataset's
  ``classes.txt``, OpenTAD's ``category_idx.txt``, ``tad prepare --class-list``, ``tad detect --classes``).
  A dataset whose list ships with tad (:data:`~tadcli.config.profiles.SHIPPED_CLASS_LISTS`: ``thumos14``)
  may be named instead of a file, when no file of that name exists.
* A video list is a JSON list of video ids (OpenTAD's ActivityNet ``blocked.json``) or a text file with
  one id per line (``missing_files.txt``).

Blank lines are ignored in both.
"""

from __future__ import annotations

from pathlib import Path

from tadcli.config.profiles import SHIPPED_CLASS_LISTS
from tadcli.data.annotations._fields import load_json
from tadcli.errors import AnnotationError


def read_class_list(path: str | Path) -> list[str]:
    """Class names, one per line (class index = line number), or the shipped list of a dataset name.

    Raises:
        AnnotationError: the file is missing, empty or repeats a name.
    """
    path = Path(path)
    if not path.exists() and str(path) in SHIPPED_CLASS_LISTS:
        return list(SHIPPED_CLASS_LISTS[str(path)])
    if not path.is_file():
        shipped = ", ".join(SHIPPED_CLASS_LISTS)
        raise AnnotationError(
            f"{path}: class list not found (a file with one class name per line, or a dataset: {shipped})"
        )
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        raise AnnotationError(f"{path}: the class list is empty")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise AnnotationError(f"{path}: the class list repeats {', '.join(repeated)}")
    return names


def read_video_list(path: str | Path) -> list[str]:
    """Video ids from a JSON list (OpenTAD's ActivityNet ``blocked.json``) or a text file, one per line
    (``missing_files.txt``); blank lines are ignored.

    Raises:
        AnnotationError: the file is missing, or its JSON is not a list of non-empty strings.
    """
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: video list file not found")
    if path.suffix.lower() == ".json":
        content = load_json(path)
        if not isinstance(content, list) or not all(isinstance(v, str) and v.strip() for v in content):
            raise AnnotationError(f"{path}: expected a JSON list of video ids")
        return [video.strip() for video in content]
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

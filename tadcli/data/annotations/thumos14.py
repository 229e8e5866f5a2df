"""THUMOS14's official per-class annotation text files (format ``thumos14-txt``).

``path`` is a directory of the files ``<Class>_val.txt`` / ``<Class>_test.txt`` (lines ``video start
end``), directly inside it or in its sub-directories (``annotations_val/``, ``annotations_test/``).
Subsets: ``validation`` (``*_val.txt``) and ``test`` (``*_test.txt``). ``Ambiguous`` rows are kept with
label ``Ambiguous``, which is not in ``classes``.
"""

from __future__ import annotations

import re
from pathlib import Path

from tadcli.data.annotations._fields import as_float
from tadcli.data.annotations.types import AMBIGUOUS_LABEL, AnnotationFormat, AnnotationSet, Instance, VideoAnnotation
from tadcli.errors import AnnotationError

_THUMOS_TXT_NAME = re.compile(r"^(?P<label>.+)_(?P<split>val|test)\.txt$")
_THUMOS_TXT_SUBSETS = {"val": "validation", "test": "test"}


def thumos_txt_files(directory: Path) -> list[Path]:
    """The per-class files in ``directory`` and its sub-directories, sorted."""
    candidates = list(directory.glob("*.txt")) + list(directory.glob("*/*.txt"))
    return sorted(p for p in candidates if _THUMOS_TXT_NAME.match(p.name))


def read_thumos14_txt(path: Path) -> AnnotationSet:
    """Read the directory of THUMOS14 per-class files."""
    if not path.is_dir():
        raise AnnotationError(
            f"{path}: thumos14-txt expects the directory of '<Class>_val.txt' / '<Class>_test.txt' files"
        )
    files = thumos_txt_files(path)
    if not files:
        raise AnnotationError(f"{path}: no THUMOS14 '<Class>_val.txt' or '<Class>_test.txt' files found")
    seen_names: dict[str, Path] = {}
    videos: dict[str, VideoAnnotation] = {}
    classes = set()
    for file in files:
        if file.name in seen_names:
            raise AnnotationError(f"{file}: the same class file also exists at {seen_names[file.name]}")
        seen_names[file.name] = file
        match = _THUMOS_TXT_NAME.match(file.name)
        label, subset = match["label"], _THUMOS_TXT_SUBSETS[match["split"]]
        if label != AMBIGUOUS_LABEL:
            classes.add(label)
        for line_number, line in enumerate(file.read_text().splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            where = f"{file}:{line_number}"
            if len(fields) != 3:
                raise AnnotationError(f"{where}: expected 'video start end', got {line.strip()!r}")
            video_id = fields[0]
            video = videos.setdefault(video_id, VideoAnnotation(video_id, subset, None, None, None, []))
            if video.subset != subset:
                raise AnnotationError(f"{where}: video {video_id} is in both subsets {video.subset!r} and {subset!r}")
            video.instances.append(
                Instance(as_float(fields[1], f"{where}: start"), as_float(fields[2], f"{where}: end"), label)
            )
    return AnnotationSet(videos=videos, classes=sorted(classes), format=AnnotationFormat.THUMOS14_TXT)

"""JSON files written atomically: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tadcli.io.atomic import write_text_atomic


def write_json_atomic(path: str | Path, content: Any, indent: int | None = 2) -> Path:
    """Write ``content`` as JSON (and a final newline) to ``path`` in one step (:mod:`tadcli.io.atomic`).

    Args:
        path: destination file.
        content: JSON-serialisable data (``allow_nan=False``: NaN or infinity is a ``ValueError``,
            raised before anything is written).
        indent: indentation of the output; ``None`` for a single line.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    return write_text_atomic(path, json.dumps(content, indent=indent, allow_nan=False) + "\n")

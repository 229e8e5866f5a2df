"""JSON files written atomically: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tadcli.io.atomic import write_text_atomic


def write_json_atomic(path: str | Path, content: Any, indent: int | None = 2) -> Path:
    """Write ``content`` as JSON (and a final newline) to ``path`` with :func:`tadcli.io.atomic.atomic_output`.

    On any error ``path`` is left as it was; missing parent directories are created; a replaced
    file keeps its permissions, a new one gets ``0o666`` less the umask.

    Args:
        path: destination file.
        content: JSON-serialisable data (``allow_nan=False``: NaN or infinity is a ``ValueError``).
        indent: indentation of the output; ``None`` for a single line.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    return write_text_atomic(path, json.dumps(content, indent=indent, allow_nan=False) + "\n")

"""JSON files written atomically: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

NEW_FILE_MODE = 0o644


def write_json_atomic(path: str | Path, content: Any, indent: int | None = 2) -> Path:
    """Write ``content`` as JSON to ``path`` through a temporary file in the same directory.

    The temporary file is flushed to disk, then renamed over ``path`` with :func:`os.replace`
    (atomic on POSIX and Windows within one file system). On any error the temporary file is
    removed and ``path`` is left as it was. Missing parent directories are created. A replaced
    file keeps its permissions; a new one gets ``rw-r--r--``.

    Args:
        path: destination file.
        content: JSON-serialisable data (``allow_nan=False``: NaN or infinity is a ``ValueError``).
        indent: indentation of the output; ``None`` for a single line.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else NEW_FILE_MODE
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(content, handle, indent=indent, allow_nan=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path

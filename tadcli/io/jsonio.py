"""Files written atomically: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any


def new_file_mode() -> int:
    """The permissions ``open()`` gives a new file: ``rw-rw-rw-`` less the process umask."""
    return 0o666 & ~_umask()


def new_folder_mode() -> int:
    """The permissions ``mkdir`` gives a new folder: ``rwxrwxrwx`` less the process umask."""
    return 0o777 & ~_umask()


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask can only be read by setting it)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same directory.

    The temporary file is flushed to disk, then renamed over ``path`` with :func:`os.replace`
    (atomic on POSIX and Windows within one file system). On any error the temporary file is
    removed and ``path`` is left as it was. Missing parent directories are created. A replaced
    file keeps its permissions; a new one gets those of :func:`new_file_mode` (the umask applies,
    as for any file the user creates).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else new_file_mode()
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)  # mkstemp creates rw------- whatever the umask
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: str | Path, content: Any, indent: int | None = 2) -> Path:
    """Write ``content`` as JSON to ``path`` atomically (see :func:`write_text_atomic`).

    Args:
        path: destination file.
        content: JSON-serialisable data (``allow_nan=False``: NaN or infinity is a ``ValueError``,
            raised before anything is written).
        indent: indentation of the output; ``None`` for a single line.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    return write_text_atomic(path, json.dumps(content, indent=indent, allow_nan=False) + "\n")

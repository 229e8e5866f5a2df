"""Files written atomically: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def atomic_output(path: str | Path) -> Iterator[BinaryIO]:
    """A binary handle on a temporary file beside ``path`` that replaces ``path`` when the block ends.

    The temporary file is flushed and fsynced, then renamed over ``path`` with :func:`os.replace`
    (atomic on POSIX and Windows within one file system). If the block raises, the temporary file
    is removed and ``path`` is left as it was. Missing parent directories are created. A replaced
    file keeps its permissions; a new one gets those of a plain ``open`` (``0o666`` less the umask),
    not the ``0o600`` of a temporary file.

    Example::

        with atomic_output("timeline.png") as handle:
            image.save(handle, format="PNG")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else _new_file_mode()
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | Path, content: bytes) -> Path:
    """Write ``content`` to ``path`` through :func:`atomic_output`; returns ``path`` as a Path."""
    with atomic_output(path) as handle:
        handle.write(content)
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` as UTF-8 to ``path`` through :func:`atomic_output` (newlines written as given)."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def _new_file_mode() -> int:
    """``0o666`` less the process umask (read by setting it and putting it back)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask

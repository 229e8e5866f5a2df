"""Files replaced in one step: a reader (or a run killed at any instant) sees the old file or the new one.

:func:`atomic_output` hands out a binary handle, :func:`atomic_path` a path (for writers that want a file
name, such as ``safetensors`` and ``torch.save``), on a temporary file beside the destination. When the
block ends without error the file is flushed to disk, given the permissions of the file it replaces (or
those ``open`` gives a new file under the umask) and renamed over the destination with :func:`os.replace`
(atomic on POSIX and Windows within one file system). If the block raises, or Ctrl-C arrives, the
temporary file is removed and the destination is left as it was. Missing parent folders are created.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


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


def _fsync_directory(path: Path) -> None:
    """Make a rename durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write the new content to; it replaces ``path`` when the block ends."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else new_file_mode()
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(descriptor)
    temporary = Path(name)
    try:
        yield temporary
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)  # mkstemp creates rw------- whatever the umask
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


@contextmanager
def atomic_output(path: str | Path) -> Iterator[BinaryIO]:
    """A binary handle on a temporary file beside ``path`` that replaces ``path`` when the block ends.

    Example::

        with atomic_output("timeline.png") as handle:
            image.save(handle, format="PNG")
    """
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        yield handle


def write_bytes_atomic(path: str | Path, content: bytes) -> Path:
    """Replace ``path`` with ``content`` in one step; returns ``path`` as a Path."""
    with atomic_output(path) as handle:
        handle.write(content)
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Replace ``path`` with ``text`` as UTF-8 (newlines written as given) in one step."""
    return write_bytes_atomic(path, text.encode("utf-8"))

"""Files replaced in one step: a reader (or a run killed at any instant) sees the old file or the new one.

:func:`atomic_output` hands out a binary handle, :func:`atomic_path` a path (for writers that want a file
name, such as ``safetensors`` and ``torch.save``), on a temporary file beside the destination. When the
block ends without error the file is flushed to disk, given the permissions of the file it replaces (or
those ``open`` gives a new file under the umask) and renamed over the destination with :func:`os.replace`
(atomic on POSIX and Windows within one file system). If the block raises, or Ctrl-C arrives, the
temporary file is removed and the destination is left as it was. Missing parent folders are created.

Only regular files are replaced (or created). A symbolic link is followed: its target is replaced in one
step and the link stays. A device, a FIFO or a socket (``/dev/null``, ``/dev/full``, a named pipe) is
not ours to replace: it is written through directly.

An operating-system error while writing (permission denied, read-only file system, a full disk, a name
too long, a file where a folder must be) becomes one line naming the destination and the reason
(:func:`tadcli.errors.os_error_line`; a full disk is a :class:`~tadcli.errors.DiskFullError` saying that
the destination was left as it was).
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from tadcli.errors import os_error_line

TEMPORARY_NAME_CHARS = 100  # of the destination's name in the temporary file's (a name near the limit must fit)


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


def _destination(path: Path) -> tuple[Path, bool]:
    """Where to write for ``path``, and whether to replace it (a regular file, or nothing yet) or to write
    through it (a device, a FIFO, a socket). A symbolic link leads to its target."""
    try:
        mode = path.stat().st_mode  # follows symbolic links
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        return path, False
    return (Path(os.path.realpath(path)) if path.is_symlink() else path), True


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write the new content to; it replaces ``path`` when the block ends.

    For a device, FIFO or socket the path itself is handed out (written through); for a symbolic link, a
    temporary path beside its target.

    Raises:
        PathError: the destination cannot be written (the path and the reason).
        DiskFullError: the disk filled up (the destination is left as it was).
    """
    path = Path(path)
    try:
        destination, replace = _destination(path)
    except OSError as error:
        raise os_error_line(error, path) from None
    if not replace:
        try:
            yield destination
        except OSError as error:
            raise os_error_line(error, path, f"{path} is not a regular file: what was written went straight to it") from None
        return
    temporary, kept = None, f"{path} was not written"
    try:
        existed = destination.exists()
        if existed:
            kept = f"{path} was left as it was"
        destination.parent.mkdir(parents=True, exist_ok=True)
        mode = stat.S_IMODE(destination.stat().st_mode) if existed else new_file_mode()
        prefix = f".{destination.name[:TEMPORARY_NAME_CHARS]}."
        descriptor, name = tempfile.mkstemp(dir=destination.parent, prefix=prefix, suffix=".tmp")
        os.close(descriptor)
        temporary = Path(name)
        yield temporary
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)  # mkstemp creates rw------- whatever the umask
        os.replace(temporary, destination)
    except OSError as error:
        _remove(temporary)
        raise os_error_line(error, path, kept) from None
    except BaseException:
        _remove(temporary)
        raise
    _fsync_directory(destination.parent)


def _remove(temporary: Path | None) -> None:
    if temporary is not None:
        try:
            temporary.unlink(missing_ok=True)
        except OSError:
            pass


@contextmanager
def atomic_output(path: str | Path) -> Iterator[BinaryIO]:
    """A binary handle on a temporary file beside ``path`` that replaces ``path`` when the block ends.

    Example::

        with atomic_output("timeline.png") as handle:
            image.save(handle, format="PNG")
    """
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        yield handle  # an OSError of the writes, the flush or the close reaches atomic_path, which names ``path``


def write_bytes_atomic(path: str | Path, content: bytes) -> Path:
    """Replace ``path`` with ``content`` in one step; returns ``path`` as a Path."""
    with atomic_output(path) as handle:
        handle.write(content)
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Replace ``path`` with ``text`` as UTF-8 (newlines written as given) in one step."""
    return write_bytes_atomic(path, text.encode("utf-8"))

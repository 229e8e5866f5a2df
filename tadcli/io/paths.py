"""Checks of the paths a user gives, run before any work starts: one readable line per problem.

Every command checks each input and output path with these functions first, so that a wrong path
is a :class:`~tadcli.errors.PathError` naming the path and what is wrong with it, never an
``OSError`` traceback half-way through a run::

    annotations = check_input_path(annotations, "annotations")      # a file or a folder
    videos = check_input_dir(videos, "video folder")
    out = check_output_dir(out, "output folder")                    # may not exist yet
    json_out = check_output_file(json_out, "scores file", allow_stdout=True)  # "-": standard output

``role`` says in a few words what the path is for; it appears in the message
(``data/x.json: video folder must be a folder, this is a file``). The checks leave nothing behind: an
output location is tried for real (a file created and removed in the folder that would hold it), so a
read-only file system, ``/proc`` or a folder root may not write to is found before the work, not after.
An operating-system error while checking (a name longer than the file system allows, ...) is one line as
well (:func:`tadcli.errors.os_error_line`).
"""

from __future__ import annotations

import functools
import os
import stat
import tempfile
from pathlib import Path

from tadcli.errors import PathError, os_error_line, os_error_reason

STDOUT = "-"  # the output path that means standard output, where a command allows it


def is_stdout(path: str | Path | None) -> bool:
    """Whether an output path is :data:`STDOUT`."""
    return path is not None and str(path) == STDOUT


def _os_errors_in_one_line(check):  # noqa: ANN001, ANN202 - a decorator of the checks below
    """An ``OSError`` met while checking (a name too long for ``stat``, ...) is one line naming the path."""

    @functools.wraps(check)
    def checked(path, *args, **kwargs):  # noqa: ANN001, ANN202
        try:
            return check(path, *args, **kwargs)
        except OSError as error:
            raise os_error_line(error, path) from None

    return checked


@_os_errors_in_one_line
def check_input_file(path: str | Path, role: str) -> Path:
    """An existing, readable file.

    Raises:
        PathError: the path is missing, is a folder, or cannot be read.
    """
    path = _check_exists(Path(path), role)
    if path.is_dir():
        raise PathError(f"{path}: {role} must be a file, this is a folder")
    return _check_readable(path, role)


@_os_errors_in_one_line
def check_input_dir(path: str | Path, role: str) -> Path:
    """An existing, readable folder.

    Raises:
        PathError: the path is missing, is a file, or cannot be read.
    """
    path = _check_exists(Path(path), role)
    if not path.is_dir():
        raise PathError(f"{path}: {role} must be a folder, this is a file")
    if not os.access(path, os.R_OK | os.X_OK):
        raise PathError(f"{path}: {role} cannot be read (permission denied)")
    return path


@_os_errors_in_one_line
def check_input_path(path: str | Path, role: str) -> Path:
    """An existing, readable file or folder (inputs that take either, like annotation folders)."""
    path = _check_exists(Path(path), role)
    return check_input_dir(path, role) if path.is_dir() else _check_readable(path, role)


@_os_errors_in_one_line
def check_output_file(path: str | Path, role: str, *, allow_stdout: bool = False) -> Path:
    """A file that can be written: absent (its folder can be created) or an existing, writable file.

    Args:
        path: the output file.
        role: what the file is, for the message.
        allow_stdout: accept :data:`STDOUT` (returned as ``Path("-")``; test it with :func:`is_stdout`).

    Raises:
        PathError: the path is a folder, an existing file that cannot be written, or lies under a
            file or a folder that cannot be written.
    """
    if allow_stdout and is_stdout(path):
        return Path(STDOUT)
    path = Path(path)
    if path.is_dir():
        raise PathError(f"{path}: {role} must be a file, this is a folder")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise PathError(f"{path}: {role} cannot be written (permission denied)")
        if stat.S_ISREG(path.stat().st_mode):  # replaced by a new file beside it (tadcli.io.atomic)
            _check_writable_folder(Path(os.path.realpath(path)).parent, path, role)
        return path  # a device or a FIFO is written through
    _check_creatable(path, role)
    return path


@_os_errors_in_one_line
def check_output_dir(path: str | Path, role: str) -> Path:
    """A folder that can be written to: an existing, writable folder, or one that can be created.

    Raises:
        PathError: the path is a file, a folder that cannot be written, or lies under a file or a
            folder that cannot be written.
    """
    path = Path(path)
    if path.is_dir():
        _check_writable_folder(path, path, role)
        return path
    if path.exists():
        raise PathError(f"{path}: {role} must be a folder, this is a file")
    _check_creatable(path, role)
    return path


def _check_exists(path: Path, role: str) -> Path:
    if not path.exists():
        raise PathError(f"{path}: {role} not found")
    return path


def _check_readable(path: Path, role: str) -> Path:
    if not os.access(path, os.R_OK):
        raise PathError(f"{path}: {role} cannot be read (permission denied)")
    return path


def _check_creatable(path: Path, role: str) -> None:
    """The nearest existing folder above ``path`` must be a folder that can be written."""
    ancestor = path.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise PathError(f"{path}: cannot create the {role}: {ancestor} is a file, not a folder")
    _check_writable_folder(ancestor, path, role)


def _check_writable_folder(folder: Path, path: Path, role: str) -> None:
    """Create and remove a file in ``folder``: what the write will need. ``os.access`` is not enough: root
    passes it on ``/proc``, and its answer does not tell a read-only file system from a missing permission."""
    try:
        descriptor, name = tempfile.mkstemp(dir=folder, prefix=".tad-check-")
    except OSError as error:
        raise PathError(f"{path}: cannot write the {role} in {folder}: {os_error_reason(error)}") from None
    os.close(descriptor)
    os.unlink(name)

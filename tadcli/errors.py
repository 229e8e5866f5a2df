"""Typed errors that carry their context, and the one mapping of what the machine does to a run.

The core raises these; the CLI maps every :class:`TadError` to one line on stderr and its
:attr:`~TadError.exit_code` (2; 1 for a disk that filled up mid-run), the traceback only with
``--debug``. Operating-system errors on the paths a command reads and writes (permission denied, a
read-only file system, a full disk, a name too long, a file where a folder must be) and a decoding
worker killed by the system become such errors in :func:`user_error`, the one place that knows them.
Anything else is a bug and is re-raised.
"""

from __future__ import annotations

import errno
import os


class TadError(Exception):
    """Base class: a problem with the user's input that one line can explain."""

    exit_code = 2


class PresetError(TadError):
    """A preset file, a dataset profile or a ``--set`` override is invalid."""


class AnnotationError(TadError):
    """An annotation or results file cannot be read or is malformed."""


class DatasetError(TadError):
    """A prepared dataset is unusable (missing manifest, empty subset, ...)."""


class VideoError(TadError):
    """A video file is missing, unreadable or has no frames."""


class WeightFormatError(TadError):
    """A checkpoint is in an unknown format or does not fit the model."""


class PathError(TadError):
    """A path the user gave is missing, of the wrong kind (a file for a folder), or cannot be written."""


class OutputError(TadError):
    """An output cannot be written as asked (e.g. two videos with one id), or a file tad wrote cannot be read back."""


class TrainingInterrupted(Exception):
    """Ctrl-C: a resumable checkpoint was written; the CLI exits with code 130 (not a :class:`TadError`: the
    input was fine). Here rather than in :mod:`tadcli.training.loop`, so that catching it imports no torch."""


class DiskFullError(TadError):
    """The disk (or the file-size limit) filled up while writing: exit code 1, the message says what was kept."""

    exit_code = 1


class WorkerKilledError(TadError):
    """A decoding worker process was killed by the system (most often: out of memory)."""


DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})

# errno -> the reason as a user reads it (anything else: the system's own text)
_REASONS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large (the file-size limit or the file system's)",
    errno.ENAMETOOLONG: "file name too long",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "is a folder, not a file",
    errno.ENOENT: "no such file or folder",
    errno.EEXIST: "already exists",
    errno.ELOOP: "too many levels of symbolic links",
    errno.ENXIO: "no such device or address",
    errno.EIO: "input/output error",
    errno.EMFILE: "too many open files",
    errno.ENFILE: "too many open files in the system",
    errno.EXDEV: "cannot rename across file systems",
    errno.ETXTBSY: "text file busy",
}


def os_error_reason(error: OSError) -> str:
    """What went wrong, in a few words: ``permission denied``, ``no space left on device``, ..."""
    if error.errno in _REASONS:
        return _REASONS[error.errno]
    text = error.strerror or str(error) or type(error).__name__
    return text[:1].lower() + text[1:]


def os_error_line(error: OSError, path: str | os.PathLike | None = None, kept: str | None = None) -> TadError:
    """``error`` as one line naming the path and the reason: :class:`DiskFullError` (exit code 1) for a full
    disk, a :class:`PathError` (exit code 2) otherwise.

    Args:
        error: the operating-system error.
        path: the path the user knows (a destination rather than the temporary file beside it); default
            the error's own file name.
        kept: for a full disk, what was kept (e.g. ``"events.json was left as it was"``).
    """
    name = path if path is not None else error.filename
    where = f"{os.fsdecode(name)}: " if name is not None else ""
    reason = os_error_reason(error)
    if error.errno in DISK_FULL_ERRNOS:
        return DiskFullError(f"{where}{reason}; {kept or 'nothing was left half-written (tad replaces each file in one step)'}")
    return PathError(f"{where}{reason}")


def user_error(error: BaseException) -> TadError | None:
    """The :class:`TadError` that tells the user what the machine did, or ``None`` for a bug.

    - an :class:`OSError` (permission denied, read-only file system, full disk, name too long, a file
      where a folder must be, ...): the path and the reason (:func:`os_error_line`);
    - a PyTorch ``DataLoader`` worker that the system killed (``exited unexpectedly`` / ``killed by
      signal``): named as such, with the settings that lower its memory.
    """
    if isinstance(error, TadError):
        return error
    if isinstance(error, OSError) and error.errno is not None:
        return os_error_line(error)
    text = str(error)
    if isinstance(error, RuntimeError) and "DataLoader worker" in text and ("killed" in text or "exited unexpectedly" in text):
        detail = text.split(". ")[0].strip().rstrip(".")
        return WorkerKilledError(
            f"a decoding worker process was killed by the system, most likely for lack of memory ({detail}); "
            "lower --workers (train: also train.num_workers), or the memory each one needs (--batch-size, "
            "input.image_size, input.frames)"
        )
    return None

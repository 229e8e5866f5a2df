"""Typed errors that carry their context.

The core raises these; the CLI maps every :class:`TadError` to one line on stderr and
exit code 2 (the traceback only with ``--debug``). Anything else is a bug and is re-raised.
"""

from __future__ import annotations


class TadError(Exception):
    """Base class: a problem with the user's input that one line can explain."""


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

"""The options and arguments several commands share, declared once, and the closed vocabularies they take.

The vocabularies are the core's own enums (no copies to keep in sync): dataset names from the profile table
(:data:`tadcli.config.profiles.DatasetName`), annotation formats (:class:`tadcli.data.annotations.AnnotationFormat`),
events and features file formats (:class:`tadcli.io.events.EventFormat`, :class:`tadcli.io.features.FeatureFormat`).
"""

from __future__ import annotations

from typing import Annotated, List, Optional

import typer

from tadcli.config.profiles import DatasetName
from tadcli.data.annotations import AnnotationFormat
from tadcli.io.events import EventFormat
from tadcli.io.features import FeatureFormat

__all__ = [
    "AnnotationFormat",
    "BatchOpt",
    "DatasetName",
    "DecoderOpt",
    "DeviceOpt",
    "EventFormat",
    "FeatureFormat",
    "PresetOpt",
    "SetOpt",
    "VideosArg",
    "WorkersOpt",
]

PresetOpt = Annotated[
    str, typer.Option("--preset", "-p", help="Preset name (see 'tad presets list') or path to a YAML file.")
]
SetOpt = Annotated[
    Optional[List[str]],
    typer.Option("--set", help="Override one preset value, e.g. --set train.epochs=5 (repeatable)."),
]
DeviceOpt = Annotated[str, typer.Option(help="auto (a GPU when there is one), cpu, cuda or cuda:N.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Windows per forward pass.")]
WorkersOpt = Annotated[int, typer.Option(min=0, help="Decoding processes (0: decode in this process).")]
DecoderOpt = Annotated[
    Optional[str],
    typer.Option(
        metavar="decord|pyav",
        help="Video decoder, for this command and the processes it starts (the same as TAD_DECODER). "
        "Default: $TAD_DECODER, else decord when installed, else pyav.",
    ),
]
VideosArg = Annotated[List[str], typer.Argument(help="Video files, folders (searched recursively) or glob patterns.")]

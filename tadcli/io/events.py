"""Detected events in seconds and the files ``tad detect`` writes them to.

Formats (:data:`EVENT_FORMATS`), each a function returning the text of the file:

- ``json`` (:func:`format_json`; ``model``: :class:`ModelIdentity`)::

      {"model": {...}, "videos": [{"video": "clips/a.mp4", "duration": 12.0, "fps": 25.0,
                                   "events": [{"label": "jump", "start": 1.5, "end": 4.0, "score": 0.93}]}]}

- ``csv`` (:func:`format_csv`): one row per event, header ``video,start,end,label,score``.
- ``srt`` (:func:`format_srt`): subtitles of one video, one cue per event showing ``label (score)``
  from its start to its end; overlapping events are overlapping cues (players stack them).
- ``activitynet`` (:func:`format_activitynet`): the results file ``tad eval --predictions`` scores
  (:mod:`tadcli.evaluation.results`), video ids being the file stems (:func:`video_id`)::

      {"version": "VERSION 1.3", "results": {"a": [{"segment": [1.5, 4.0], "label": "jump", "score": 0.93}]},
       "external_data": {}}

  It is the one results writer: ``tad detect --format activitynet`` and ``tad eval --run`` (and the
  validation of ``tad train``) write their files through :func:`format_results`. A video's entries are in
  :func:`results_order` (score descending, then start, end, label, on the rounded values), because the
  official evaluator breaks score ties by file order: the same rounded events give the same file and the
  same mAP whatever order or floating-point noise they came with.

Rounding, in every format: start and end to 0.01 s, score to 1e-4, as OpenTAD's results files
(:func:`tadcli.model.postprocess.round_for_output`; rounding values it already rounded changes
nothing). A detector's boundaries are no finer than its grid step (a few frames), so nothing real
is lost. ``duration`` and ``fps`` are written as given. SRT times are those rounded times in
milliseconds.

Several videos and SRT: an SRT file belongs to one video, so :func:`write_events` writes ``OUT``
itself for one video and, for N > 1 videos, one file per video beside it named
``OUT.stem + "." + video_id + ".srt"`` (``events.srt`` -> ``events.a.srt``, ``events.b.srt``);
no video, no file. Players load ``a.srt`` or ``a.<anything>.srt`` beside ``a.mp4`` on their own.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from tadcli.errors import OutputError
from tadcli.io.atomic import write_text_atomic


class EventFormat(StrEnum):
    """The formats of an events file (``tad detect --format``)."""

    JSON = "json"
    CSV = "csv"
    SRT = "srt"
    ACTIVITYNET = "activitynet"


EVENT_FORMATS = tuple(EventFormat)
CSV_HEADER = ("video", "start", "end", "label", "score")
ACTIVITYNET_VERSION = "VERSION 1.3"
SECONDS_DECIMALS = 2
SCORE_DECIMALS = 4
# Default --threshold of the formats a person reads (json, csv, srt, the timeline): the detector emits up to
# max_segments candidates per video, most of them low-scoring near-duplicates left by soft-NMS.
READABLE_THRESHOLD = 0.2


def default_threshold(format: str) -> float:
    """The minimum score reported by default: :data:`READABLE_THRESHOLD`, except 0 for ``activitynet``, which is
    written to be scored and must keep every candidate (the mAP counts the low-scoring tail too)."""
    return 0.0 if format == "activitynet" else READABLE_THRESHOLD


@dataclass(frozen=True)
class Event:
    """One action: its class name, start and end in seconds (``start <= end``) and score."""

    label: str
    start: float
    end: float
    score: float

    def __post_init__(self) -> None:
        if not all(math.isfinite(value) for value in (self.start, self.end, self.score)):
            raise ValueError(f"event {self}: start, end and score must be finite")
        if self.end < self.start:
            raise ValueError(f"event {self}: ends before it starts")


@dataclass(frozen=True)
class ModelIdentity:
    """What identifies the model in outputs: the ``model`` object of the ``json`` format (:meth:`to_json`).

    Attributes:
        preset: the preset's name.
        profile: the dataset profile (windows, post-processing).
        classes: class names (index = class).
        tad_version: the version that detects.
        run: the run folder, for a run's model.
        checkpoint: the checkpoint file, for a released checkpoint's model.
        trained_with: the version that trained the run.
    """

    preset: str
    profile: str
    classes: tuple[str, ...]
    tad_version: str
    run: str | None = None
    checkpoint: str | None = None
    trained_with: str | None = None

    def to_json(self) -> dict[str, Any]:
        """``{"run" | "checkpoint", "preset", "profile", "classes", ["trained_with",] "tad_version"}``."""
        content: dict[str, Any] = {"run": self.run} if self.run is not None else {"checkpoint": self.checkpoint}
        content.update(preset=self.preset, profile=self.profile, classes=list(self.classes))
        if self.trained_with is not None:
            content["trained_with"] = self.trained_with
        content["tad_version"] = self.tad_version
        return content


@dataclass(frozen=True)
class VideoEvents:
    """The events of one video.

    Attributes:
        video: the video's path as the user gave it.
        duration: seconds.
        fps: frames per second.
        events: the events, in the order they are written (see :func:`select_events`).
    """

    video: str
    duration: float
    fps: float
    events: tuple[Event, ...]


def video_id(video: str | Path) -> str:
    """The id of a video in results and annotation files: its file name without extension."""
    return Path(video).stem


def select_events(events: Iterable[Event], threshold: float = 0.0, top_k: int | None = None) -> tuple[Event, ...]:
    """The events to report: score ``>= threshold``, the ``top_k`` best by score, sorted by start.

    Ties: among equal scores the earlier event is kept for ``top_k``; among equal starts the higher
    score comes first (then the earlier end, then the label).

    Args:
        events: events of one video.
        threshold: minimum score.
        top_k: at most this many events (``None``: all).

    Raises:
        ValueError: ``top_k`` is negative.
    """
    if top_k is not None and top_k < 0:
        raise ValueError(f"top_k must be >= 0, got {top_k}")
    kept = sorted((e for e in events if e.score >= threshold), key=lambda e: (-e.score, e.start, e.end, e.label))
    if top_k is not None:
        kept = kept[:top_k]
    return tuple(sorted(kept, key=lambda e: (e.start, -e.score, e.end, e.label)))


def format_json(model: ModelIdentity, videos: Sequence[VideoEvents]) -> str:
    """``{"model": model.to_json(), "videos": [{"video", "duration", "fps", "events": [...]}]}``, indented."""
    content = {
        "model": model.to_json(),
        "videos": [
            {
                "video": video.video,
                "duration": video.duration,
                "fps": video.fps,
                "events": [_event_entry(event) for event in video.events],
            }
            for video in videos
        ],
    }
    return json.dumps(content, indent=2, allow_nan=False) + "\n"


def format_csv(videos: Sequence[VideoEvents]) -> str:
    """One row per event, ``video,start,end,label,score``, videos and events in the given order."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for video in videos:
        for event in video.events:
            start, end, score = _rounded(event)
            writer.writerow((video.video, start, end, event.label, score))
    return buffer.getvalue()


def format_srt(video: VideoEvents) -> str:
    """Subtitles of one video: cues numbered from 1 in the given order, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``."""
    cues = []
    for number, event in enumerate(video.events, start=1):
        start, end, score = _rounded(event)
        cues.append(f"{number}\n{srt_time(start)} --> {srt_time(end)}\n{event.label} ({score:.2f})\n")
    return "\n".join(cues)


def srt_time(seconds: float) -> str:
    """Seconds -> the SRT time ``HH:MM:SS,mmm`` (to the nearest millisecond; hours grow past 99)."""
    milliseconds = round(seconds * 1000)
    hours, milliseconds = divmod(milliseconds, 3_600_000)
    minutes, milliseconds = divmod(milliseconds, 60_000)
    whole_seconds, milliseconds = divmod(milliseconds, 1000)
    return f"{hours:02d}:{minutes:02d}:{whole_seconds:02d},{milliseconds:03d}"


def format_activitynet(videos: Sequence[VideoEvents]) -> str:
    """The ActivityNet results file of ``videos``, each named by :func:`video_id` (see :func:`format_results`).

    Raises:
        OutputError: two videos have the same id (file stem): their events would merge.
    """
    _check_unique_ids(videos, "activitynet")
    return format_results({video_id(video.video): video.events for video in videos})


def results_order(events: Iterable[Event]) -> list[Event]:
    """Events in results-file order: score descending, then start, end and label, all as written (rounded)."""
    def key(event: Event) -> tuple:
        start, end, score = _rounded(event)
        return -score, start, end, event.label

    return sorted(events, key=key)


def results_content(events_by_video: Mapping[str, Iterable[Event]]) -> dict[str, Any]:
    """``{"version", "results": {video_id: [{"segment", "label", "score"}]}, "external_data": {}}``: videos
    in the given order, each video's events rounded and in :func:`results_order`."""
    results = {
        name: [_result_entry(event) for event in results_order(events)] for name, events in events_by_video.items()
    }
    return {"version": ACTIVITYNET_VERSION, "results": results, "external_data": {}}


def format_results(events_by_video: Mapping[str, Iterable[Event]]) -> str:
    """The text of the ActivityNet results file of ``{video_id: events}`` (:func:`results_content`), indented."""
    return json.dumps(results_content(events_by_video), indent=2, allow_nan=False) + "\n"


def write_events(
    path: str | Path, model: ModelIdentity, videos: Sequence[VideoEvents], format: str = "json"
) -> list[Path]:
    """Write the events of ``videos`` to ``path`` atomically (:func:`tadcli.io.atomic.atomic_output`).

    Args:
        path: the output file (``srt`` with several videos: the name the per-video files derive from,
            see the module doc).
        model: the identity of the model (run, preset, classes); written by ``json`` only.
        videos: the videos, in output order, events already selected (:func:`select_events`).
        format: one of :data:`EVENT_FORMATS`.

    Returns:
        The files written: ``[path]``, or one per video for ``srt``.

    Raises:
        ValueError: unknown format.
        OutputError: two videos share an id where the format names videos by id (``activitynet``, ``srt``).
    """
    path = Path(path)
    if format == "srt" and len(videos) != 1:
        _check_unique_ids(videos, "srt")
        return [
            write_text_atomic(path.with_name(f"{path.stem}.{video_id(video.video)}.srt"), format_srt(video))
            for video in videos
        ]
    return [write_text_atomic(path, format_events(model, videos, format))]


def format_events(model: ModelIdentity, videos: Sequence[VideoEvents], format: str = "json") -> str:
    """The text of one events file in ``format`` (what :func:`write_events` writes; ``srt``: of one video).

    Raises:
        ValueError: unknown format, or ``srt`` for other than one video.
    """
    if format == "json":
        return format_json(model, videos)
    if format == "csv":
        return format_csv(videos)
    if format == "activitynet":
        return format_activitynet(videos)
    if format == "srt":
        if len(videos) != 1:
            raise ValueError(f"an srt text holds the events of one video, got {len(videos)}")
        return format_srt(videos[0])
    raise ValueError(f"unknown events format {format!r}; expected one of {', '.join(EVENT_FORMATS)}")


def _rounded(event: Event) -> tuple[float, float, float]:
    """(start, end, score) as written: seconds to 0.01, score to 1e-4."""
    return (
        round(event.start, SECONDS_DECIMALS),
        round(event.end, SECONDS_DECIMALS),
        round(event.score, SCORE_DECIMALS),
    )


def _event_entry(event: Event) -> dict[str, Any]:
    start, end, score = _rounded(event)
    return {"label": event.label, "start": start, "end": end, "score": score}


def _result_entry(event: Event) -> dict[str, Any]:
    start, end, score = _rounded(event)
    return {"segment": [start, end], "label": event.label, "score": score}


def _check_unique_ids(videos: Sequence[VideoEvents], format: str) -> None:
    counts = Counter(video_id(video.video) for video in videos)
    repeated = [name for name, count in counts.items() if count > 1]
    if repeated:
        clashing = [video.video for video in videos if video_id(video.video) == repeated[0]]
        raise OutputError(
            f"videos {', '.join(clashing)} have the same id {repeated[0]!r}: the {format} format names videos "
            f"by file name without extension; rename one or write them in separate runs"
        )

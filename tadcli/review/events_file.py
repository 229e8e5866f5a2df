"""Reading back any events file ``tad detect`` writes (:class:`~tadcli.io.events.EventFormat`), for review.

The format is recognised from the content, whatever the file's extension:

- ``json``: an object with ``videos`` (:func:`tadcli.io.events.format_json`); videos named by their path as
  given to ``tad detect``, with their duration;
- ``activitynet``: an object with ``results`` (read by :func:`tadcli.evaluation.results.results_columns`,
  the reader ``tad eval`` uses); videos named by id (file stem), no duration;
- ``csv``: the header ``video,start,end,label,score``; videos named by path, in order of first row;
- ``srt``: numbered cues whose text is ``label (score)``; one video, named by the file's stem (its name says
  nothing else), scores to 0.01 as the cues show them. An empty file with the ``.srt`` extension is an srt
  file without events.

Every event must end at or after its start (an inverted segment cannot be drawn): a file holding one is an
error naming the file, the video and the entry, like any other malformed entry.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tadcli.errors import AnnotationError
from tadcli.evaluation.results import is_finite_number, results_columns
from tadcli.io.events import CSV_HEADER, Event, EventFormat

SRT_CUE = re.compile(
    r"(?P<number>\d+)\n(?P<start>\d+:\d\d:\d\d,\d{3}) --> (?P<end>\d+:\d\d:\d\d,\d{3})\n(?P<label>.+) \((?P<score>[^()]+)\)"
)


@dataclass(frozen=True)
class FileVideo:
    """The events of one video in an events file.

    Attributes:
        video: the video as the file names it: its path (``json``, ``csv``), its id (``activitynet``), or
            the srt file's stem (``srt``).
        duration: seconds, where the file gives it (``json``), else None.
        events: in file order.
    """

    video: str
    duration: float | None
    events: tuple[Event, ...]


@dataclass(frozen=True)
class EventsFile:
    """An events file: its format and its videos, in file order."""

    path: Path
    format: EventFormat
    videos: tuple[FileVideo, ...]


def read_events_file(path: str | Path) -> EventsFile:
    """Read an events file of any :class:`EventFormat` (see the module doc).

    Raises:
        AnnotationError: the file cannot be read, is in none of the formats, or holds a malformed entry
            (naming the file, the video and the entry).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise AnnotationError(f"{path}: not a UTF-8 text file ({error.reason} at byte {error.start})") from None
    except OSError as error:
        raise AnnotationError(f"{path}: cannot read: {error.strerror}") from None
    stripped = text.strip()
    if stripped.startswith("{"):
        return _read_json(path, stripped)
    if stripped.splitlines()[:1] == [",".join(CSV_HEADER)]:
        return EventsFile(path, EventFormat.CSV, _read_csv(path, text))
    if SRT_CUE.match(stripped.replace("\r\n", "\n")) or (not stripped and path.suffix.lower() == ".srt"):
        return EventsFile(path, EventFormat.SRT, (FileVideo(path.stem, None, _read_srt(path, text)),))
    raise AnnotationError(
        f"{path}: not an events file of tad detect (json, csv, srt or activitynet): "
        f"it starts with {stripped[:40]!r}"
    )


def _read_json(path: Path, text: str) -> EventsFile:
    try:
        content = json.loads(text)
    except json.JSONDecodeError as error:
        raise AnnotationError(f"{path}: invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}") from None
    if isinstance(content, dict) and isinstance(content.get("videos"), list):
        return EventsFile(path, EventFormat.JSON, tuple(_json_video(path, i, v) for i, v in enumerate(content["videos"])))
    if isinstance(content, dict) and isinstance(content.get("results"), dict):
        return EventsFile(path, EventFormat.ACTIVITYNET, _activitynet_videos(path, content["results"]))
    keys = ", ".join(map(repr, content)) if isinstance(content, dict) else type(content).__name__
    raise AnnotationError(
        f"{path}: expected the json events of tad detect ({{\"videos\": [...]}}) or an ActivityNet results file "
        f"({{\"results\": {{...}}}}), got {keys or 'an empty object'}"
    )


def _json_video(path: Path, index: int, entry: Any) -> FileVideo:
    where = f"{path}: videos[{index}]"
    if not isinstance(entry, dict) or not isinstance(entry.get("video"), str) or not isinstance(entry.get("events"), list):
        raise AnnotationError(f"{where}: expected {{\"video\": name, \"events\": [...]}}, got {_short(entry)}")
    duration = entry.get("duration")
    if duration is not None and not is_finite_number(duration):
        raise AnnotationError(f"{where} ({entry['video']}): duration: expected a number of seconds, got {duration!r}")
    events = []
    for event_index, event in enumerate(entry["events"]):
        event_where = f"{where} ({entry['video']}): events[{event_index}]"
        if not isinstance(event, dict):
            raise AnnotationError(f"{event_where}: expected an object with label, start, end and score, got {_short(event)}")
        missing = [key for key in ("label", "start", "end", "score") if key not in event]
        if missing:
            raise AnnotationError(f"{event_where}: missing {', '.join(missing)}")
        events.append(_event(event_where, event["label"], event["start"], event["end"], event["score"]))
    return FileVideo(entry["video"], float(duration) if duration is not None else None, tuple(events))


def _activitynet_videos(path: Path, results: dict) -> tuple[FileVideo, ...]:
    table = results_columns(results, path, strict=True)
    events: dict[str, list[Event]] = {video: [] for video in results}
    for video, start, end, label, score in zip(table.video_ids, table.starts, table.ends, table.labels, table.scores):
        events[video].append(Event(label, float(start), float(end), float(score)))
    return tuple(FileVideo(video, None, tuple(found)) for video, found in events.items())


def _read_csv(path: Path, text: str) -> tuple[FileVideo, ...]:
    events: dict[str, list[Event]] = {}
    reader = csv.reader(io.StringIO(text))
    next(reader)  # the header, checked by the caller
    for row in reader:
        where = f"{path}: line {reader.line_num}"
        if not row:
            continue
        if len(row) != len(CSV_HEADER):
            raise AnnotationError(f"{where}: expected {len(CSV_HEADER)} fields ({','.join(CSV_HEADER)}), got {row!r}")
        video, start, end, label, score = row
        events.setdefault(video, []).append(
            _event(f"{where} ({video})", label, _number(where, "start", start), _number(where, "end", end),
                   _number(where, "score", score))
        )
    return tuple(FileVideo(video, None, tuple(found)) for video, found in events.items())


def _read_srt(path: Path, text: str) -> tuple[Event, ...]:
    blocks = [block.strip() for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n")) if block.strip()]
    events = []
    for block in blocks:
        cue = SRT_CUE.fullmatch(block)
        if cue is None:
            raise AnnotationError(f"{path}: expected a cue 'N / HH:MM:SS,mmm --> HH:MM:SS,mmm / label (score)', got {block!r}")
        where = f"{path}: cue {cue['number']}"
        events.append(
            _event(where, cue["label"], _srt_seconds(cue["start"]), _srt_seconds(cue["end"]),
                   _number(where, "score", cue["score"]))
        )
    return tuple(events)


def _srt_seconds(time: str) -> float:
    """``HH:MM:SS,mmm`` -> seconds (the inverse of :func:`tadcli.io.events.srt_time`)."""
    clock, milliseconds = time.split(",")
    hours, minutes, seconds = (int(part) for part in clock.split(":"))
    return (((hours * 60 + minutes) * 60 + seconds) * 1000 + int(milliseconds)) / 1000


def _event(where: str, label: Any, start: Any, end: Any, score: Any) -> Event:
    if not isinstance(label, str) or not label:
        raise AnnotationError(f"{where}: label: expected a class name, got {label!r}")
    for name, value in (("start", start), ("end", end), ("score", score)):
        if not is_finite_number(value):
            raise AnnotationError(f"{where}: {name}: expected a finite number, got {value!r}")
    if end < start:
        raise AnnotationError(f"{where}: end {end} < start {start}: an event must end at or after its start")
    return Event(label, float(start), float(end), float(score))


def _number(where: str, name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise AnnotationError(f"{where}: {name}: expected a number, got {text!r}") from None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

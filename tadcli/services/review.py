"""``tad review``: an events file (and optionally its ground truth and videos) in, one HTML review page out.

Which file each video of the events file plays (:func:`review_videos`):

- ``--video PATH`` (repeatable) names it: matched by id (file name without extension) to the events file's
  videos; an ``srt`` file holds one video, so its one ``--video`` is that video whatever its name;
- otherwise the path the ``json`` or ``csv`` file gives (as ``tad detect`` was given it), found from the
  current folder or else from the events file's folder;
- otherwise none: the page shows that video's timeline alone (a note says so). ActivityNet results name
  videos by id only, so their videos come from ``--video``.

The page links each video relative to its own folder (:mod:`tadcli.review.page`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tadcli.data.annotations import AnnotationFormat
from tadcli.errors import TadError
from tadcli.io.events import EventFormat, video_id
from tadcli.io.paths import check_input_file, check_input_path, check_output_file
from tadcli.review import EventsFile, ReviewVideo, read_events_file, read_ground_truth_events, truth_of, write_review_page


@dataclass
class ReviewReport:
    """What ``tad review`` wrote.

    Attributes:
        page: the HTML file.
        format: the events file's format.
        videos: the videos of the page.
        notes: what the user should know (videos without a file or without ground truth).
    """

    page: Path
    format: EventFormat
    videos: list[ReviewVideo]
    notes: list[str] = field(default_factory=list)


def review(
    events: str | Path,
    out: str | Path,
    annotations: str | Path | None = None,
    videos: Sequence[str | Path] = (),
    annotation_format: AnnotationFormat | str | None = None,
) -> ReviewReport:
    """Write the review page of an events file.

    Args:
        events: an events file of any format ``tad detect`` writes.
        out: the HTML page to write.
        annotations: ground truth to draw beneath the predictions (any format ``tad eval`` reads).
        videos: video files (see the module doc).
        annotation_format: the format of ``annotations``; None detects it.

    Raises:
        PathError: a path is missing, of the wrong kind, or ``out`` cannot be written.
        AnnotationError: the events or annotation file is malformed.
        TadError: a ``--video`` matches no video of the events file, or two share an id.
    """
    events = check_input_file(events, "events file")
    if annotations is not None:
        annotations = check_input_path(annotations, "ground truth")
    video_files = [check_input_file(video, "video") for video in videos]
    out = check_output_file(out, "review page")
    events_file = read_events_file(events)
    truth = read_ground_truth_events(annotations, annotation_format) if annotations is not None else None
    notes: list[str] = []
    page_videos = review_videos(events_file, video_files, truth, notes)
    return ReviewReport(write_review_page(out, page_videos, events.name), events_file.format, page_videos, notes)


def review_videos(
    events_file: EventsFile, video_files: Sequence[Path], truth: dict | None, notes: list[str]
) -> list[ReviewVideo]:
    """The videos of the page: the events file's, each with its video file and ground truth (module doc)."""
    named = _videos_by_id(events_file, video_files)
    page_videos = []
    for file_video in events_file.videos:
        if events_file.format == EventFormat.SRT:  # one video, named by the --video given for it
            file = video_files[0] if video_files else None
            name = str(file) if file is not None else file_video.video
        else:
            file = named.get(video_id(file_video.video)) or _file_named_by(file_video.video, events_file)
            name = file_video.video
        if file is None:
            notes.append(f"{name}: no video file found (give --video PATH): the page shows its timeline alone")
        video_truth = truth_of(truth, name) if truth is not None else None
        if truth is not None and video_truth is None:
            notes.append(f"{name}: the annotations have no video {video_id(name)!r}: no ground truth drawn")
            video_truth = ()
        page_videos.append(ReviewVideo(name, file, file_video.duration, file_video.events, video_truth))
    return page_videos


def _videos_by_id(events_file: EventsFile, video_files: Sequence[Path]) -> dict[str, Path]:
    """``--video`` files by id, each checked to name a video of the events file."""
    if events_file.format == EventFormat.SRT:
        if len(video_files) > 1:
            raise TadError(f"{events_file.path}: an srt file holds the events of one video; got {len(video_files)} --video")
        return {video_id(file): file for file in video_files}
    named: dict[str, Path] = {}
    ids = [video_id(video.video) for video in events_file.videos]
    for file in video_files:
        if video_id(file) in named:
            raise TadError(f"--video {named[video_id(file)]} and --video {file} have the same id {video_id(file)!r}")
        if video_id(file) not in ids:
            listed = ", ".join(repr(name) for name in ids[:5]) + (", ..." if len(ids) > 5 else "")
            raise TadError(f"--video {file}: {events_file.path} has no video {video_id(file)!r} (its videos: {listed or 'none'})")
        named[video_id(file)] = file
    return named


def _file_named_by(video: str, events_file: EventsFile) -> Path | None:
    """The video file a path in a json or csv events file names: from the current folder, else from the
    events file's folder (ActivityNet results name ids, not files: None)."""
    if events_file.format == EventFormat.ACTIVITYNET:
        return None
    for candidate in (Path(video), events_file.path.parent / video):
        if candidate.is_file():
            return candidate
    return None

"""``tad detect``: raw video files in, actions out (events JSON, CSV, SRT subtitles or an ActivityNet results
file, and optionally a timeline picture and the HTML review page of ``tad review``).

Inputs are files, folders (searched recursively for video files) and glob patterns. The detector is a
``tad`` run folder, or a released AdaTAD/OpenTAD checkpoint with its preset and class list
(:func:`tadcli.inference.detector.load_detector`). Each video is decoded window by window, so memory does not
grow with its length. A video that cannot be opened or decoded is reported with the reason; the others
are still written, and :attr:`DetectReport.failed` tells the CLI to exit non-zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tadcli.data.video import expand_video_inputs
from tadcli.errors import TadError
from tadcli.io.events import ModelIdentity, VideoEvents
from tadcli.io.paths import check_input_path, check_output_file, is_stdout
from tadcli.progress import ProgressCallback
from tadcli.review import ReviewVideo, read_ground_truth_events, truth_of, write_review_page


@dataclass
class DetectReport:
    """What ``tad detect`` did.

    Attributes:
        videos: one entry per input video, in order (``events`` None for a failed one, with its ``error``).
        written: the files written (events files, then the timeline).
        model: the identity of the model, as the JSON output states it.
        stdout_text: with ``out`` = ``-``, the events text for standard output (the CLI prints it).
    """

    videos: list = field(default_factory=list)  # tadcli.inference.detector.VideoDetection
    written: list[Path] = field(default_factory=list)
    model: ModelIdentity | None = None
    stdout_text: str | None = None

    @property
    def failed(self) -> list:
        return [video for video in self.videos if video.events is None]


def detect(
    inputs: Sequence[str | Path],
    out: str | Path,
    source: str | Path,
    preset: str | None = None,
    classes: str | Path | None = None,
    profile: str | None = None,
    format: str = "json",
    threshold: float | None = None,
    top_k: int | None = None,
    plot: str | Path | None = None,
    annotations: str | Path | None = None,
    html: str | Path | None = None,
    device: str = "auto",
    batch_size: int = 1,
    num_workers: int = 0,
    progress: ProgressCallback | None = None,
) -> DetectReport:
    """Detect actions in every input video and write them.

    Args:
        inputs: video files, folders and glob patterns.
        out: the events file (``srt`` with several videos: one file per video beside it); ``-``: standard
            output (:attr:`DetectReport.stdout_text`; ``srt``: one video).
        source: a run folder or a checkpoint file.
        preset, classes, profile: for a checkpoint file (see :func:`~tadcli.inference.detector.load_detector`).
        format: ``json``, ``csv``, ``srt`` or ``activitynet``.
        threshold: minimum score of a reported event; None: the format's default
            (:func:`tadcli.io.events.default_threshold`: 0.2, and 0 for ``activitynet``).
        top_k: at most this many events per video.
        plot: also draw the timeline PNG there.
        annotations: ground truth to draw under the detections in the timeline and the review page.
        html: also write the review page there (:mod:`tadcli.review.page`, as ``tad review`` writes it).
        device, batch_size, num_workers: where and how the model runs.
        progress: ``(description, done, total)`` callback: windows, then videos.
    """
    from tadcli.io.events import EVENT_FORMATS, default_threshold, format_events, write_events

    if format not in EVENT_FORMATS:
        raise TadError(f"unknown format '{format}' (choose {', '.join(EVENT_FORMATS)})")
    if threshold is None:
        threshold = default_threshold(format)
    if not 0 <= threshold <= 1:
        raise TadError(f"--threshold must lie in [0, 1], got {threshold}")
    if top_k is not None and top_k < 1:
        raise TadError(f"--top-k must be at least 1, got {top_k}")
    videos = expand_video_inputs(inputs)
    out = check_output_file(out, "events file", allow_stdout=True)
    if is_stdout(out) and format == "srt" and len(videos) > 1:
        raise TadError(f"--out -: srt subtitles to standard output hold one video, got {len(videos)}; give --out FILE "
                       "(one .srt per video) or another --format")
    if plot is not None:
        plot = check_output_file(plot, "timeline picture")
    if html is not None:
        html = check_output_file(html, "review page")
    ground_truth = read_ground_truth_events(check_input_path(annotations, "annotation file")) if annotations is not None else None
    from tadcli.inference.detector import load_detector  # torch: after the checks, a wrong path is answered at once
    from tadcli.io.timeline import plot_timeline

    detector = load_detector(source, preset, classes, profile, device, batch_size, num_workers)

    report = DetectReport(model=detector.identity)
    for result in detector.detect_many(videos, threshold, top_k, progress):
        report.videos.append(result)
        if progress is not None:
            progress("videos", len(report.videos), len(videos))
    found = [video.events for video in report.videos if video.events is not None]
    if found and is_stdout(out):
        report.stdout_text = format_events(detector.identity, found, format)
    elif found:
        report.written.extend(write_events(out, detector.identity, found, format))
        if plot is not None:
            report.written.append(plot_timeline(plot, found, ground_truth))
    if found and html is not None:
        title = "tad detect" if is_stdout(out) else Path(out).name
        report.written.append(write_review_page(html, _review_videos(found, ground_truth), title))
    return report


def _review_videos(videos: Sequence[VideoEvents], ground_truth: dict | None) -> list[ReviewVideo]:
    """The videos of the review page: each detected video with its file and ground truth (empty when the
    annotations do not have it; None without annotations)."""
    return [
        ReviewVideo(
            video.video,
            Path(video.video),
            video.duration,
            video.events,
            None if ground_truth is None else truth_of(ground_truth, video.video) or (),
        )
        for video in videos
    ]

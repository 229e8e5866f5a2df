"""A trained detector for raw videos: :func:`load_detector` and :class:`Detector` (what ``tad detect`` runs).

Example::

    detector = tadcli.load_detector("runs/tiny-synthetic-20261202-101500")
    video = detector.detect("clip.mp4")          # VideoEvents: duration, fps, events in seconds
    for event in video.events:
        print(event.label, event.start, event.end, event.score)
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tadcli import __version__
from tadcli.config.loader import load_preset
from tadcli.config.profiles import get_profile
from tadcli.config.schema import Preset
from tadcli.data.annotations import read_class_list
from tadcli.data.dataset import VideoRecord
from tadcli.errors import TadError, VideoError
from tadcli.inference.engine import ProgressCallback, VideoStep, classifier_video_step, detect_videos
from tadcli.inference.loading import load_checkpoint_model, load_run_model
from tadcli.inference.plan import InferencePlan, inference_plan
from tadcli.io.events import SECONDS_DECIMALS, Event, ModelIdentity, VideoEvents, select_events
from tadcli.model.adatad import AdaTAD
from tadcli.model.postprocess import Detections, round_for_output

DEFAULT_CHECKPOINT_PROFILE = "thumos14"


@dataclass(frozen=True)
class VideoDetection:
    """What detection made of one input: its events, or why it has none."""

    video: str
    events: VideoEvents | None
    error: str | None = None


class Detector:
    """A model with everything needed to turn video files into events.

    Args:
        model: the trained AdaTAD, on ``plan.device`` in eval mode (as :mod:`tadcli.inference.loading` loads it).
        plan: windows, transform, post-processing, device and precision (:func:`~tadcli.inference.plan.inference_plan`).
        classes: class names (index = class).
        identity: what identifies the model in outputs (run, checkpoint, preset, classes).
        batch_size: windows per forward.
        num_workers: decoding processes.
        video_step: applied to each video's merged detections, the video's id being its path as given
            (:func:`load_detector` passes a class-agnostic preset's classifier fusion); ``None``: none.
    """

    def __init__(
        self,
        model: AdaTAD,
        plan: InferencePlan,
        classes: Sequence[str],
        identity: ModelIdentity,
        batch_size: int = 1,
        num_workers: int = 0,
        video_step: VideoStep | None = None,
    ) -> None:
        self.model = model
        self.plan = plan
        self.classes = list(classes)
        self.identity = identity
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.video_step = video_step

    def detect_many(
        self,
        videos: Sequence[str | Path],
        threshold: float = 0.0,
        top_k: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> Iterator[VideoDetection]:
        """One :class:`VideoDetection` per video, in order; a video that cannot be opened or decoded gets its
        error and the others are still processed. Events: score ``>= threshold``, the ``top_k`` best, by start."""
        outputs = detect_videos(
            self.model, videos, self.plan, self.batch_size, self.num_workers, self.video_step, progress
        )
        for video, output in zip(videos, outputs):
            if output.result is None:
                yield VideoDetection(str(video), None, output.error or "decoding failed")
            else:
                yield VideoDetection(str(video), self._events(str(video), output.record, output.result, threshold, top_k))

    def detect(self, video: str | Path, threshold: float = 0.0, top_k: int | None = None) -> VideoEvents:
        """The events of one video.

        Raises:
            VideoError: the video cannot be opened or decoded.
        """
        (result,) = self.detect_many([video], threshold, top_k)
        if result.events is None:
            raise VideoError(f"{video}: {result.error}")
        return result.events

    def _events(
        self, video: str, record: VideoRecord, detections: Detections, threshold: float, top_k: int | None
    ) -> VideoEvents:
        events = events_from_detections(detections, self.classes, record.duration)
        return VideoEvents(video, record.duration, record.fps, select_events(events, threshold, top_k))


def events_from_detections(detections: Detections, classes: Sequence[str], duration: float) -> list[Event]:
    """A video's detections in seconds as the events every output reports, in the detections' order.

    Boundaries are rounded to 0.01 s and scores to 1e-4 as OpenTAD writes them
    (:func:`tadcli.model.postprocess.round_for_output`), then kept inside the video: no start below 0, no
    end past ``duration`` rounded down to 0.01 s (a 28.9167 s video ends events at 28.91). An event that
    has no length left is not an event and is dropped.
    """
    last = math.floor(duration * 10**SECONDS_DECIMALS + 1e-6) / 10**SECONDS_DECIMALS
    events = []
    for row in round_for_output(detections):
        start, end = max(row.start, 0.0), min(row.end, last)
        if end > start:
            events.append(Event(classes[row.label], start, end, row.score))
    return events


def load_detector(
    run_or_checkpoint: str | Path,
    preset: str | Preset | None = None,
    classes: str | Path | Sequence[str] | None = None,
    profile: str | None = None,
    device: str = "auto",
    batch_size: int = 1,
    num_workers: int = 0,
) -> Detector:
    """A :class:`Detector` from a ``tad`` run directory, or from a released AdaTAD/OpenTAD checkpoint file.

    Args:
        run_or_checkpoint: a run folder (it holds everything), or a checkpoint file (then ``preset`` and
            ``classes`` are required).
        preset: the checkpoint's preset (name, YAML path or :class:`Preset`); ignored for runs.
        classes: the checkpoint's class names (a file with one name per line, or a list); ignored for runs.
        profile: the dataset protocol of the checkpoint (windows, soft-NMS); default ``thumos14``; a run uses its own.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        batch_size: windows per forward.
        num_workers: decoding processes.

    Raises:
        TadError: a missing or unreadable run or checkpoint, a preset or class list that does not fit.
    """
    from tadcli.devices import resolve_device

    torch_device = resolve_device(device)
    source = Path(run_or_checkpoint)
    if source.is_dir():
        config, model = load_run_model(source, torch_device)
        resolved, names, profile_name = config.preset, config.classes, config.profile
        identity = ModelIdentity(resolved.name, profile_name, tuple(names), __version__, run=str(source),
                                 trained_with=config.tad_version)
    else:
        if not source.is_file():
            raise TadError(f"{source}: no such run folder or checkpoint file")
        if preset is None or classes is None:
            raise TadError(f"{source}: a checkpoint file needs --preset and --classes (a run folder holds both)")
        resolved = preset if isinstance(preset, Preset) else load_preset(preset, [])
        names = list(classes) if isinstance(classes, (list, tuple)) else read_class_list(classes)
        model = load_checkpoint_model(source, resolved, len(names), torch_device)
        profile_name = profile or DEFAULT_CHECKPOINT_PROFILE
        identity = ModelIdentity(resolved.name, profile_name, tuple(names), __version__, checkpoint=str(source))
    plan = inference_plan(resolved, get_profile(profile_name), torch_device)
    video_step = classifier_video_step(resolved, names)
    return Detector(model, plan, names, identity, batch_size, num_workers, video_step)

"""The one path from videos to per-video results, used by ``tad eval --run``, validation during
training, ``tad detect``, ``tad extract`` and :func:`tadcli.load_detector` alike (spec
``shared/spec/ADATAD.md`` §5), run as an :class:`~tadcli.inference.plan.InferencePlan` says:

1. every video is cut into the plan's windows as the stream reaches it (a video file is opened then, once:
   :class:`tadcli.data.dataset.EvalWindowBatches`) and decoded window by window, so memory stays bounded
   whatever the video's length;
2. windows go through the model in batches (:func:`stream_windows` calls a per-batch function);
3. when a video's last window is done, its per-window results are combined into the video's result.

:func:`detect_videos` plugs detection into it: candidates on each window's grid
(:func:`tadcli.model.postprocess.detect_batch`; a resized video gets its soft-NMS there), seconds
(:func:`tadcli.model.postprocess.detections_to_seconds`), then one soft-NMS per video over all its
windows (:func:`tadcli.model.postprocess.merge_windows`) and an optional per-video step (classifier
fusion). :func:`extract_video_features` plugs in the backbone features.

Videos come out in input order, one output per input, each as soon as its last window is done; a video
that cannot be opened or decoded comes out with its error. The model is taken as it is: on the plan's
device, in eval mode (:mod:`tadcli.inference.loading` loads it so; a model being trained is put in eval mode
by whoever evaluates it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import torch

from tadcli.config.schema import Preset
from tadcli.data.dataset import (
    DecodedWindow,
    EvalWindow,
    EvalWindowBatches,
    EvalWindowDataset,
    VideoRecord,
    WindowBatch,
    WindowMeta,
    collate_windows,
)
from tadcli.data.loader import window_loader
from tadcli.inference.plan import InferencePlan
from tadcli.model.adatad import AdaTAD
from tadcli.model.postprocess import Detections, detect_batch, detections_to_seconds, merge_windows
from tadcli.progress import ProgressCallback

VideoStep = Callable[[VideoRecord, Detections], Detections]
Video = VideoRecord | str | Path  # a prepared dataset's video, or a video file (opened by the stream)
Part = TypeVar("Part")
Result = TypeVar("Result")


@dataclass(frozen=True)
class VideoOutput(Generic[Result]):
    """The result of one video, or why there is none.

    Attributes:
        record: the video; ``None`` when its file could not be opened.
        result: what the per-video function made of its windows; ``None`` when it could not be opened or decoded.
        error: the reader's message for a video that failed.
    """

    record: VideoRecord | None
    result: Result | None
    error: str | None = None


@dataclass(frozen=True)
class _DecodedBatch:
    """A batch of requests: all of them in order, the batch of those decoded, and ``(request, error)`` of the others."""

    requests: list[EvalWindow]
    decoded: list[EvalWindow]
    batch: WindowBatch | None
    failures: list[tuple[EvalWindow, str]]

    def pin_memory(self) -> _DecodedBatch:
        """Pinned frames for the copy to CUDA (the DataLoader calls it)."""
        batch = self.batch.pin_memory() if self.batch is not None else None
        return _DecodedBatch(self.requests, self.decoded, batch, self.failures)


def _collate_decoded(items: Sequence[DecodedWindow]) -> _DecodedBatch:
    return _DecodedBatch(
        [item.request for item in items],
        [item.request for item in items if item.sample is not None],
        collate_windows([item.sample for item in items]),
        [(item.request, item.error) for item in items if item.sample is None],
    )


def stream_windows(
    videos: Sequence[Video],
    plan: InferencePlan,
    per_batch: Callable[[WindowBatch], Sequence[Part]],
    per_video: Callable[[VideoRecord, list[tuple[WindowMeta, Part]]], Result],
    batch_size: int = 1,
    num_workers: int = 0,
    progress: ProgressCallback | None = None,
) -> Iterator[VideoOutput[Result]]:
    """Run ``per_batch`` on batches of the windows of ``videos`` (one part per window) and ``per_video`` on each
    video's ``(meta, part)`` list, in window order; yield each video's output as soon as its last window is done,
    one per video, in order."""
    dataset = EvalWindowDataset(plan.geometry, plan.transform, short_side=plan.transform.short_side)
    batches = EvalWindowBatches(videos, dataset, batch_size)
    loader = window_loader(
        dataset, batch_sampler=batches, num_workers=num_workers, device=plan.device, collate=_collate_decoded
    )
    parts: dict[int, list] = {}
    errors: dict[int, str] = {}
    done = 0
    for item in loader:
        for request, error in item.failures:
            errors.setdefault(request.video_index, error)
        if item.batch is not None:
            for request, meta, part in zip(item.decoded, item.batch.metas, per_batch(item.batch)):
                parts.setdefault(request.video_index, []).append((meta, part))
        done += sum(request.window is not None for request in item.requests)
        if progress is not None:
            progress("windows", done, batches.listed)
        for request in item.requests:
            if request.last:
                error = errors.pop(request.video_index, None)
                video_parts = parts.pop(request.video_index, [])
                result = None if error is not None else per_video(request.record, video_parts)
                yield VideoOutput(request.record, result, error)


def detect_videos(
    model: AdaTAD,
    videos: Sequence[Video],
    plan: InferencePlan,
    batch_size: int = 1,
    num_workers: int = 0,
    video_step: VideoStep | None = None,
    progress: ProgressCallback | None = None,
) -> Iterator[VideoOutput[Detections]]:
    """Detections of every video in seconds (labels are class indices), sorted by score.

    Args:
        model: the detector, in eval mode on ``plan.device``.
        videos: prepared videos (ground truth, if any, is ignored) or video files.
        plan: windows, transform, post-processing, device and precision.
        batch_size: windows per forward.
        num_workers: decoding processes (0: decode in this process).
        video_step: applied to each video's merged detections (e.g. classifier fusion).
        progress: ``(description, windows done, windows listed)`` callback.
    """
    settings, resize = plan.settings, plan.resize

    def per_batch(batch: WindowBatch) -> list[Detections]:
        with torch.no_grad(), plan.autocast():
            outputs = model(batch.frames.to(plan.device), batch.masks.to(plan.device))
        return detect_batch(outputs, settings, resize)

    def per_video(record: VideoRecord, parts: list[tuple[WindowMeta, Detections]]) -> Detections:
        seconds = [
            detections_to_seconds(found, meta.fps, meta.snippet_stride, meta.window_start_frame, meta.duration)
            for meta, found in parts
        ]
        # one soft-NMS over all windows; a resized video's single window had its soft-NMS already
        detections = Detections.cat(seconds) if resize else merge_windows(seconds, settings)
        return video_step(record, detections) if video_step is not None else detections

    yield from stream_windows(videos, plan, per_batch, per_video, batch_size, num_workers, progress)


@dataclass(frozen=True)
class VideoFeatures:
    """Backbone features of one whole video: ``features[i]`` is detector step ``i`` (``snippet_stride`` frames)."""

    features: np.ndarray  # float32 [T, C]
    snippet_stride: float
    fps: float


def extract_video_features(
    model: AdaTAD,
    videos: Sequence[Video],
    plan: InferencePlan,
    batch_size: int = 1,
    num_workers: int = 0,
    progress: ProgressCallback | None = None,
) -> Iterator[VideoOutput[VideoFeatures]]:
    """:meth:`AdaTAD.extract_features` over every video, window by window without overlap (whatever the plan's
    overlap), as one [T, C] array per video: step ``i`` of the video is feature ``i`` (resized videos: the
    window's T steps). ``model``: in eval mode on ``plan.device``."""
    plan = plan.without_overlap()

    def per_batch(batch: WindowBatch) -> list[tuple[np.ndarray, np.ndarray]]:
        with torch.no_grad(), plan.autocast():
            features = model.extract_features(batch.frames.to(plan.device)).float().cpu()  # [B, C, T]
        return [(f.T.numpy(), m.numpy()) for f, m in zip(features, batch.masks)]

    def per_video(record: VideoRecord, parts: list[tuple[WindowMeta, Any]]) -> VideoFeatures:
        first = parts[0][0]
        steps = [round(meta.window_start_frame / meta.snippet_stride) for meta, _ in parts]
        length = max(start + int(mask.sum()) for start, (_, (_, mask)) in zip(steps, parts))
        video = np.zeros((length, parts[0][1][0].shape[1]), dtype=np.float32)  # [T, C]
        for start, (_, (features, mask)) in zip(steps, parts):
            valid = int(mask.sum())
            video[start : start + valid] = features[:valid]  # the shifted tail window rewrites the same steps
        return VideoFeatures(video, first.snippet_stride, first.fps)

    yield from stream_windows(videos, plan, per_batch, per_video, batch_size, num_workers, progress)


def classifier_video_step(preset: Preset, classes: Sequence[str], video_ids: Sequence[str] | None = None) -> VideoStep | None:
    """For a class-agnostic preset, the step that labels each video's segments with the external video-level
    classifier (spec §5.5, ``video_classifier`` section); ``None`` for a multi-class preset.

    Args:
        preset: the model's preset.
        classes: the dataset's class names (the classifier's columns are reordered to them).
        video_ids: the videos that will be labelled (checked to have scores up front), or ``None``.

    Raises:
        TadError: the preset names no classifier file, or the file does not fit the classes or videos.
    """
    from tadcli.data.video_classifier import read_video_classifier, video_class_scores
    from tadcli.errors import PresetError
    from tadcli.model.postprocess import label_with_video_classifier

    if not preset.detector.class_agnostic:
        return None
    classifier = preset.video_classifier
    if classifier is None or classifier.path is None:
        raise PresetError(
            f"preset '{preset.name}' is class-agnostic: name the video classifier's scores with "
            "--set video_classifier.path=FILE"
        )
    scores = read_video_classifier(classifier.path, classes, video_ids)

    def label(record: VideoRecord, detections: Detections) -> Detections:
        return label_with_video_classifier(detections, video_class_scores(scores, record.video_id), classifier)

    return label

"""The one path from videos to per-video results, used by ``tad eval --run``, validation during
training, ``tad detect``, ``tad extract`` and :func:`tadcli.load_detector` alike (spec
``shared/spec/ADATAD.md`` §5):

1. every video is cut into the windows of the preset and profile (:func:`tadcli.data.pipeline.eval_dataset`)
   and decoded window by window, so memory stays bounded whatever the video's length;
2. windows go through the model in batches (:func:`stream_windows` calls a per-batch function);
3. when a video's last window is done, its per-window results are combined into the video's result.

:func:`detect_videos` plugs detection into it: candidates on each window's grid
(:func:`tadcli.model.postprocess.detect_batch`; a resized video gets its soft-NMS there), seconds
(:func:`tadcli.model.postprocess.detections_to_seconds`), then one soft-NMS per video over all its
windows (:func:`tadcli.model.postprocess.merge_windows`) and an optional per-video step (classifier
fusion). :func:`extract_video_features` plugs in the backbone features.

Videos come out in input order, each as soon as its last window is done.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from tadcli.config.profiles import DatasetProfile
from tadcli.config.schema import Preset
from tadcli.data.dataset import EvalWindowDataset, VideoRecord, WindowMeta, collate_windows, worker_context
from tadcli.data.pipeline import eval_dataset
from tadcli.errors import VideoError
from tadcli.model.adatad import AdaTAD
from tadcli.model.postprocess import Detections, PostprocessSettings, detect_batch, detections_to_seconds, merge_windows
from tadcli.progress import ProgressCallback

VideoStep = Callable[[VideoRecord, Detections], Detections]
Part = TypeVar("Part")
Result = TypeVar("Result")


@dataclass(frozen=True)
class VideoOutput(Generic[Result]):
    """The result of one video, or why there is none.

    Attributes:
        record: the video.
        result: what the per-video function made of its windows; ``None`` when it could not be decoded.
        num_windows: windows the video was cut into.
        error: the decoder's message for a video that failed.
    """

    record: VideoRecord
    result: Result | None
    num_windows: int
    error: str | None = None


class _IndexedWindows(Dataset):
    """Windows with their index and the decoding error, so failures are reported per video, not dropped."""

    def __init__(self, windows: EvalWindowDataset) -> None:
        self.windows = windows

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> tuple[int, dict | None, str | None]:
        try:
            return index, self.windows.load(index), None
        except VideoError as error:
            return index, None, str(error)


def _collate_indexed(items: Sequence[tuple[int, dict | None, str | None]]) -> tuple[list[int], dict | None, list]:
    indices = [index for index, sample, _ in items if sample is not None]
    failures = [(index, error) for index, sample, error in items if sample is None]
    return indices, collate_windows([sample for _, sample, _ in items]), failures


def inference_autocast(device: torch.device, mixed_precision: bool) -> contextlib.AbstractContextManager:
    """bf16 (or fp16) autocast on CUDA when the preset asks for mixed precision; fp32 elsewhere."""
    if device.type != "cuda" or not mixed_precision:
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)


def stream_windows(
    windows: EvalWindowDataset,
    per_batch: Callable[[dict], Sequence[Part]],
    per_video: Callable[[VideoRecord, list[tuple[WindowMeta, Part]]], Result],
    device: torch.device,
    batch_size: int = 1,
    num_workers: int = 0,
    progress: ProgressCallback | None = None,
) -> Iterator[VideoOutput[Result]]:
    """Run ``per_batch`` on batches of ``windows`` (one part per window) and ``per_video`` on each video's
    ``(meta, part)`` list, in window order; yield each video's output as soon as its last window is done."""
    last_window: dict[int, int] = {}
    counts: dict[int, int] = {}
    for window_index, (video_index, _) in enumerate(windows.windows):
        last_window[video_index] = window_index
        counts[video_index] = counts.get(video_index, 0) + 1
    loader = DataLoader(
        _IndexedWindows(windows),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_collate_indexed,
        multiprocessing_context=worker_context() if num_workers > 0 else None,
        pin_memory=device.type == "cuda",
    )
    parts: dict[int, list] = {}
    errors: dict[int, str] = {}
    next_video, done = 0, 0
    for indices, batch, failures in loader:
        for window_index, error in failures:
            errors.setdefault(windows.windows[window_index][0], error)
        if batch is not None:
            for window_index, meta, part in zip(indices, batch["metas"], per_batch(batch)):
                parts.setdefault(windows.windows[window_index][0], []).append((meta, part))
        done += len(indices) + len(failures)
        if progress is not None:
            progress("windows", done, len(windows))
        finished = max(indices + [index for index, _ in failures])
        while next_video in last_window and last_window[next_video] <= finished:
            record, error = windows.videos[next_video], errors.pop(next_video, None)
            video_parts = parts.pop(next_video, [])
            result = None if error is not None else per_video(record, video_parts)
            yield VideoOutput(record, result, counts[next_video], error)
            next_video += 1


def detect_videos(
    model: AdaTAD,
    records: Sequence[VideoRecord],
    preset: Preset,
    profile: DatasetProfile,
    settings: PostprocessSettings,
    device: torch.device | str = "cpu",
    batch_size: int = 1,
    num_workers: int = 0,
    video_step: VideoStep | None = None,
    progress: ProgressCallback | None = None,
) -> Iterator[VideoOutput[Detections]]:
    """Detections of every video in ``records`` in seconds (labels are class indices), sorted by score.

    Args:
        model: the detector (put in eval mode here); its parameters on ``device``.
        records: the videos (ground truth, if any, is ignored).
        preset: windows and image size (its ``input`` section); mixed precision on CUDA per ``train.mixed_precision``.
        profile: sampling (sliding or resize), window overlap.
        settings: post-processing (:func:`tadcli.model.build.postprocess_settings`).
        device: where the model runs.
        batch_size: windows per forward.
        num_workers: decoding processes (0: decode in this process).
        video_step: applied to each video's merged detections (e.g. classifier fusion).
        progress: ``(description, windows done, total windows)`` callback.
    """
    device = torch.device(device)
    resize = profile.sampling == "resize"
    model.eval()

    def per_batch(batch: dict) -> list[Detections]:
        with torch.no_grad(), inference_autocast(device, preset.train.mixed_precision):
            outputs = model(batch["frames"].to(device), batch["masks"].to(device))
        return detect_batch(outputs, settings, resize)

    def per_video(record: VideoRecord, parts: list[tuple[WindowMeta, Detections]]) -> Detections:
        seconds = [
            detections_to_seconds(found, meta.fps, meta.snippet_stride, meta.window_start_frame, meta.duration)
            for meta, found in parts
        ]
        # one soft-NMS over all windows; a resized video's single window had its soft-NMS already
        detections = Detections.cat(seconds) if resize else merge_windows(seconds, settings)
        return video_step(record, detections) if video_step is not None else detections

    windows = eval_dataset(records, preset, profile)
    yield from stream_windows(windows, per_batch, per_video, device, batch_size, num_workers, progress)


@dataclass(frozen=True)
class VideoFeatures:
    """Backbone features of one whole video: ``features[i]`` is detector step ``i`` (``snippet_stride`` frames)."""

    features: np.ndarray  # float32 [T, C]
    snippet_stride: float
    fps: float


def extract_video_features(
    model: AdaTAD,
    records: Sequence[VideoRecord],
    preset: Preset,
    profile: DatasetProfile,
    device: torch.device | str = "cpu",
    batch_size: int = 1,
    num_workers: int = 0,
    progress: ProgressCallback | None = None,
) -> Iterator[VideoOutput[VideoFeatures]]:
    """:meth:`AdaTAD.extract_features` over every video, window by window without overlap, as one [T, C]
    array per video: step ``i`` of the video is feature ``i`` (resized videos: the window's T steps)."""
    device = torch.device(device)
    model.eval()

    def per_batch(batch: dict) -> list[tuple[np.ndarray, np.ndarray]]:
        with torch.no_grad(), inference_autocast(device, preset.train.mixed_precision):
            features = model.extract_features(batch["frames"].to(device)).float().cpu()  # [B, C, T]
        return [(f.T.numpy(), m.numpy()) for f, m in zip(features, batch["masks"])]

    def per_video(record: VideoRecord, parts: list[tuple[WindowMeta, Any]]) -> VideoFeatures:
        first = parts[0][0]
        steps = [round(meta.window_start_frame / meta.snippet_stride) for meta, _ in parts]
        length = max(start + int(mask.sum()) for start, (_, (_, mask)) in zip(steps, parts))
        video = np.zeros((length, parts[0][1][0].shape[1]), dtype=np.float32)  # [T, C]
        for start, (_, (features, mask)) in zip(steps, parts):
            valid = int(mask.sum())
            video[start : start + valid] = features[:valid]  # the shifted tail window rewrites the same steps
        return VideoFeatures(video, first.snippet_stride, first.fps)

    windows = eval_dataset(records, preset, profile, overlap=0.0)
    yield from stream_windows(windows, per_batch, per_video, device, batch_size, num_workers, progress)


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

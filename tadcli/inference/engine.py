"""The one path from videos to detections in seconds (spec ``shared/spec/ADATAD.md`` §5), used by
``tad eval --run``, validation during training, ``tad detect`` and :func:`tadcli.load_detector` alike:

1. every video is cut into the windows of the preset and profile (:func:`tadcli.data.pipeline.eval_dataset`),
   decoded window by window (memory bounded whatever the video's length);
2. windows go through the model in batches; each window's raw outputs become candidates on its grid
   (:func:`tadcli.model.postprocess.detect_batch`; resized videos get their soft-NMS here);
3. candidates become seconds (:func:`tadcli.model.postprocess.detections_to_seconds`);
4. all windows of a video are merged by one soft-NMS (:func:`tadcli.model.postprocess.merge_windows`),
   then an optional per-video step (e.g. external classifier fusion) runs.

Videos come out in input order, each as soon as its last window is done.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset

from tadcli.config.profiles import DatasetProfile
from tadcli.config.schema import Preset
from tadcli.data.dataset import EvalWindowDataset, VideoRecord, collate_windows, worker_context
from tadcli.data.pipeline import eval_dataset
from tadcli.errors import VideoError
from tadcli.model.adatad import AdaTAD
from tadcli.model.postprocess import Detections, PostprocessSettings, detect_batch, detections_to_seconds, merge_windows

ProgressCallback = Callable[[str, int, int], None]
VideoStep = Callable[[VideoRecord, Detections], Detections]


@dataclass(frozen=True)
class VideoDetections:
    """The detections of one video, in seconds (labels are class indices), or why there are none.

    Attributes:
        record: the video.
        detections: sorted by score; ``None`` when the video could not be decoded.
        num_windows: windows the video was cut into.
        error: the decoder's message for a video that failed.
    """

    record: VideoRecord
    detections: Detections | None
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
) -> Iterator[VideoDetections]:
    """Detections of every video in ``records``, in order, one :class:`VideoDetections` each.

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
    windows = eval_dataset(records, preset, profile)
    last_window = {}  # video index -> index of its last window
    for window_index, (video_index, _) in enumerate(windows.windows):
        last_window[video_index] = window_index
    counts = {video_index: 0 for video_index in last_window}
    for video_index, _ in windows.windows:
        counts[video_index] += 1
    loader = DataLoader(
        _IndexedWindows(windows),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_collate_indexed,
        multiprocessing_context=worker_context() if num_workers > 0 else None,
        pin_memory=device.type == "cuda",
    )
    resize = profile.sampling == "resize"
    parts: dict[int, list[Detections]] = {}
    errors: dict[int, str] = {}
    next_video, done, total = 0, 0, len(windows)
    model.eval()
    for indices, batch, failures in loader:
        for window_index, error in failures:
            errors.setdefault(windows.windows[window_index][0], error)
        if batch is not None:
            with torch.no_grad(), inference_autocast(device, preset.train.mixed_precision):
                outputs = model(batch["frames"].to(device), batch["masks"].to(device))
            for window_index, meta, found in zip(indices, batch["metas"], detect_batch(outputs, settings, resize)):
                seconds = detections_to_seconds(found, meta.fps, meta.snippet_stride, meta.window_start_frame, meta.duration)
                parts.setdefault(windows.windows[window_index][0], []).append(seconds)
        done += len(indices) + len(failures)
        if progress is not None:
            progress("windows", done, total)
        finished = max(indices + [index for index, _ in failures])
        while next_video in last_window and last_window[next_video] <= finished:
            yield _finish_video(
                records[next_video],
                parts.pop(next_video, []),
                counts[next_video],
                errors.pop(next_video, None),
                settings if not resize else None,
                video_step,
            )
            next_video += 1


def _finish_video(
    record: VideoRecord,
    parts: list[Detections],
    num_windows: int,
    error: str | None,
    merge_settings: PostprocessSettings | None,
    video_step: VideoStep | None,
) -> VideoDetections:
    """Merge a video's windows: one soft-NMS over all of them (sliding), or none (``merge_settings`` None:
    the single resized window had its soft-NMS already)."""
    if error is not None:
        return VideoDetections(record, None, num_windows, error)
    detections = Detections.cat(parts) if merge_settings is None else merge_windows(parts, merge_settings)
    if video_step is not None:
        detections = video_step(record, detections)
    return VideoDetections(record, detections, num_windows)

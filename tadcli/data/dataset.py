"""Datasets of video windows for training and evaluation, their collate function and DataLoader.

A sample is one window of one video, as a dict:

=================  ================================================================================
``frames``         uint8 ``[3, F, H, W]`` RGB, 0-255 (``F = window_size * scale_factor``; normalization
                   happens on the model's device)
``mask``           bool ``[T]`` (``T = window_size``), True on steps that hold real frames
``gt_segments``    float32 ``[N, 2]`` ground truth (start, end) in steps of this window's grid
``gt_labels``      int64 ``[N]`` class indices
``meta``           :class:`WindowMeta`: video id, fps, duration, window_start_frame, snippet_stride, ...
=================  ================================================================================

:func:`collate_windows` stacks ``frames`` ``[B, 3, F, H, W]`` and ``masks`` ``[B, T]`` and keeps
``gt_segments``, ``gt_labels`` and ``metas`` as lists (spec §6.5).

Videos are opened once per DataLoader worker and kept open (a few at a time, least recently used
closed first); workers start from a fork server (:func:`worker_context`) with the dataset pickled
without readers, so no decoder state of the calling process is shared. A video that fails
to decode is logged (``logging`` warning with its id and path) and skipped: a training dataset serves
the next decodable video instead, an evaluation dataset returns ``None``, which the collate function
drops (a batch with nothing left is ``None``; loops skip it).

Randomness (random truncation, spatial augmentation) comes from a generator seeded by ``(seed, epoch,
index)``, so a sample does not depend on the number of workers; call ``set_epoch`` before each epoch.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from tadcli.data.sampling import (
    Window,
    grid_to_seconds,
    resize_window,
    segments_in_window,
    sliding_windows,
    training_window,
)
from tadcli.data.transforms import SpatialTransform, frames_from_decoder
from tadcli.data.video import Backend, VideoReader, open_video
from tadcli.errors import DatasetError, VideoError

logger = logging.getLogger(__name__)

Sampling = Literal["sliding", "resize"]


@dataclass(frozen=True)
class VideoRecord:
    """One video and its ground truth, as the datasets need them.

    Attributes:
        video_id: the video's id.
        path: the video file.
        fps: frames per second of the reader's timeline (a constant-rate file's rate).
        num_frames: frames of the reader's timeline (a constant-rate file's frames, decoder's count).
        duration: real seconds.
        segments: float64 ``[N, 2]`` ground truth (start, end) in seconds.
        labels: int64 ``[N]`` class indices.
    """

    video_id: str
    path: Path
    fps: float
    num_frames: int
    duration: float
    segments: np.ndarray
    labels: np.ndarray

    @classmethod
    def from_video(cls, path: str | Path, video_id: str | None = None) -> VideoRecord:
        """A record without ground truth for a video file (single-video detection), probed by opening it.

        Raises:
            VideoError: the file cannot be opened.
        """
        reader = open_video(path)
        return cls(
            video_id=video_id or Path(path).stem,
            path=Path(path),
            fps=reader.fps,
            num_frames=reader.num_frames,
            duration=reader.duration,
            segments=np.zeros((0, 2)),
            labels=np.zeros(0, dtype=np.int64),
        )


@dataclass(frozen=True)
class WindowMeta:
    """Where a window sits in its video: what turns its grid positions back into seconds (spec §5.2).

    ``seconds = (step * snippet_stride + window_start_frame) / fps``, clamped to ``[0, duration]``.
    """

    video_id: str
    fps: float
    duration: float
    num_frames: int
    window_start_frame: float
    snippet_stride: float
    window_size: int

    def grid_to_seconds(self, steps):
        """Grid positions (numpy array or torch tensor) -> seconds in the video."""
        return grid_to_seconds(steps, self.fps, self.snippet_stride, self.window_start_frame, self.duration)


class _ReaderCache:
    """Open readers, least recently used closed first; never pickled (each worker opens its own)."""

    def __init__(self, capacity: int, short_side: int | None, backend: Backend) -> None:
        self.capacity = capacity
        self.short_side = short_side
        self.backend = backend
        self._readers: OrderedDict[Path, VideoReader] = OrderedDict()

    def get(self, path: Path) -> VideoReader:
        reader = self._readers.pop(path, None)
        if reader is None:
            reader = open_video(path, short_side=self.short_side, backend=self.backend)
        self._readers[path] = reader
        while len(self._readers) > self.capacity:
            self._readers.popitem(last=False)
        return reader

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_readers": OrderedDict()}


class _WindowLoader:
    """Decode a window's frames chunk by chunk and transform them with one plan per sample."""

    def __init__(
        self,
        transform: SpatialTransform,
        short_side: int | None,
        backend: Backend,
        decode_chunk_frames: int,
        max_open_videos: int,
    ) -> None:
        self.transform = transform
        self.decode_chunk_frames = decode_chunk_frames
        self.readers = _ReaderCache(max_open_videos, short_side, backend)

    def load(self, record: VideoRecord, window: Window, rng: np.random.Generator) -> torch.Tensor:
        """uint8 ``[3, F, H, W]`` frames of ``window`` in ``record``'s video.

        Raises:
            VideoError: the video cannot be opened or decoded.
        """
        reader = self.readers.get(record.path)
        plan = self.transform.sample(reader.height, reader.width, rng)
        unique, inverse = np.unique(window.frame_indices, return_inverse=True)  # padding repeats frames
        chunks = [
            self.transform.apply(frames_from_decoder(reader.get_frames(unique[i : i + self.decode_chunk_frames])), plan)
            for i in range(0, len(unique), self.decode_chunk_frames)
        ]
        frames = torch.cat(chunks).permute(1, 0, 2, 3)  # [U, 3, H, W] -> [3, U, H, W]
        return frames[:, torch.from_numpy(inverse.reshape(-1))]  # [3, U, H, W] -> [3, F, H, W]


def _sample(frames: torch.Tensor, window: Window, segments: np.ndarray, labels: np.ndarray, meta: WindowMeta) -> dict:
    return {
        "frames": frames,
        "mask": torch.from_numpy(window.mask.copy()),
        "gt_segments": torch.as_tensor(segments, dtype=torch.float32).reshape(-1, 2),
        "gt_labels": torch.as_tensor(labels, dtype=torch.int64).reshape(-1),
        "meta": meta,
    }


def _meta(record: VideoRecord, window: Window, window_size: int) -> WindowMeta:
    return WindowMeta(
        video_id=record.video_id,
        fps=window.fps,
        duration=record.duration,
        num_frames=record.num_frames,
        window_start_frame=window.window_start_frame,
        snippet_stride=window.snippet_stride,
        window_size=window_size,
    )


def _ground_truth_in_window(record: VideoRecord, window: Window, window_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth of ``record`` on ``window``'s grid, clipped to it; segments outside are left out."""
    segments, keep = segments_in_window(window.seconds_to_grid(record.segments.clip(0, record.duration)), window_size)
    return segments, record.labels[keep]


class TrainWindowDataset(Dataset):
    """One random training window per video and epoch (spec §6.3).

    Args:
        videos: the training videos.
        window_size: ``T``, detector steps per window.
        scale_factor: frames per step fed to the backbone (``F = T * scale_factor`` frames per window).
        frame_stride: video frames between two sampled frames (sliding sampling).
        sampling: ``"sliding"``: a random truncation window (``trunc_thresh``, ``crop_ratio``);
            ``"resize"``: the whole video resampled to ``F`` frames (ActivityNet).
        trunc_thresh: minimum kept fraction of an action in a random window.
        crop_ratio: crop range for videos shorter than a window, or ``None``.
        transform: spatial transform (usually :class:`tadcli.data.transforms.TrainTransform`).
        short_side: short side the decoder scales frames to (the transform's resize), ``None``: source.
        seed: base seed of the per-sample generators.
        backend: video decoder (``"auto"``: decord, PyAV fallback).
        decode_chunk_frames: frames decoded and transformed at a time (bounds memory at high resolution).
        max_open_videos: readers kept open per worker.
    """

    def __init__(
        self,
        videos: Sequence[VideoRecord],
        window_size: int,
        scale_factor: int,
        frame_stride: int,
        sampling: Sampling,
        trunc_thresh: float,
        crop_ratio: tuple[float, float] | None,
        transform: SpatialTransform,
        short_side: int | None,
        seed: int = 0,
        backend: Backend = "auto",
        decode_chunk_frames: int = 64,
        max_open_videos: int = 4,
    ) -> None:
        if not videos:
            raise DatasetError("training dataset: no video")
        self.videos = list(videos)
        self.window_size = window_size
        self.scale_factor = scale_factor
        self.frame_stride = frame_stride
        self.sampling = sampling
        self.trunc_thresh = trunc_thresh
        self.crop_ratio = crop_ratio
        self.seed = seed
        self.epoch = 0
        self.loader = _WindowLoader(transform, short_side, backend, decode_chunk_frames, max_open_videos)
        self._failed: set[int] = set()

    def set_epoch(self, epoch: int) -> None:
        """Use the random windows and augmentations of ``epoch`` (call before iterating)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> dict:
        """The window of video ``index``; if it cannot be decoded, of the next video that can.

        Raises:
            DatasetError: no video of the dataset can be decoded.
        """
        for offset in range(len(self.videos)):
            candidate = (index + offset) % len(self.videos)
            if candidate in self._failed:
                continue
            try:
                return self._load(candidate)
            except VideoError as error:
                record = self.videos[candidate]
                logger.warning("skipping video %s (%s): %s", record.video_id, record.path, error)
                self._failed.add(candidate)
        raise DatasetError(f"training dataset: none of its {len(self.videos)} videos can be decoded (see the log)")

    def _load(self, index: int) -> dict:
        record = self.videos[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        if self.sampling == "resize":
            window = resize_window(record.num_frames, record.fps, record.duration, self.window_size, self.scale_factor)
            segments, labels = _ground_truth_in_window(record, window, self.window_size)
        else:
            window, segments, keep = training_window(
                record.num_frames,
                record.fps,
                record.segments,
                self.window_size,
                self.scale_factor,
                self.frame_stride,
                self.trunc_thresh,
                self.crop_ratio,
                rng,
            )
            labels = record.labels[keep]
        frames = self.loader.load(record, window, rng)
        return _sample(frames, window, segments, labels, _meta(record, window, self.window_size))


class EvalWindowDataset(Dataset):
    """Every evaluation window of every video, in order (spec §6.3): sliding windows that cover each
    video, or one resized window per video.

    Args:
        videos: the videos to evaluate (ground truth is optional: empty arrays for detection).
        window_size: ``T``, detector steps per window.
        scale_factor: frames per step (``F = T * scale_factor``).
        frame_stride: video frames between two sampled frames (sliding sampling).
        sampling: ``"sliding"`` or ``"resize"``.
        overlap: fraction of a window shared with the next (sliding sampling; THUMOS 0.5).
        transform: spatial transform (usually :class:`tadcli.data.transforms.EvalTransform`).
        short_side: short side the decoder scales frames to, ``None``: source size.
        backend, decode_chunk_frames, max_open_videos: as in :class:`TrainWindowDataset`.
    """

    def __init__(
        self,
        videos: Sequence[VideoRecord],
        window_size: int,
        scale_factor: int,
        frame_stride: int,
        sampling: Sampling,
        overlap: float,
        transform: SpatialTransform,
        short_side: int | None,
        backend: Backend = "auto",
        decode_chunk_frames: int = 64,
        max_open_videos: int = 2,
    ) -> None:
        self.videos = list(videos)
        self.window_size = window_size
        self.loader = _WindowLoader(transform, short_side, backend, decode_chunk_frames, max_open_videos)
        self.windows: list[tuple[int, Window]] = []
        for video_index, record in enumerate(self.videos):
            if sampling == "resize":
                windows = [resize_window(record.num_frames, record.fps, record.duration, window_size, scale_factor)]
            else:
                windows = sliding_windows(
                    record.num_frames, record.fps, window_size, scale_factor, frame_stride, overlap
                )
            self.windows.extend((video_index, window) for window in windows)
        self._failed: set[int] = set()

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict | None:
        """Window ``index``, or ``None`` when its video cannot be decoded (logged once per worker)."""
        video_index, _ = self.windows[index]
        if video_index in self._failed:
            return None
        try:
            return self.load(index)
        except VideoError as error:
            record = self.videos[video_index]
            logger.warning("skipping video %s (%s): %s", record.video_id, record.path, error)
            self._failed.add(video_index)
            return None

    def load(self, index: int) -> dict:
        """Window ``index``.

        Raises:
            VideoError: its video cannot be opened or decoded.
        """
        video_index, window = self.windows[index]
        record = self.videos[video_index]
        frames = self.loader.load(record, window, np.random.default_rng(0))
        segments, labels = _ground_truth_in_window(record, window, self.window_size)
        return _sample(frames, window, segments, labels, _meta(record, window, self.window_size))


def collate_windows(samples: Sequence[dict | None]) -> dict | None:
    """Batch samples: ``frames`` uint8 ``[B, 3, F, H, W]``, ``masks`` bool ``[B, T]``, and the lists
    ``gt_segments``, ``gt_labels``, ``metas``. ``None`` samples (videos that failed) are dropped; a
    batch with nothing left is ``None``."""
    kept = [sample for sample in samples if sample is not None]
    if not kept:
        return None
    return {
        "frames": torch.stack([sample["frames"] for sample in kept]),
        "masks": torch.stack([sample["mask"] for sample in kept]),
        "gt_segments": [sample["gt_segments"] for sample in kept],
        "gt_labels": [sample["gt_labels"] for sample in kept],
        "metas": [sample["meta"] for sample in kept],
    }


def worker_context() -> multiprocessing.context.BaseContext:
    """How DataLoader workers start: from a fork server that has only imported ``tadcli.data.dataset``
    (``spawn`` where fork servers do not exist, on Windows).

    Plain ``fork`` copies the caller's open decoders and their FFmpeg threads; a worker that frees such
    a copy (a reader, or garbage from probing or encoding a video) waits forever on a lock that
    belonged to a thread of the parent. Workers started from the fork server receive the dataset
    pickled, without readers, and open their own; starting one takes milliseconds, not a fresh import.
    As with ``spawn``, a script that iterates a loader with workers needs the ``if __name__ == "__main__":``
    guard (the ``tad`` command has it).
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


def make_dataloader(
    dataset: TrainWindowDataset | EvalWindowDataset,
    batch_size: int,
    shuffle: bool,
    num_workers: int = 0,
    seed: int = 0,
    drop_last: bool = False,
    sampler: Sampler | None = None,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader over window datasets with :func:`collate_windows` and per-worker readers.

    Workers are started for each epoch (not persistent), so a ``set_epoch`` made before iterating
    reaches them with the pickled dataset.

    Args:
        dataset: a :class:`TrainWindowDataset` or :class:`EvalWindowDataset`.
        batch_size: windows per batch.
        shuffle: shuffle the order (training), seeded by ``seed``; ignored when ``sampler`` is given.
        num_workers: worker processes (0: load in the calling process).
        seed: seed of the shuffling generator.
        drop_last: drop a last incomplete batch.
        sampler: e.g. a ``DistributedSampler``; it then owns the order.
        pin_memory: pin batches for faster host-to-GPU copies.
    """
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_windows,
        multiprocessing_context=worker_context() if num_workers > 0 else None,
        generator=generator,
        drop_last=drop_last,
        pin_memory=pin_memory,
    )

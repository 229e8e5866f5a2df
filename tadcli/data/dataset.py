"""Datasets of video windows for training and evaluation, and their batches.

A sample is one window of one video, a :class:`WindowSample`: uint8 ``frames`` ``[3, F, H, W]`` RGB 0-255
(``F = window_size * scale_factor``; normalization happens on the model's device), bool ``mask`` ``[T]``
(``T = window_size``, True on steps that hold real frames), ``gt_segments`` float32 ``[N, 2]`` (ground truth on
the window's grid), ``gt_labels`` int64 ``[N]`` and its :class:`WindowMeta`. :func:`collate_windows` makes a
:class:`WindowBatch`: ``frames`` ``[B, 3, F, H, W]`` and ``masks`` ``[B, T]`` stacked, ``gt_segments``,
``gt_labels`` and ``metas`` as lists (spec §6.5). :mod:`tadcli.data.loader` builds the DataLoaders.

Videos are opened once per process and kept open (a few at a time, least recently used closed first);
DataLoader workers start from a fork server (:func:`worker_context`) with the dataset pickled without
readers, so no decoder state of the calling process is shared. A training video that fails to decode is
logged (``logging`` warning with its id and path) and the next decodable video is served instead.

Evaluation windows are requested one by one (:class:`EvalWindow`), video after video, by
:class:`EvalWindowBatches`, which lists a video's windows when the stream reaches it: a video file is opened
then, once, and its record read from its reader; :class:`EvalWindowDataset` decodes a request into a
:class:`DecodedWindow`, which carries the sample or why there is none (the file could not be opened or decoded).

Randomness (random truncation, spatial augmentation) comes from a generator seeded by ``(seed, epoch,
index)``, so a sample does not depend on the number of workers; call ``set_epoch`` before each epoch.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from tadcli.data.sampling import (
    Window,
    WindowGeometry,
    grid_to_seconds,
    resize_window,
    segments_in_window,
    training_window,
)
from tadcli.data.transforms import SpatialTransform, frames_from_decoder
from tadcli.data.video import Backend, VideoReader, configured_decoder, open_video
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
    def from_reader(cls, reader: VideoReader, video_id: str) -> VideoRecord:
        """A record without ground truth for an open video (detection): its timeline as the reader reads it."""
        return cls(
            video_id=video_id,
            path=reader.path,
            fps=reader.fps,
            num_frames=reader.num_frames,
            duration=reader.duration,
            segments=np.zeros((0, 2)),
            labels=np.zeros(0, dtype=np.int64),
        )

    @classmethod
    def from_video(cls, path: str | Path, video_id: str | None = None) -> VideoRecord:
        """A record without ground truth for a video file, probed by opening it (default id: the file stem).

        Raises:
            VideoError: the file cannot be opened.
        """
        return cls.from_reader(open_video(path), video_id or Path(path).stem)


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


@dataclass(frozen=True)
class WindowSample:
    """One window of one video as the model's input and its ground truth (shapes in the module doc)."""

    frames: torch.Tensor  # uint8 [3, F, H, W]
    mask: torch.Tensor  # bool [T]
    gt_segments: torch.Tensor  # float32 [N, 2], steps of the window's grid
    gt_labels: torch.Tensor  # int64 [N]
    meta: WindowMeta


@dataclass(frozen=True)
class WindowBatch:
    """Windows batched (:func:`collate_windows`): what the model and the loss take."""

    frames: torch.Tensor  # uint8 [B, 3, F, H, W]
    masks: torch.Tensor  # bool [B, T]
    gt_segments: list[torch.Tensor]  # B x float32 [N_b, 2]
    gt_labels: list[torch.Tensor]  # B x int64 [N_b]
    metas: list[WindowMeta] = field(default_factory=list)  # empty for synthetic batches (memory profiling)

    def __len__(self) -> int:
        return len(self.frames)

    def pin_memory(self) -> WindowBatch:
        """The tensors in pinned memory (the DataLoader calls it for a CUDA device)."""
        return WindowBatch(
            self.frames.pin_memory(),
            self.masks.pin_memory(),
            [s.pin_memory() for s in self.gt_segments],
            [label.pin_memory() for label in self.gt_labels],
            self.metas,
        )

    def to(self, device: torch.device) -> WindowBatch:
        """The tensors on ``device`` (non-blocking copies to CUDA, from pinned memory); ``metas`` as they are."""
        non_blocking = device.type == "cuda"
        return WindowBatch(
            self.frames.to(device, non_blocking=non_blocking),
            self.masks.to(device, non_blocking=non_blocking),
            [s.to(device, non_blocking=non_blocking) for s in self.gt_segments],
            [label.to(device, non_blocking=non_blocking) for label in self.gt_labels],
            self.metas,
        )


class _ReaderCache:
    """Open readers, least recently used closed first; never pickled (each worker opens its own).

    The decoder is resolved here, in the process that builds the dataset (``None``: ``$TAD_DECODER``, else
    decord when installed), and travels to the workers with the pickled dataset.
    """

    def __init__(self, capacity: int, short_side: int | None, backend: Backend | None) -> None:
        self.capacity = capacity
        self.short_side = short_side
        self.backend = configured_decoder(backend)
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
        backend: Backend | None,
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


def _sample(frames: torch.Tensor, window: Window, segments: np.ndarray, labels: np.ndarray, meta: WindowMeta) -> WindowSample:
    return WindowSample(
        frames=frames,
        mask=torch.from_numpy(window.mask.copy()),
        gt_segments=torch.as_tensor(segments, dtype=torch.float32).reshape(-1, 2),
        gt_labels=torch.as_tensor(labels, dtype=torch.int64).reshape(-1),
        meta=meta,
    )


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
        backend: video decoder, ``"decord"`` (PyAV for the files decord cannot read) or ``"pyav"``; ``None``:
            ``$TAD_DECODER``, else decord when installed (:func:`tadcli.data.video.configured_decoder`).
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
        backend: Backend | None = None,
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

    def __getitem__(self, index: int) -> WindowSample:
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

    def _load(self, index: int) -> WindowSample:
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


@dataclass(frozen=True)
class EvalWindow:
    """One window the inference stream asks :class:`EvalWindowDataset` for (a DataLoader index).

    Attributes:
        video_index: the video's position in the stream's input.
        record: the video; ``None`` when it could not be opened.
        window: the window; ``None`` when the video could not be opened.
        last: the video's last window (its video is finished with it).
        error: why the video could not be opened.
    """

    video_index: int
    record: VideoRecord | None
    window: Window | None
    last: bool
    error: str | None = None


@dataclass(frozen=True)
class DecodedWindow:
    """What became of a request: its sample, or why there is none (``error``: open or decoding failure)."""

    request: EvalWindow
    sample: WindowSample | None
    error: str | None = None


class EvalWindowDataset(Dataset):
    """Evaluation windows decoded on request (spec §6.3): ``dataset[EvalWindow]`` is a :class:`DecodedWindow`.

    Args:
        geometry: how windows are cut (``window_size`` is the grid the ground truth is put on).
        transform: spatial transform (usually :class:`tadcli.data.transforms.EvalTransform`).
        short_side: short side the decoder scales frames to, ``None``: source size.
        backend, decode_chunk_frames, max_open_videos: as in :class:`TrainWindowDataset`.
    """

    def __init__(
        self,
        geometry: WindowGeometry,
        transform: SpatialTransform,
        short_side: int | None,
        backend: Backend | None = None,
        decode_chunk_frames: int = 64,
        max_open_videos: int = 2,
    ) -> None:
        self.geometry = geometry
        self.loader = _WindowLoader(transform, short_side, backend, decode_chunk_frames, max_open_videos)

    def open(self, path: Path) -> VideoReader:
        """The reader of ``path``, kept open: decoding in this process reuses it.

        Raises:
            VideoError: the file cannot be opened.
        """
        return self.loader.readers.get(path)

    def __getitem__(self, request: EvalWindow) -> DecodedWindow:
        if request.error is not None:
            return DecodedWindow(request, None, request.error)
        try:
            return DecodedWindow(request, self.load(request.record, request.window))
        except VideoError as error:
            return DecodedWindow(request, None, str(error))

    def load(self, record: VideoRecord, window: Window) -> WindowSample:
        """Window ``window`` of ``record``'s video, with the ground truth on its grid.

        Raises:
            VideoError: the video cannot be opened or decoded.
        """
        frames = self.loader.load(record, window, np.random.default_rng(0))
        segments, labels = _ground_truth_in_window(record, window, self.geometry.window_size)
        return _sample(frames, window, segments, labels, _meta(record, window, self.geometry.window_size))


class EvalWindowBatches:
    """Batches of :class:`EvalWindow` requests over ``videos``, in order: a DataLoader ``batch_sampler``.

    A :class:`VideoRecord` (a prepared dataset's video: its timeline is known) is cut into windows without
    being opened. A video file (``str`` or ``Path``, detection) is opened when the stream reaches it, by
    ``dataset``'s reader cache in this process, which decoding in this process then reuses (workers open their
    own); its record is read from the reader, with the file as given as its id. A file that cannot be opened
    is one request that carries the error, so it is reported as a decoding failure is.

    Attributes:
        listed: windows listed so far: every record's from the start, a file's once it is opened.
    """

    def __init__(self, videos: Sequence[VideoRecord | str | Path], dataset: EvalWindowDataset, batch_size: int) -> None:
        self.videos = list(videos)
        self.dataset = dataset
        self.batch_size = batch_size
        self.listed = sum(len(self._windows(v)) for v in self.videos if isinstance(v, VideoRecord))

    def _windows(self, record: VideoRecord) -> list[Window]:
        return self.dataset.geometry.eval_windows(record.num_frames, record.fps, record.duration)

    def _requests(self, video_index: int, video: VideoRecord | str | Path) -> list[EvalWindow]:
        if isinstance(video, VideoRecord):
            record = video
        else:
            try:
                record = VideoRecord.from_reader(self.dataset.open(Path(video)), str(video))
            except VideoError as error:
                return [EvalWindow(video_index, None, None, last=True, error=str(error))]
        windows = self._windows(record)
        if not isinstance(video, VideoRecord):
            self.listed += len(windows)
        return [EvalWindow(video_index, record, w, last=i == len(windows) - 1) for i, w in enumerate(windows)]

    def __iter__(self) -> Iterator[list[EvalWindow]]:
        batch: list[EvalWindow] = []
        for video_index, video in enumerate(self.videos):
            for request in self._requests(video_index, video):
                batch.append(request)
                if len(batch) == self.batch_size:
                    yield batch
                    batch = []
        if batch:
            yield batch


def collate_windows(samples: Sequence[WindowSample | None]) -> WindowBatch | None:
    """Batch samples (:class:`WindowBatch`); ``None`` samples (videos that failed) are dropped; a batch with
    nothing left is ``None``."""
    kept = [sample for sample in samples if sample is not None]
    if not kept:
        return None
    return WindowBatch(
        frames=torch.stack([sample.frames for sample in kept]),
        masks=torch.stack([sample.mask for sample in kept]),
        gt_segments=[sample.gt_segments for sample in kept],
        gt_labels=[sample.gt_labels for sample in kept],
        metas=[sample.meta for sample in kept],
    )


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

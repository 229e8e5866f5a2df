"""The one DataLoader builder of window datasets: training batches, evaluation and detection streams.

Workers start from a fork server (:func:`tadcli.data.dataset.worker_context`) and receive the dataset
pickled without readers; they are started for each iteration (not persistent), so a ``set_epoch`` made
before iterating reaches them. Batches are pinned for the copy to a CUDA device.

Example::

    loader = window_loader(dataset, batch_size=2, num_workers=2, device=torch.device("cuda"))
    for batch in loader:  # WindowBatch (or None when every video of it failed)
        outputs = model(batch.frames.to("cuda"), batch.masks.to("cuda"))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from tadcli.data.dataset import collate_windows, worker_context


# the share of a step spent waiting for data above which more decoding workers are started
STARVED_WAIT_FRACTION = 0.1
FIRST_EPOCH_WORKERS = 2


def training_workers(
    cores: int,
    processes: int,
    current: int | None = None,
    wait_seconds: float = 0.0,
    compute_seconds: float = 0.0,
) -> int:
    """Decoding processes per training process when neither the preset (``train.num_workers``) nor ``--workers``
    sets them: chosen from the cores and the measured decode-to-compute ratio.

    Each training process keeps one core for itself; the rest (``spare = cores // processes - 1``) may decode.
    Before anything is measured (``current`` ``None``): ``min(2, spare)``. After an epoch with ``current``
    workers, in which a step waited ``wait_seconds`` for its batches and computed ``compute_seconds`` (means):
    one worker needs ``decode = current * (wait + compute)`` seconds per step's batches (``wait`` alone when
    decoding ran in the training process), so ``ceil(decode / compute)`` workers keep up; the count only grows,
    when the step waited more than :data:`STARVED_WAIT_FRACTION` of its compute, and never past ``spare``.
    Samples do not depend on the number of workers (:mod:`tadcli.data.dataset`), so this changes speed only.
    """
    spare = max(cores // max(processes, 1) - 1, 0)
    if current is None:
        return min(FIRST_EPOCH_WORKERS, spare)
    if compute_seconds <= 0 or wait_seconds <= STARVED_WAIT_FRACTION * compute_seconds:
        return min(current, spare)
    decode_seconds = wait_seconds if current == 0 else current * (wait_seconds + compute_seconds)
    return min(max(math.ceil(decode_seconds / compute_seconds), current), spare)


def single_thread_worker(worker_id: int) -> None:
    """DataLoader workers decode with one intra-op thread (many busy threads on few cores are far slower)."""
    torch.set_num_threads(1)


def window_loader(
    dataset: Dataset,
    *,
    batch_size: int | None = None,
    batch_sampler: Iterable[Sequence[Any]] | None = None,
    num_workers: int = 0,
    device: torch.device,
    seed: int | None = None,
    collate: Callable[[list], Any] = collate_windows,
    single_thread_workers: bool = False,
) -> DataLoader:
    """A DataLoader over ``dataset`` in order: batches of ``batch_size`` consecutive indices, or the index lists
    ``batch_sampler`` yields (one of the two).

    Args:
        dataset: a window dataset (:mod:`tadcli.data.dataset`).
        batch_size: windows per batch, indices in order.
        batch_sampler: the index lists of the batches instead (a training epoch's order, an inference stream).
        num_workers: decoding processes (0: decode in the calling process).
        device: where the batches go (pinned memory for CUDA).
        seed: seed of the loader's own generator (worker seeds), so iterating never draws from the global RNG;
            ``None``: torch's default, one draw from the global RNG per iteration (inference keeps it, so that a
            validation during training leaves the training's random stream as it always did).
        collate: turns a list of dataset items into a batch (default :func:`~tadcli.data.dataset.collate_windows`).
        single_thread_workers: workers compute with one intra-op thread (:func:`single_thread_worker`).
    """
    if (batch_size is None) == (batch_sampler is None):
        raise ValueError("give either batch_size or batch_sampler")
    workers = num_workers > 0
    return DataLoader(
        dataset,
        batch_size=batch_size if batch_sampler is None else 1,
        shuffle=False,
        batch_sampler=batch_sampler,
        num_workers=num_workers,
        collate_fn=collate,
        multiprocessing_context=worker_context() if workers else None,
        worker_init_fn=single_thread_worker if workers and single_thread_workers else None,
        generator=None if seed is None else torch.Generator().manual_seed(seed),
        pin_memory=device.type == "cuda",
    )

"""How the videos of an epoch become optimizer steps and micro-batches (spec §3).

Data order: epoch ``e`` visits the training videos in a permutation seeded by ``(seed, e)``; optimizer
step ``k`` takes the ``k``-th run of ``batch_size`` videos; inside it, micro-batch slot ``v`` (rank
``v // accumulation``, micro-batch ``v % accumulation``) takes the ``v``-th run of ``micro_batch_size``
videos. Every sample's randomness is seeded by ``(seed, epoch, video)`` (:mod:`tadcli.data.dataset`), so
the batches do not depend on the number of processes, and a resumed run sees exactly the batches the
uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Sampler

from tadcli.config.schema import Preset
from tadcli.data.dataset import TrainWindowDataset
from tadcli.data.loader import window_loader
from tadcli.errors import TadError


@dataclass(frozen=True)
class BatchPlan:
    """How the global batch is spread: ``world_size`` processes x ``accumulation`` micro-batches x
    ``micro_batch_size`` videos."""

    batch_size: int
    micro_batch_size: int
    accumulation: int
    world_size: int
    steps_per_epoch: int

    def describe(self) -> str:
        """One line: how the global batch is made and that each forward keeps its own loss normaliser."""
        return (
            f"global batch {self.batch_size} = {self.world_size} process(es) x {self.accumulation} accumulated "
            f"forward(s) x {self.micro_batch_size} video(s); each forward keeps its own loss normaliser, as each "
            f"GPU of the reference does"
        )


def plan_batches(preset: Preset, num_videos: int, world_size: int) -> BatchPlan:
    """The batch plan of ``preset`` for ``num_videos`` training videos on ``world_size`` processes.

    Raises:
        TadError: the global batch does not split evenly, or there are fewer videos than one batch.
    """
    batch = preset.train.batch_size
    micro = preset.train.micro_batch_size or max(batch // world_size, 1)
    if batch % (micro * world_size):
        counts = [n for n in range(1, batch // micro + 1) if batch % (micro * n) == 0] if batch % micro == 0 else []
        fix = f"run on {' or '.join(map(str, counts))} process(es), or " if counts else ""
        raise TadError(
            f"train.batch_size {batch} (the global batch) does not split into {world_size} process(es) x "
            f"train.micro_batch_size {micro} video(s) x an accumulation count: {fix}"
            f"--set train.batch_size={micro * world_size * max(1, batch // (micro * world_size))}"
        )
    if num_videos < batch:
        raise TadError(f"the training subset has {num_videos} video(s), fewer than train.batch_size {batch}")
    return BatchPlan(batch, micro, batch // (micro * world_size), world_size, num_videos // batch)


class MicroBatchSampler(Sampler[list[int]]):
    """This rank's micro-batches of one epoch, from optimizer step ``first_step`` on (see the module doc)."""

    def __init__(self, num_videos: int, plan: BatchPlan, rank: int, seed: int, epoch: int, first_step: int) -> None:
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
        self.order = torch.randperm(num_videos, generator=generator).tolist()
        self.plan = plan
        self.rank = rank
        self.first_step = first_step

    def __len__(self) -> int:
        return (self.plan.steps_per_epoch - self.first_step) * self.plan.accumulation

    def __iter__(self) -> Iterator[list[int]]:
        plan = self.plan
        for step in range(self.first_step, plan.steps_per_epoch):
            batch = self.order[step * plan.batch_size : (step + 1) * plan.batch_size]
            for micro in range(plan.accumulation):
                slot = self.rank * plan.accumulation + micro
                yield batch[slot * plan.micro_batch_size : (slot + 1) * plan.micro_batch_size]


def epoch_loader(
    dataset: TrainWindowDataset,
    plan: BatchPlan,
    rank: int,
    seed: int,
    epoch: int,
    first_step: int,
    num_workers: int,
    device: torch.device,
) -> tuple[DataLoader, MicroBatchSampler]:
    """This rank's micro-batches of epoch ``epoch`` from optimizer step ``first_step`` on, decoded by
    ``num_workers`` processes, and the sampler that orders them (it says which videos were asked for)."""
    dataset.set_epoch(epoch)
    sampler = MicroBatchSampler(len(dataset), plan, rank, seed, epoch, first_step)
    loader = window_loader(
        dataset, batch_sampler=sampler, num_workers=num_workers, device=device, seed=seed, single_thread_workers=True
    )
    return loader, sampler

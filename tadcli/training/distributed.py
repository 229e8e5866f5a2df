"""Processes: one process, ``torchrun``, or ``tad train --nproc N`` starting the same workers itself.

Under ``torchrun`` (or the workers :func:`launch_workers` starts) the usual variables ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` are set; :func:`init_distributed`
then joins the process group: NCCL on GPUs, gloo on the CPU. Multi-node runs use torchrun's variables
unchanged. Without them the run is a single process and needs no launcher.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.queues import SimpleQueue

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tadcli.errors import TrainingInterrupted, user_error


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in the run: ``rank`` of ``world_size``, ``local_rank`` on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def context_from_environment() -> DistributedContext:
    """The context torchrun's variables describe (a single process when they are absent)."""
    if "WORLD_SIZE" not in os.environ:
        return DistributedContext()
    return DistributedContext(
        rank=int(os.environ["RANK"]),
        world_size=int(os.environ["WORLD_SIZE"]),
        local_rank=int(os.environ.get("LOCAL_RANK", os.environ["RANK"])),
    )


def init_distributed(context: DistributedContext, device: torch.device) -> None:
    """Join the process group of a multi-process run (NCCL for CUDA, gloo for the CPU); nothing for one process."""
    if not context.distributed or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=context.rank, world_size=context.world_size)


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def gather_to_main(value: object, context: DistributedContext) -> list[object]:
    """Every rank's ``value`` on every rank (``[value]`` in a single process)."""
    if not context.distributed:
        return [value]
    gathered: list[object] = [None] * context.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _worker(local_rank: int, nproc: int, port: int, function: Callable, args: tuple, failures: SimpleQueue) -> None:
    os.environ.update(
        {
            "RANK": str(local_rank),
            "LOCAL_RANK": str(local_rank),
            "WORLD_SIZE": str(nproc),
            "LOCAL_WORLD_SIZE": str(nproc),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
    )
    try:
        function(*args)
    except Exception as error:
        typed = error if isinstance(error, TrainingInterrupted) else user_error(error)
        if typed is not None:  # the parent raises it again as its own class
            failures.put(WorkerFailure(local_rank, type(typed), str(typed)))
        raise


@dataclass(frozen=True)
class WorkerFailure:
    """What a worker process sends its parent when it fails with one of tad's errors: the class and message."""

    rank: int
    error_type: type[BaseException]
    message: str


def launch_workers(nproc: int, function: Callable, args: tuple) -> None:
    """Run ``function(*args)`` in ``nproc`` fresh processes on this machine, as torchrun would, and wait.

    ``function`` must be importable (a module-level function); each worker sees torchrun's variables.

    Raises:
        TadError: a worker failed with one: the same class and message (the failing rank's, or the first
            reported), likewise :class:`~tadcli.errors.TrainingInterrupted` and the system errors that
            :func:`~tadcli.errors.user_error` names.
        torch.multiprocessing.ProcessRaisedException: a worker failed otherwise (a bug); the others are stopped.
        torch.multiprocessing.ProcessExitedException: a worker was killed.
    """
    failures = mp.get_context("spawn").SimpleQueue()
    try:
        mp.start_processes(
            _worker, args=(nproc, free_port(), function, args, failures), nprocs=nproc, join=True, start_method="spawn"
        )
    except mp.ProcessRaisedException as error:
        reported = {}
        while not failures.empty():
            failure = failures.get()
            reported[failure.rank] = failure
        if not reported:
            raise
        failure = reported.get(error.error_index, next(iter(reported.values())))
        raise failure.error_type(failure.message) from None

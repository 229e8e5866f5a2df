"""Processes and devices: one process, ``torchrun``, or ``tad train --nproc N`` starting the same workers itself.

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

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tadcli.errors import TadError


class DeviceError(TadError):
    """The requested device is not available."""


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


def resolve_device(request: str, local_rank: int = 0) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; CUDA processes use GPU ``local_rank``.

    Raises:
        DeviceError: CUDA asked for but not available, or an unknown name.
    """
    if request == "auto":
        request = "cuda" if torch.cuda.is_available() else "cpu"
    if request == "cpu":
        return torch.device("cpu")
    if request.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {request}: CUDA is not available on this machine (use --device cpu)")
        device = torch.device(request)
        return device if device.index is not None else torch.device("cuda", local_rank % torch.cuda.device_count())
    raise DeviceError(f"unknown device '{request}' (choose auto, cpu, cuda or cuda:N)")


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


def _worker(local_rank: int, nproc: int, port: int, function: Callable, args: tuple) -> None:
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
    function(*args)


def launch_workers(nproc: int, function: Callable, args: tuple) -> None:
    """Run ``function(*args)`` in ``nproc`` fresh processes on this machine, as torchrun would, and wait.

    ``function`` must be importable (a module-level function); each worker sees torchrun's variables.
    A worker that fails makes this raise :class:`torch.multiprocessing.ProcessExitedException` /
    ``ProcessRaisedException`` after the others are stopped.
    """
    mp.start_processes(_worker, args=(nproc, free_port(), function, args), nprocs=nproc, join=True, start_method="spawn")

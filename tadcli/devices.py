"""Which torch device a command runs on: ``--device auto|cpu|cuda|cuda:N`` parsed once for every command."""

from __future__ import annotations

import torch

from tadcli.errors import TadError


class DeviceError(TadError):
    """The requested device is not available."""


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

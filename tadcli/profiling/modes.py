"""The rows ``tad profile-memory`` predicts (adaptation modes) and the device it predicts for (precision, capacity).

- :class:`Mode`: an adaptation mode paired with activation checkpointing as AdaTAD's configs pair them
  (spec §3), or ``preset``: the preset as it is; :func:`mode_overrides` turns a preset into that row.
- :func:`prediction_target`: the precision policy: the preset's mixed precision on CUDA (bf16, or fp16 on
  GPUs without bf16), fp32 on the CPU, as ``tad train`` runs it.
- :func:`memory_capacity`: the memory to fit, a GPU of :mod:`tadcli.profiling.gpus` or a budget in GiB.
"""

from __future__ import annotations

from enum import StrEnum

from tadcli.config.schema import Preset
from tadcli.errors import TadError
from tadcli.profiling.gpus import GIB, GpuSpec
from tadcli.profiling.step import PRECISIONS, Target
from tadcli.profiling.suggest import side_change


class ProfileOptionError(TadError):
    """Options of ``tad profile-memory`` that do not go together."""


class Mode(StrEnum):
    """A row of the memory table: adaptation mode and checkpointing, or the preset as it is."""

    FULL = "full"
    FULL_CHECKPOINTING = "full-checkpointing"
    FROZEN = "frozen"
    TIA = "tia"
    TIA_NO_CHECKPOINTING = "tia-no-checkpointing"
    SIDE = "side"
    PRESET = "preset"


# The rows of the table, in order; the preset's own row is added when none of them is its adaptation.
MODES: tuple[Mode, ...] = tuple(mode for mode in Mode if mode is not Mode.PRESET)


def parse_mode(name: str) -> Mode:
    """``name`` as a :class:`Mode`; an unknown name is a :class:`ProfileOptionError` listing the known ones."""
    try:
        return Mode(name)
    except ValueError:
        raise ProfileOptionError(f"unknown mode '{name}'; choose one of {', '.join(Mode)}") from None


def check_precision(name: str) -> None:
    """Refuse a precision name that is not one of :data:`tadcli.profiling.step.PRECISIONS`."""
    if name not in PRECISIONS:
        raise ProfileOptionError(f"unknown precision '{name}'; choose one of {', '.join(PRECISIONS)}")


def mode_overrides(mode: Mode, preset: Preset) -> tuple[str, ...]:
    """Preset overrides that turn ``preset`` into the row ``mode``."""
    if mode == Mode.PRESET:
        return ()
    if mode == Mode.SIDE:
        return side_change(preset).overrides
    adaptation = {Mode.FULL: "full", Mode.FULL_CHECKPOINTING: "full", Mode.FROZEN: "frozen"}.get(mode, "tia")
    checkpointing = mode in (Mode.FULL_CHECKPOINTING, Mode.TIA)
    return (f"adaptation.mode={adaptation}", f"adaptation.checkpointing={str(checkpointing).lower()}")


def prediction_target(device: str, precision: str | None, gpu: GpuSpec | None, preset: Preset) -> Target:
    """The device, precision and GPU a prediction is for; ``precision`` None = the policy of ``tad train``."""
    if device == "cpu":
        if precision not in (None, "fp32"):
            raise ProfileOptionError(f"--precision {precision} is CUDA only: training on the CPU runs in fp32")
        return Target("cpu", "fp32")
    if precision is None:
        half = "bf16" if gpu is None or gpu.supports_bf16 else "fp16"
        precision = half if preset.train.mixed_precision else "fp32"
    if precision == "bf16" and gpu is not None and not gpu.supports_bf16:
        raise ProfileOptionError(f"--precision bf16: the {gpu.name} has no bf16 support (use fp16)")
    return Target("cuda", precision, gpu)


def memory_capacity(gpu: GpuSpec | None, memory_gb: float | None) -> tuple[int | None, str | None]:
    """The bytes to fit and how the table names them, from ``--gpu`` or ``--memory``; (None, None) for neither."""
    if gpu is not None and memory_gb is not None:
        raise ProfileOptionError("give --gpu NAME or --memory GB, not both")
    if gpu is not None:
        return gpu.memory_bytes, f"{gpu.name} ({gpu.memory_gib:g} GiB)"
    if memory_gb is not None:
        if memory_gb <= 0:
            raise ProfileOptionError(f"--memory must be positive, got {memory_gb:g}")
        return int(memory_gb * GIB), f"{memory_gb:g} GiB"
    return None, None

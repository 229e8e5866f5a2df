"""The GPUs ``tad profile-memory --gpu NAME`` knows: memory and the features that change what a step keeps.

``memory_gib`` is the total memory the driver reports for the card (``torch.cuda.get_device_properties
(...).total_memory``, rounded down to 0.1 GiB), a little less than the marketed size; where it differs
on your machine, pass ``--memory GB`` instead. ``capability`` decides bf16 support and the attention
kernel (flash attention needs compute capability 8.0; older cards use the memory-efficient kernel and
fp16).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from tadcli.errors import TadError

GIB = 1 << 30


class UnknownGpuError(TadError):
    """A ``--gpu`` name that is not in the table."""


@dataclass(frozen=True)
class GpuSpec:
    """One card: ``name`` as the user types it, driver-reported memory in GiB, CUDA compute capability."""

    name: str
    memory_gib: float
    capability: tuple[int, int]

    @property
    def memory_bytes(self) -> int:
        return int(self.memory_gib * GIB)

    @property
    def supports_bf16(self) -> bool:
        return self.capability >= (8, 0)

    @property
    def supports_flash_attention(self) -> bool:
        return self.capability >= (8, 0)


GPUS: tuple[GpuSpec, ...] = (
    GpuSpec("A100-40GB", 39.3, (8, 0)),
    GpuSpec("A100-80GB", 79.1, (8, 0)),
    GpuSpec("H100", 79.1, (9, 0)),
    GpuSpec("H200", 139.8, (9, 0)),
    GpuSpec("L4", 21.9, (8, 9)),
    GpuSpec("L40S", 44.4, (8, 9)),
    GpuSpec("A10", 21.9, (8, 6)),
    GpuSpec("A40", 44.4, (8, 6)),
    GpuSpec("RTX-A6000", 47.5, (8, 6)),
    GpuSpec("RTX-3090", 23.6, (8, 6)),
    GpuSpec("RTX-4090", 23.6, (8, 9)),
    GpuSpec("V100-16GB", 15.7, (7, 0)),
    GpuSpec("V100-32GB", 31.7, (7, 0)),
    GpuSpec("T4", 14.5, (7, 5)),
)


def _normalized(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def find_gpu(name: str) -> GpuSpec:
    """The table entry for ``name`` (case, spaces, dashes and underscores ignored: ``rtx 3090`` works).

    Raises:
        UnknownGpuError: the name is not in the table; the message lists the closest names.
    """
    by_key = {_normalized(gpu.name): gpu for gpu in GPUS}
    gpu = by_key.get(_normalized(name))
    if gpu is not None:
        return gpu
    close = difflib.get_close_matches(_normalized(name), list(by_key), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(by_key[key].name for key in close)}? " if close else ""
    raise UnknownGpuError(
        f"unknown GPU '{name}'; {hint}known: {', '.join(gpu.name for gpu in GPUS)} (or give --memory GB)"
    )

"""``tad profile-memory``: the peak GPU memory of one training step and of inference, per adaptation mode,
whether it fits a GPU, and the nearest configurations that do when it does not
(:mod:`tadcli.services.memory_plan`).

The predictions run in this process and in worker processes (:mod:`tadcli.profiling.workers`). Importing
torch and the model takes seconds, in each process: this module imports neither, so the workers a plan
will use are started first and import while this process does.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tadcli.profiling.workers import WorkerPool
from tadcli.progress import ProgressCallback

if TYPE_CHECKING:
    from tadcli.profiling.modes import Mode
    from tadcli.services.memory_plan import MemoryPlan


def profile_memory(
    preset: str = "tiny",
    overrides: Sequence[str] = (),
    frames: int | None = None,
    image_size: int | None = None,
    batch: int | None = None,
    mode: Mode | str | None = None,
    precision: str | None = None,
    gpu: str | None = None,
    memory_gb: float | None = None,
    device: str | None = None,
    measure_peak: bool = False,
    num_classes: int = 20,
    suggest_changes: bool = True,
    json_out: str | Path | None = None,
    progress: ProgressCallback | None = None,
) -> MemoryPlan:
    """Predict (and optionally measure) the memory of ``preset`` per adaptation mode.

    Args:
        preset: preset name or YAML path; ``overrides`` are ``--set key=value`` strings.
        frames, image_size: input size overrides (``input.frames``, ``input.image_size``).
        batch: videos per micro-batch on the device (``train.micro_batch_size``); None = the preset's, else
            its whole global batch ``train.batch_size`` at once, as ``tad train`` runs on one device. Gradient
            accumulation on this one device reaches the global batch.
        mode: a :class:`~tadcli.profiling.modes.Mode` (or its value); None = every mode of
            :data:`~tadcli.profiling.modes.MODES`.
        precision: ``fp32``, ``bf16`` or ``fp16``; None = the preset's mixed precision on CUDA (bf16 where
            the GPU has it, else fp16), fp32 on the CPU.
        gpu: a GPU name of :data:`tadcli.profiling.gpus.GPUS`; ``memory_gb``: or a budget in GiB.
        device: ``cuda`` (default) or ``cpu``: the device predicted for; with ``measure_peak`` the default is
            the available device.
        measure_peak: also run the real step on ``device`` (allocates the model for real).
        num_classes: detector classes (20 = THUMOS14).
        suggest_changes: look for the nearest fitting configurations when the focus row does not fit.
        json_out: also write :meth:`MemoryPlan.to_json` there.
        progress: ``(description, done, total)`` callback.

    Raises:
        PresetError: bad preset, override, frames or image size.
        UnknownGpuError: ``gpu`` is not in the table.
        ProfileOptionError: options that do not go together (bf16 on the CPU, a batch that does not divide
            the global batch, ``measure_peak`` on CUDA without one...).
        PathError: ``json_out`` is a folder or cannot be written (checked before anything is profiled).
    """
    with WorkerPool() as pool:
        # several rows, or suggestions that may follow the one row: the workers will be needed
        if mode is None or (suggest_changes and (gpu is not None or memory_gb is not None)):
            pool.start()
        from tadcli.services.memory_plan import plan_memory  # torch and the model: seconds, as in the workers

        return plan_memory(
            pool, preset, overrides, frames, image_size, batch, mode, precision, gpu, memory_gb, device,
            measure_peak, num_classes, suggest_changes, json_out, progress,
        )

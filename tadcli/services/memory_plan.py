"""What ``tad profile-memory`` computes (:func:`plan_memory`) and reports (:class:`MemoryPlan`): the peak GPU
memory of one training step and of inference, per adaptation mode, whether it fits a GPU, and the nearest
configurations that do when it does not.

Every number comes from running the project's own training step on fake tensors
(:mod:`tadcli.profiling.step`); nothing is estimated from formulas. ``measure=True`` also runs the real
step on the available device (CUDA, else the CPU) and reports its measured peak beside the prediction.
The service :func:`tadcli.services.profile_memory.profile_memory` starts the worker processes, then imports
this module (torch and the model: seconds) and calls :func:`plan_memory`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from tadcli.config.loader import load_preset
from tadcli.config.schema import Preset
from tadcli.errors import PresetError
from tadcli.io.jsonio import write_json_atomic
from tadcli.io.paths import check_output_file
from tadcli.profiling.gpus import find_gpu
from tadcli.profiling.modes import (
    MODES,
    Mode,
    ProfileOptionError,
    check_precision,
    memory_capacity,
    mode_overrides,
    parse_mode,
    prediction_target,
)
from tadcli.profiling.step import CUDA_CONTEXT_BYTES, Measurement, Profile, StepMemory, Target, Workload, measure
from tadcli.profiling.parallel import Predictor
from tadcli.profiling.suggest import Change, Suggestion, first_changes, suggest
from tadcli.profiling.workers import WorkerPool
from tadcli.progress import ProgressCallback


@dataclass(frozen=True)
class ModeRow:
    """One row of the table.

    Attributes:
        mode: the row (:class:`~tadcli.profiling.modes.Mode`).
        is_preset: the row is the preset's own adaptation.
        profile: the prediction.
        fits: whether it fits the capacity (None without a GPU or memory budget).
        measured: the measured peaks when asked for.
    """

    mode: Mode
    is_preset: bool
    profile: Profile
    fits: bool | None
    measured: Measurement | None


@dataclass(frozen=True)
class MemoryPlan:
    """What ``tad profile-memory`` reports; ``to_json()`` is the ``--json`` file."""

    preset: str
    frames: int
    image_size: int
    batch: int
    accumulation: int
    target: Target
    capacity_bytes: int | None
    capacity_label: str | None
    rows: list[ModeRow]
    focus: str
    suggestions: list[Suggestion]
    json_path: Path | None = None

    def focus_row(self) -> ModeRow:
        return next(row for row in self.rows if row.mode == self.focus)

    def to_json(self) -> dict:
        def memory(step: StepMemory | None) -> dict | None:
            return None if step is None else dict(step.__dict__)

        def profile(p: Profile) -> dict:
            return {
                "total_parameters": p.total_parameters,
                "trainable_parameters": p.trainable_parameters,
                "training_bytes": memory(p.training),
                "inference_bytes": memory(p.inference),
                "required_bytes": p.required_bytes(),
            }

        return {
            "preset": self.preset,
            "frames": self.frames,
            "image_size": self.image_size,
            "batch": self.batch,
            "accumulation": self.accumulation,
            "device": self.target.device,
            "precision": self.target.precision,
            "attention_kernel": self.target.attention_kernel,
            "gpu": self.target.gpu.name if self.target.gpu else None,
            "capacity_bytes": self.capacity_bytes,
            "cuda_context_allowance_bytes": CUDA_CONTEXT_BYTES if self.target.device == "cuda" else 0,
            "modes": [
                {
                    "mode": row.mode,
                    "is_preset": row.is_preset,
                    "fits": row.fits,
                    **profile(row.profile),
                    "measured": None if row.measured is None else dict(row.measured.__dict__),
                }
                for row in self.rows
            ],
            "suggestions_for": self.focus,
            "suggestions": [
                {"change": s.change.description, "flags": list(s.change.flags), "overrides": list(s.change.overrides),
                 **profile(s.profile)}
                for s in self.suggestions
            ],
        }


def _mode_rows(
    modes: Sequence[str],
    variants: dict[str, Preset],
    base: Preset,
    workload: Callable[[Preset], Workload],
    predictor: Predictor,
    capacity: int | None,
    measure_peak: bool,
    device: str,
    progress: ProgressCallback | None,
) -> list[ModeRow]:
    """The table's rows: every mode predicted (in parallel), then measured one after the other if asked."""
    if progress is not None:
        progress("profiling modes", 0, len(modes))
    profiles = predictor.predict(
        [workload(variants[name]) for name in modes],
        done=None if progress is None else lambda count: progress("profiling modes", count, len(modes)),
    )
    rows = []
    for index, (name, profile) in enumerate(zip(modes, profiles)):
        variant = variants[name]
        if measure_peak and progress is not None:
            progress("measuring modes", index, len(modes))
        measured = measure(workload(variant), predictor.target, torch.device(device)) if measure_peak else None
        fits = profile.fits(capacity) if capacity is not None else None
        rows.append(ModeRow(name, variant.adaptation == base.adaptation, profile, fits, measured))
    if measure_peak and progress is not None:
        progress("measuring modes", len(modes), len(modes))
    return rows


class _Suggester:
    """The nearest configurations to ``focus`` (``preset`` with ``focus_overrides``) that fit a budget, each
    profiled: :func:`tadcli.profiling.suggest.suggest`, its rounds of profiles run by ``predictor``."""

    def __init__(
        self,
        preset: str,
        focus_overrides: Sequence[str],
        focus: Preset,
        batch: int,
        global_batch: int,
        workload: Callable[[Preset], Workload],
        predictor: Predictor,
    ) -> None:
        self.preset, self.focus_overrides, self.focus = preset, list(focus_overrides), focus
        self.batch, self.global_batch = batch, global_batch
        self.workload, self.predictor = workload, predictor
        self._valid: dict[Change, bool] = {}

    def changed(self, change: Change) -> Preset:
        return load_preset(self.preset, [*self.focus_overrides, *change.overrides])

    def valid(self, change: Change) -> bool:
        if change not in self._valid:
            try:
                self.changed(change)
            except PresetError:
                self._valid[change] = False
            else:
                self._valid[change] = True
        return self._valid[change]

    def prefetch(self) -> None:
        """Let idle workers profile the changes every search starts with, while the focus is profiled."""
        first = first_changes(self.focus, self.batch, self.global_batch, self.valid, self.predictor.target.device)
        self.predictor.prefetch([self.workload(self.changed(change)) for change in first], inference=False)

    def suggest(self, capacity: int, start: Profile, progress: ProgressCallback | None) -> list[Suggestion]:
        """The suggestions for ``capacity``, the focus profiled as ``start``."""
        profiled = [0]  # configurations asked for so far: the progress bar's total grows round by round

        def profile_changes(changes: Sequence[Change]) -> list[Profile]:
            before = profiled[0]
            profiled[0] += len(changes)
            done = None if progress is None else lambda n: progress("profiling suggestions", before + n, profiled[0])
            workloads = [self.workload(self.changed(change)) for change in changes]
            return self.predictor.predict(workloads, inference=False, done=done)

        return suggest(
            self.focus, self.batch, self.global_batch, capacity, profile_changes, self.valid,
            self.predictor.target.device, self.predictor.parallel, start,
        )


def plan_memory(
    pool: WorkerPool,
    preset: str,
    overrides: Sequence[str],
    frames: int | None,
    image_size: int | None,
    batch: int | None,
    mode: Mode | str | None,
    precision: str | None,
    gpu: str | None,
    memory_gb: float | None,
    device: str | None,
    measure_peak: bool,
    num_classes: int,
    suggest_changes: bool,
    json_out: str | Path | None,
    progress: ProgressCallback | None,
) -> MemoryPlan:
    """:func:`tadcli.services.profile_memory.profile_memory` (the arguments and errors are its own), its
    predictions run on ``pool``'s workers and this process."""
    if mode is not None:
        mode = parse_mode(mode)
    if precision is not None:
        check_precision(precision)
    if num_classes < 1:
        raise ProfileOptionError(f"--classes must be at least 1, got {num_classes}")
    cuda_available = torch.cuda.is_available()
    if device is None:
        device = "cpu" if measure_peak and not cuda_available else "cuda"
    if device not in ("cpu", "cuda"):
        raise ProfileOptionError(f"unknown device '{device}'; choose cpu or cuda")
    if measure_peak and device == "cuda" and not cuda_available:
        raise ProfileOptionError("--measure on cuda: no CUDA device is available here (use --device cpu)")
    if json_out is not None:
        json_out = check_output_file(json_out, "JSON table")  # before minutes of profiling, not after
    gpu_spec = find_gpu(gpu) if gpu is not None else None
    capacity, capacity_label = memory_capacity(gpu_spec, memory_gb)
    base_overrides = list(overrides)
    if batch is not None:
        base_overrides.append(f"train.micro_batch_size={batch}")
    if frames is not None:
        base_overrides.append(f"input.frames={frames}")
    if image_size is not None:
        base_overrides.append(f"input.image_size={image_size}")
    base = load_preset(preset, base_overrides)
    global_batch = base.train.batch_size
    batch = base.train.micro_batch_size or global_batch
    if global_batch % batch:
        raise ProfileOptionError(
            f"--batch {batch} must divide the preset's global batch (train.batch_size={global_batch})"
        )
    target = prediction_target(device, precision, gpu_spec, base)

    def workload(variant: Preset) -> Workload:
        videos = variant.train.micro_batch_size or global_batch
        return Workload(variant, videos, global_batch // videos, num_classes)

    modes = [mode] if mode is not None else list(MODES)
    variants = {m: load_preset(preset, [*base_overrides, *mode_overrides(m, base)]) for m in modes}
    if mode is None and not any(v.adaptation == base.adaptation for v in variants.values()):
        modes.append(Mode.PRESET)  # e.g. a plain-adapter preset: its own row too
        variants[Mode.PRESET] = base
    focus = mode if mode is not None else next((m for m in modes if variants[m].adaptation == base.adaptation))
    with Predictor(target, pool=pool) as predictor:  # the workers serve the table and the suggestions
        suggester = _Suggester(
            preset, [*base_overrides, *mode_overrides(focus, base)], variants[focus], batch, global_batch, workload,
            predictor,
        )
        may_suggest = suggest_changes and capacity is not None
        if may_suggest:  # in case the focus row does not fit
            suggester.prefetch()
        rows = _mode_rows(modes, variants, base, workload, predictor, capacity, measure_peak, device, progress)
        focus_row = next(row for row in rows if row.mode == focus)
        suggestions: list[Suggestion] = []
        if may_suggest and not focus_row.fits:
            suggestions = suggester.suggest(capacity, focus_row.profile, progress)
    plan = MemoryPlan(
        preset=preset,
        frames=base.input.frames,
        image_size=base.input.image_size,
        batch=batch,
        accumulation=global_batch // batch,
        target=target,
        capacity_bytes=capacity,
        capacity_label=capacity_label,
        rows=rows,
        focus=focus,
        suggestions=suggestions,
    )
    if json_out is not None:
        plan = replace(plan, json_path=write_json_atomic(json_out, plan.to_json()))
    return plan

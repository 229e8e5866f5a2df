"""``tad train``: train AdaTAD end to end on a prepared dataset into a run directory.

One process, ``torchrun --nproc_per_node N -m tadcli train ...``, or ``nproc=N`` (the same workers
started here) all run :func:`train_in_process`. The run directory's layout is documented in
:mod:`tadcli.io.rundir`; the loop in :mod:`tadcli.training.loop`.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from tadcli import __version__
from tadcli.errors import TadError
from tadcli.io.paths import check_input_dir

ReporterFactory = Callable[[], object]  # -> tadcli.training.loop.TrainingReporter


@dataclass(frozen=True)
class TrainRequest:
    """Everything a training process needs (picklable: it travels to the worker processes).

    Attributes:
        preset: preset name or YAML path (``None`` with ``resume``: the run's own).
        data: prepared dataset folder (``None`` with ``resume``: the run's own).
        out: run directory (``None``: ``runs/<preset>-<profile>-<time>``).
        overrides: ``section.field=value`` overrides of the preset.
        resume: a run directory to continue exactly.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        num_workers: decoding processes per training process (``None``: the preset's ``train.num_workers``).
        eval_batch_size: windows per forward in validation.
        threads: intra-op CPU threads per process (``None``: the cores divided among the processes).
        reporter_factory: builds the progress display in the main process (``None``: silent).
    """

    preset: str | None
    data: Path | None
    out: Path | None = None
    overrides: Sequence[str] = field(default_factory=tuple)
    resume: Path | None = None
    device: str = "auto"
    num_workers: int | None = None
    eval_batch_size: int = 2
    threads: int | None = None
    reporter_factory: ReporterFactory | None = None


def default_run_dir(preset_name: str, profile: str) -> Path:
    return Path("runs") / f"{preset_name}-{profile}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def _cpu_threads(world_size: int, num_workers: int, requested: int | None) -> int:
    """Intra-op threads per training process: the cores left by the decoding workers, shared among the
    processes (oversubscribed cores make torch's threads wait on each other: 8-30x slower, BENCHMARKS.md)."""
    if requested is not None:
        return requested
    cores = os.cpu_count() or 1
    return max(1, (cores - num_workers * world_size) // world_size)


def _check_new_run_dir(run_dir: Path) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise TadError(f"--out {run_dir}: a file is in the way of the run folder")
    if run_dir.is_dir() and any(run_dir.iterdir()):
        raise TadError(f"--out {run_dir}: the folder is not empty; continue that run with --resume {run_dir}, or choose another --out")


def train_in_process(request: TrainRequest):  # noqa: ANN201 - TrainSummary (torch imported lazily)
    """Train in this process, alone or as one rank of a torchrun / ``nproc`` group.

    Returns the summary on the main rank, ``None`` on the others.
    """
    import numpy as np
    import torch

    from tadcli.config.loader import load_preset
    from tadcli.data.dataset import records_from_prepared
    from tadcli.data.manifest import load_prepared_dataset
    from tadcli.data.pipeline import train_dataset
    from tadcli.io.rundir import RunConfig, read_run_config, run_paths, write_run_config
    from tadcli.model.build import build_model
    from tadcli.services.eval import evaluate_model
    from tadcli.training.distributed import (
        barrier,
        context_from_environment,
        init_distributed,
        resolve_device,
        shutdown_distributed,
    )
    from tadcli.training.loop import Trainer, seed_everything

    context = context_from_environment()
    device = resolve_device(request.device, context.local_rank)
    init_distributed(context, device)
    try:
        if request.resume is not None:
            run_dir = Path(request.resume)
            config = read_run_config(run_dir)
            if request.preset is not None or request.overrides:
                raise TadError("--resume continues the run's own preset: leave out --preset and --set")
            preset, dataset_dir = config.preset, request.data or Path(config.dataset)
        else:
            preset = load_preset(request.preset or "tiny", list(request.overrides))
            preset.backbone.require_weights(preset.name)
            dataset_dir = request.data
            if dataset_dir is None:
                raise TadError("--data DIR is required: a dataset folder written by 'tad prepare'")
        dataset = load_prepared_dataset(check_input_dir(dataset_dir, "prepared dataset"))
        profile = dataset.dataset_profile
        if request.resume is not None and list(dataset.classes) != config.classes:
            raise TadError(f"{dataset.root}: its classes differ from those the run {run_dir} trained on")
        if request.resume is None:
            run_dir = Path(request.out) if request.out is not None else default_run_dir(preset.name, profile.name)
            if context.is_main:
                _check_new_run_dir(run_dir)
                run_dir.mkdir(parents=True, exist_ok=True)
            barrier()
        train_records = records_from_prepared(dataset, profile.train_subset)
        if preset.detector.class_agnostic:  # one "action" class; the video classifier names it (spec §6.2)
            train_records = [replace(r, labels=np.zeros_like(r.labels)) for r in train_records]

        num_workers = preset.train.num_workers if request.num_workers is None else request.num_workers
        if device.type == "cpu":
            torch.set_num_threads(_cpu_threads(context.world_size, num_workers, request.threads))
        seed_everything(preset.train.seed)  # the same initial weights on every rank
        model = build_model(preset, num_classes=preset.num_detector_classes(len(dataset.classes))).to(device)
        seed_everything(preset.train.seed + context.rank)  # then per-rank randomness (drop path)

        def validate(evaluated_model, epoch: int) -> dict:  # noqa: ANN001 - AdaTAD
            report = evaluate_model(
                evaluated_model,
                dataset.root,
                dataset.classes,
                preset,
                profile.eval_subset,
                run_paths(run_dir)["eval"],
                tag=f"epoch_{epoch:03d}",
                device=device,
                batch_size=request.eval_batch_size,
                num_workers=num_workers,
            )
            return {
                "subset": report.subset,
                "tiou_thresholds": report.tiou_thresholds,
                "mAP": report.mAP,
                "average_mAP": report.average_mAP,
                "failed_videos": len(report.notes),
            }

        reporter = request.reporter_factory() if (request.reporter_factory is not None and context.is_main) else None
        trainer = Trainer(
            model,
            preset,
            profile,
            train_dataset(train_records, preset, profile, seed=preset.train.seed),
            run_dir,
            device,
            context,
            validate=validate,
            reporter=reporter,
            num_workers=num_workers,
        )
        if request.resume is None and context.is_main:
            plan = {**vars(trainer.plan), "normaliser": "per forward"}
            config = RunConfig(preset, profile.name, list(dataset.classes), str(dataset.root), __version__, plan)
            write_run_config(run_dir, config)
        if request.resume is not None:
            trainer.resume()
        try:
            summary = trainer.run()
        finally:
            if reporter is not None:
                reporter.close()
        return summary if context.is_main else None
    finally:
        shutdown_distributed()


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else text


def train(request: TrainRequest, nproc: int = 1):  # noqa: ANN201 - TrainSummary
    """Train as ``request`` says, in this process or in ``nproc`` local worker processes (DDP).

    Returns:
        The :class:`~tadcli.training.loop.TrainSummary` (with ``nproc`` > 1, read back from the run directory).

    Raises:
        TadError: bad input (preset, dataset, device, run folder), a non-finite loss, CUDA out of memory.
        TrainingInterrupted: Ctrl-C, after a resumable checkpoint was written.
    """
    from tadcli.training.distributed import context_from_environment

    if nproc < 1:
        raise TadError(f"--nproc must be at least 1, got {nproc}")
    if nproc == 1 or context_from_environment().distributed:
        return train_in_process(request)
    return _train_in_workers(request, nproc)


def _train_in_workers(request: TrainRequest, nproc: int):  # noqa: ANN202
    import torch.multiprocessing as mp

    from tadcli.training.distributed import launch_workers
    from tadcli.training.loop import TrainingInterrupted, summary_from_run

    if request.resume is None and request.out is None:
        from tadcli.config.loader import load_preset
        from tadcli.data.manifest import load_prepared_dataset

        if request.data is None:
            raise TadError("--data DIR is required: a dataset folder written by 'tad prepare'")
        preset = load_preset(request.preset or "tiny", list(request.overrides))
        profile = load_prepared_dataset(request.data).profile
        request = TrainRequest(**{**vars(request), "out": default_run_dir(preset.name, profile)})
    # Ctrl-C reaches every worker (same process group); they checkpoint and stop, this process waits for them.
    previous = signal.signal(signal.SIGINT, lambda signum, frame: None)
    try:
        launch_workers(nproc, train_in_process, (request,))
    except mp.ProcessRaisedException as error:
        message = _last_line(str(error))
        kind, _, text = message.partition(": ")
        if kind.endswith("TrainingInterrupted"):
            raise TrainingInterrupted(text) from None
        raise TadError(text if kind.endswith("Error") and text else message) from None
    except mp.ProcessExitedException as error:
        raise TadError(f"a training worker died ({error}); the last checkpoint is kept") from None
    finally:
        signal.signal(signal.SIGINT, previous)
    return summary_from_run(Path(request.resume or request.out))

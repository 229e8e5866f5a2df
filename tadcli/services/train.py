"""``tad train``: train AdaTAD end to end on a prepared dataset into a run directory.

One process, ``torchrun --nproc_per_node N -m tadcli train ...``, or ``nproc=N`` (the same workers
started here) all run :func:`train_in_process`. The run directory's layout is documented in
:mod:`tadcli.io.rundir`; the loop in :mod:`tadcli.training.loop`.

One writer per run folder: the process that trains (the main rank, or the parent of ``nproc`` workers)
holds the folder's lock (:func:`tadcli.io.rundir.run_lock`) from before the first write to the end.
``resume`` continues the run's own settings; only those that extend the schedule
(:data:`RESUMABLE_SETTINGS`) may change. A run that stopped before its first checkpoint (its folder
holds ``config.json`` but no ``state/``) is trained from the beginning by ``resume``, with a note.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from tadcli import __version__
from tadcli.errors import TadError
from tadcli.io.paths import check_input_dir, check_output_dir

ReporterFactory = Callable[[], object]  # -> tadcli.training.reporting.TrainingReporter


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
        num_workers: decoding processes per training process (``None``: the preset's ``train.num_workers``; when
            that is unset too, chosen from the cores and the measured decode-to-compute ratio,
            :func:`tadcli.data.loader.training_workers`).
        eval_batch_size: windows per forward in validation.
        threads: intra-op CPU threads per process (``None``: the cores divided among the processes).
        reporter_factory: builds the progress display in the main process (``None``: silent).
        lock_held: the caller already holds the run folder's lock (the parent of ``nproc`` workers).
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
    lock_held: bool = False


# What ``--resume RUN --set ...`` may change: settings that only extend the schedule (epochs, within the
# learning-rate schedule the run started) or say when to evaluate. Anything else would make the resumed
# run a different training than the one its checkpoint belongs to.
RESUMABLE_SETTINGS = ("train.epochs", "train.eval_interval", "train.eval_start_epoch")


def default_run_dir(preset_name: str, profile: str) -> Path:
    return Path("runs") / f"{preset_name}-{profile}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def _new_run(request: TrainRequest):  # noqa: ANN202 - (Preset, PreparedDataset, Path)
    """A new run's preset, prepared dataset and folder (``--out``, or :func:`default_run_dir`)."""
    from tadcli.config.loader import load_preset
    from tadcli.data.prepared import load_prepared_dataset

    preset = load_preset(request.preset or "tiny", list(request.overrides))
    preset.backbone.require_weights(preset.name)
    if request.data is None:
        raise TadError("--data DIR is required: a dataset folder written by 'tad prepare'")
    dataset = load_prepared_dataset(check_input_dir(request.data, "prepared dataset"))
    run_dir = Path(request.out) if request.out is not None else default_run_dir(preset.name, dataset.dataset_profile.name)
    return preset, dataset, run_dir


def _cpu_threads(world_size: int, num_workers: int, requested: int | None) -> int:
    """Intra-op threads per training process: the cores left by the decoding workers, shared among the
    processes (oversubscribed cores make torch's threads wait on each other: 8-30x slower, BENCHMARKS.md)."""
    if requested is not None:
        return requested
    cores = os.cpu_count() or 1
    return max(1, (cores - num_workers * world_size) // world_size)


def _check_request(request: TrainRequest, nproc: int) -> None:
    """Option values and the new run folder, before any work starts (and before torch is imported)."""
    if nproc < 1:
        raise TadError(f"--nproc must be at least 1, got {nproc}")
    if request.num_workers is not None and request.num_workers < 0:
        raise TadError(f"--workers must be 0 (decode in the training process) or more, got {request.num_workers}")
    if request.threads is not None and request.threads < 1:
        raise TadError(f"--threads must be at least 1, got {request.threads}")
    if request.resume is None and request.out is not None:
        _check_new_run_dir(Path(request.out))


def _check_new_run_dir(run_dir: Path) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise TadError(f"--out {run_dir}: a file is in the way of the run folder")
    check_output_dir(run_dir, "run folder")


def _check_empty_run_dir(run_dir: Path) -> None:
    """A new run's folder holds nothing but its lock."""
    from tadcli.io.rundir import run_paths

    lock = run_paths(run_dir).lock
    if any(entry != lock for entry in run_dir.iterdir()):
        raise TadError(f"--out {run_dir}: the folder is not empty; continue that run with --resume {run_dir}, or choose another --out")


def resumed_preset(preset, overrides: Sequence[str]):  # noqa: ANN001, ANN201 - Preset (imported lazily)
    """The run's preset with the ``--set`` overrides a resumed run allows (:data:`RESUMABLE_SETTINGS`).

    More epochs continue the learning-rate schedule: within ``train.cosine_epochs`` when the preset sets it
    (the steps done had the same rates), or along a cosine stretched to the new epochs when it is unset.

    Raises:
        PresetError: an override of another setting (the message lists those that may change), or a value
            the preset does not accept (e.g. epochs past the end of the schedule).
    """
    from tadcli.config.loader import PresetSource, parse_overrides, validate_preset
    from tadcli.errors import PresetError

    for item in overrides:
        key = item.partition("=")[0].strip()
        if key not in RESUMABLE_SETTINGS:
            raise PresetError(
                f"--set {item}: a resumed run keeps its settings; only {', '.join(RESUMABLE_SETTINGS)} may change "
                "(for other settings, start a new run)"
            )
    if not overrides:
        return preset
    base = PresetSource("the run's config.json", preset.model_dump(mode="json"))
    return validate_preset([base, *parse_overrides(overrides)])


def train_in_process(request: TrainRequest):  # noqa: ANN201 - TrainSummary (torch imported lazily)
    """Train in this process, alone or as one rank of a torchrun / ``nproc`` group.

    Returns the summary on the main rank, ``None`` on the others.
    """
    from tadcli.devices import resolve_device
    from tadcli.training.distributed import context_from_environment, init_distributed, shutdown_distributed

    context = context_from_environment()
    device = resolve_device(request.device, context.local_rank)
    init_distributed(context, device)
    try:
        with ExitStack() as held:
            return _train_locked(request, context, device, held)
    finally:
        shutdown_distributed()


def _train_locked(request: TrainRequest, context, device, held: ExitStack):  # noqa: ANN001, ANN202
    """The body of :func:`train_in_process`; the main process enters the run folder's lock into ``held``."""
    import numpy as np
    import torch

    from tadcli.data.prepared import load_prepared_dataset, records_from_prepared
    from tadcli.data.loader import training_workers
    from tadcli.data.pipeline import train_dataset
    from tadcli.data.proxy import proxy_use
    from tadcli.data.video import configured_decoder, decoder_version
    from tadcli.inference.evaluate import DatasetEvaluator
    from tadcli.io.rundir import RunConfig, read_run_config, run_lock, run_paths, write_run_config
    from tadcli.model.build import build_model
    from tadcli.training.distributed import barrier
    from tadcli.training.loop import Trainer, seed_everything

    take_lock = context.is_main and not request.lock_held
    if request.resume is not None:
        run_dir = Path(request.resume)
        config = read_run_config(run_dir)
        if request.preset is not None:
            raise TadError("--resume continues the run's own preset: leave out --preset")
        if take_lock:
            check_output_dir(run_dir, "run folder")
            held.enter_context(run_lock(run_dir))
        preset, dataset_dir = resumed_preset(config.preset, request.overrides), request.data or Path(config.dataset)
        dataset = load_prepared_dataset(check_input_dir(dataset_dir, "prepared dataset"))
        if list(dataset.classes) != config.classes:
            raise TadError(f"{dataset.root}: its classes differ from those the run {run_dir} trained on")
    else:
        preset, dataset, run_dir = _new_run(request)
        if context.is_main:
            _check_new_run_dir(run_dir)
            run_dir.mkdir(parents=True, exist_ok=True)
            if take_lock:
                held.enter_context(run_lock(run_dir))
            _check_empty_run_dir(run_dir)
            decoder = decoder_version(configured_decoder())
            config = RunConfig(
                preset, dataset.dataset_profile.name, list(dataset.classes), str(dataset.root), __version__, decoder=decoder
            )
            write_run_config(run_dir, config)
        barrier()
    profile = dataset.dataset_profile
    proxies = proxy_use(dataset, preset)  # read the proxies when they serve the preset (same seconds)
    train_records = records_from_prepared(dataset, profile.train_subset, proxies.proxies)
    if preset.detector.class_agnostic:  # one "action" class; the video classifier names it (spec §6.2)
        train_records = [replace(r, labels=np.zeros_like(r.labels)) for r in train_records]

    num_workers = preset.train.num_workers if request.num_workers is None else request.num_workers
    # None: the trainer sizes the loader from what it measures; threads and validation take the first guess
    first_workers = training_workers(os.cpu_count() or 1, context.world_size) if num_workers is None else num_workers
    if device.type == "cpu":
        torch.set_num_threads(_cpu_threads(context.world_size, first_workers, request.threads))
    seed_everything(preset.train.seed)  # the same initial weights on every rank
    model = build_model(preset, num_classes=preset.num_detector_classes(len(dataset.classes))).to(device)
    seed_everything(preset.train.seed + context.rank)  # then per-rank randomness (drop path)

    reporter = request.reporter_factory() if (request.reporter_factory is not None and context.is_main) else None
    trainer = Trainer(
        model,
        preset,
        profile,
        train_dataset(train_records, preset, profile, seed=preset.train.seed, frame_step=proxies.frame_step),
        run_dir,
        device,
        context,
        evaluator=DatasetEvaluator(
            dataset, dataset.classes, preset, profile.eval_subset, run_paths(run_dir).eval, device, request.eval_batch_size,
            first_workers,
        ),
        reporter=reporter,
        num_workers=num_workers,
    )
    if request.resume is None and context.is_main:
        batch_plan = {**vars(trainer.plan), "normaliser": "per forward"}
        write_run_config(run_dir, replace(config, batch_plan=batch_plan))
    if request.resume is not None:
        _resume(trainer, run_dir, config, preset, reporter, context.is_main)
    if reporter is not None and proxies.note is not None:  # once the run is sure to start
        reporter.message(proxies.note)
    try:
        summary = trainer.run()
    finally:
        if reporter is not None:
            reporter.close()
    return summary if context.is_main else None


def _resume(trainer, run_dir: Path, config, preset, reporter, is_main: bool) -> None:  # noqa: ANN001
    """Continue from the run's last checkpoint, or from the beginning (with a note) when it has none yet; a
    run given more epochs records them in its ``config.json``."""
    from tadcli.io.rundir import run_paths, write_run_config

    if run_paths(run_dir).state.is_file():
        trainer.resume()
    elif is_main:
        note = f"{run_dir} has no checkpoint yet (its training stopped before the first one): training it from the beginning"
        if reporter is not None:
            reporter.message(note)
        trainer.metrics.truncate_after(0)
    done = trainer.position.epoch
    if preset.train.epochs < done:
        raise TadError(f"--set train.epochs={preset.train.epochs}: the run {run_dir} has already trained {done} epochs")
    if is_main and preset != config.preset:
        write_run_config(run_dir, replace(config, preset=preset))


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else text


def train(request: TrainRequest, nproc: int = 1):  # noqa: ANN201 - TrainSummary
    """Train as ``request`` says, in this process or in ``nproc`` local worker processes (DDP).

    Returns:
        The :class:`~tadcli.training.reporting.TrainSummary` (with ``nproc`` > 1, read back from the run directory).

    Raises:
        TadError: bad input (preset, dataset, device, run folder), a non-finite loss, CUDA out of memory.
        TrainingInterrupted: Ctrl-C, after a resumable checkpoint was written.
    """
    from tadcli.training.distributed import context_from_environment

    _check_request(request, nproc)
    if nproc == 1 or context_from_environment().distributed:
        return train_in_process(request)
    return _train_in_workers(request, nproc)


def _train_in_workers(request: TrainRequest, nproc: int):  # noqa: ANN202
    import torch.multiprocessing as mp

    from tadcli.io.rundir import read_run_config, run_lock
    from tadcli.training.checkpoint import summary_from_run
    from tadcli.training.distributed import launch_workers

    if request.resume is None and request.out is None:
        request = replace(request, out=_new_run(request)[2])
    run_dir = Path(request.resume or request.out)
    if request.resume is None:
        _check_new_run_dir(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
    else:
        read_run_config(run_dir)  # a missing or foreign folder is named before anything else
        check_output_dir(run_dir, "run folder")
    # this process holds the run folder's lock for its workers; Ctrl-C reaches every worker (same process
    # group): they checkpoint and stop, this process waits for them. A worker's TadError or
    # TrainingInterrupted is raised here as its own class (launch_workers).
    previous = signal.signal(signal.SIGINT, lambda signum, frame: None)
    try:
        with run_lock(run_dir):
            launch_workers(nproc, train_in_process, (replace(request, lock_held=True),))
    except mp.ProcessRaisedException as error:  # none of tad's errors: the last line of the worker's traceback
        message = _last_line(str(error))
        kind, _, text = message.partition(": ")
        raise TadError(text if kind.endswith("Error") and text else message) from None
    except mp.ProcessExitedException as error:
        raise TadError(f"a training worker died ({error}); the last checkpoint is kept") from None
    finally:
        signal.signal(signal.SIGINT, previous)
    return summary_from_run(run_dir)

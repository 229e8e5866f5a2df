"""The training loop: epochs of optimizer steps, EMA, validation, checkpoints, resume, Ctrl-C (spec §3, §8).

:class:`Trainer` owns one run directory. Only the main process (rank 0) writes files and reports. The order
of the data is :mod:`tadcli.training.batching`'s; what is reported and logged, :mod:`tadcli.training.reporting`'s;
what a checkpoint holds, :class:`tadcli.training.checkpoint.TrainingState`.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from tadcli.config.profiles import DatasetProfile
from tadcli.config.schema import Preset
from tadcli.data.dataset import TrainWindowDataset
from tadcli.data.loader import training_workers
from tadcli.errors import DiskFullError, TadError, TrainingInterrupted
from tadcli.io.rundir import load_weights, run_paths, save_weights
from tadcli.model.adatad import AdaTAD
from tadcli.training.batching import epoch_loader, plan_batches
from tadcli.training.checkpoint import MetricsLog, TrainingPosition, TrainingState, capture_rng_state, restore_rng_state
from tadcli.training.distributed import DistributedContext, barrier, gather_to_main
from tadcli.training.ema import ModelEMA
from tadcli.training.interrupt import GracefulInterrupt
from tadcli.training.reporting import EpochRecord, EvalRecord, RunStarted, StepRecord, TrainingReporter, TrainSummary
from tadcli.training.schedule import WarmupCosineSchedule
from tadcli.training.step import LOSS_PARTS, NormalizerSlots, StepResult, build_optimizer, resolve_precision, training_step
from tadcli.training.tensorboard import TensorBoardLog

if TYPE_CHECKING:
    from tadcli.inference.evaluate import DatasetScores

# evaluator(evaluated_model, epoch) -> the scores of a validation (e.g. tadcli.inference.evaluate.DatasetEvaluator)
Evaluator = Callable[[AdaTAD, int], "DatasetScores"]


class Trainer:
    """Trains ``model`` on ``dataset`` into ``run_dir`` with the recipe of ``preset``.

    Args:
        model: the AdaTAD model, on ``device`` (not wrapped; the trainer wraps it in DDP when distributed).
        preset: the run's preset (``train`` section: lr, schedule, EMA, batch, evaluation interval).
        profile: the dataset profile (informative here; sampling is in ``dataset``).
        dataset: the training windows.
        run_dir: where everything is written (by rank 0).
        device: the device of this process.
        context: rank and world size.
        evaluator: evaluation of the EMA model at an epoch, or ``None`` to never evaluate.
        reporter: display of progress (rank 0 only; ``None``: nothing is shown).
        num_workers: decoding processes per rank; ``None``: chosen per epoch from the cores and the data-wait and
            compute times measured in the previous one (:func:`tadcli.data.loader.training_workers`).
        log_interval: optimizer steps between two ``train`` lines of the metrics log.
    """

    def __init__(
        self,
        model: AdaTAD,
        preset: Preset,
        profile: DatasetProfile,
        dataset: TrainWindowDataset,
        run_dir: str | Path,
        device: torch.device,
        context: DistributedContext,
        evaluator: Evaluator | None = None,
        reporter: TrainingReporter | None = None,
        num_workers: int | None = 0,
        log_interval: int = 1,
    ) -> None:
        self.model = model
        self.preset = preset
        self.profile = profile
        self.dataset = dataset
        self.run_dir = Path(run_dir)
        self.device = device
        self.context = context
        self.evaluator = evaluator
        self.reporter = reporter if context.is_main else None
        self.auto_workers = num_workers is None
        cores = os.cpu_count() or 1
        self.num_workers = training_workers(cores, context.world_size) if num_workers is None else num_workers
        self.log_interval = log_interval
        train = preset.train
        self.plan = plan_batches(preset, len(dataset), context.world_size)
        self.optimizer = build_optimizer(model, train.head_lr, train.adapter_lr, train.backbone_lr, train.weight_decay, device)
        self.schedule = WarmupCosineSchedule(
            self.optimizer,
            warmup_steps=train.warmup_epochs * self.plan.steps_per_epoch,
            total_steps=train.schedule_epochs * self.plan.steps_per_epoch,
        )
        self.precision = resolve_precision(device, train.mixed_precision)
        self.scaler = self.precision.grad_scaler()
        self.normalizers = NormalizerSlots(model, self.plan.accumulation)
        self.ema = ModelEMA(model, train.ema_decay) if train.ema else None
        self.wrapped = (
            DistributedDataParallel(
                model,
                device_ids=[device.index] if device.type == "cuda" else None,
                broadcast_buffers=False,  # every rank keeps its own loss normaliser, as OpenTAD's GPUs do
                find_unused_parameters=preset.adaptation.mode == "frozen",
            )
            if context.distributed
            else model
        )
        self.metrics = MetricsLog(run_paths(self.run_dir).metrics)
        self.tensorboard = TensorBoardLog(self.run_dir) if context.is_main else None
        self.position = TrainingPosition(0, 0, 0)
        self.summary = TrainSummary(self.run_dir, 0, 0)
        self.interrupt = GracefulInterrupt()

    # -------------------------------------------------------------------------------- checkpoints
    @property
    def evaluated_model(self) -> AdaTAD:
        """What evaluation and the saved model use: the EMA weights (or the raw ones without EMA)."""
        return self.ema.module if self.ema is not None else self.model

    def _raw_state(self) -> dict[str, torch.Tensor]:
        """Trainable parameters and every buffer of the raw model (frozen weights are in model.safetensors)."""
        trainable = {name for name, p in self.model.named_parameters() if p.requires_grad}
        parameters = {name for name, _ in self.model.named_parameters()}
        return {
            key: value.detach().cpu().clone()
            for key, value in self.model.state_dict().items()
            if key in trainable or key not in parameters
        }

    def save_checkpoint(self) -> None:
        """Write model.safetensors (evaluated weights) then state/training.pt, each in one step."""
        rng = gather_to_main(capture_rng_state(), self.context)
        slots = gather_to_main(self.normalizers.state_dict(), self.context)
        if self.context.is_main:
            state = TrainingState(
                position=self.position,
                model=self._raw_state(),
                ema=self.ema.state_dict() if self.ema is not None else {},
                optimizer=self.optimizer.state_dict(),
                scaler=self.scaler.state_dict(),
                normalizers=slots,
                rng=rng,
                world_size=self.context.world_size,
                best_evaluation=self.summary.best_evaluation,
                last_evaluation=self.summary.last_evaluation,
                skipped_videos=self.summary.skipped_videos,
            )
            try:
                save_weights(run_paths(self.run_dir).weights, self.evaluated_model.state_dict())
                state.save(self.run_dir)
            except DiskFullError as error:
                raise DiskFullError(
                    f"{error}; once there is space, 'tad train --resume {self.run_dir}' continues from the last "
                    "complete checkpoint (or from the beginning if there is none)"
                ) from None
        barrier()

    def resume(self) -> None:
        """Continue from the run directory's last checkpoint: weights, optimizer, EMA, RNGs and position.

        Raises:
            RunError: no readable checkpoint, or one written with another number of processes.
        """
        state = TrainingState.load(self.run_dir)
        if state.world_size != self.context.world_size:
            raise TadError(
                f"{self.run_dir}: the run was trained on {state.world_size} process(es); resume it with "
                f"--nproc {state.world_size} to continue exactly"
            )
        with torch.no_grad():
            full = load_weights(run_paths(self.run_dir).weights)  # frozen weights (shared with the EMA)
            self.model.load_state_dict({**full, **state.model}, strict=True)
        if self.ema is not None:
            self.ema.load_state_dict(state.ema)
        self.optimizer.load_state_dict(state.optimizer)
        self.scaler.load_state_dict(state.scaler)
        self.normalizers.load_state_dict(state.normalizers[self.context.rank])
        restore_rng_state(state.rng[self.context.rank])
        self.position = state.position
        self.summary.best_evaluation = state.best_evaluation
        self.summary.last_evaluation = state.last_evaluation
        self.summary.skipped_videos = state.skipped_videos
        if self.context.is_main:
            self.metrics.truncate_after(self.position.global_step)

    # ------------------------------------------------------------------------------------ the loop
    def _log_step(self, result: StepResult, epoch: int, step_in_epoch: int, seconds: float, data_wait: float) -> None:
        record = StepRecord(
            epoch=epoch,
            step=step_in_epoch,
            global_step=self.position.global_step,
            loss_total=result.losses["total"],
            loss_classification=result.losses["classification"],
            loss_regression=result.losses["regression"],
            lr=self.schedule.learning_rates(),
            grad_norm=result.grad_norm,
            num_positives=result.num_positives,
            samples_per_second=result.num_videos / max(seconds, 1e-9),
            data_wait_seconds=data_wait,
            step_seconds=seconds,
        )
        logged = self.position.global_step % self.log_interval == 0 or step_in_epoch + 1 == self.plan.steps_per_epoch
        if self.context.is_main and logged:
            self.metrics.append(record.to_json())
            self.tensorboard.step(record)
            if self.reporter is not None:
                self.reporter.step(record)

    def _evaluate(self, epoch: int) -> None:
        if self.evaluator is None:
            return
        if self.context.is_main:
            try:
                scores = self.evaluator(self.evaluated_model, epoch)
            except Exception:
                if self.interrupt.requested:  # Ctrl-C reached the decoding workers of the validation
                    self._interrupt()
                raise
            record = EvalRecord(epoch=epoch, global_step=self.position.global_step, scores=scores)
            evaluation = record.to_json()
            self.metrics.append(evaluation)
            self.tensorboard.evaluation(record)
            if self.reporter is not None:
                self.reporter.evaluation(record)
            self.summary.last_evaluation = evaluation
            self.summary.evaluations.append(evaluation)
            best = self.summary.best_evaluation
            if best is None or scores.average_mAP > best["average_mAP"]:
                self.summary.best_evaluation = evaluation
            self.model.train()
        barrier()

    def _due_for_evaluation(self, epoch: int) -> bool:
        train = self.preset.train
        last = epoch + 1 == train.epochs
        return last or (epoch >= train.eval_start_epoch and (epoch + 1) % train.eval_interval == 0)

    def run(self) -> TrainSummary:
        """Train from the current position to ``train.epochs``; returns the summary.

        Raises:
            NonFiniteLossError: a loss became NaN or infinite (the last checkpoint is kept).
            TrainingInterrupted: Ctrl-C (a checkpoint at the last completed step was written).
            TadError: CUDA ran out of memory (with the peak and a pointer to ``tad profile-memory``).
        """
        started = time.perf_counter()
        train = self.preset.train
        if self.reporter is not None:
            self.reporter.start(
                RunStarted(
                    run_dir=str(self.run_dir),
                    epochs=train.epochs,
                    steps_per_epoch=self.plan.steps_per_epoch,
                    start_epoch=self.position.epoch,
                    global_step=self.position.global_step,
                    plan=self.plan,
                    device=str(self.device),
                    precision=self.precision.name,
                )
            )
        self.model.train()
        with self.interrupt:
            try:
                while self.position.epoch < train.epochs:
                    self._run_epoch()
            except torch.cuda.OutOfMemoryError:
                peak = torch.cuda.max_memory_allocated(self.device) / 2**30
                total = torch.cuda.get_device_properties(self.device).total_memory / 2**30
                raise TadError(
                    f"CUDA out of memory at step {self.position.global_step} (peak {peak:.1f} GiB of {total:.1f} GiB); "
                    f"'tad profile-memory --preset {self.preset.name}' shows what fits"
                ) from None
            finally:
                if self.tensorboard is not None:
                    self.tensorboard.close()
        self.summary.epochs = self.position.epoch
        self.summary.global_step = self.position.global_step
        self.summary.seconds = time.perf_counter() - started
        return self.summary

    def _run_epoch(self) -> None:
        epoch, first_step = self.position.epoch, self.position.step_in_epoch
        loader, sampler = epoch_loader(
            self.dataset, self.plan, self.context.rank, self.preset.train.seed, epoch, first_step, self.num_workers, self.device
        )
        batches = iter(loader)
        requested = iter(sampler)
        skipped, waited, computed = 0, 0.0, 0.0
        for step_in_epoch in range(first_step, self.plan.steps_per_epoch):
            tic = time.perf_counter()
            try:
                micro_batches = [next(batches) for _ in range(self.plan.accumulation)]
            except Exception:
                if self.interrupt.requested:  # Ctrl-C reached the decoding workers first
                    self._interrupt()
                raise
            data_wait = time.perf_counter() - tic  # the step waited this long for its batches
            for batch in micro_batches:
                wanted = [self.dataset.videos[i].video_id for i in next(requested)]
                skipped += sum(meta.video_id != video for meta, video in zip(batch.metas, wanted))
            self.schedule.set_step(self.position.global_step)
            result = training_step(
                self.wrapped,
                micro_batches,
                self.optimizer,
                self.precision,
                self.scaler,
                self.preset.train.clip_grad_norm,
                self.normalizers,
                self.device,
                self.position.global_step,
            )
            if self.ema is not None:
                self.ema.update()
            result = self._global_result(result)
            self.position = TrainingPosition(epoch, step_in_epoch + 1, self.position.global_step + 1)
            seconds = time.perf_counter() - tic
            if step_in_epoch > first_step:  # the first step also waited for the workers to start
                waited, computed = waited + data_wait, computed + seconds - data_wait
            self._log_step(result, epoch, step_in_epoch, seconds, data_wait)
            if self._interrupt_requested():
                self._interrupt()
        del batches
        steps = self.plan.steps_per_epoch - first_step - 1
        if self.auto_workers and steps > 0:
            self.num_workers = training_workers(
                os.cpu_count() or 1, self.context.world_size, self.num_workers, waited / steps, computed / steps
            )
        self.summary.skipped_videos += skipped
        if self.context.is_main:
            record = EpochRecord(epoch=epoch, global_step=self.position.global_step, skipped_videos=skipped)
            self.metrics.append(record.to_json())
            if self.reporter is not None:
                self.reporter.epoch(record)
        if self._due_for_evaluation(epoch):
            self._evaluate(epoch)
        self.position = TrainingPosition(epoch + 1, 0, self.position.global_step)
        self.save_checkpoint()

    def _global_result(self, result: StepResult) -> StepResult:
        """The step's losses over the whole global batch (mean over ranks), positives and videos summed."""
        if not self.context.distributed:
            return result
        values = torch.tensor([*(result.losses[p] for p in LOSS_PARTS), result.num_positives, result.num_videos],
                              dtype=torch.float64, device=self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(values)
        world = self.context.world_size
        losses = {part: float(values[i]) / world for i, part in enumerate(LOSS_PARTS)}
        return StepResult(losses, result.grad_norm, int(values[3]), int(values[4]))

    def _interrupt_requested(self) -> bool:
        """Whether any rank saw Ctrl-C: all ranks must agree to stop at the same step."""
        if not self.context.distributed:
            return self.interrupt.requested
        seen = torch.tensor([int(self.interrupt.requested)], device=self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(seen, op=dist.ReduceOp.MAX)
        return bool(seen.item())

    def _interrupt(self) -> None:
        self.save_checkpoint()
        raise TrainingInterrupted(
            f"interrupted at epoch {self.position.epoch} step {self.position.step_in_epoch}; "
            f"continue with: tad train --resume {self.run_dir}"
        )


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


__all__ = ["Evaluator", "Trainer", "seed_everything"]

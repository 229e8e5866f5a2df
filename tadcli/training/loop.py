"""The training loop: epochs of optimizer steps, EMA, validation, checkpoints, resume, Ctrl-C (spec §3, §8).

:class:`Trainer` owns one run directory. Only the main process (rank 0) writes files and reports.

Data order: epoch ``e`` visits the training videos in a permutation seeded by ``(seed, e)``; optimizer
step ``k`` takes the ``k``-th run of ``batch_size`` videos; inside it, micro-batch slot ``v`` (rank
``v // accumulation``, micro-batch ``v % accumulation``) takes the ``v``-th run of ``micro_batch_size``
videos. Every sample's randomness is seeded by ``(seed, epoch, video)`` (:mod:`tadcli.data.dataset`), so
the batches do not depend on the number of processes, and a resumed run sees exactly the batches the
uninterrupted run would have seen.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Sampler

from tadcli.config.profiles import DatasetProfile
from tadcli.config.schema import Preset
from tadcli.data.dataset import TrainWindowDataset, collate_windows, worker_context
from tadcli.errors import TadError
from tadcli.io.rundir import load_weights, run_paths, save_weights
from tadcli.model.adatad import AdaTAD
from tadcli.training.checkpoint import (
    MetricsLog,
    TrainingPosition,
    capture_rng_state,
    load_training_state,
    restore_rng_state,
    save_training_state,
)
from tadcli.training.distributed import DistributedContext, barrier, gather_to_main
from tadcli.training.ema import ModelEMA
from tadcli.training.schedule import WarmupCosineSchedule
from tadcli.training.tensorboard import TensorBoardLog
from tadcli.training.step import LOSS_PARTS, NormalizerSlots, StepResult, build_optimizer, resolve_precision, training_step

# validate(ema_model, epoch) -> {"tiou_thresholds": [...], "mAP": [...], "average_mAP": x, ...}
Validate = Callable[[AdaTAD, int], dict]


class TrainingInterrupted(Exception):
    """Ctrl-C: a resumable checkpoint was written; the CLI exits with code 130 (not a :class:`TadError`: the
    input was fine)."""


class TrainingReporter(Protocol):
    """What the loop tells whoever displays it (the CLI's rich display, plain lines, or nothing)."""

    def start(self, info: dict) -> None: ...

    def step(self, record: dict) -> None: ...

    def epoch(self, record: dict) -> None: ...

    def evaluation(self, record: dict) -> None: ...

    def message(self, text: str) -> None: ...

    def close(self) -> None: ...


class SilentReporter:
    """Reports nothing (library use; the metrics log still records everything)."""

    def start(self, info: dict) -> None:
        pass

    def step(self, record: dict) -> None:
        pass

    def epoch(self, record: dict) -> None:
        pass

    def evaluation(self, record: dict) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class BatchPlan:
    """How the global batch is spread: ``world_size`` processes x ``accumulation`` micro-batches x
    ``micro_batch_size`` videos."""

    batch_size: int
    micro_batch_size: int
    accumulation: int
    world_size: int
    steps_per_epoch: int

    def describe(self) -> str:
        """One line: how the global batch is made and that each forward keeps its own loss normaliser."""
        return (
            f"global batch {self.batch_size} = {self.world_size} process(es) x {self.accumulation} accumulated "
            f"forward(s) x {self.micro_batch_size} video(s); each forward keeps its own loss normaliser, as each "
            f"GPU of the reference does"
        )


def plan_batches(preset: Preset, num_videos: int, world_size: int) -> BatchPlan:
    """The batch plan of ``preset`` for ``num_videos`` training videos on ``world_size`` processes.

    Raises:
        TadError: the global batch does not split evenly, or there are fewer videos than one batch.
    """
    batch = preset.train.batch_size
    micro = preset.train.micro_batch_size or max(batch // world_size, 1)
    if batch % (micro * world_size):
        counts = [n for n in range(1, batch // micro + 1) if batch % (micro * n) == 0] if batch % micro == 0 else []
        fix = f"run on {' or '.join(map(str, counts))} process(es), or " if counts else ""
        raise TadError(
            f"train.batch_size {batch} (the global batch) does not split into {world_size} process(es) x "
            f"train.micro_batch_size {micro} video(s) x an accumulation count: {fix}"
            f"--set train.batch_size={micro * world_size * max(1, batch // (micro * world_size))}"
        )
    if num_videos < batch:
        raise TadError(f"the training subset has {num_videos} video(s), fewer than train.batch_size {batch}")
    return BatchPlan(batch, micro, batch // (micro * world_size), world_size, num_videos // batch)


class MicroBatchSampler(Sampler[list[int]]):
    """This rank's micro-batches of one epoch, from optimizer step ``first_step`` on (see the module doc)."""

    def __init__(self, num_videos: int, plan: BatchPlan, rank: int, seed: int, epoch: int, first_step: int) -> None:
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
        self.order = torch.randperm(num_videos, generator=generator).tolist()
        self.plan = plan
        self.rank = rank
        self.first_step = first_step

    def __len__(self) -> int:
        return (self.plan.steps_per_epoch - self.first_step) * self.plan.accumulation

    def __iter__(self) -> Iterator[list[int]]:
        plan = self.plan
        for step in range(self.first_step, plan.steps_per_epoch):
            batch = self.order[step * plan.batch_size : (step + 1) * plan.batch_size]
            for micro in range(plan.accumulation):
                slot = self.rank * plan.accumulation + micro
                yield batch[slot * plan.micro_batch_size : (slot + 1) * plan.micro_batch_size]


def _single_thread_worker(worker_id: int) -> None:
    """DataLoader workers decode with one intra-op thread (many busy threads on few cores are far slower)."""
    torch.set_num_threads(1)


@contextmanager
def _graceful_interrupt() -> Iterator[dict]:
    """The first Ctrl-C sets ``flag["interrupted"]`` (the loop checkpoints at the next step boundary);
    a second one interrupts at once."""
    flag = {"interrupted": False}
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):  # noqa: ANN001 - signal handler signature
        if flag["interrupted"]:
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        flag["interrupted"] = True

    try:
        signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: no handler, Ctrl-C behaves as usual
        yield flag
        return
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


@dataclass
class TrainSummary:
    """How a run ended.

    Attributes:
        run_dir: the run directory.
        epochs: epochs completed.
        global_step: optimizer steps done.
        last_evaluation: the last validation (``None`` if none ran).
        best_evaluation: the validation with the best average mAP, with its ``epoch``.
        skipped_videos: training samples that fell back to another video because theirs failed to decode.
        seconds: wall time of this invocation.
    """

    run_dir: Path
    epochs: int
    global_step: int
    last_evaluation: dict | None = None
    best_evaluation: dict | None = None
    skipped_videos: int = 0
    seconds: float = 0.0
    evaluations: list[dict] = field(default_factory=list)


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
        validate: evaluation of the EMA model at an epoch, or ``None`` to never evaluate.
        reporter: display of progress (rank 0 only).
        num_workers: decoding processes per rank.
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
        validate: Validate | None = None,
        reporter: TrainingReporter | None = None,
        num_workers: int = 0,
        log_interval: int = 1,
    ) -> None:
        self.model = model
        self.preset = preset
        self.profile = profile
        self.dataset = dataset
        self.run_dir = Path(run_dir)
        self.device = device
        self.context = context
        self.validate = validate
        self.reporter = reporter if (reporter is not None and context.is_main) else SilentReporter()
        self.num_workers = num_workers
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
        self.metrics = MetricsLog(run_paths(self.run_dir)["metrics"])
        self.tensorboard = TensorBoardLog(self.run_dir) if context.is_main else None
        self.position = TrainingPosition(0, 0, 0)
        self.summary = TrainSummary(self.run_dir, 0, 0)
        self._interrupt_flag = {"interrupted": False}

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
            save_weights(run_paths(self.run_dir)["weights"], self.evaluated_model.state_dict())
            state = {
                "position": vars(self.position),
                "model": self._raw_state(),
                "ema": self.ema.state_dict() if self.ema is not None else {},
                "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(),
                "normalizers": slots,
                "rng": rng,
                "world_size": self.context.world_size,
                "summary": {
                    "best_evaluation": self.summary.best_evaluation,
                    "last_evaluation": self.summary.last_evaluation,
                    "skipped_videos": self.summary.skipped_videos,
                },
            }
            save_training_state(self.run_dir, state)
        barrier()

    def resume(self) -> None:
        """Continue from the run directory's last checkpoint: weights, optimizer, EMA, RNGs and position.

        Raises:
            RunError: no readable checkpoint, or one written with another number of processes.
        """
        state = load_training_state(self.run_dir)
        if state["world_size"] != self.context.world_size:
            raise TadError(
                f"{self.run_dir}: the run was trained on {state['world_size']} process(es); resume it with "
                f"--nproc {state['world_size']} to continue exactly"
            )
        with torch.no_grad():
            full = load_weights(run_paths(self.run_dir)["weights"])  # frozen weights (shared with the EMA)
            self.model.load_state_dict({**full, **state["model"]}, strict=True)
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.normalizers.load_state_dict(state["normalizers"][self.context.rank])
        restore_rng_state(state["rng"][self.context.rank])
        self.position = TrainingPosition(**state["position"])
        self.summary.best_evaluation = state["summary"]["best_evaluation"]
        self.summary.last_evaluation = state["summary"]["last_evaluation"]
        self.summary.skipped_videos = state["summary"]["skipped_videos"]
        if self.context.is_main:
            self.metrics.truncate_after(self.position.global_step)

    # ------------------------------------------------------------------------------------ the loop
    def _loader(self, epoch: int, first_step: int) -> tuple[DataLoader, MicroBatchSampler]:
        self.dataset.set_epoch(epoch)
        sampler = MicroBatchSampler(len(self.dataset), self.plan, self.context.rank, self.preset.train.seed, epoch, first_step)
        return DataLoader(
            self.dataset,
            batch_sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=collate_windows,
            multiprocessing_context=worker_context() if self.num_workers > 0 else None,
            worker_init_fn=_single_thread_worker if self.num_workers > 0 else None,
            generator=torch.Generator().manual_seed(self.preset.train.seed),  # never draws from the global RNG
            pin_memory=self.device.type == "cuda",
        ), sampler

    def _log_step(self, result, epoch: int, step_in_epoch: int, seconds: float) -> None:
        record = {
            "kind": "train",
            "epoch": epoch,
            "step": step_in_epoch,
            "global_step": self.position.global_step,
            **{f"loss_{part}": value for part, value in result.losses.items()},
            "lr": self.schedule.learning_rates(),
            "grad_norm": result.grad_norm,
            "num_positives": result.num_positives,
            "samples_per_second": result.num_videos / max(seconds, 1e-9),
        }
        if self.context.is_main:
            if self.position.global_step % self.log_interval == 0 or step_in_epoch + 1 == self.plan.steps_per_epoch:
                self.metrics.append(record)
                self.tensorboard.step(record)
            self.reporter.step(record)

    def _evaluate(self, epoch: int) -> None:
        if self.validate is None:
            return
        if self.context.is_main:
            try:
                scores = self.validate(self.evaluated_model, epoch)
            except Exception:
                if self._interrupt_flag["interrupted"]:  # Ctrl-C reached the decoding workers of the validation
                    self._interrupt()
                raise
            evaluation = {"kind": "eval", "epoch": epoch, "global_step": self.position.global_step, **scores}
            self.metrics.append(evaluation)
            self.tensorboard.evaluation(evaluation)
            self.reporter.evaluation(evaluation)
            self.summary.last_evaluation = evaluation
            self.summary.evaluations.append(evaluation)
            best = self.summary.best_evaluation
            if best is None or evaluation["average_mAP"] > best["average_mAP"]:
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
        self.reporter.start(
            {
                "run_dir": str(self.run_dir),
                "epochs": train.epochs,
                "steps_per_epoch": self.plan.steps_per_epoch,
                "start_epoch": self.position.epoch,
                "global_step": self.position.global_step,
                "plan": vars(self.plan),
                "plan_text": self.plan.describe(),
                "device": str(self.device),
                "precision": self.precision.name,
            }
        )
        self.model.train()
        with _graceful_interrupt() as flag:
            self._interrupt_flag = flag
            try:
                while self.position.epoch < train.epochs:
                    self._run_epoch(flag)
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

    def _run_epoch(self, flag: dict) -> None:
        epoch, first_step = self.position.epoch, self.position.step_in_epoch
        loader, sampler = self._loader(epoch, first_step)
        batches = iter(loader)
        requested = iter(sampler)
        skipped = 0
        for step_in_epoch in range(first_step, self.plan.steps_per_epoch):
            tic = time.perf_counter()
            try:
                micro_batches = [next(batches) for _ in range(self.plan.accumulation)]
            except Exception:
                if flag["interrupted"]:  # Ctrl-C reached the decoding workers first
                    self._interrupt()
                raise
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
            self._log_step(result, epoch, step_in_epoch, time.perf_counter() - tic)
            if self._interrupt_requested(flag):
                self._interrupt()
        del batches
        self.summary.skipped_videos += skipped
        if self.context.is_main:
            record = {"kind": "epoch", "epoch": epoch, "global_step": self.position.global_step, "skipped_videos": skipped}
            self.metrics.append(record)
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

    def _interrupt_requested(self, flag: dict) -> bool:
        """Whether any rank saw Ctrl-C: all ranks must agree to stop at the same step."""
        if not self.context.distributed:
            return flag["interrupted"]
        seen = torch.tensor([int(flag["interrupted"])], device=self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(seen, op=dist.ReduceOp.MAX)
        return bool(seen.item())

    def _interrupt(self) -> None:
        self.save_checkpoint()
        raise TrainingInterrupted(
            f"interrupted at epoch {self.position.epoch} step {self.position.step_in_epoch}; "
            f"continue with: tad train --resume {self.run_dir}"
        )


def summary_from_run(run_dir: str | Path) -> TrainSummary:
    """The summary of a run as its last checkpoint records it (what a parent of worker processes reports)."""
    state = load_training_state(run_dir)
    position, summary = state["position"], state["summary"]
    return TrainSummary(
        Path(run_dir),
        epochs=position["epoch"],
        global_step=position["global_step"],
        last_evaluation=summary["last_evaluation"],
        best_evaluation=summary["best_evaluation"],
        skipped_videos=summary["skipped_videos"],
    )


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


__all__ = [
    "BatchPlan",
    "MicroBatchSampler",
    "SilentReporter",
    "TrainSummary",
    "Trainer",
    "TrainingInterrupted",
    "TrainingReporter",
    "plan_batches",
    "seed_everything",
    "summary_from_run",
]

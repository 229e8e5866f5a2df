"""The display of ``tad train``: a live progress bar on a terminal, one plain line per logged step in a log."""

from __future__ import annotations

import time

from rich.console import Console

from tadcli.cli.render import PlainProgress


class TrainingDisplay:
    """Progress of ``tad train`` on stderr: a live rich display on a terminal, elsewhere (CI, nohup, slurm) one
    plain line per logged step (:class:`PlainProgress` formats its step count, rate and ETA).

    Built in the main training process (also when ``--nproc`` starts workers), so it must be importable
    by name: the training service receives the class, not an instance.
    """

    def __init__(self) -> None:
        self.console = Console(stderr=True)
        self.live = self.console.is_terminal
        self.progress = None
        self.task = None
        self.steps_per_epoch = 1
        self.epochs = 1
        self.plain = PlainProgress(self.console)
        self.started = time.monotonic()
        self.first_step = 0

    def start(self, info) -> None:  # noqa: ANN001 - tadcli.training.reporting.RunStarted
        self.steps_per_epoch, self.epochs = info.steps_per_epoch, info.epochs
        self.started, self.first_step = time.monotonic(), info.global_step
        self.console.print(
            f"training into {info.run_dir} on {info.device} ({info.precision}): {self.epochs} epochs x "
            f"{self.steps_per_epoch} steps; {info.plan_text}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[status]}"),
                console=self.console,
            )
            self.progress.start()
            total = self.epochs * self.steps_per_epoch
            self.task = self.progress.add_task("steps", total=total, completed=info.global_step, status="")

    @staticmethod
    def _status(record) -> str:  # noqa: ANN001 - tadcli.training.reporting.StepRecord
        lr = max(record.lr.values()) if record.lr else 0.0
        waited = record.data_wait_seconds / max(record.step_seconds, 1e-9)  # a starved device waits most of its step
        return (
            f"epoch {record.epoch} loss {record.loss_total:.4f} (cls {record.loss_classification:.4f} "
            f"reg {record.loss_regression:.4f}) lr {lr:.2e} {record.samples_per_second:.1f} videos/s | "
            f"data wait {record.data_wait_seconds:.2f} s ({100 * waited:.0f} %)"
        )

    def step(self, record) -> None:  # noqa: ANN001 - StepRecord
        if self.progress is not None:
            self.progress.update(self.task, completed=record.global_step, status=self._status(record))
        else:  # a log: one line per logged step
            line = self.plain.line("step", record.global_step, self.epochs * self.steps_per_epoch, self.started, self.first_step)
            self.message(f"{line} | {self._status(record)}")

    def epoch(self, record) -> None:  # noqa: ANN001 - EpochRecord
        if record.skipped_videos:
            self.message(f"epoch {record.epoch}: {record.skipped_videos} sample(s) replaced: their video failed to decode")

    def evaluation(self, record) -> None:  # noqa: ANN001 - EvalRecord
        scores = record.scores
        per_threshold = " ".join(f"{t:g}:{100 * v:.1f}" for t, v in zip(scores.tiou_thresholds, scores.mAP))
        self.message(
            f"epoch {record.epoch} {scores.subset} mAP (%) {per_threshold} | average {100 * scores.average_mAP:.2f}"
        )

    def message(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

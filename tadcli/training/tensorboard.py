"""TensorBoard scalars of a run (``RUN/tensorboard``) when the optional ``tensorboard`` package is installed
(``pip install "tadcli[tensorboard]"``); nothing, and no import cost, otherwise. The metrics log holds the
same numbers either way."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tadcli.training.reporting import EvalRecord, StepRecord

TENSORBOARD_DIR = "tensorboard"


class TensorBoardLog:
    """Writes each training step's losses, lr per group and grad norm, and each evaluation's mAP."""

    def __init__(self, run_dir: str | Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is an optional extra
            self.writer = None
            return
        self.writer = SummaryWriter(str(Path(run_dir) / TENSORBOARD_DIR))

    @property
    def active(self) -> bool:
        return self.writer is not None

    def step(self, record: StepRecord) -> None:
        if self.writer is None:
            return
        step = record.global_step
        self.writer.add_scalar("loss/total", record.loss_total, step)
        self.writer.add_scalar("loss/classification", record.loss_classification, step)
        self.writer.add_scalar("loss/regression", record.loss_regression, step)
        for group, lr in record.lr.items():
            self.writer.add_scalar(f"lr/{group}", lr, step)
        self.writer.add_scalar("grad_norm", record.grad_norm, step)
        self.writer.add_scalar("videos_per_second", record.samples_per_second, step)

    def evaluation(self, record: EvalRecord) -> None:
        if self.writer is None:
            return
        step, scores = record.global_step, record.scores
        self.writer.add_scalar(f"{scores.subset}/average_mAP", scores.average_mAP, step)
        for threshold, value in zip(scores.tiou_thresholds, scores.mAP):
            self.writer.add_scalar(f"{scores.subset}/mAP@{threshold:g}", value, step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

"""What the training loop reports: typed records, the lines of ``metrics.jsonl`` and what a display receives.

``metrics.jsonl`` holds one :meth:`to_json` object per line: ``{"kind": "train", ...}`` per logged step
(:class:`StepRecord`), ``{"kind": "epoch", ...}`` per epoch (:class:`EpochRecord`), ``{"kind": "eval", ...}``
per evaluation (:class:`EvalRecord`); the keys are the fields, in field order.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from tadcli.inference.evaluate import DatasetScores
from tadcli.training.batching import BatchPlan


@dataclass(frozen=True)
class RunStarted:
    """How a training invocation starts (shown, not logged)."""

    run_dir: str
    epochs: int
    steps_per_epoch: int
    start_epoch: int
    global_step: int
    plan: BatchPlan
    device: str
    precision: str

    @property
    def plan_text(self) -> str:
        return self.plan.describe()


@dataclass(frozen=True)
class StepRecord:
    """One optimizer step: losses (means over the global batch), lr per parameter group, gradient norm, and
    time: ``step_seconds`` in all, of which ``data_wait_seconds`` waiting for the batches (this rank's; a large
    share means the decoders starve the device)."""

    epoch: int
    step: int
    global_step: int
    loss_total: float
    loss_classification: float
    loss_regression: float
    lr: dict[str, float]
    grad_norm: float
    num_positives: int
    samples_per_second: float
    data_wait_seconds: float = 0.0
    step_seconds: float = 0.0

    def to_json(self) -> dict:
        return {"kind": "train", **asdict(self)}


@dataclass(frozen=True)
class EpochRecord:
    """The end of an epoch: training samples replaced because their video failed to decode."""

    epoch: int
    global_step: int
    skipped_videos: int

    def to_json(self) -> dict:
        return {"kind": "epoch", **asdict(self)}


@dataclass(frozen=True)
class EvalRecord:
    """One validation of the evaluated (EMA) model after epoch ``epoch``: its ``scores`` (subset, thresholds,
    mAP per threshold, average, failed videos; :class:`~tadcli.inference.evaluate.DatasetScores`)."""

    epoch: int
    global_step: int
    scores: DatasetScores

    def to_json(self) -> dict:
        return {"kind": "eval", "epoch": self.epoch, "global_step": self.global_step, **asdict(self.scores)}


class TrainingReporter(Protocol):
    """What the loop tells whoever displays it (the CLI's rich display or plain lines); ``None``: nothing."""

    def start(self, info: RunStarted) -> None: ...

    def step(self, record: StepRecord) -> None: ...

    def epoch(self, record: EpochRecord) -> None: ...

    def evaluation(self, record: EvalRecord) -> None: ...

    def message(self, text: str) -> None: ...

    def close(self) -> None: ...


@dataclass
class TrainSummary:
    """How a run ended.

    Attributes:
        run_dir: the run directory.
        epochs: epochs completed.
        global_step: optimizer steps done.
        last_evaluation: the last validation (``EvalRecord.to_json()``; ``None`` if none ran).
        best_evaluation: the validation with the best average mAP, with its ``epoch``.
        skipped_videos: training samples that fell back to another video because theirs failed to decode.
        seconds: wall time of this invocation.
        evaluations: the validations of this invocation.
    """

    run_dir: Path
    epochs: int
    global_step: int
    last_evaluation: dict | None = None
    best_evaluation: dict | None = None
    skipped_videos: int = 0
    seconds: float = 0.0
    evaluations: list[dict] = field(default_factory=list)

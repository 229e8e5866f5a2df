"""Resumable training state (``RUN/state/training.pt``) and the metrics log (``RUN/metrics.jsonl``).

The state holds what changes during training and nothing that does not: the raw trainable weights and
all buffers (frozen weights come back from ``RUN/model.safetensors``, where they are stored once), the
EMA's tracked entries, the optimizer and grad-scaler state, the loss-normaliser slots, every RNG state
(python, numpy, torch, CUDA) of every rank, and the position (epoch, step in the epoch, global step).
The file is written with ``torch.save`` to a temporary file and renamed, so a run killed at any instant
keeps the last complete state; it is read back with ``weights_only=True``.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from tadcli.io.atomic import atomic_path, write_text_atomic
from tadcli.io.rundir import RunError, run_paths
from tadcli.training.reporting import TrainSummary


@dataclass(frozen=True)
class TrainingPosition:
    """Where training stands: the next step to run is step ``step_in_epoch`` of epoch ``epoch``; ``global_step``
    optimizer steps are done."""

    epoch: int
    step_in_epoch: int
    global_step: int


def capture_rng_state() -> dict:
    """This process's RNG states in a form ``torch.load(weights_only=True)`` reads back."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                  "has_gauss": int(has_gauss), "cached": float(cached), "kind": kind},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state(
        (numpy_state["kind"], numpy_state["keys"].numpy().astype(np.uint32), numpy_state["position"],
         numpy_state["has_gauss"], numpy_state["cached"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass(frozen=True)
class TrainingState:
    """Everything a run needs to continue exactly (the content of ``RUN/state/training.pt``).

    Attributes:
        position: where training stands.
        model: the raw model's trainable parameters and every buffer (frozen weights: ``model.safetensors``).
        ema: the EMA's tracked entries (empty without EMA).
        optimizer: the optimizer's state dict.
        scaler: the grad scaler's state dict.
        normalizers: each rank's loss-normaliser slots, by rank.
        rng: each rank's RNG states (:func:`capture_rng_state`), by rank.
        world_size: the number of processes that trained (a resume needs as many).
        best_evaluation: the best validation so far (``EvalRecord.to_json()``), or ``None``.
        last_evaluation: the last validation, or ``None``.
        skipped_videos: training samples replaced so far because their video failed to decode.
    """

    position: TrainingPosition
    model: dict[str, torch.Tensor]
    ema: dict
    optimizer: dict
    scaler: dict
    normalizers: list = field(default_factory=list)
    rng: list = field(default_factory=list)
    world_size: int = 1
    best_evaluation: dict | None = None
    last_evaluation: dict | None = None
    skipped_videos: int = 0

    def to_dict(self) -> dict:
        """The file's content: plain containers of tensors (what ``torch.load(weights_only=True)`` reads)."""
        return {
            "position": vars(self.position),
            "model": self.model,
            "ema": self.ema,
            "optimizer": self.optimizer,
            "scaler": self.scaler,
            "normalizers": self.normalizers,
            "rng": self.rng,
            "world_size": self.world_size,
            "summary": {
                "best_evaluation": self.best_evaluation,
                "last_evaluation": self.last_evaluation,
                "skipped_videos": self.skipped_videos,
            },
        }

    @classmethod
    def from_dict(cls, state: dict) -> TrainingState:
        summary = state["summary"]
        return cls(
            position=TrainingPosition(**state["position"]),
            model=state["model"],
            ema=state["ema"],
            optimizer=state["optimizer"],
            scaler=state["scaler"],
            normalizers=state["normalizers"],
            rng=state["rng"],
            world_size=state["world_size"],
            best_evaluation=summary["best_evaluation"],
            last_evaluation=summary["last_evaluation"],
            skipped_videos=summary["skipped_videos"],
        )

    def save(self, run_dir: str | Path) -> Path:
        """Write ``RUN/state/training.pt`` in one step."""
        return save_training_state(run_dir, self.to_dict())

    @classmethod
    def load(cls, run_dir: str | Path) -> TrainingState:
        """Read ``RUN/state/training.pt``.

        Raises:
            RunError: the run has no resumable state or it cannot be read.
        """
        return cls.from_dict(load_training_state(run_dir))


def summary_from_run(run_dir: str | Path) -> TrainSummary:
    """The summary of a run as its last checkpoint records it (what a parent of worker processes reports)."""
    state = TrainingState.load(run_dir)
    return TrainSummary(
        Path(run_dir),
        epochs=state.position.epoch,
        global_step=state.position.global_step,
        last_evaluation=state.last_evaluation,
        best_evaluation=state.best_evaluation,
        skipped_videos=state.skipped_videos,
    )


def save_training_state(run_dir: str | Path, state: dict) -> Path:
    """Write ``state`` (tensors, plain containers) to ``RUN/state/training.pt`` in one step."""
    path = run_paths(run_dir).state
    with atomic_path(path) as temporary:
        torch.save(state, temporary)
    return path


def load_training_state(run_dir: str | Path) -> dict:
    """Read ``RUN/state/training.pt``.

    Raises:
        RunError: the run has no resumable state or it cannot be read.
    """
    path = run_paths(run_dir).state
    if not path.is_file():
        raise RunError(f"{run_dir}: nothing to resume ({path} missing: the run saved no checkpoint)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a damaged file: pickle, zip and torch errors alike
        raise RunError(f"{path}: unreadable training state ({type(error).__name__}: {error})") from None


class MetricsLog:
    """``metrics.jsonl``: one JSON object per line, appended and flushed line by line."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def append(self, record: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, allow_nan=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def truncate_after(self, global_step: int) -> None:
        """Keep the complete lines up to ``global_step`` (what a resumed run has already logged), in one step."""
        if not self.path.is_file():
            return
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                break  # a line cut short by a kill: it and anything after it go
            if record.get("global_step", 0) > global_step:
                break
            kept.append(line)
        write_text_atomic(self.path, "".join(f"{line}\n" for line in kept))

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tadcli.io.atomic import atomic_path, write_text_atomic
from tadcli.io.rundir import RunError, run_paths


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


def save_training_state(run_dir: str | Path, state: dict) -> Path:
    """Write ``state`` (tensors, plain containers) to ``RUN/state/training.pt`` in one step."""
    path = run_paths(run_dir)["state"]
    with atomic_path(path) as temporary:
        torch.save(state, temporary)
    return path


def load_training_state(run_dir: str | Path) -> dict:
    """Read ``RUN/state/training.pt``.

    Raises:
        RunError: the run has no resumable state or it cannot be read.
    """
    path = run_paths(run_dir)["state"]
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

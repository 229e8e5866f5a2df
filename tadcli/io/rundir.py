"""The run directory that ``tad train`` writes and ``tad eval --run`` / ``tad detect`` read.

This layout is a contract (README, "Run directory"); every file in it is replaced atomically::

    RUN/
      config.json        the fully resolved preset, the dataset profile, the class names, the tad version,
                         the batch plan (processes x accumulation x videos per forward), the video decoder
      model.safetensors  the evaluated (EMA) weights of the whole model: with config.json, all that
                         evaluation and detection need
      state/training.pt  everything to resume exactly: raw trainable weights and buffers, optimizer, EMA,
                         normaliser slots, every RNG state, epoch, step and position in the epoch
      metrics.jsonl      one JSON object per line: {"kind": "train", ...} per logged step,
                         {"kind": "eval", ...} per evaluation, {"kind": "epoch", ...} per epoch summary
      eval/              results and scores of each evaluation (epoch_NNN_results.json, epoch_NNN_metrics.json)
      .lock              the writer's lock: a process training in the folder holds an OS file lock on it
                         (:func:`run_lock`) and wrote its PID there; the system drops the lock when the
                         process ends, however it ends, so a killed run never leaves a stale lock
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; one writer per run folder is then up to the user
    fcntl = None

import torch
from pydantic import ValidationError
from safetensors.torch import load_file, save_file

from tadcli.config.schema import Preset
from tadcli.errors import TadError
from tadcli.io.atomic import atomic_path, new_file_mode, write_text_atomic

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
STATE_DIR = "state"
STATE_FILE = "training.pt"
METRICS_FILE = "metrics.jsonl"
EVAL_DIR = "eval"
LOCK_FILE = ".lock"
RUN_FORMAT_VERSION = 1


class RunError(TadError):
    """A run directory is missing, incomplete or malformed."""


@dataclass(frozen=True)
class RunConfig:
    """What ``config.json`` holds.

    Attributes:
        preset: the fully resolved preset the run trains.
        profile: the dataset profile name (protocol: subsets, windows, post-processing).
        classes: class names; class index = position.
        dataset: the prepared dataset folder the run trained on (informative).
        tad_version: the version that wrote the run.
        batch_plan: how the run's first start made each optimizer step (informative; ``None`` in runs written
            before tad recorded it): ``batch_size`` (global), ``world_size`` (processes), ``accumulation``
            (forwards per process and step), ``micro_batch_size`` (videos per forward), ``steps_per_epoch``
            and ``normaliser`` (``"per forward"``: each forward keeps its own loss normaliser).
        decoder: the video decoder the run was started with and its version, ``"decord 3.4.0"`` or
            ``"pyav 18.1.0"`` (informative: PyAV still reads the videos decord cannot; ``None`` in runs written
            before tad recorded it).
    """

    preset: Preset
    profile: str
    classes: list[str]
    dataset: str
    tad_version: str
    batch_plan: dict | None = None
    decoder: str | None = None

    def to_json(self) -> dict:
        content = {
            "format_version": RUN_FORMAT_VERSION,
            "tad_version": self.tad_version,
            "preset": self.preset.model_dump(mode="json"),
            "profile": self.profile,
            "classes": list(self.classes),
            "dataset": self.dataset,
        }
        if self.batch_plan is not None:
            content["batch_plan"] = dict(self.batch_plan)
        if self.decoder is not None:
            content["decoder"] = self.decoder
        return content


@dataclass(frozen=True)
class RunPaths:
    """The files of one run directory (the layout in the module doc)."""

    root: Path
    config: Path
    weights: Path
    state: Path
    metrics: Path
    eval: Path
    lock: Path


def run_paths(run_dir: str | Path) -> RunPaths:
    run_dir = Path(run_dir)
    return RunPaths(
        root=run_dir,
        config=run_dir / CONFIG_FILE,
        weights=run_dir / WEIGHTS_FILE,
        state=run_dir / STATE_DIR / STATE_FILE,
        metrics=run_dir / METRICS_FILE,
        eval=run_dir / EVAL_DIR,
        lock=run_dir / LOCK_FILE,
    )


@contextmanager
def run_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold the run folder's writer lock for the block: one process trains in a run folder at a time.

    The lock is ``flock`` on ``RUN/.lock``: the system releases it when the process ends (a kill
    included), so it never goes stale; the file keeps the PID of the last holder, for the message.

    Raises:
        RunError: another process holds the lock (its PID named).
    """
    if fcntl is None:
        yield
        return
    path = run_paths(run_dir).lock
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, new_file_mode())
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip() or "unknown"
            raise RunError(
                f"{run_dir}: another process (PID {holder}) is training in this run folder; wait for it to end "
                "or stop it, then run again"
            ) from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def write_run_config(run_dir: str | Path, config: RunConfig) -> Path:
    return write_text_atomic(run_paths(run_dir).config, json.dumps(config.to_json(), indent=2) + "\n")


def read_run_config(run_dir: str | Path) -> RunConfig:
    """Read and validate ``RUN/config.json``.

    Raises:
        RunError: no run there, or its config does not validate.
    """
    path = run_paths(run_dir).config
    if not Path(run_dir).is_dir():
        raise RunError(f"{run_dir}: no such run folder")
    if not path.is_file():
        raise RunError(f"{run_dir}: not a tad run ({CONFIG_FILE} missing); 'tad train' writes one")
    try:
        content = json.loads(path.read_text())
        preset = Preset.model_validate(content["preset"])
        return RunConfig(
            preset=preset,
            profile=str(content["profile"]),
            classes=[str(name) for name in content["classes"]],
            dataset=str(content.get("dataset", "")),
            tad_version=str(content.get("tad_version", "unknown")),
            batch_plan=content.get("batch_plan"),
            decoder=content.get("decoder"),
        )
    except json.JSONDecodeError as error:
        raise RunError(f"{path}: invalid JSON at line {error.lineno}: {error.msg}") from None
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise RunError(f"{path}: preset field '{where}': {first['msg']}") from None
    except (KeyError, TypeError) as error:
        raise RunError(f"{path}: malformed run config ({type(error).__name__}: {error})") from None


def save_weights(path: str | Path, state: dict[str, torch.Tensor]) -> Path:
    """A state dict as safetensors, atomically (tensors copied to contiguous CPU memory)."""
    tensors = {key: value.detach().to("cpu").contiguous() for key, value in state.items()}
    with atomic_path(path) as temporary:
        try:
            save_file(tensors, str(temporary))
        except Exception as error:  # safetensors' own error type: "I/O error: ... (os error 28)"
            code = re.search(r"\(os error (\d+)\)", str(error))
            if code is None:
                raise
            raise OSError(int(code.group(1)), os.strerror(int(code.group(1))), str(temporary)) from None
    return Path(path)


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Read ``model.safetensors`` of a run.

    Raises:
        RunError: the file is missing or not a safetensors file.
    """
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path.parent}: no trained weights ({path.name} missing); the run has not saved a checkpoint yet")
    try:
        return load_file(str(path))
    except Exception as error:  # safetensors raises its own error types for malformed files
        raise RunError(f"{path}: not a readable safetensors file ({error})") from None

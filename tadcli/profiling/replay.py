"""Repeated calls of a memory prediction counted from a recording instead of run again.

A giant ViT is 40 blocks of the same shape: on fake tensors each block's call allocates and frees the same
bytes in the same order as the one before it, and a search over suggestions profiles the same blocks again
and again with one setting changed. The model marks the calls that repeat
(:func:`tadcli.model.chunked.same_as_before`, with a key that holds everything their memory depends on: the
module's structure, the layouts of the inputs, the chunk grouping); :class:`CallTraces` runs the first call of
each key under a :meth:`~tadcli.profiling.tracker.LiveTensorMemory.recording` and later calls of the key only
:meth:`~tadcli.profiling.tracker.LiveTensorMemory.replay` it, handing back an empty fake tensor of the recorded
layout as the result. The tracker then sees the same allocations and frees in the same order: the same
peak, reserved segments and live set at the peak, to the byte, in a fraction of the dispatch time.

Only calls that leave nothing behind but their result are replayed: a call that frees a tensor it did not
allocate, keeps one besides its result, or returns a tensor with a graph or one it did not allocate is
recorded as not replayable and always runs. Under autocast that includes every call that uses trainable
weights: autocast keeps their low-precision copies until it exits (full fine-tuning's blocks, the adapters).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import torch

from tadcli.model.chunked import repeated_calls
from tadcli.profiling.fake import TensorLayout
from tadcli.profiling.tracker import LiveTensorMemory, Recording

Result = TypeVar("Result")


@dataclass(frozen=True)
class _Output:
    """The layout of the tensor a call returned and the recorded number of its storage."""

    storage: int
    layout: TensorLayout


@dataclass(frozen=True)
class _Trace:
    events: tuple[tuple[int, int], ...]
    output: _Output | None  # None: the call returned None


def _trace(recording: Recording, result: object) -> _Trace | None:
    """The replayable trace of a recorded call, or None where it left something behind (module docstring)."""
    if recording.frees_older or not (result is None or isinstance(result, torch.Tensor)):
        return None
    output = None
    if result is not None:
        storage = recording.storages.get(result.untyped_storage()._cdata)
        if result.requires_grad or storage is None:
            return None
        output = _Output(storage, TensorLayout.of(result))
    kept = set(recording.storages.values()) - ({output.storage} if output else set())
    return None if kept else _Trace(tuple(recording.events), output)


def _ambient() -> tuple:
    """What the memory of any call depends on besides its key: grad mode and autocast."""
    return (
        torch.is_grad_enabled(),
        *((torch.is_autocast_enabled(device), torch.get_autocast_dtype(device)) for device in ("cpu", "cuda")),
    )


class CallTraces:
    """The traces of the repeated calls seen so far, by key; keep one per prediction target (the attention
    kernel, the CUDA allocator's rounding and offloading depend on it)."""

    def __init__(self) -> None:
        self._traces: dict[Hashable, _Trace | None] = {}  # None: not replayable

    @contextmanager
    def replaying(self, tracker: LiveTensorMemory) -> Iterator[None]:
        """The calls the model marks are recorded or replayed into ``tracker`` (fake tensors only)."""
        with repeated_calls(lambda key, call: self._run(tracker, key, call)):
            yield

    def _run(self, tracker: LiveTensorMemory, key: Hashable, call: Callable[[], Result]) -> Result:
        if tracker.is_recording:  # inside a call being recorded: part of its trace
            return call()
        key = (key, _ambient())
        if key in self._traces:
            trace = self._traces[key]
            return call() if trace is None else self._replay(tracker, trace)
        with tracker.recording() as recording:
            result = call()
        self._traces[key] = _trace(recording, result)
        return result

    @staticmethod
    def _replay(tracker: LiveTensorMemory, trace: _Trace) -> torch.Tensor | None:
        if trace.output is None:
            tracker.replay(trace.events, {})
            return None
        with tracker.paused():
            result = trace.output.layout.empty()
        tracker.replay(trace.events, {trace.output.storage: result.untyped_storage()})
        return result

"""Live tensor memory of a block of PyTorch code, counted op by op.

:class:`LiveTensorMemory` is a ``TorchDispatchMode`` that sees the output of every op run while it is
active and counts the storage of each freshly allocated output until the storage is freed (views and
in-place results are not allocations). Tensors that exist before (weights, optimizer state, inputs) are
counted with :meth:`LiveTensorMemory.add`. It works the same on real tensors (a measurement) and on fake
tensors (a prediction, :mod:`tadcli.profiling.fake`), so the two count exactly the same things. It does
not see scratch memory that a kernel allocates and frees inside itself, nor storages resized in place.

:meth:`LiveTensorMemory.recording` records the allocations and frees of a block of code, and
:meth:`LiveTensorMemory.replay` counts a recorded sequence again without running anything
(:mod:`tadcli.profiling.replay`: repeated calls of a memory prediction).

With ``cuda_allocator=True`` every storage is counted as the CUDA caching allocator serves it: rounded up
to 512-byte blocks (what ``torch.cuda.max_memory_allocated`` reports), and the reserved segments are
estimated from the live blocks: blocks up to 1 MiB share 2 MiB segments, blocks under 10 MiB share 20 MiB
segments, larger ones get their own segment rounded up to 2 MiB (``c10/cuda/CUDACachingAllocator.cpp``).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import weakref
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

# CUDA caching allocator constants (c10/cuda/CUDACachingAllocator.cpp)
CUDA_BLOCK = 512  # kMinBlockSize: every block is a multiple of it
CUDA_SMALL_SIZE = 1 << 20  # kSmallSize: blocks up to 1 MiB come from the small pool
CUDA_SMALL_SEGMENT = 2 << 20  # kSmallBuffer
CUDA_MIN_LARGE_ALLOC = 10 << 20  # kMinLargeAlloc: below it, blocks share 20 MiB segments
CUDA_LARGE_SEGMENT = 20 << 20  # kLargeBuffer
CUDA_LARGE_ROUNDING = 2 << 20  # kRoundLarge


_DEVICE_QUERY = torch.ops.prim.device.default  # the most frequent op under fake tensors; allocates nothing


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def cuda_block_bytes(nbytes: int) -> int:
    """Bytes the CUDA caching allocator hands out for a request of ``nbytes`` (0 stays 0)."""
    return 0 if nbytes == 0 else round_up(max(nbytes, CUDA_BLOCK), CUDA_BLOCK)


FREED = -1  # the size of a free in a recorded sequence of events


@dataclass
class Recording:
    """What a block of code allocated and freed, in order (:meth:`LiveTensorMemory.recording`).

    Attributes:
        events: ``(storage, bytes)`` per allocation and ``(storage, FREED)`` per free; storages are numbered
            in the order the block allocated them.
        storages: storage key -> its number, for the storages allocated in the block and still live.
        frees_older: the block freed a storage allocated before it.
    """

    events: list[tuple[int, int]] = field(default_factory=list)
    storages: dict[int, int] = field(default_factory=dict)
    frees_older: bool = False
    _count: int = 0

    def allocated(self, key: int, nbytes: int) -> None:
        self.storages[key] = number = self._count
        self._count += 1
        self.events.append((number, nbytes))

    def freed(self, key: int) -> None:
        number = self.storages.pop(key, None)
        if number is None:
            self.frees_older = True
        else:
            self.events.append((number, FREED))


@dataclass(frozen=True)
class MemoryPeak:
    """The peak of live tensor memory and what was live at that moment.

    Attributes:
        total: bytes live at the peak.
        groups: bytes of each named group of tensors live at the peak (see :meth:`LiveTensorMemory.peak`);
            ``other`` holds everything in no group.
        reserved: CUDA only: estimated bytes of reserved segments at their peak (``total`` on the CPU).
    """

    total: int
    groups: dict[str, int]
    reserved: int


class LiveTensorMemory(TorchDispatchMode):
    """Tracks the bytes of tensor storages while active and remembers what was live at the peak.

    Args:
        cuda_allocator: count storages as CUDA caching-allocator blocks and estimate reserved segments.

    Example:
        >>> tracker = LiveTensorMemory()
        >>> tracker.add(model.parameters())
        >>> with tracker:
        ...     model(inputs).sum().backward()
        >>> tracker.peak({"weights": model.parameters()}).total
    """

    def __init__(self, cuda_allocator: bool = False) -> None:
        super().__init__()
        self.cuda_allocator = cuda_allocator
        self._live: dict[int, tuple[int, int]] = {}  # storage key -> (entry id, bytes)
        self._watchers: dict[int, weakref.ref] = {}  # storage key -> weak reference that calls _release
        self._unaliased_outputs: dict[object, tuple[bool, ...]] = {}  # op -> which outputs are new tensors
        self._entries = itertools.count()
        self._current = 0
        self._peak = 0
        self._pools = [0, 0, 0]  # CUDA: live bytes of small, medium, large blocks (large rounded to 2 MiB)
        self._reserved_peak = 0
        self._peak_live: dict[int, tuple[int, int]] = {}
        self._peak_pending = False  # the peak rose since the last snapshot of the live set
        self._recording: Recording | None = None
        self._paused = False  # ops run without counting their outputs
        self._replayed_keys = itertools.count(-1, -1)  # keys of replayed storages that exist nowhere (< 0)

    def _pool(self, nbytes: int) -> tuple[int, int]:
        """(pool index, bytes the pool's segments hold for it) of a block."""
        if nbytes <= CUDA_SMALL_SIZE:
            return 0, nbytes
        if nbytes < CUDA_MIN_LARGE_ALLOC:
            return 1, nbytes
        return 2, round_up(nbytes, CUDA_LARGE_ROUNDING)

    def _reserved_now(self) -> int:
        small, medium, large = self._pools
        return round_up(small, CUDA_SMALL_SEGMENT) + round_up(medium, CUDA_LARGE_SEGMENT) + large

    def _track(self, tensor: torch.Tensor) -> None:
        if tensor.device.type == "meta":  # holds no memory
            return
        storage = tensor.untyped_storage()
        key = storage._cdata
        if key in self._live:
            return
        nbytes = cuda_block_bytes(storage.nbytes()) if self.cuda_allocator else storage.nbytes()
        self._allocate(key, nbytes)
        self._watchers[key] = weakref.ref(storage, functools.partial(self._release, key))

    def _allocate(self, key: int, nbytes: int) -> None:
        self._live[key] = (next(self._entries), nbytes)
        self._current += nbytes
        if self.cuda_allocator:
            pool, held = self._pool(nbytes)
            self._pools[pool] += held
            self._reserved_peak = max(self._reserved_peak, self._reserved_now())
        if self._current > self._peak:
            self._peak = self._current
            self._peak_pending = True
        if self._recording is not None:
            self._recording.allocated(key, nbytes)

    def _release(self, key: int, _reference: weakref.ref | None = None) -> None:
        if self._peak_pending:  # the moment before the first release after a rise is a peak
            self._peak_live = dict(self._live)
            self._peak_pending = False
        self._watchers.pop(key, None)  # a replayed storage that exists nowhere has no watcher
        if self._recording is not None:
            self._recording.freed(key)
        _, nbytes = self._live.pop(key)
        self._current -= nbytes
        if self.cuda_allocator:
            pool, held = self._pool(nbytes)
            self._pools[pool] -= held

    @property
    def current(self) -> int:
        """Bytes live now."""
        return self._current

    def reset_peak(self) -> None:
        """Start a new peak from what is live now (e.g. to measure one phase of a step on its own)."""
        self._peak = self._current
        self._peak_live = dict(self._live)
        self._peak_pending = False
        if self.cuda_allocator:
            self._reserved_peak = self._reserved_now()

    @property
    def is_recording(self) -> bool:
        return self._recording is not None

    @contextlib.contextmanager
    def recording(self) -> Iterator[Recording]:
        """Record the allocations and frees counted inside (not nested)."""
        if self._recording is not None:
            raise RuntimeError("a recording is already running")
        self._recording = recording = Recording()
        try:
            yield recording
        finally:
            self._recording = None

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Ops run inside are not counted (the tensors a replay hands back, counted by :meth:`replay`)."""
        self._paused = True
        try:
            yield
        finally:
            self._paused = False

    def replay(self, events: Iterable[tuple[int, int]], bound: Mapping[int, torch.UntypedStorage]) -> None:
        """Count a recorded sequence of :attr:`Recording.events` again, exactly as when it was recorded:
        the same peak, reserved segments and live set at the peak. ``bound``: the storages that stand for some
        of the recorded ones (those still live at the end), counted until they are freed."""
        keys: dict[int, int] = {}
        for number, nbytes in events:
            if nbytes == FREED:
                self._release(keys.pop(number))
                continue
            storage = bound.get(number)
            keys[number] = key = next(self._replayed_keys) if storage is None else storage._cdata
            self._allocate(key, nbytes)
            if storage is not None:
                self._watchers[key] = weakref.ref(storage, functools.partial(self._release, key))

    def add(self, tensors: Iterable[torch.Tensor]) -> None:
        """Count tensors that already exist (parameters, optimizer state, inputs) until they are freed."""
        for tensor in tensors:
            self._track(tensor)

    def run(self, func, args: tuple, kwargs: dict):  # noqa: ANN001, ANN201 - any op, any result
        """Run one op (a subclass may answer some ops itself)."""
        return func(*args, **kwargs)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 - dispatch protocol
        out = self.run(func, args, kwargs or {})
        if func is _DEVICE_QUERY or self._paused:
            return out
        unaliased = self._unaliased_outputs.get(func)
        if unaliased is None:
            unaliased = tuple(r.alias_info is None for r in func._schema.returns)
            self._unaliased_outputs[func] = unaliased
        outputs = (out,) if isinstance(out, torch.Tensor) else tree_flatten(out)[0]
        for index, tensor in enumerate(outputs):
            # a list output (the foreach ops) has one schema entry for all its tensors
            new = unaliased[min(index, len(unaliased) - 1)] if unaliased else True
            if new and isinstance(tensor, torch.Tensor):
                self._track(tensor)
        return out

    def peak(self, groups: Mapping[str, Iterable[torch.Tensor]] | None = None) -> MemoryPeak:
        """The peak so far, split into ``groups`` of tensors that are still alive now (e.g. the parameters,
        their gradients, the optimizer state). A storage in two groups counts in the first."""
        if self._peak_pending:
            self._peak_live = dict(self._live)
            self._peak_pending = False
        at_peak = {entry for entry, _ in self._peak_live.values()}
        counted: set[int] = set()
        split: dict[str, int] = {}
        for name, tensors in (groups or {}).items():
            split[name] = 0
            for tensor in tensors:
                entry, nbytes = self._live.get(tensor.untyped_storage()._cdata, (None, 0))
                if entry in at_peak and entry not in counted:
                    counted.add(entry)
                    split[name] += nbytes
        split["other"] = self._peak - sum(split.values())
        reserved = self._reserved_peak if self.cuda_allocator else self._peak
        return MemoryPeak(total=self._peak, groups=split, reserved=reserved)

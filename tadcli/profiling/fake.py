"""Running the real model and training code on fake tensors: shapes, dtypes and devices, no memory.

``FakeTensorMode`` computes every op's output metadata without data. What it cannot do is answer a
question about values; :func:`run_value_free` answers those the way a normal training step goes:

- a scalar read (``.item()``, ``float(t)``, ``bool(t)``, ``.tolist()``): the constant when fake-tensor
  constant propagation knows it (AdamW's step counter), else 0 for integers, ``False`` for booleans and
  1.0 for floats: finite losses and norms, labels in range, no inverted segment, no overflow under fp16;
- boolean-mask indexing (``x[mask]``, its backward, ``nonzero``): as if every element of the mask were
  True, the largest the result can be. In the detector loss these masks select the valid points (all of
  them in a full window) and the positive points (a few hundred bytes when all are counted).

Every op passes through each Python dispatch mode on the stack, so the tracked part of a prediction uses
one mode, :class:`ValueFreeMemory`, that both answers values and counts memory.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import threading
import warnings
from collections.abc import Hashable, Iterator
from dataclasses import dataclass

import torch
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from tadcli.profiling.tracker import LiveTensorMemory

aten = torch.ops.aten
_DEVICE_QUERY = torch.ops.prim.device.default
_INDEX_OPS = (aten.index.Tensor, aten.index_put.default, aten.index_put_.default, aten._index_put_impl_.default)


def _scalar_value(tensor: torch.Tensor) -> bool | int | float:
    if isinstance(tensor, FakeTensor) and tensor.constant is not None:
        return tensor.constant.item()
    if tensor.dtype == torch.bool:
        return False
    return 1.0 if tensor.is_floating_point() else 0


def _all_true_indices(indices: list) -> list:
    """Index tensors with every boolean mask replaced by the integer indices of an all-True mask."""
    replaced = []
    for index in indices:
        if index is not None and index.dtype == torch.bool:
            count = index.numel()
            replaced.extend(torch.empty(count, dtype=torch.long, device=index.device) for _ in range(index.dim()))
        else:
            replaced.append(index)
    return replaced


class PredictionStopped(Exception):
    """A prediction stopped by the event given to :func:`stopped_by` (its caller was interrupted)."""


_STOP: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar("stop_prediction", default=None)


@contextlib.contextmanager
def stopped_by(event: threading.Event) -> Iterator[None]:
    """Ops run inside raise :class:`PredictionStopped` once ``event`` is set (from another thread)."""
    token = _STOP.set(event)
    try:
        yield
    finally:
        _STOP.reset(token)


def run_value_free(func, args: tuple, kwargs: dict):  # noqa: ANN001, ANN201 - any op, any result
    """Run one op on fake tensors, answering value reads and boolean masks (see the module docstring)."""
    if func is _DEVICE_QUERY:  # the most frequent op: answered here, not by FakeTensorMode's dispatch
        tensor = args[0]
        return tensor.fake_device if isinstance(tensor, FakeTensor) else func(*args)
    stop = _STOP.get()  # not for device queries: C++ reads a device where it cannot take an exception
    if stop is not None and stop.is_set():
        raise PredictionStopped
    if func is aten._local_scalar_dense.default:
        return _scalar_value(args[0])
    if func is aten.nonzero.default:
        mask = args[0]
        return torch.empty((mask.numel(), mask.dim()), dtype=torch.long, device=mask.device)
    if func in _INDEX_OPS:
        args = (args[0], _all_true_indices(args[1]), *args[2:])
    return _OUTPUT_LAYOUTS.run(func, args, kwargs)


_NOT_CACHED = object()  # an argument that makes a call's outputs depend on more than its layouts


def _layout_key(value: object) -> Hashable:
    """What an op's output layouts depend on in one argument, or :data:`_NOT_CACHED`."""
    if isinstance(value, FakeTensor):
        if value.constant is not None:  # constant propagation: the outputs may carry values
            return _NOT_CACHED
        return (value.shape, value.stride(), value.storage_offset(), value.dtype, value.fake_device)
    if isinstance(value, torch.Tensor):  # a real tensor passed in: converted on use, not cached
        return _NOT_CACHED
    if isinstance(value, (list, tuple)):
        keys = tuple(_layout_key(item) for item in value)
        return _NOT_CACHED if _NOT_CACHED in keys else keys
    return value


@dataclass(frozen=True)
class TensorLayout:
    """A tensor's layout, its storage size included: what a memory prediction needs to make it again."""

    storage_bytes: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    offset: int
    dtype: torch.dtype
    device: torch.device

    @classmethod
    def of(cls, tensor: torch.Tensor) -> TensorLayout:
        device = tensor.fake_device if isinstance(tensor, FakeTensor) else tensor.device
        storage_bytes = tensor.untyped_storage().nbytes()
        return cls(storage_bytes, tuple(tensor.shape), tensor.stride(), tensor.storage_offset(), tensor.dtype, device)

    def empty(self) -> torch.Tensor:
        """A tensor of this layout made by the ops in force (under fake tensors: no memory)."""
        base = torch.empty(self.storage_bytes // self.dtype.itemsize, dtype=self.dtype, device=self.device)
        return base.as_strided(self.shape, self.stride, self.offset)

    def new(self, mode: FakeTensorMode) -> FakeTensor:
        """A fake tensor of this layout on a storage of its own."""
        with torch._C._DisableTorchDispatch():
            base = torch.empty(self.storage_bytes // self.dtype.itemsize, dtype=self.dtype, device="meta")
            meta = base.as_strided(self.shape, self.stride, self.offset)
        return FakeTensor(mode, meta, self.device)

    def view_of(self, base: FakeTensor) -> FakeTensor:
        """A fake tensor of this layout on ``base``'s storage."""
        with torch._C._DisableTorchDispatch():
            meta = torch.as_strided(base, self.shape, self.stride, self.offset)
        return FakeTensor(base.fake_mode, meta, self.device)


class _Returns(enum.Enum):
    """What an op's outputs are, from its schema."""

    NEW = "new tensors"
    VIEWS = "views of its first argument"
    FIRST_ARGUMENT = "its first argument, written in place"
    OTHER = "anything else (scalars, several aliased arguments, none)"

    @classmethod
    def of(cls, func) -> _Returns:  # noqa: ANN001 - an op
        if not isinstance(func, torch._ops.OpOverload) or not func._schema.returns or not func._schema.arguments:
            return cls.OTHER
        returns, first = func._schema.returns, func._schema.arguments[0]
        if not all(isinstance(r.type, (torch.TensorType, torch.ListType)) for r in returns):
            return cls.OTHER
        if all(r.alias_info is None for r in returns):
            return cls.NEW if all(isinstance(r.type, torch.TensorType) for r in returns) else cls.OTHER
        aliased = first.alias_info is not None and isinstance(first.type, torch.TensorType)
        if aliased and func.is_view and len(returns) == 1 and not first.alias_info.is_write:
            return cls.VIEWS
        if torch.Tag.inplace_view in func.tags:  # resize_, set_, squeeze_...: the layout changes in place
            return cls.OTHER
        one_written = len(returns) == 1 and isinstance(returns[0].type, torch.TensorType)
        same_set = one_written and aliased and returns[0].alias_info.before_set == first.alias_info.before_set
        if same_set and first.alias_info.is_write:  # add_, copy_...: one alias set (AliasInfos compare by identity)
            return cls.FIRST_ARGUMENT
        return cls.OTHER


class OutputLayouts:
    """The output layouts of ops seen before, by op and argument layouts: a later call with the same key
    gets fake tensors of those layouts without running the op again.

    ``FakeTensorMode`` caches too, but computing its key costs more than the op on fake tensors does, and a
    giant's step calls the same few hundred ops tens of thousands of times. Cached: ops that return new
    tensors, views of their first argument (on its storage) and in-place ops (their first argument), when
    every tensor argument is a fake tensor without a known constant value (constant propagation needs the op
    to run). A call the cache cannot answer runs, and its outputs are remembered if they are all fake tensors.
    """

    def __init__(self) -> None:
        self._layouts: dict[Hashable, tuple[TensorLayout, ...] | None] = {}  # None: run every time
        self._returns: dict[object, _Returns] = {}

    def returns(self, func) -> _Returns:  # noqa: ANN001 - an op
        """What ``func``'s outputs are (:class:`_Returns`), from its schema, remembered."""
        returns = self._returns.get(func)
        if returns is None:
            returns = self._returns[func] = _Returns.of(func)
        return returns

    def run(self, func, args: tuple, kwargs: dict):  # noqa: ANN001, ANN201 - any op, any result
        returns = self.returns(func)
        if returns is _Returns.OTHER or not args or not isinstance(args[0], FakeTensor):
            return func(*args, **kwargs)
        key = _layout_key((func, args, tuple(kwargs.items())))
        if key is _NOT_CACHED:
            return func(*args, **kwargs)
        layouts = self._layouts.get(key, _NOT_CACHED)
        if layouts is _NOT_CACHED:
            out = func(*args, **kwargs)
            self._layouts[key] = self._layouts_of(out, returns, args)
            return out
        if layouts is None:
            return func(*args, **kwargs)
        if returns is _Returns.FIRST_ARGUMENT:
            return args[0]
        if returns is _Returns.VIEWS:
            views = [layout.view_of(args[0]) for layout in layouts]
            return views if isinstance(func._schema.returns[0].type, torch.ListType) else views[0]
        outputs = tuple(layout.new(args[0].fake_mode) for layout in layouts)
        return outputs if len(outputs) > 1 else outputs[0]

    @staticmethod
    def _layouts_of(out: object, returns: _Returns, args: tuple) -> tuple[TensorLayout, ...] | None:
        """The layouts to hand out for later calls, None where they would not be the op's outputs."""
        first = args[0]
        if returns is _Returns.FIRST_ARGUMENT:
            return () if out is first else None
        outputs = out if isinstance(out, (tuple, list)) else (out,)
        if not all(isinstance(t, FakeTensor) and t.constant is None for t in outputs):
            return None
        if returns is _Returns.NEW:  # a schema may call an alias new (``_unsafe_view``): check the storages
            inputs = {t.untyped_storage()._cdata for t in tree_flatten(args)[0] if isinstance(t, torch.Tensor)}
            if any(t.untyped_storage()._cdata in inputs for t in outputs):
                return None
        if returns is _Returns.VIEWS and any(t.dtype != first.dtype for t in outputs):
            return None  # a view as another dtype: not an as_strided view of the first argument
        return tuple(TensorLayout.of(t) for t in outputs)


_OUTPUT_LAYOUTS = OutputLayouts()


# what weight initialisation (torch.nn.init, timm's trunc_normal_) writes in place
_INITIALISING_WRITES = frozenset(
    getattr(torch.Tensor, name)
    for name in ("uniform_", "normal_", "erfinv_", "mul_", "add_", "clamp_", "copy_", "fill_", "zero_")
)


class MetaInitSkipped(TorchFunctionMode):
    """Weight initialisation of ``meta`` tensors returns at once: they hold no values, and on the meta device
    each write runs as Python decompositions (half a second for a giant). Only the value writes of
    :data:`_INITIALISING_WRITES` are skipped; shapes, dtypes and ``requires_grad`` are set as always."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 - function protocol
        if func in _INITIALISING_WRITES and isinstance(args[0], torch.Tensor) and args[0].is_meta:
            return args[0]
        return func(*args, **(kwargs or {}))


class ValueFreeOps(TorchDispatchMode):
    """:func:`run_value_free` for every op (building the model, the EMA and the optimizer state)."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 - dispatch protocol
        return run_value_free(func, args, kwargs or {})


class ValueFreeMemory(LiveTensorMemory):
    """:class:`~tadcli.profiling.tracker.LiveTensorMemory` over fake tensors that also answers values."""

    def run(self, func, args: tuple, kwargs: dict):  # noqa: ANN001, ANN201 - any op, any result
        return run_value_free(func, args, kwargs)


class FakeSession:
    """One ``FakeTensorMode``: tensors created under it are fake; real tensors passed in are converted on use."""

    def __init__(self) -> None:
        self.mode = FakeTensorMode(allow_non_fake_inputs=True)

    def materialize(self, module: torch.nn.Module, device: torch.device) -> None:
        """A ``meta`` module's parameters and buffers become fake tensors on ``device``: what ``to_empty`` gives
        under this mode, without dispatching an op per tensor (each fake tensor wraps the meta one)."""
        module._apply(lambda tensor: FakeTensor(self.mode, tensor, device))

    @contextlib.contextmanager
    def active(self, dispatch: TorchDispatchMode | None = None) -> Iterator[None]:
        """Fake tensors with ``dispatch`` on top (default :class:`ValueFreeOps`)."""
        with warnings.catch_warnings():
            # copy.deepcopy (the EMA model) reads a fake storage's data pointer, which is always 0
            warnings.filterwarnings("ignore", message="Accessing the data pointer of FakeTensor")
            with self.mode, dispatch if dispatch is not None else ValueFreeOps():
                yield

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
import warnings
from collections.abc import Iterator

import torch
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode

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


def run_value_free(func, args: tuple, kwargs: dict):  # noqa: ANN001, ANN201 - any op, any result
    """Run one op on fake tensors, answering value reads and boolean masks (see the module docstring)."""
    if func is _DEVICE_QUERY:
        return func(*args)
    if func is aten._local_scalar_dense.default:
        return _scalar_value(args[0])
    if func is aten.nonzero.default:
        mask = args[0]
        return torch.empty((mask.numel(), mask.dim()), dtype=torch.long, device=mask.device)
    if func in _INDEX_OPS:
        args = (args[0], _all_true_indices(args[1]), *args[2:])
    return func(*args, **kwargs)


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

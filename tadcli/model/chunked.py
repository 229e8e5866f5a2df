"""Chunk-wise execution of the ViT blocks, and a lean recompute for their backward (issue 12).

Inside a block only the adapter's temporal convolution crosses the 16-frame chunks; attention and the
MLP act within one chunk (spec §1.4, §2.3). A block therefore splits into

    y = block.transformer(x)    # chunk-local, the expensive part (frozen in tia / plain)
    x' = adapter(y)             # narrow (width C' = C/4); only its ``mix`` crosses chunks

and the transformer part can run on a few chunks at a time (``chunk_group``): no op ever holds one
block's attention or MLP activations for the whole window.

With a graph (training with checkpointing), :class:`BlockStack` is one autograd function from the first
trainable block to the spatial pooling:

- forward: runs without a graph and keeps, per block, only the transformer output ``y`` (the adapter's
  input), one ``[B*K, t*h*w, C]`` tensor, optionally in the compute dtype and in pinned CPU memory
  (:class:`ActivationStore`);
- backward, from the last block down, with one gradient buffer updated in place: the adapter's backward by
  hand in its narrow width (autograd only through ``mix``), then the transformer part recomputed group by
  group with a graph and back-propagated at once; each kept ``y`` is dropped when its block is done.

Each block's transformer runs twice (forward, recompute), as with per-block checkpointing. Gradients equal
plain autograd through the unchunked blocks up to float summation order.

Every loop over chunk groups goes through :func:`groups_to_run`. Under :func:`representative_groups` (a memory
prediction on fake tensors, :mod:`tadcli.profiling`) it runs only the groups whose memory can differ: the
first (it creates the output and the gradient sums), the second (the steady state: each later full group
allocates and frees the same bytes in the same order) and a shorter last one; loops that keep a graph per
group run them all. The predicted peak is the same to the byte as running every group, for a fraction
of the fake-tensor dispatch time.

The calls that repeat from block to block (a transformer part, an adapter, a frozen block's recompute and
backward) go through :func:`same_as_before` with a key holding everything their memory depends on; under
:func:`repeated_calls` (a memory prediction, :mod:`tadcli.profiling.replay`) a call seen before is counted from
a recording instead of run again. Outside it they simply run.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Optional, TypeVar, Union

import torch
from torch import nn
from torch._guards import detect_fake_mode

from tadcli.model.adapters import PlainAdapter, TemporalAdapter
from tadcli.model.vit import Block

Adapter = Union[TemporalAdapter, PlainAdapter]
DropMasks = Optional[tuple[torch.Tensor, torch.Tensor]]


Result = TypeVar("Result")
RepeatedCall = Callable[[Hashable, Callable[[], Result]], Result]  # (key, call) -> the call's result

_REPRESENTATIVE_GROUPS = contextvars.ContextVar("representative_groups", default=False)
_OFFLOAD_STAND_IN = contextvars.ContextVar("offload_stand_in", default=False)
_REPEATED_CALLS: contextvars.ContextVar[Optional[RepeatedCall]] = contextvars.ContextVar("repeated", default=None)
# module attributes that change values but not memory: the drop-path rate's masks are inputs of the calls
_VALUE_ONLY_ATTRIBUTES = frozenset({"drop_path"})
# groups before a loop's steady state: the first creates the outputs and the gradient sums; every later full
# group allocates and frees the same bytes in the same order as the second
_WARM_UP_GROUPS = 1


def chunk_slices(count: int, group: int) -> list[slice]:
    """``count`` chunks in consecutive groups of ``group`` (the last one may be shorter)."""
    return [slice(start, min(start + group, count)) for start in range(0, count, group)]


@contextlib.contextmanager
def _fake_tensors_only(flag: contextvars.ContextVar, name: str) -> Iterator[None]:
    """``flag`` set while inside; entering outside a ``FakeTensorMode`` is an error."""
    if detect_fake_mode() is None:
        raise RuntimeError(f"{name} is for memory predictions on fake tensors only")
    token = flag.set(True)
    try:
        yield
    finally:
        flag.reset(token)


def representative_groups() -> contextlib.AbstractContextManager[None]:
    """Loops over chunk groups run only their first two groups and a shorter last one (module docstring).

    Only for fake tensors, whose values nobody reads: real outputs of the skipped groups would be left
    unwritten, so entering it outside a ``FakeTensorMode`` is an error.
    """
    return _fake_tensors_only(_REPRESENTATIVE_GROUPS, "representative_groups")


@contextlib.contextmanager
def repeated_calls(run: RepeatedCall) -> Iterator[None]:
    """Calls marked with :func:`same_as_before` go through ``run(key, call)`` (fake tensors only)."""
    if detect_fake_mode() is None:
        raise RuntimeError("repeated_calls is for memory predictions on fake tensors only")
    token = _REPEATED_CALLS.set(run)
    try:
        yield
    finally:
        _REPEATED_CALLS.reset(token)


def same_as_before(key: Callable[[], Hashable], call: Callable[[], Result]) -> Result:
    """``call()``, or under :func:`repeated_calls` its ``run(key(), call)``. ``key`` must hold everything the
    memory of the call depends on besides grad mode and autocast: module structures, input layouts, options."""
    run = _REPEATED_CALLS.get()
    if run is None:
        return call()
    return run((key(), _REPRESENTATIVE_GROUPS.get(), _OFFLOAD_STAND_IN.get()), call)


def structure(module: Optional[nn.Module]) -> Hashable:
    """What of a module decides the memory of a call with given inputs: its submodules' types, modes and
    settings, its parameters' and buffers' shapes, dtypes and ``requires_grad``; not their values."""
    if module is None:
        return None
    parts = []
    for name, sub in module.named_modules():
        settings = tuple(
            (key, value)
            for key, value in vars(sub).items()
            if not key.startswith("_")
            and key not in _VALUE_ONLY_ATTRIBUTES
            and isinstance(value, (bool, int, float, str, tuple, type(None)))
        )
        parts.append((name, type(sub).__qualname__, settings))
    tensors = [*module.named_parameters(), *module.named_buffers()]
    parts.extend((name, layout(tensor)) for name, tensor in tensors)
    return tuple(parts)


def layout(tensor: Optional[torch.Tensor]) -> Hashable:
    """A tensor's shape, strides, offset, dtype, device and ``requires_grad`` (None stays None)."""
    if tensor is None:
        return None
    shape, stride = tuple(tensor.shape), tensor.stride()
    return shape, stride, tensor.storage_offset(), tensor.dtype, tensor.device.type, tensor.requires_grad


def _mask_layouts(masks: DropMasks) -> Hashable:
    return None if masks is None else tuple(layout(mask) for mask in masks)


def groups_to_run(count: int, group: int) -> list[slice]:
    """The groups of ``count`` chunks a loop runs: all of them, or the representative ones (module docstring).

    A loop that runs with grad mode on (the trainable patch embedding of full fine-tuning) leaves a graph, and
    so memory, behind per group: it always runs every group.
    """
    parts = chunk_slices(count, group)
    if not _REPRESENTATIVE_GROUPS.get() or torch.is_grad_enabled() or len(parts) <= _WARM_UP_GROUPS + 1:
        return parts
    shorter_last = parts[-1].stop - parts[-1].start < group
    return parts[: _WARM_UP_GROUPS + 1] + ([parts[-1]] if shorter_last else [])


def _masks_of(masks: DropMasks, part: slice) -> DropMasks:
    return None if masks is None else (masks[0][part], masks[1][part])


@dataclass(frozen=True)
class ActivationStore:
    """How the kept transformer outputs are stored between forward and backward.

    Args:
        compact: store in the autocast dtype when autocast is on (half the bytes of the fp32 residual
            stream; the recompute then starts from values rounded to that dtype). No effect without autocast.
        offload: keep CUDA tensors in pinned CPU memory, copied asynchronously both ways. Tensors that are
            already in CPU memory stay where they are (the option is accepted and does nothing there).
    """

    compact: bool = False
    offload: bool = False

    def put(self, tensor: torch.Tensor, compute_dtype: Optional[torch.dtype]) -> Union[torch.Tensor, "HostStandIn"]:
        if self.compact and compute_dtype is not None:
            tensor = tensor.to(compute_dtype)
        if self.offload and _OFFLOAD_STAND_IN.get():
            return HostStandIn(tensor.shape, tensor.dtype)
        if self.offload and tensor.device.type == "cuda":
            pinned = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
            return pinned.copy_(tensor, non_blocking=True)
        return tensor

    @staticmethod
    def get(stored: Union[torch.Tensor, "HostStandIn"], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        if isinstance(stored, HostStandIn):  # the copy back to the device, without values
            return torch.empty(stored.shape, dtype=dtype, device=device)
        return stored.to(device=device, dtype=dtype, non_blocking=True)


@dataclass(frozen=True)
class HostStandIn:
    """What an offloaded tensor leaves on the device in a CUDA memory prediction: nothing (see
    :func:`offload_leaves_the_device`)."""

    shape: torch.Size
    dtype: torch.dtype


def offload_leaves_the_device() -> contextlib.AbstractContextManager[None]:
    """Offloaded activations leave the device, as on CUDA, though the tensors are CPU fake tensors.

    A CUDA prediction runs on fake CPU tensors (:mod:`tadcli.profiling.step`), where offloading to CPU memory
    would be no move at all. Within, :class:`ActivationStore` keeps an offloaded tensor as a
    :class:`HostStandIn` (pinned host memory is not device memory) and brings it back as a new device tensor,
    the allocation a real copy back makes. Fake tensors only, like :func:`representative_groups`.
    """
    return _fake_tensors_only(_OFFLOAD_STAND_IN, "offload_leaves_the_device")


@dataclass(frozen=True)
class StackPlan:
    """The blocks a :class:`BlockStack` runs and how.

    Args:
        blocks: consecutive ViT blocks; the first holds something trainable or gets an input that requires grad.
        norm: the final norm (``nn.Identity`` for VideoMAE's mean-pooling checkpoints).
        tokens_per_tubelet: h*w, the tokens the pooling averages.
        temporal_size: tubelets per video (K*t), for the adapters.
        chunk_group: chunks per group in the transformer parts.
        store: how the kept activations are stored.
    """

    blocks: Sequence[Block]
    norm: nn.Module
    tokens_per_tubelet: int
    temporal_size: int
    chunk_group: int
    store: ActivationStore

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """Final norm and spatial mean: ``[n, t*h*w, C]`` -> ``[n, t, C]``."""
        return pool_tubelets(self.norm(x), self.tokens_per_tubelet)


def pool_tubelets(tokens: torch.Tensor, tokens_per_tubelet: int) -> torch.Tensor:
    """Spatial mean per tubelet: ``[n, t*h*w, C]`` -> ``[n, t, C]``."""
    n, length, dim = tokens.shape
    # [n, t*h*w, C] -> [n, t, h*w, C] -> [n, t, C]
    return tokens.reshape(n, length // tokens_per_tubelet, tokens_per_tubelet, dim).mean(2)


def run_groups(fn: Callable[[slice], torch.Tensor], count: int, group: int) -> torch.Tensor:
    """``fn(part)`` for consecutive groups of the ``count`` chunks, written into one tensor of their dtype."""
    parts = groups_to_run(count, group)
    first = fn(parts[0])
    out = first.new_empty((count, *first.shape[1:]))
    out[parts[0]] = first
    del first
    for part in parts[1:]:
        out[part] = fn(part)
    return out


def run_transformer(block: Block, x: torch.Tensor, masks: DropMasks, group: int) -> torch.Tensor:
    """``block.transformer`` over ``x`` [N, L, C], ``group`` chunks at a time (no graph needed)."""
    return same_as_before(
        lambda: ("transformer", structure(block), layout(x), _mask_layouts(masks), group),
        lambda: run_groups(lambda part: block.transformer(x[part], _masks_of(masks, part)), x.shape[0], group),
    )


def run_adapter(adapter: Optional[Adapter], y: torch.Tensor, temporal_size: int, group: int) -> torch.Tensor:
    """The block's adapter over ``y``; its wide output projection ``group`` chunks at a time."""
    if adapter is None:
        return y

    def run() -> torch.Tensor:
        mixed = adapter.mix(adapter.down_proj(y), temporal_size)
        return run_groups(lambda part: adapter.output(y[part], mixed[part]), y.shape[0], group)

    return same_as_before(lambda: ("adapter", structure(adapter), layout(y), temporal_size, group), run)


def _mix_values(adapter: Adapter, y: torch.Tensor, temporal_size: int) -> torch.Tensor:
    """``mix(down_proj(y))`` without a graph."""

    def run() -> torch.Tensor:
        with torch.no_grad():
            return adapter.mix(adapter.down_proj(y), temporal_size)

    return same_as_before(lambda: ("mix", structure(adapter), layout(y), temporal_size), run)


def _trainable(module: Optional[nn.Module]) -> list[nn.Parameter]:
    return [] if module is None else [p for p in module.parameters() if p.requires_grad]


def _transformer_parameters(block: Block) -> list[nn.Parameter]:
    adapter_params = {id(p) for p in _trainable(block.adapter)}
    return [p for p in block.parameters() if p.requires_grad and id(p) not in adapter_params]


def _matmul_into(out: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
    """``out += a @ b`` for 2-D views, in place when the dtypes agree (no temporary of ``out``'s size)."""
    if a.dtype == b.dtype == out.dtype:
        out.addmm_(a, b)
    else:
        out.add_(a @ b)


class _GradSums:
    """Parameter gradients summed over the pieces of a backward."""

    def __init__(self) -> None:
        self.sums: dict[int, torch.Tensor] = {}
        self._owned: set[int] = set()  # sums this object allocated, which it may update in place

    def add(self, params: Sequence[nn.Parameter], grads: Sequence[Optional[torch.Tensor]]) -> None:
        for param, grad in zip(params, grads):
            if grad is None:
                continue
            grad = grad.to(param.dtype).reshape(param.shape)
            key = id(param)
            if key in self._owned:
                self.sums[key].add_(grad)
            elif key in self.sums:  # the first piece's gradient may be a tensor autograd passed through: not ours
                self.sums[key] = self.sums[key] + grad
                self._owned.add(key)
            else:
                self.sums[key] = grad

    def of(self, param: nn.Parameter) -> Optional[torch.Tensor]:
        return self.sums.get(id(param))


def _adapter_graph(adapter: Adapter, y: torch.Tensor, temporal_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(h, mixed)``: ``h = down_proj(y)`` as a leaf that requires grad and ``mixed = mix(h)`` with its graph."""
    with torch.no_grad():
        h = adapter.down_proj(y)
    h.requires_grad_(True)
    with torch.enable_grad():
        return h, adapter.mix(h, temporal_size)


def _up_proj_backward(adapter: Adapter, contraction: torch.Tensor, grad_sum: torch.Tensor, sums: _GradSums) -> None:
    """Gradients of ``gamma``, ``up_proj`` from ``M = grad^T mixed`` [C, C'] and ``sum_tokens(grad)`` [C].

    Nothing of width C per token is needed: ``d gamma = sum(M * W_up) + sum_tokens(grad) . b_up``, with the
    same ``M`` that gives ``d W_up = gamma * M``.
    """
    gamma, up = adapter.gamma, adapter.up_proj
    contraction, grad_sum = contraction.to(up.weight.dtype), grad_sum.to(up.weight.dtype)
    grad_gamma = (contraction * up.weight).sum() + grad_sum @ up.bias
    sums.add([gamma, up.weight, up.bias], [grad_gamma.reshape(1), gamma * contraction, gamma * grad_sum])


def _mix_backward(
    adapter: Adapter, y: torch.Tensor, h: torch.Tensor, mixed: torch.Tensor, grad_mixed: torch.Tensor, sums: _GradSums
) -> torch.Tensor:
    """Back through ``mix`` (autograd, narrow) and ``down_proj``'s parameters; returns d h as rows [tokens, C']."""
    mix_params = [p for p in adapter.mix_parameters() if p.requires_grad]
    grad_h, *grad_mix = torch.autograd.grad(mixed, [h, *mix_params], grad_mixed.reshape(mixed.shape).to(mixed.dtype))
    sums.add(mix_params, grad_mix)
    grad_h_rows = grad_h.reshape(-1, h.shape[-1])
    down = adapter.down_proj
    sums.add([down.weight, down.bias], [grad_h_rows.t() @ y.reshape(-1, y.shape[-1]), grad_h_rows.sum(0)])
    return grad_h_rows


def _adapter_backward_(
    adapter: Adapter, y: torch.Tensor, temporal_size: int, grad: torch.Tensor, sums: _GradSums
) -> None:
    """Back-propagate ``grad`` (w.r.t. the adapter output ``y + gamma * up_proj(mixed)``) in place into the
    gradient w.r.t. ``y``, adding the adapter's parameter gradients to ``sums``. Nothing of width C is allocated;
    the narrow graph of ``mix`` is built here, when it is needed (:func:`_adapter_graph`)."""
    h, mixed = _adapter_graph(adapter, y, temporal_size)
    dim, hidden = y.shape[-1], mixed.shape[-1]
    grad_rows = grad.view(-1, dim)  # [tokens, C]
    mixed_rows = mixed.detach().reshape(-1, hidden)  # [tokens, C']
    _up_proj_backward(adapter, grad_rows.t() @ mixed_rows, grad_rows.sum(0), sums)
    grad_h_rows = _mix_backward(adapter, y, h, mixed, (grad_rows @ adapter.up_proj.weight) * adapter.gamma, sums)
    _matmul_into(grad_rows, grad_h_rows, adapter.down_proj.weight)


def _pooled_adapter_backward(
    adapter: Adapter,
    y: torch.Tensor,
    temporal_size: int,
    grad_pooled: torch.Tensor,
    tokens_per_tubelet: int,
    sums: _GradSums,
) -> torch.Tensor:
    """:func:`_adapter_backward_` for the last adapter, whose output is only mean-pooled over space: the
    gradient w.r.t. its output is ``grad_pooled / (h*w)`` on every token of a tubelet and is never
    materialized; the gradient w.r.t. ``y`` is written into ``y``'s own storage when it can hold it
    (``y`` is not needed afterwards), so the top of the backward holds no extra ``[N, L, C]`` tensor."""
    h, mixed = _adapter_graph(adapter, y, temporal_size)
    chunks, tubelets, dim = grad_pooled.shape
    hidden, rows = mixed.shape[-1], chunks * tubelets
    per_token = (grad_pooled / tokens_per_tubelet).reshape(rows, dim)  # [N*t, C], the same for the h*w tokens
    mixed_sums = mixed.detach().reshape(rows, tokens_per_tubelet, hidden).sum(1)  # [N*t, C']
    _up_proj_backward(adapter, per_token.t() @ mixed_sums, per_token.sum(0) * tokens_per_tubelet, sums)
    grad_mixed = ((per_token @ adapter.up_proj.weight) * adapter.gamma).unsqueeze(1)
    grad_mixed = grad_mixed.expand(rows, tokens_per_tubelet, hidden)
    grad_h_rows = _mix_backward(adapter, y, h, mixed, grad_mixed, sums)
    reuse = y.dtype == grad_pooled.dtype and y.is_contiguous()
    grad = y if reuse else torch.empty(y.shape, dtype=grad_pooled.dtype, device=y.device)
    grad.view(rows, tokens_per_tubelet, dim).copy_(per_token.unsqueeze(1).expand(rows, tokens_per_tubelet, dim))
    _matmul_into(grad.view(-1, dim), grad_h_rows, adapter.down_proj.weight)
    return grad


def _backward_groups(
    fn: Callable[[torch.Tensor, slice], torch.Tensor],
    source: Callable[[slice], torch.Tensor],
    grad_out: Callable[[slice], torch.Tensor],
    grad_in: torch.Tensor,
    params: list[nn.Parameter],
    group: int,
    sums: _GradSums,
    key: Optional[Callable[[torch.Tensor, slice], Hashable]] = None,
) -> None:
    """For each group of chunks: recompute ``fn(source(part), part)`` with a graph and back-propagate
    ``grad_out(part)``; the input gradient goes to ``grad_in[part]`` (which may be ``grad_out``'s buffer).
    ``key(x, part)``: without ``params``, each group's recompute and backward is a repeated call with that key
    (:func:`same_as_before`)."""
    for part in groups_to_run(grad_in.shape[0], group):
        with torch.no_grad():
            x = source(part)
        x.requires_grad_(True)
        if key is not None and not params:
            same_as_before(lambda: key(x, part), lambda: _backward_group(fn, x, part, grad_out, grad_in, [], sums))
        else:
            _backward_group(fn, x, part, grad_out, grad_in, params, sums)
        del x  # not alive during the next group's recompute


def _backward_group(
    fn: Callable[[torch.Tensor, slice], torch.Tensor],
    x: torch.Tensor,
    part: slice,
    grad_out: Callable[[slice], torch.Tensor],
    grad_in: torch.Tensor,
    params: list[nn.Parameter],
    sums: _GradSums,
) -> None:
    """One group of :func:`_backward_groups`: ``fn(x, part)`` with a graph, back-propagated."""
    with torch.enable_grad():
        out = fn(x, part)
    grad_x, *grad_params = torch.autograd.grad(out, [x, *params], grad_out(part))
    sums.add(params, grad_params)
    grad_in[part] = grad_x


class BlockStack(torch.autograd.Function):
    """``plan.blocks`` then pooling: tokens ``[B*K, t*h*w, C]`` -> pooled ``[B*K, t, C]`` (module docstring).

    Call as ``BlockStack.apply(plan, x, *params)`` with ``params`` = :func:`stack_parameters` of the plan.
    """

    @staticmethod
    def forward(ctx, plan: StackPlan, x: torch.Tensor, *params: nn.Parameter) -> torch.Tensor:
        device_type = x.device.type
        autocast = torch.is_autocast_enabled(device_type)
        compute_dtype = torch.get_autocast_dtype(device_type) if autocast else None
        masks = [block.drop_masks(x.shape[0], x.device) for block in plan.blocks]
        last = len(plan.blocks) - 1
        # the last output is needed again by its adapter's backward or by a final norm's
        keep_last = plan.blocks[last].adapter is not None or not isinstance(plan.norm, nn.Identity)
        stored: list[Optional[tuple[torch.Tensor, torch.dtype]]] = []  # (as stored, dtype computed in)
        tokens = x
        for index, block in enumerate(plan.blocks):
            y = run_transformer(block, tokens, masks[index], plan.chunk_group)
            del tokens  # the block input is not needed again (the stack input ``x`` is saved on its own)
            stored.append((plan.store.put(y, compute_dtype), y.dtype) if index < last or keep_last else None)
            tokens = run_adapter(block.adapter, y, plan.temporal_size, plan.chunk_group)
            del y
        pooled = run_groups(lambda part: plan.pool(tokens[part]), tokens.shape[0], plan.chunk_group)
        ctx.plan, ctx.params, ctx.masks, ctx.stored, ctx.keep_last = plan, params, masks, stored, keep_last
        ctx.autocast = (device_type, compute_dtype, autocast)
        ctx.input_requires_grad = x.requires_grad
        ctx.save_for_backward(x if x.requires_grad or _transformer_parameters(plan.blocks[0]) else None)
        return pooled

    @staticmethod
    def backward(ctx, grad_pooled: torch.Tensor) -> tuple[Optional[torch.Tensor], ...]:
        plan: StackPlan = ctx.plan
        (x,) = ctx.saved_tensors
        device_type, compute_dtype, autocast = ctx.autocast
        stored, blocks, group, sums = ctx.stored, plan.blocks, plan.chunk_group, _GradSums()
        chunks, tubelets, dim = grad_pooled.shape
        shape = (chunks, tubelets * plan.tokens_per_tubelet, dim)

        def kept(index: int) -> torch.Tensor:
            tensor, dtype = stored[index]
            return plan.store.get(tensor, grad_pooled.device, dtype)

        def state_of(index: int) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
            """The kept output ``y`` of block ``index`` and its adapter's ``mix(down_proj(y))`` (None without one),
            without a graph: while the next block is recomputed only these two are held; the adapter's own
            narrow graph is built again for its backward."""
            y, adapter = kept(index), blocks[index].adapter
            if adapter is None:
                return y, None
            return y, _mix_values(adapter, y, plan.temporal_size)

        def input_of(index: int, state: Optional[tuple]) -> Callable[[slice], torch.Tensor]:
            """Per group, the input of block ``index`` (``len(blocks)``: of the pooling), from ``state_of(index - 1)``
            (block 0: the stack input)."""
            if index == 0:
                return lambda part: x[part]
            y, mixed = state
            if mixed is None:
                return lambda part: y[part]
            adapter = blocks[index - 1].adapter
            return lambda part: adapter.output(y[part], mixed[part])

        with torch.autocast(device_type, dtype=compute_dtype, enabled=autocast):
            last = len(blocks) - 1
            top_adapter_done = isinstance(plan.norm, nn.Identity) and blocks[last].adapter is not None
            state = None  # (y, mix values) of the block below the one being worked on
            if top_adapter_done:
                grad = _pooled_adapter_backward(
                    blocks[last].adapter, kept(last), plan.temporal_size, grad_pooled, plan.tokens_per_tubelet, sums
                )
            elif isinstance(plan.norm, nn.Identity):
                # d mean / d tokens: the pooled gradient spread evenly over the h*w tokens of each tubelet
                grad = (grad_pooled / plan.tokens_per_tubelet).unsqueeze(2)
                grad = grad.expand(chunks, tubelets, plan.tokens_per_tubelet, dim).reshape(shape)
            else:
                state = state_of(last)
                grad = grad_pooled.new_empty(shape)
                _backward_groups(
                    lambda tokens, part: plan.pool(tokens),
                    input_of(last + 1, state),
                    lambda part: grad_pooled[part],
                    grad,
                    _trainable(plan.norm),
                    group,
                    sums,
                )
            for index in range(last, -1, -1):
                block = blocks[index]
                if block.adapter is not None and not (index == last and top_adapter_done):
                    y = state[0]
                    state = None  # its mix values: the adapter backward computes them again, with a graph
                    _adapter_backward_(block.adapter, y, plan.temporal_size, grad, sums)
                    del y
                stored[index] = state = None
                params = _transformer_parameters(block)
                if index == 0 and not ctx.input_requires_grad and not params:
                    break
                state = state_of(index - 1) if index > 0 else None
                masks = ctx.masks[index]

                def transformer(tokens: torch.Tensor, part: slice, block: Block = block, masks: DropMasks = masks):
                    return block.transformer(tokens, _masks_of(masks, part))

                source = input_of(index, state)

                def key(tokens: torch.Tensor, part: slice, block: Block = block, masks: DropMasks = masks) -> Hashable:
                    masks = _mask_layouts(_masks_of(masks, part))
                    return "transformer backward", structure(block), masks, layout(tokens), layout(grad[part])

                _backward_groups(transformer, source, lambda part: grad[part], grad, params, group, sums, key)
                del source  # it holds the state too
        grad_input = grad if ctx.input_requires_grad else None
        return (None, grad_input, *[sums.of(param) for param in ctx.params])


def stack_parameters(plan: StackPlan) -> list[nn.Parameter]:
    """The trainable parameters inside a plan: the :class:`BlockStack` inputs its gradients go to."""
    params = [p for block in plan.blocks for p in block.parameters() if p.requires_grad]
    return params + _trainable(plan.norm)

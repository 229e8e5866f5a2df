"""One optimizer step of AdaTAD training: forward, loss, backward over micro-batches, clip, AdamW (spec §3, §8).

The preset's ``train.batch_size`` is the *global* batch. It is split over ``world_size`` processes and,
within each, over ``accumulation`` micro-batches. OpenTAD runs one video per GPU and every GPU keeps its
own positives normaliser; here each micro-batch slot keeps its own normaliser value too
(:class:`NormalizerSlots`), so one process with accumulation 2 computes the update that two processes
(or OpenTAD's two GPUs) compute, whatever the device count. Gradients are averaged over all slots.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from tadcli.data.dataset import WindowBatch
from tadcli.errors import TadError
from tadcli.inference.plan import autocast_dtype
from tadcli.model.adatad import AdaTAD, optimizer_param_groups

LOSS_PARTS = ("total", "classification", "regression")


class NonFiniteLossError(TadError):
    """A loss became NaN or infinite; training stops and keeps the last good checkpoint."""


@dataclass(frozen=True)
class Precision:
    """How the forward pass computes: fp32, or autocast to ``dtype`` on CUDA (bf16, or fp16 with a grad scaler)."""

    device_type: str
    dtype: torch.dtype | None

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A scaler that is active only for fp16 (bf16 and fp32 need none)."""
        return torch.amp.GradScaler(self.device_type, enabled=self.dtype == torch.float16)


def resolve_precision(device: torch.device, mixed_precision: bool) -> Precision:
    """Mixed precision on CUDA only (bf16 where supported, else fp16); fp32 on the CPU, where bf16 is slow: the
    rule inference follows too (:func:`tadcli.inference.plan.autocast_dtype`)."""
    return Precision(device.type, autocast_dtype(device, mixed_precision))


def build_optimizer(
    model: AdaTAD, head_lr: float, adapter_lr: float, backbone_lr: float, weight_decay: float, device: torch.device
) -> torch.optim.AdamW:
    """AdamW over the parameter groups of spec §8 (torch defaults betas (0.9, 0.999), eps 1e-8).

    The multi-tensor (``foreach``) implementation everywhere, the fused kernel on CUDA: both give the
    same update as the per-parameter loop with fewer temporaries.
    """
    groups = optimizer_param_groups(model, head_lr, adapter_lr, backbone_lr, weight_decay)
    fused = device.type == "cuda"
    return torch.optim.AdamW(groups, fused=fused or None, foreach=None if fused else True)


def unwrap(model: nn.Module) -> AdaTAD:
    """The AdaTAD inside a DDP wrapper (or the model itself)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


class NormalizerSlots:
    """The positives-normaliser value of each of ``count`` micro-batch slots (one per emulated GPU).

    Before micro-batch ``i`` the model's normaliser is set to slot ``i``; after it, the updated value
    is stored back. With one slot this is exactly the model's own buffer.
    """

    def __init__(self, model: AdaTAD, count: int) -> None:
        self.buffer = model.detector.loss.normalizer.value
        self.values = [self.buffer.detach().clone() for _ in range(count)]

    @contextlib.contextmanager
    def slot(self, index: int) -> Iterator[None]:
        with torch.no_grad():
            self.buffer.copy_(self.values[index])
        yield
        with torch.no_grad():
            self.values[index].copy_(self.buffer)

    def state_dict(self) -> list[float]:
        return [float(v) for v in self.values]

    def load_state_dict(self, values: Sequence[float]) -> None:
        if len(values) != len(self.values):
            raise ValueError(f"{len(values)} normaliser slots saved, {len(self.values)} in this run")
        for slot, value in zip(self.values, values):
            slot.fill_(value)


@dataclass(frozen=True)
class StepResult:
    """What one optimizer step measured (losses are means over the micro-batches, as Python floats)."""

    losses: dict[str, float]
    grad_norm: float
    num_positives: int
    num_videos: int


def training_step(
    model: nn.Module,
    micro_batches: Sequence[WindowBatch],
    optimizer: torch.optim.Optimizer,
    precision: Precision,
    scaler: torch.amp.GradScaler,
    clip_grad_norm: float | None,
    normalizers: NormalizerSlots,
    device: torch.device,
    step: int,
) -> StepResult:
    """One optimizer step over ``micro_batches`` (collated window batches, :func:`tadcli.data.dataset.collate_windows`).

    ``model`` may be DDP-wrapped: gradients are then synchronised on the last micro-batch only.
    Gradients are set to None before the step; the loss of each micro-batch is divided by their number.

    Raises:
        NonFiniteLossError: a loss part is NaN or infinite (nothing is applied to the weights).
    """
    optimizer.zero_grad(set_to_none=True)
    core = unwrap(model)
    sums = dict.fromkeys(LOSS_PARTS, 0.0)
    num_positives = num_videos = 0
    for index, batch in enumerate(micro_batches):
        last = index == len(micro_batches) - 1
        no_sync = model.no_sync() if isinstance(model, DistributedDataParallel) and not last else contextlib.nullcontext()
        batch = batch.to(device)
        with no_sync, normalizers.slot(index):
            with precision.autocast():
                outputs = model(batch.frames, batch.masks)
            losses = core.compute_loss(outputs, batch.gt_segments, batch.gt_labels)
            values = {"total": losses.total, "classification": losses.classification, "regression": losses.regression}
            floats = dict(zip(LOSS_PARTS, torch.stack([values[p].detach().float() for p in LOSS_PARTS]).tolist()))
            bad = [part for part in LOSS_PARTS if not math.isfinite(floats[part])]
            if bad:
                raise NonFiniteLossError(
                    f"step {step}: the {bad[-1]} loss is {floats[bad[-1]]} (micro-batch {index}); training stopped, "
                    "the last checkpoint is kept (lower the learning rate or check the data)"
                )
            scaler.scale(losses.total / len(micro_batches)).backward()
        for part in LOSS_PARTS:
            sums[part] += floats[part] / len(micro_batches)
        num_positives += int(losses.num_positives)
        num_videos += len(batch)
    scaler.unscale_(optimizer)
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    # max_norm inf measures the norm without clipping
    max_norm = clip_grad_norm if clip_grad_norm is not None else math.inf
    # foreach on every device (the CPU too): one norm and one scaling op per device and dtype, the same values
    grad_norm = float(torch.nn.utils.clip_grad_norm_(parameters, max_norm, foreach=True))
    scaler.step(optimizer)
    scaler.update()
    return StepResult(sums, grad_norm, num_positives, num_videos)

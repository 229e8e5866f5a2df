"""The memory of one real training step and of one inference pass of a preset, predicted or measured.

Both run the project's own code: :func:`tadcli.model.build.build_model`, :class:`tadcli.training.ema.ModelEMA`,
:func:`tadcli.training.step.build_optimizer` and :func:`tadcli.training.step.training_step` (forward under
autocast, loss, backward, gradient clipping, AdamW), then ``ModelEMA.update``, counted by
:class:`~tadcli.profiling.tracker.LiveTensorMemory`. A prediction runs them on fake tensors
(:mod:`tadcli.profiling.fake`): the model is built on the ``meta`` device, no weight is allocated, and
whatever the preset switches on (checkpointing, adapters on some blocks, side branches, options added to the
backbone later) is what runs. Loops over chunk groups run only their representative groups
(:func:`tadcli.model.chunked.representative_groups`: the same peak to the byte).

One step as ``tad train`` runs it on one device: the optimizer state exists already (AdamW initialises it on
a first step with zero gradients), the EMA copy exists, gradients start as None. With ``accumulation`` > 1
the step runs two micro-batches (the second sees the gradients of the first; every further one is the same).

Predicting for CUDA on a CPU: fake CUDA tensors need a real CUDA device for autograd, so the step runs on
fake CPU tensors with what differs on CUDA put in explicitly: autocast to the target dtype (CPU autocast
stands in for CUDA's; both compute linear, conv and matmul outputs in bf16/fp16, but CPU autocast keeps
layer_norm / softmax of bf16 inputs in bf16 where CUDA computes them in fp32, which touches only detector
tensors: the ViT's norms see the fp32 residual stream), the fused attention kernel (CUDA's flash or
memory-efficient kernel keeps the output and the log-sum-exp for backward, as the CPU flash kernel does;
the math kernel would keep the attention matrix), the fused AdamW kernel, the batch copied to the device
inside the step, the caching allocator's 512-byte blocks and segments, and checkpointed activations offloaded
to pinned CPU memory (``adaptation.offload_checkpoints``: off the device until their block's backward copies
them back, :func:`tadcli.model.chunked.offload_leaves_the_device`). Not modelled: CUDA context and library
workspaces (an allowance in :data:`CUDA_CONTEXT_BYTES`), kernel-internal scratch, fragmentation, and the time
or host memory the copies take.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from tadcli.config.schema import Preset
from tadcli.data.dataset import WindowBatch
from tadcli.model.adatad import AdaTAD
from tadcli.model.build import build_model
from tadcli.model.chunked import offload_leaves_the_device, representative_groups
from tadcli.profiling.fake import FakeSession, MetaInitSkipped, ValueFreeMemory
from tadcli.profiling.gpus import GpuSpec
from tadcli.profiling.replay import CallTraces
from tadcli.profiling.tracker import LiveTensorMemory, MemoryPeak
from tadcli.training.ema import ModelEMA
from tadcli.training.step import NormalizerSlots, Precision, build_optimizer, training_step

PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# CUDA context, cuBLAS/cuDNN handles and workspaces: outside the caching allocator's tensors (an allowance)
CUDA_CONTEXT_BYTES = 512 << 20
GT_SEGMENTS_PER_VIDEO = ((0.1, 0.25), (0.4, 0.6), (0.7, 0.95))  # fractions of the window, in grid steps
# recordings of the model's repeated calls (tadcli.profiling.replay), per target: every prediction in this
# process reuses them (the blocks of one model, the configurations of a suggestion search)
_CALL_TRACES: dict[Target, CallTraces] = {}


@dataclass(frozen=True)
class Workload:
    """What one device runs per optimizer step.

    Attributes:
        preset: the validated preset (model, input size, optimizer, EMA, clipping).
        batch: videos per micro-batch on the device.
        accumulation: micro-batches per optimizer step.
        num_classes: detector classes.
    """

    preset: Preset
    batch: int
    accumulation: int
    num_classes: int


@dataclass(frozen=True)
class Target:
    """The device a prediction is for: ``cpu`` or ``cuda``, the compute precision, the GPU (None = any)."""

    device: str
    precision: str
    gpu: GpuSpec | None = None

    @property
    def attention_kernel(self) -> str:
        if self.device == "cpu":
            return "flash (CPU)"
        half = self.precision != "fp32"
        flash = half and (self.gpu is None or self.gpu.supports_flash_attention)
        return "flash" if flash else "memory-efficient"


@dataclass(frozen=True)
class StepMemory:
    """Peak bytes of one pass and what was live at that moment (inference: no gradients, optimizer, EMA).

    ``reserved``: the caching allocator's segments at their peak (CUDA estimate; ``peak`` on the CPU).
    """

    peak: int
    weights: int
    gradients: int
    optimizer: int
    ema: int
    activations: int
    reserved: int

    @classmethod
    def from_peak(cls, peak: MemoryPeak) -> StepMemory:
        groups = peak.groups
        return cls(
            peak=peak.total,
            weights=groups["weights"],
            gradients=groups.get("gradients", 0),
            optimizer=groups.get("optimizer", 0),
            ema=groups.get("ema", 0),
            activations=groups["other"],
            reserved=peak.reserved,
        )


@dataclass(frozen=True)
class Profile:
    """The predicted memory of a workload on a target."""

    workload: Workload
    target: Target
    total_parameters: int
    trainable_parameters: int
    training: StepMemory
    inference: StepMemory | None

    def required_bytes(self) -> int:
        """Device memory the training step needs: reserved segments, plus the CUDA context on CUDA."""
        extra = CUDA_CONTEXT_BYTES if self.target.device == "cuda" else 0
        return max(self.training.reserved, self.inference.reserved if self.inference else 0) + extra

    def fits(self, capacity_bytes: int) -> bool:
        return self.required_bytes() <= capacity_bytes


def _micro_batch(workload: Workload, fake: bool) -> WindowBatch:
    """A collated batch (:func:`tadcli.data.dataset.collate_windows` layout) of full windows."""
    preset, count = workload.preset, workload.batch
    frames, size, length = preset.input.frames, preset.input.image_size, preset.input.detector_length
    shape = (count, 3, frames, size, size)
    pixels = torch.empty(shape, dtype=torch.uint8) if fake else torch.randint(0, 256, shape, dtype=torch.uint8)
    segments = torch.tensor(GT_SEGMENTS_PER_VIDEO, dtype=torch.float32) * length  # [M, 2] grid steps
    labels = torch.arange(len(GT_SEGMENTS_PER_VIDEO)) % workload.num_classes
    return WindowBatch(pixels, torch.ones(count, length, dtype=torch.bool), [segments.clone() for _ in range(count)],
                       [labels.clone() for _ in range(count)])


class _BatchesMadeOnUse(Sequence):
    """Micro-batches created when the step reaches them: on CUDA each batch is copied to the device inside
    the step, so only the one in use occupies device memory."""

    def __init__(self, workload: Workload, count: int) -> None:
        self.workload = workload
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> WindowBatch:
        if not 0 <= index < self.count:
            raise IndexError(index)
        return _micro_batch(self.workload, fake=True)


def micro_batches_run(workload: Workload) -> int:
    """Micro-batches a profile runs: two stand for any number above one (from the second on, each sees the
    same gradients and state)."""
    return min(workload.accumulation, 2)


@contextlib.contextmanager
def _as_on(target: Target, tracker: ValueFreeMemory) -> Iterator[None]:
    """What a fake CPU step needs to count what ``target`` holds: representative chunk groups and repeated
    calls replayed into ``tracker`` always; on CUDA the fused attention kernel and offloaded activations off
    the device."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(representative_groups())
        stack.enter_context(_CALL_TRACES.setdefault(target, CallTraces()).replaying(tracker))
        stack.enter_context(_attention_kernel(target))
        if target.device == "cuda":
            stack.enter_context(offload_leaves_the_device())
        yield


def _attention_kernel(target: Target) -> contextlib.AbstractContextManager:
    """CUDA targets: the fused kernel (flash or memory-efficient; on a CPU stand-in the CPU flash kernel keeps
    the same output and log-sum-exp). CPU: the CPU's own choice."""
    if target.device == "cuda":
        return sdpa_kernel([SDPBackend.FLASH_ATTENTION])
    return contextlib.nullcontext()


def _precision(target: Target, real_cuda: bool) -> Precision:
    dtype = PRECISIONS[target.precision]
    return Precision("cuda" if real_cuda else "cpu", dtype)


@dataclass
class _Training:
    model: AdaTAD
    ema: ModelEMA | None
    optimizer: torch.optim.Optimizer
    normalizers: NormalizerSlots


def _set_up_training(model: AdaTAD, workload: Workload, optimizer_device: torch.device) -> _Training:
    """EMA, AdamW with its state initialised, normaliser slots: what exists when a step starts."""
    train = workload.preset.train
    model.train()
    ema = ModelEMA(model, train.ema_decay) if train.ema else None
    optimizer = build_optimizer(
        model, train.head_lr, train.adapter_lr, train.backbone_lr, train.weight_decay, optimizer_device
    )
    for group in optimizer.param_groups:
        for param in group["params"]:
            param.grad = torch.zeros_like(param)
    optimizer.step()  # AdamW creates its state on its first step
    optimizer.zero_grad(set_to_none=True)
    return _Training(model, ema, optimizer, NormalizerSlots(model, micro_batches_run(workload)))


def _run_training_step(
    training: _Training, batches: Sequence[WindowBatch], workload: Workload, precision: Precision, device: torch.device
) -> None:
    training_step(
        training.model,
        batches,
        training.optimizer,
        precision,
        precision.grad_scaler(),
        workload.preset.train.clip_grad_norm,
        training.normalizers,
        device,
        step=1,
    )
    if training.ema is not None:
        training.ema.update()


def _training_groups(training: _Training) -> dict[str, list[torch.Tensor]]:
    model = training.model
    groups = {
        "weights": [*model.parameters(), *model.buffers()],
        "gradients": [p.grad for p in model.parameters() if p.grad is not None],
        "optimizer": [v for state in training.optimizer.state.values() for v in state.values() if torch.is_tensor(v)],
    }
    if training.ema is not None:
        groups["ema"] = [*training.ema.module.parameters(), *training.ema.module.buffers()]
    return groups


def _run_inference(model: AdaTAD, workload: Workload, precision: Precision, device: torch.device, fake: bool) -> None:
    batch = _micro_batch(workload, fake)
    model.eval()
    with torch.no_grad(), precision.autocast():
        model(batch.frames.to(device), batch.masks.to(device))


def count_parameters(model: AdaTAD) -> tuple[int, int]:
    """(all parameters, trainable parameters)."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


def _without_weights_file(preset: Preset) -> Preset:
    """The preset with a random-initialised backbone: weights do not change memory, and need no file."""
    return preset.model_copy(update={"backbone": preset.backbone.model_copy(update={"weights": None})})


def predict(workload: Workload, target: Target, inference: bool = True) -> Profile:
    """Predict the peak memory of one training step (and of inference) of ``workload`` on ``target``.

    Nothing is allocated: the model is built on the meta device and every tensor is fake.
    """
    with MetaInitSkipped():
        model = build_model(_without_weights_file(workload.preset), workload.num_classes, device="meta")
    total, trainable = count_parameters(model)
    cpu = torch.device("cpu")
    cuda_target = target.device == "cuda"
    precision = _precision(target, real_cuda=False)
    session = FakeSession()
    session.materialize(model, cpu)
    with session.active():
        training = _set_up_training(model, workload, torch.device(target.device))
    tracker = ValueFreeMemory(cuda_allocator=cuda_target)
    tracker.add(t for tensors in _training_groups(training).values() for t in tensors)
    with session.active(tracker), _as_on(target, tracker):
        count = micro_batches_run(workload)
        if cuda_target:
            batches: Sequence[WindowBatch] = _BatchesMadeOnUse(workload, count)
        else:
            batches = [_micro_batch(workload, fake=True) for _ in range(count)]
        _run_training_step(training, batches, workload, precision, cpu)
        del batches
    training_memory = StepMemory.from_peak(tracker.peak(_training_groups(training)))
    inference_memory = None
    if inference:
        model.zero_grad(set_to_none=True)
        weights = [*model.parameters(), *model.buffers()]
        tracker = ValueFreeMemory(cuda_allocator=cuda_target)
        tracker.add(weights)
        with session.active(tracker), _as_on(target, tracker):
            _run_inference(model, workload, precision, cpu, fake=True)
        inference_memory = StepMemory.from_peak(tracker.peak({"weights": weights}))
    return Profile(workload, target, total, trainable, training_memory, inference_memory)


@dataclass(frozen=True)
class Measurement:
    """Measured peaks (bytes) of the real step and inference pass on ``device`` (CUDA: ``max_memory_allocated``;
    CPU: :class:`~tadcli.profiling.tracker.LiveTensorMemory` on real tensors)."""

    device: str
    training: int
    inference: int


@contextlib.contextmanager
def _cuda_peak() -> Iterator[list[int]]:
    result: list[int] = []
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    yield result
    torch.cuda.synchronize()
    result.append(torch.cuda.max_memory_allocated())


def measure(workload: Workload, target: Target, device: torch.device) -> Measurement:
    """Run the real training step and inference pass of ``workload`` on ``device`` and measure their peaks.

    Allocates the model for real (random weights); ``target`` gives the precision (CUDA only; the CPU
    computes in fp32).
    """
    torch.manual_seed(0)
    real_cuda = device.type == "cuda"
    precision = _precision(target, real_cuda) if real_cuda else Precision("cpu", None)
    model = build_model(_without_weights_file(workload.preset), workload.num_classes, device=device)
    training = _set_up_training(model, workload, device)
    batches = [_micro_batch(workload, fake=False) for _ in range(micro_batches_run(workload))]
    if real_cuda:
        with _cuda_peak() as peak:
            _run_training_step(training, batches, workload, precision, device)
        training_peak = peak[0]
        model.zero_grad(set_to_none=True)
        del training, batches
        with _cuda_peak() as peak:
            _run_inference(model, workload, precision, device, fake=False)
        return Measurement(torch.cuda.get_device_name(device), training_peak, peak[0])
    tracker = LiveTensorMemory()
    tracker.add(t for tensors in _training_groups(training).values() for t in tensors)
    with tracker:
        tracker.add(t for batch in batches for t in (batch.frames, batch.masks))
        _run_training_step(training, batches, workload, precision, device)
    training_peak = tracker.peak().total
    model.zero_grad(set_to_none=True)
    tracker = LiveTensorMemory()
    tracker.add([*model.parameters(), *model.buffers()])
    with tracker:
        _run_inference(model, workload, precision, device, fake=False)
    return Measurement("cpu", training_peak, tracker.peak().total)


@dataclass(frozen=True)
class StepsMeasurement:
    """Peaks (bytes) over several real training steps and the seconds of each step.

    CUDA: ``max_memory_allocated`` and ``max_memory_reserved``; CPU: the live-tensor tracker (``reserved`` =
    ``allocated``, and the steps are timed with the tracker on).
    """

    device: str
    allocated: int
    reserved: int
    seconds: tuple[float, ...]


def _timed(run: Callable[[], None], cuda: bool) -> float:
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    run()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def measure_training_steps(workload: Workload, target: Target, device: torch.device, steps: int = 2) -> StepsMeasurement:
    """Run ``steps`` real training steps of ``workload`` on ``device`` as ``tad train`` does (all its
    micro-batches, gradient clipping, AdamW, EMA) from a random-initialised model, and measure them.

    The peaks start once the model, the optimizer state and the EMA exist; ``target`` gives the precision (CUDA
    only; the CPU computes in fp32).
    """
    torch.manual_seed(0)
    cuda = device.type == "cuda"
    precision = _precision(target, cuda) if cuda else Precision("cpu", None)
    model = build_model(_without_weights_file(workload.preset), workload.num_classes, device=device)
    training = _set_up_training(model, workload, device)
    batches = [_micro_batch(workload, fake=False) for _ in range(workload.accumulation)]

    def step() -> None:
        _run_training_step(training, batches, workload, precision, device)

    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        seconds = tuple(_timed(step, cuda) for _ in range(steps))
        allocated, reserved = torch.cuda.max_memory_allocated(), torch.cuda.max_memory_reserved()
        return StepsMeasurement(torch.cuda.get_device_name(device), allocated, reserved, seconds)
    tracker = LiveTensorMemory()
    tracker.add(t for tensors in _training_groups(training).values() for t in tensors)
    with tracker:
        tracker.add(t for batch in batches for t in (batch.frames, batch.masks))
        seconds = tuple(_timed(step, cuda) for _ in range(steps))
    peak = tracker.peak().total
    return StepsMeasurement("cpu", peak, peak, seconds)

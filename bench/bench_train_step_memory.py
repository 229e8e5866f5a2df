"""Peak memory and time of one full AdaTAD training step, before and after the chunk-wise recompute (issue 12).

One step = :func:`tadcli.training.step.training_step` (zero_grad, forward, ActionFormer loss, backward, clip 1.0,
AdamW from :func:`tadcli.training.step.build_optimizer`) on a model from :func:`tadcli.build_model` of the
``small-768`` preset (ViT-S, 160 px, D = 512), batch 1, fp32, CPU, uint8 frames. "before" is ``chunk_group`` 0
(every block over the whole window, ``torch.utils.checkpoint`` per block), "after" the preset default.

Memory: the live-tensor tracker (``tadcli.profiling.tracker``) runs from before the model is built, so
parameters, inputs, gradients and AdamW state all count. The first step (warm-up) creates the AdamW state; the
second is measured: its peak, the floor (bytes live when AdamW starts: parameters, inputs, gradients, AdamW
state, what any implementation must hold) and the peak above the floor. Memory is deterministic.
Time: further untracked steps, alternating between the configurations of one frame count so that both see the
same machine load; the median is reported.

    python bench/bench_train_step_memory.py --frames 128 --repeats 5
    python bench/bench_train_step_memory.py --frames 768 --repeats 2 --modes tia
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from tadcli.config.loader import load_preset
from tadcli.profiling.tracker import LiveTensorMemory
from tadcli.model.build import build_model
from tadcli.data.dataset import WindowBatch
from tadcli.training.step import NormalizerSlots, Precision, build_optimizer, training_step

# label -> preset overrides of the adaptation section
MODES = {
    "full-no-checkpointing": ["adaptation.mode=full", "adaptation.checkpointing=false"],
    "tia-no-checkpointing": ["adaptation.mode=tia", "adaptation.checkpointing=false"],
    "tia": ["adaptation.mode=tia", "adaptation.checkpointing=true"],
    "full": ["adaptation.mode=full", "adaptation.checkpointing=true"],
    "frozen": ["adaptation.mode=frozen", "adaptation.checkpointing=false"],
    "side": ["adaptation.mode=side", "adaptation.blocks=last-half", "adaptation.checkpointing=true"],
}
LABELS = {
    "full-no-checkpointing": "full fine-tuning, no checkpointing",
    "tia-no-checkpointing": "tia, no checkpointing",
    "tia": "tia + checkpointing",
    "full": "full + checkpointing",
    "frozen": "frozen",
    "side": "side + checkpointing",
}
VARIANTS = {"before": "adaptation.chunk_group=0", "after": None}  # after: the preset default
DEVICE = torch.device("cpu")


class Run:
    """One model, optimizer and batch; steps counted by the tracker that was active when it was built."""

    def __init__(self, mode: str, variant: str, frames: int, tracker: LiveTensorMemory) -> None:
        overrides = [f"input.frames={frames}", *MODES[mode]]
        if VARIANTS[variant] is not None:
            overrides.append(VARIANTS[variant])
        self.preset = load_preset("small-768", overrides)
        self.label = f"{LABELS[mode]}, {variant} (chunk_group {self.preset.adaptation.chunk_group})"
        self.tracker = tracker
        torch.manual_seed(0)
        self.model = build_model(self.preset, num_classes=20, device=DEVICE).train()
        train = self.preset.train
        self.optimizer = build_optimizer(self.model, train.head_lr, train.adapter_lr, 0.0, train.weight_decay, DEVICE)
        self.floor = 0
        self.optimizer.register_step_pre_hook(self._record_floor)
        length = self.preset.input.detector_length
        generator = torch.Generator().manual_seed(0)
        self.batch = WindowBatch(
            frames=torch.randint(0, 256, (1, 3, frames, 160, 160), dtype=torch.uint8, generator=generator),
            masks=torch.ones(1, length, dtype=torch.bool),
            gt_segments=[torch.tensor([[0.1 * length, 0.3 * length], [0.5 * length, 0.9 * length]])],
            gt_labels=[torch.tensor([1, 5])],
        )
        self.precision = Precision("cpu", None)
        self.scaler = self.precision.grad_scaler()
        self.normalizers = NormalizerSlots(self.model, 1)
        self.steps = 0
        self.seconds: list[float] = []

    def _record_floor(self, *_) -> None:
        self.floor = self.tracker.current

    def step(self) -> float:
        start = time.perf_counter()
        batches, clip = [self.batch], 1.0
        training_step(
            self.model, batches, self.optimizer, self.precision, self.scaler, clip, self.normalizers, DEVICE, self.steps
        )
        self.steps += 1
        return time.perf_counter() - start

    def measure_memory(self) -> tuple[int, int]:
        """(peak, floor) of the second step, in bytes."""
        self.step()  # warm-up: creates the AdamW state
        self.tracker.reset_peak()
        self.step()
        return self.tracker.peak().total, self.floor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[128], help="frames per window (multiples of 16)")
    parser.add_argument("--modes", nargs="+", default=["tia", "full", "frozen", "side"], choices=list(MODES))
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per configuration")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    machine = f"{platform.machine()} CPU, {torch.get_num_threads()} threads, torch {torch.__version__}"
    print(f"ViT-S, 160 px, batch 1, fp32, full training step ({machine})")
    print("| frames | mode | peak (MiB) | floor (MiB) | above floor (MiB) | step time, median (s) | step times (s) |")
    print("|---|---|---|---|---|---|---|")
    mib = 2**20
    for frames in args.frames:
        for mode in args.modes:
            runs, memory = [], []
            for variant in args.variants:
                tracker = LiveTensorMemory()
                with tracker:
                    run = Run(mode, variant, frames, tracker)
                    memory.append(run.measure_memory())
                runs.append(run)
            for _ in range(args.repeats):
                for run in runs:
                    run.seconds.append(run.step())
            for run, (peak, floor) in zip(runs, memory):
                times = ", ".join(f"{s:.1f}" for s in run.seconds)
                print(
                    f"| {frames} | {run.label} | {peak / mib:.0f} | {floor / mib:.0f} | {(peak - floor) / mib:.0f} "
                    f"| {statistics.median(run.seconds):.1f} | {times} |",
                    flush=True,
                )
            del runs


if __name__ == "__main__":
    main()

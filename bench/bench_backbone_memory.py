"""Peak memory and time of one backbone training step per adaptation mode.

One step = forward of a [1, 3, F, S, S] clip, a simple loss on the features (mean of squares), backward.
Memory is the peak of tensor bytes allocated during the step on top of what existed before it
(parameters, the input): on CUDA ``torch.cuda.max_memory_allocated``; on CPU
:class:`tadcli.profiling.tracker.LiveTensorMemory`, which tracks the storage of every freshly allocated op
output until it is freed (views and in-place results are not new allocations; scratch space inside a
kernel is not seen). Time is measured on a separate,
untracked step after one warm-up step.

    python bench/bench_backbone_memory.py                      # ViT-S, 160 px, 128 frames, CPU
    python bench/bench_backbone_memory.py --frames 768 --device cuda
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from tadcli.model import build_backbone
from tadcli.profiling.tracker import LiveTensorMemory

# (label, adaptation, checkpointing); tia and side use the spec's adapter placement for ViT-S
CONFIGS = (
    ("full", "full", False),
    ("full + checkpointing", "full", True),
    ("frozen", "frozen", False),
    ("tia", "tia", False),
    ("tia + checkpointing", "tia", True),
    ("side (blocks 6-11) + checkpointing", "side", True),
)


def training_step(backbone, frames: torch.Tensor) -> None:
    loss = backbone(frames).square().mean()
    if loss.requires_grad:  # a frozen backbone has nothing to train
        loss.backward()


def measure(label: str, adaptation: str, checkpointing: bool, args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    device = torch.device(args.device)
    adapter_blocks = list(range(6, 12)) if adaptation == "side" else None
    backbone = build_backbone(
        args.arch,
        adaptation,
        adapter_blocks=adapter_blocks,
        drop_path_rate=0.1 if adaptation in ("full", "tia") else 0.0,
        checkpointing=checkpointing,
        device=device,
    ).train()
    frames = torch.randn(1, 3, args.frames, args.size, args.size, device=device)
    training_step(backbone, frames)  # warm-up
    backbone.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        training_step(backbone, frames)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - before
    else:
        with LiveTensorMemory() as tracker:
            training_step(backbone, frames)
        peak = tracker.peak().total
    backbone.zero_grad(set_to_none=True)
    start = time.perf_counter()
    training_step(backbone, frames)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    trainable = sum(p.numel() for p in backbone.parameters() if p.requires_grad)
    return {"label": label, "peak": peak, "seconds": seconds, "trainable": trainable}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="S", help="ViT variant")
    parser.add_argument("--frames", type=int, default=128, help="frames per video (multiple of 16)")
    parser.add_argument("--size", type=int, default=160, help="frame size in pixels")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    if args.device.startswith("cuda"):
        machine = torch.cuda.get_device_name()
    else:
        machine = f"{platform.machine()} CPU, {torch.get_num_threads()} threads"
    print(f"ViT-{args.arch}, {args.size} px, {args.frames} frames, batch 1, fp32, {args.device} ({machine})")
    results = [measure(label, adaptation, ckpt, args) for label, adaptation, ckpt in CONFIGS]
    reference = results[0]["peak"]
    print("| mode | peak step memory (MiB) | vs full | step time (s) | trainable params |")
    print("|---|---|---|---|---|")
    for result in results:
        print(
            f"| {result['label']} | {result['peak'] / 2**20:.0f} | {100 * result['peak'] / reference:.1f} % "
            f"| {result['seconds']:.1f} | {result['trainable']:,} |"
        )


if __name__ == "__main__":
    main()

"""Accuracy and speed of ``tad profile-memory``.

1. CPU accuracy: the prediction (fake tensors) against the measured peak of the same real training step and
   inference pass on the CPU (:class:`tadcli.profiling.tracker.LiveTensorMemory` on real tensors), for
   ``tiny`` and ``small-768 --frames 128``, every mode, 1 video per micro-batch, accumulation 2, fp32.
2. CUDA, when a GPU is present (``--gpu-check``): prediction against ``torch.cuda.max_memory_allocated`` for
   ``small-768`` and ``base-768`` at 768 frames, bf16, tia and full modes.
3. The public figures of spec §12 (one video per GPU, AMP, checkpointing) beside the CUDA predictions.
4. Time to profile ``giant-1536``: its own mode, the whole six-mode table, and its own mode with the suggestions
   for an A100-40GB, where it does not fit.

    OMP_NUM_THREADS=1 python bench/bench_profile_memory.py             # 1, 3, 4 (--parts cpu public timing)
    python bench/bench_profile_memory.py --gpu-check                    # 2 (needs a CUDA device)
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from tadcli.services.profile_memory import profile_memory

MIB, GIB = 1 << 20, 1 << 30
CPU_CASES = (("tiny", []), ("small-768", ["input.frames=128"]))
GPU_CASES = (("small-768", "tia"), ("small-768", "full"), ("base-768", "tia"), ("base-768", "full"))
# spec §12: peak allocated memory of one AdaTAD training step, 1 video per GPU, AMP and checkpointing on
PUBLIC_FIGURES = (
    ("giant-768", [], 30.7, "OpenTAD issue #4, ViT-g 768 frames 160 px"),
    ("base-768", [], 5.0, "OpenTAD issue #27, ViT-B 768 frames 160 px"),
    ("large-768", ["input.image_size=224"], 13.3, "SV-TAD, ViT-L 768 frames 224 px, RTX 3090"),
)
ONE_VIDEO_PER_GPU = ["train.batch_size=1"]  # each of OpenTAD's GPUs holds one video, no accumulation
WHOLE_WINDOW_CHECKPOINTS = "adaptation.chunk_group=0"  # every block over the whole window, torch checkpointing


def cpu_accuracy() -> None:
    print("| preset | mode | predicted train (MiB) | measured train (MiB) | error | predicted inference | measured "
          "inference | error |")
    print("|---|---|---|---|---|---|---|---|")
    for name, overrides in CPU_CASES:
        plan = profile_memory(name, overrides, batch=1, device="cpu", measure_peak=True)
        for row in plan.rows:
            p, m = row.profile, row.measured
            print(
                f"| {name} {' '.join(overrides)} | {row.mode} | {p.training.peak / MIB:.1f} | {m.training / MIB:.1f} | "
                f"{p.training.peak / m.training - 1:+.2%} | {p.inference.peak / MIB:.1f} | {m.inference / MIB:.1f} | "
                f"{p.inference.peak / m.inference - 1:+.2%} |"
            )


def gpu_accuracy() -> None:
    print(f"device: {torch.cuda.get_device_name()}")
    print("| preset | mode | predicted train (GiB) | max_memory_allocated (GiB) | error |")
    print("|---|---|---|---|---|")
    for name, mode in GPU_CASES:
        plan = profile_memory(name, mode=mode, precision="bf16", device="cuda", measure_peak=True)
        row = plan.rows[0]
        predicted, measured = row.profile.training.peak, row.measured.training
        print(f"| {name} | {mode} | {predicted / GIB:.2f} | {measured / GIB:.2f} | {predicted / measured - 1:+.2%} |")


def public_figures() -> None:
    print(
        "| setting | public figure (GB) | predicted train peak (GiB) | of which weights / EMA / activations | "
        "predicted with per-block torch checkpointing (`chunk_group=0`, as OpenTAD) |"
    )
    print("|---|---|---|---|---|")
    for name, overrides, figure, source in PUBLIC_FIGURES:
        peaks = []
        for checkpointing in ([], [WHOLE_WINDOW_CHECKPOINTS]):
            options = [*ONE_VIDEO_PER_GPU, *overrides, *checkpointing]
            plan = profile_memory(name, options, mode="preset", precision="fp16", device="cuda")
            peaks.append(plan.rows[0].profile.training)
        t, whole_window = peaks
        print(
            f"| {name} {' '.join(overrides)} ({source}) | {figure} | {t.peak / GIB:.2f} | "
            f"{t.weights / GIB:.2f} / {t.ema / GIB:.2f} / {t.activations / GIB:.2f} | {whole_window.peak / GIB:.2f} |"
        )


def giant_timing() -> None:
    cases = (
        ("its own mode", dict(mode="preset", gpu="A100-80GB")),
        ("all six modes", dict(gpu="A100-80GB")),
        ("its own mode on an A100-40GB, with suggestions", dict(mode="preset", gpu="A100-40GB")),
    )
    for label, options in cases:
        start = time.perf_counter()
        plan = profile_memory("giant-1536", **options)
        extra = f" ({len(plan.suggestions)} suggestions)" if plan.suggestions else ""
        print(f"giant-1536, {label}: {time.perf_counter() - start:.1f} s{extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu-check", action="store_true", help="only the CUDA accuracy check")
    parser.add_argument("--parts", nargs="+", choices=["cpu", "public", "timing"], default=["cpu", "public", "timing"])
    args = parser.parse_args()
    if args.gpu_check:
        gpu_accuracy()
        return
    print(f"{platform.machine()} CPU, {torch.get_num_threads()} threads, torch {torch.__version__}")
    parts = {"cpu": cpu_accuracy, "public": public_figures, "timing": giant_timing}
    for part in args.parts:
        parts[part]()


if __name__ == "__main__":
    main()

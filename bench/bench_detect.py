"""Detection benchmarks (issue: tad detect).

1. ``throughput``: ``tad detect`` on a synthetic video on the CPU for ``tiny`` (128 frames, 64 px) and
   ``small-768`` (768 frames, 160 px): video seconds per wall second, frames per second, and the share of this
   machine's measured fp32 matrix-multiply peak that the backbone forward reaches (its FLOPs, counted by
   ``torch.utils.flop_counter``, / its time / the peak of a large square fp32 matmul on the same threads).
2. ``memory``: peak resident memory of a ``tad detect`` process (``ru_maxrss``) on a 10-minute and a 60-minute
   synthetic video (written by the benchmark), beside a 1-minute one.

    python bench/bench_detect.py throughput
    python bench/bench_detect.py memory
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

import tadcli
from tadcli.data.synthetic import write_synthetic_videos
from tadcli.config.profiles import get_profile
from tadcli.inference.detector import Detector
from tadcli.inference.loading import ready_for_inference
from tadcli.inference.plan import inference_plan
from tadcli.io.events import ModelIdentity

OUT = Path("bench/out")


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads, torch {torch.__version__}"


def matmul_peak(size: int = 2048, repeats: int = 10) -> float:
    """Measured fp32 FLOP/s of a square matmul (the best of ``repeats``)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        tic = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - tic)
    return 2 * size**3 / best


def synthetic_video(name: str, seconds: float, height: int, fps: int = 30) -> Path:
    folder = OUT / f"detect-{name}"
    video = folder / "videos" / "synthetic_0000.mp4"
    if not video.is_file():
        write_synthetic_videos(folder, num_videos=3, num_classes=4, seed=1, height=height, width=height * 4 // 3 // 2 * 2, fps=fps,
                               video_seconds=(seconds, seconds + 0.01), action_seconds=(1.0, 6.0))
    return video


def backbone_efficiency(model, frames: torch.Tensor, peak: float, repeats: int = 3) -> dict:
    with torch.no_grad():
        with FlopCounterMode(display=False) as counter:
            model.backbone(frames)
        flops = counter.get_total_flops()
        model.backbone(frames)
        best = float("inf")
        for _ in range(repeats):
            tic = time.perf_counter()
            model.backbone(frames)
            best = min(best, time.perf_counter() - tic)
    return {"backbone_GFLOP_per_window": round(flops / 1e9, 2), "backbone_seconds": round(best, 3),
            "share_of_matmul_peak": round(flops / best / peak, 3)}


def throughput() -> list[dict]:
    peak = matmul_peak()
    print(f"fp32 matmul peak: {peak / 1e9:.1f} GFLOP/s")
    rows = []
    for name, overrides in (("tiny", []), ("small-768", [])):
        preset = tadcli.load_preset(name, overrides)
        torch.manual_seed(0)
        model = ready_for_inference(tadcli.build_model(preset, num_classes=4), "cpu")
        classes = [f"class_{i}" for i in range(4)]
        identity = ModelIdentity(name, "thumos14", tuple(classes), tadcli.__version__)
        detector = Detector(model, inference_plan(preset, get_profile("thumos14"), "cpu"), classes, identity)
        video = synthetic_video("240p-60s", 60.0, 240)
        detector.detect(video)  # warm-up
        tic = time.perf_counter()
        events = detector.detect(video)
        wall = time.perf_counter() - tic
        frames = torch.randn(1, 3, preset.input.frames, preset.input.image_size, preset.input.image_size)
        row = {"preset": name, "video_seconds": events.duration, "wall_seconds": round(wall, 2),
               "video_seconds_per_second": round(events.duration / wall, 2),
               "decoded_frames_per_second": round(events.duration * events.fps / wall, 1),
               **backbone_efficiency(model, frames, peak)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def peak_rss_of_detect(video: Path, run_dir: Path) -> float:
    """Peak resident MiB of a child process running detection on ``video`` with the run."""
    code = (
        "import resource, sys, tadcli; d = tadcli.load_detector(sys.argv[1], device='cpu'); d.detect(sys.argv[2]); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    result = subprocess.run([sys.executable, "-c", code, str(run_dir), str(video)], capture_output=True, text=True, check=True)
    return int(result.stdout.strip().splitlines()[-1]) / 1024


def memory() -> list[dict]:
    from tadcli.services.train import TrainRequest, train

    data = OUT / "synthetic"
    run_dir = OUT / "detect-memory-run"
    if not (run_dir / "model.safetensors").is_file():
        if not (data / "manifest.json").is_file():
            tadcli.prepare_synthetic(data)
        train(TrainRequest("tiny", data, run_dir, ["train.epochs=1", "train.warmup_epochs=0"], device="cpu"))
    rows = []
    for minutes in (1, 10, 60):
        video = synthetic_video(f"tiny-{minutes}min", 60.0 * minutes, 96, fps=12)
        rows.append({"video_minutes": minutes, "peak_rss_MiB": round(peak_rss_of_detect(video, run_dir), 1)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("throughput", "memory"))
    args = parser.parse_args()
    print(f"machine: {machine()}")
    throughput() if args.what == "throughput" else memory()


if __name__ == "__main__":
    main()

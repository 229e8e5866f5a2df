"""The quickstart training benchmark: ``tad train --preset tiny`` on the default synthetic dataset (24 videos,
4 classes), as ``tad demo`` trains it: wall time, validation mAP per evaluated epoch, and where one training
step's time goes (decoding a batch, backbone forward, detector forward + loss, backward, optimizer + EMA),
measured on separate timed steps of the same model and data.

Training-step speed and memory per adaptation mode: ``bench/bench_train_step_memory.py``.

    python bench/bench_train.py [--data DIR]     # writes the dataset first when DIR has none
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import time
from pathlib import Path

import torch

import tadcli
from tadcli.config.loader import load_preset
from tadcli.data.dataset import collate_windows
from tadcli.data.prepared import load_prepared_dataset, records_from_prepared
from tadcli.data.pipeline import train_dataset
from tadcli.services.prepare import prepare_synthetic
from tadcli.services.train import TrainRequest, train
from tadcli.training.ema import ModelEMA
from tadcli.training.step import build_optimizer

CPU = torch.device("cpu")


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"


def quickstart(data: Path, out: Path, breakdown_steps: int) -> dict:
    if not (data / "manifest.json").is_file():
        prepare_synthetic(data, num_videos=24, num_classes=4, seed=0)
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    summary = train(TrainRequest("tiny", data, out, device="cpu"))
    wall = time.perf_counter() - started
    return {
        "wall_seconds": round(wall, 1),
        "steps": summary.global_step,
        "evaluations": [(e["epoch"], round(100 * e["average_mAP"], 2)) for e in summary.evaluations],
        "last_average_mAP": round(100 * summary.last_evaluation["average_mAP"], 2),
        "step_breakdown_ms": step_breakdown(data, breakdown_steps),
    }


def step_breakdown(data: Path, steps: int) -> dict:
    """Mean milliseconds of each part of a tiny training step (batch 2, one process, the preset's threads)."""
    preset = load_preset("tiny")
    dataset = load_prepared_dataset(data)
    windows = train_dataset(records_from_prepared(dataset, "train"), preset, dataset.dataset_profile, seed=0)
    torch.manual_seed(0)
    model = tadcli.build_model(preset, num_classes=len(dataset.classes)).train()
    optimizer = build_optimizer(model, 1e-3, 1e-3, 1e-5, 0.05, CPU)
    ema = ModelEMA(model, 0.99)
    parts = {"decode": [], "backbone_forward": [], "detector_forward_loss": [], "backward": [], "optimizer_ema": []}
    for step in range(steps + 1):
        tic = time.perf_counter()
        batch = collate_windows([windows[(2 * step) % len(windows)], windows[(2 * step + 1) % len(windows)]])
        t_decode = time.perf_counter()
        features = model.extract_features(batch.frames)
        t_backbone = time.perf_counter()
        losses = model.compute_loss(model.detector(features, batch.masks), batch.gt_segments, batch.gt_labels)
        t_detector = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        losses.total.backward()
        t_backward = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        ema.update()
        t_end = time.perf_counter()
        if step == 0:
            continue  # warm-up
        for name, (a, b) in zip(parts, ((tic, t_decode), (t_decode, t_backbone), (t_backbone, t_detector),
                                        (t_detector, t_backward), (t_backward, t_end))):
            parts[name].append(1000 * (b - a))
    return {name: round(statistics.mean(values), 1) for name, values in parts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("bench/out/synthetic"))
    parser.add_argument("--out", type=Path, default=Path("bench/out/quickstart-run"))
    parser.add_argument("--breakdown-steps", type=int, default=10)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(json.dumps(quickstart(args.data, args.out, args.breakdown_steps), indent=1))


if __name__ == "__main__":
    main()

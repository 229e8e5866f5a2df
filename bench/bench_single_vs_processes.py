"""What one device computes compared with two processes (issue: "one device must compute the paper's step").

Trains ``tiny`` for a few epochs on a small synthetic dataset three ways, all with drop path and path dropout
off so that the runs are deterministic:

- ``1 process, preset default``: ``train.micro_batch_size`` 1, two accumulated one-video forwards per step;
- ``2 processes (gloo), preset default``: one one-video forward per process and step;
- ``1 process, both videos in one forward``: ``--set train.micro_batch_size=2`` (one loss normaliser for both
  videos: what a 1-GPU OpenTAD run computes, and what tad did before the presets stated the per-GPU batch).

and prints the mean training loss of each run and its largest relative step-loss difference from the
2-process run.

    python bench/bench_single_vs_processes.py [--epochs 3] [--out bench/out/processes]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from tadcli.data.synthetic import VIDEO_DIRNAME, write_synthetic_videos
from tadcli.io.rundir import run_paths
from tadcli.services.prepare import prepare_dataset

DETERMINISTIC = ("backbone.drop_path_rate=0", "detector.path_dropout=0", "input.frames=64", "train.num_workers=0",
                 "train.warmup_epochs=1", "train.eval_start_epoch=1000")
RUNS = {
    "1 process, preset default (micro-batch 1)": ((), 1),
    "2 processes (gloo), preset default": ((), 2),
    "1 process, both videos in one forward (micro-batch 2)": (("train.micro_batch_size=2",), 1),
}


def small_dataset(root: Path) -> Path:
    """The test suite's small synthetic dataset: 14 videos of 12-16 s at 8 fps, 64x64, 2 classes."""
    raw, data = root / "raw", root / "data"
    if (data / "manifest.json").is_file():
        return data
    annotations = write_synthetic_videos(raw, num_videos=14, num_classes=2, seed=3, height=64, width=64, fps=8,
                                         video_seconds=(12.0, 16.0), action_seconds=(2.0, 5.0), max_actions_per_video=2)
    prepare_dataset("synthetic", annotations, raw / VIDEO_DIRNAME, data, annotation_format="custom-json", force=True)
    return data


def step_losses(data: Path, out: Path, epochs: int, overrides: tuple[str, ...], nproc: int) -> np.ndarray:
    shutil.rmtree(out, ignore_errors=True)
    sets = [arg for value in (*DETERMINISTIC, f"train.epochs={epochs}", *overrides) for arg in ("--set", value)]
    command = [sys.executable, "-m", "tadcli", "train", "--preset", "tiny", "--data", str(data), "--out", str(out),
               "--device", "cpu", "--threads", "1", "--nproc", str(nproc), *sets]
    subprocess.run(command, check=True, capture_output=True)
    records = [json.loads(line) for line in run_paths(out).metrics.read_text().splitlines()]
    return np.array([r["loss_total"] for r in records if r["kind"] == "train"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/out/processes"))
    args = parser.parse_args()
    data = small_dataset(args.out)
    losses = {name: step_losses(data, args.out / f"run{i}", args.epochs, *settings)
              for i, (name, settings) in enumerate(RUNS.items())}
    reference = losses["2 processes (gloo), preset default"]
    print(f"| run ({args.epochs} epochs of tiny, {len(reference)} logged steps) | mean step loss | "
          f"max relative difference from 2 processes |")
    print("|---|---|---|")
    for name, curve in losses.items():
        difference = np.max(np.abs(curve - reference) / np.abs(reference))
        print(f"| {name} | {curve.mean():.4f} | {difference:.2e} |")


if __name__ == "__main__":
    main()

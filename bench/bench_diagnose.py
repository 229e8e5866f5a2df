"""Benchmark of ``tad eval --diagnose`` on a THUMOS-sized case: 200,000 predictions over the real THUMOS14 test
annotations (ActionFormer's ``thumos14.json``, subset ``Test``: 212 videos, 3,358 instances, 20 classes).

Predictions (seeded): 80 % near an instance (its video, ends jittered by 30 % of its length, its label 70 % of
the time), the rest anywhere in a random test video with a random label; uniform scores. Times:

1. the diagnosis itself in memory (:func:`tadcli.evaluation.diagnosis.diagnosis_ground_truth` and
   :func:`~tadcli.evaluation.diagnosis.diagnose`), DETAD's THUMOS14 threshold 0.5 and, for scale, the ten
   ActivityNet thresholds; best of 3;
2. the whole command ``python -m tadcli eval --predictions ... --annotations thumos14.json --dataset thumos14``
   with and without ``--diagnose DIR`` (start-up, JSON reading, mAP and, with matplotlib, the three PNG figures
   included); best of 3, and the CPU time of one run of each.

Usage: ``python bench/bench_diagnose.py [--annotations PATH/thumos14.json]`` (default: the project's
``shared/data/annotations/thumos14/thumos14.json`` beside the repository).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tadcli.data.annotations import read_annotations
from tadcli.evaluation.diagnosis import BinFlavour, FLAVOUR_TIOU, diagnose, diagnosis_ground_truth
from tadcli.evaluation.ground_truth import subset_ground_truth, subset_videos_by_scored_id
from tadcli.evaluation.results import read_detection_results

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ANNOTATIONS = REPO_ROOT.parent / "shared" / "data" / "annotations" / "thumos14" / "thumos14.json"
SUBSET = "Test"
NUM_PREDICTIONS = 200_000


def write_predictions(annotations: Path, path: Path, seed: int = 0) -> None:
    """The seeded results file described in the module doc."""
    database = json.loads(annotations.read_text())["database"]
    videos = [(video_id, video) for video_id, video in database.items() if video["subset"] == SUBSET]
    instances = [(i, a) for i, (_, video) in enumerate(videos) for a in video["annotations"]]
    labels = sorted({a["label"] for _, a in instances})
    rng = np.random.default_rng(seed)
    source = rng.integers(len(instances), size=NUM_PREDICTIONS)
    near = rng.random(NUM_PREDICTIONS) < 0.8
    gt_video = np.array([i for i, _ in instances])
    gt_start = np.array([a["segment"][0] for _, a in instances])
    gt_end = np.array([a["segment"][1] for _, a in instances])
    gt_label = np.array([labels.index(a["label"]) for _, a in instances])
    duration = np.array([video["duration"] for _, video in videos])
    length = gt_end[source] - gt_start[source]
    video = np.where(near, gt_video[source], rng.integers(len(videos), size=NUM_PREDICTIONS))
    label = np.where(near & (rng.random(NUM_PREDICTIONS) < 0.7), gt_label[source], rng.integers(len(labels), size=NUM_PREDICTIONS))
    start = np.where(near, gt_start[source] + rng.normal(0, 0.3, NUM_PREDICTIONS) * length, rng.uniform(0, duration[video]))
    end = np.where(near, gt_end[source] + rng.normal(0, 0.3, NUM_PREDICTIONS) * length, start + rng.gamma(2.0, 2.5, NUM_PREDICTIONS))
    start, end = np.minimum(start, end), np.maximum(start, end)
    score = rng.random(NUM_PREDICTIONS)
    results: dict[str, list] = {video_id: [] for video_id, _ in videos}
    for v, s, e, c, p in zip(video.tolist(), start.tolist(), end.tolist(), label.tolist(), score.tolist()):
        results[videos[v][0]].append({"segment": [s, e], "label": labels[c], "score": p})
    path.write_text(json.dumps({"results": results}))


def best_of(repeats: int, function) -> float:
    """The shortest wall-clock time of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def cpu_time(function) -> float:
    """CPU seconds of this process for one call (less sensitive than wall time to other jobs on the machine)."""
    started = time.process_time()
    function()
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", type=Path, default=DEFAULT_ANNOTATIONS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        predictions = Path(folder) / "results.json"
        write_predictions(args.annotations, predictions)
        print(f"results file: {predictions.stat().st_size / 2**20:.1f} MiB, {NUM_PREDICTIONS} predictions")

        annotation_set = read_annotations(args.annotations)
        ground_truth, _ = subset_ground_truth(annotation_set, args.annotations, SUBSET, [])
        videos = subset_videos_by_scored_id(annotation_set, SUBSET)
        detections = read_detection_results(predictions)

        def in_memory(thresholds):
            truth = diagnosis_ground_truth(
                ground_truth,
                {v: video.duration for v, video in videos.items()},
                {v: len(video.instances) for v, video in videos.items()},
            )
            return diagnose(truth, detections, thresholds, BinFlavour.THUMOS14)

        for name, thresholds in (("0.5", FLAVOUR_TIOU[BinFlavour.THUMOS14]), ("0.5:0.05:0.95", FLAVOUR_TIOU[BinFlavour.ACTIVITYNET])):
            wall = best_of(3, lambda: in_memory(thresholds))
            print(f"diagnosis in memory, tIoU {name}: {wall:.3f} s wall (best of 3), {cpu_time(lambda: in_memory(thresholds)):.3f} s CPU")

        command = [sys.executable, "-m", "tadcli", "eval", "--predictions", str(predictions),
                   "--annotations", str(args.annotations), "--dataset", "thumos14"]
        environment = {**os.environ, "COLUMNS": "120"}

        def run(extra):
            subprocess.run(command + extra, check=True, capture_output=True, env=environment)

        def children_cpu(extra) -> float:
            before = os.times()
            run(extra)
            after = os.times()
            return (after.children_user - before.children_user) + (after.children_system - before.children_system)

        plain = best_of(3, lambda: run([]))
        diagnosed = best_of(3, lambda: run(["--diagnose", str(Path(folder) / "diagnosis")]))
        print(f"whole command without --diagnose: {plain:.3f} s, with --diagnose: {diagnosed:.3f} s (wall, best of 3)")
        print(f"whole command CPU (user + sys): without {children_cpu([]):.3f} s, "
              f"with --diagnose {children_cpu(['--diagnose', str(Path(folder) / 'diagnosis')]):.3f} s")
        print(f"written: {sorted(p.name for p in (Path(folder) / 'diagnosis').iterdir())}")
    print(f"load average: {os.getloadavg()}")


if __name__ == "__main__":
    main()

"""Benchmark of ``tad eval --predictions`` on a THUMOS14-sized case.

211 videos, 20 classes, 3,325 ground-truth instances, 200,000 detections (about 950 per video,
most near an instance, most with its label), 5 thresholds. Times:

1. the evaluation itself (:func:`tadcli.evaluation.evaluate_detections`, in memory), best of 5;
2. the whole command, ``python -m tadcli eval --predictions ... --annotations ... --dataset thumos14
   --json ...``, start-up and JSON reading included, best of 3;
3. the official evaluator's algorithm (the line-by-line port in ``tests/test_eval_official_parity.py``)
   once, and a check that its APs equal ours bit for bit (``--skip-official`` to leave it out).

Usage: ``python bench/bench_eval.py [--skip-official]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tadcli.evaluation import DetectionTable, GroundTruth, evaluate_detections

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))

NUM_VIDEOS = 211
NUM_CLASSES = 20
NUM_GROUND_TRUTH = 3325
NUM_DETECTIONS = 200_000
THRESHOLDS = [0.3, 0.4, 0.5, 0.6, 0.7]


def thumos_sized_case(seed: int = 0) -> tuple[list[tuple], list[tuple]]:
    """Rows (video, start, end, label) of ground truth and (video, start, end, label, score) of detections."""
    rng = np.random.default_rng(seed)
    video_class = rng.integers(NUM_CLASSES, size=NUM_VIDEOS)  # THUMOS videos mostly hold one class
    gt_video = rng.integers(NUM_VIDEOS, size=NUM_GROUND_TRUTH)
    gt_class = np.where(rng.random(NUM_GROUND_TRUTH) < 0.9, video_class[gt_video], rng.integers(NUM_CLASSES, size=NUM_GROUND_TRUTH))
    gt_start = rng.uniform(0, 200, NUM_GROUND_TRUTH)
    gt_end = gt_start + rng.gamma(2.0, 2.5, NUM_GROUND_TRUTH) + 0.2

    source = rng.integers(NUM_GROUND_TRUTH, size=NUM_DETECTIONS)
    near = rng.random(NUM_DETECTIONS) < 0.8
    length = gt_end[source] - gt_start[source]
    det_video = np.where(near, gt_video[source], rng.integers(NUM_VIDEOS, size=NUM_DETECTIONS))
    det_class = np.where(near & (rng.random(NUM_DETECTIONS) < 0.7), gt_class[source], rng.integers(NUM_CLASSES, size=NUM_DETECTIONS))
    det_start = np.where(near, gt_start[source] + rng.normal(0, 0.3, NUM_DETECTIONS) * length, rng.uniform(0, 200, NUM_DETECTIONS))
    det_end = np.where(near, gt_end[source] + rng.normal(0, 0.3, NUM_DETECTIONS) * length, det_start + rng.gamma(2.0, 2.5, NUM_DETECTIONS))
    det_start, det_end = np.minimum(det_start, det_end), np.maximum(det_start, det_end)
    det_score = rng.random(NUM_DETECTIONS)

    videos = [f"video_test_{v:07d}" for v in range(NUM_VIDEOS)]
    classes = [f"Class{c:02d}" for c in range(NUM_CLASSES)]
    gt_rows = [(videos[v], float(s), float(e), classes[c]) for v, s, e, c in zip(gt_video, gt_start, gt_end, gt_class)]
    det_rows = [
        (videos[v], float(s), float(e), classes[c], float(p)) for v, s, e, c, p in zip(det_video, det_start, det_end, det_class, det_score)
    ]
    # Grouped by video (stable), the order the JSON files written below give them back in.
    return sorted(gt_rows, key=lambda row: row[0]), sorted(det_rows, key=lambda row: row[0])


def write_files(directory: Path, gt_rows: list[tuple], det_rows: list[tuple]) -> tuple[Path, Path]:
    database: dict[str, dict] = {}
    for video, start, end, label in gt_rows:
        entry = database.setdefault(video, {"subset": "validation", "duration": 250.0, "annotations": []})
        entry["annotations"].append({"segment": [start, end], "label": label})
    results: dict[str, list] = {}
    for video, start, end, label, score in det_rows:
        results.setdefault(video, []).append({"segment": [start, end], "label": label, "score": score})
    gt_path, results_path = directory / "gt.json", directory / "results.json"
    gt_path.write_text(json.dumps({"database": database}))
    results_path.write_text(json.dumps({"results": results}))
    return gt_path, results_path


def to_inputs(gt_rows: list[tuple], det_rows: list[tuple]) -> tuple[GroundTruth, DetectionTable]:
    gt = GroundTruth(
        [r[0] for r in gt_rows], np.array([r[1] for r in gt_rows]), np.array([r[2] for r in gt_rows]), [r[3] for r in gt_rows]
    )
    dets = DetectionTable(
        [r[0] for r in det_rows],
        np.array([r[1] for r in det_rows]),
        np.array([r[2] for r in det_rows]),
        [r[3] for r in det_rows],
        np.array([r[4] for r in det_rows]),
    )
    return gt, dets


def best_of(repeats: int, function) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-official", action="store_true", help="do not time the official algorithm (minutes)")
    args = parser.parse_args()

    gt_rows, det_rows = thumos_sized_case()
    gt, dets = to_inputs(gt_rows, det_rows)
    print(f"case: {NUM_VIDEOS} videos, {NUM_CLASSES} classes, {len(gt_rows)} instances, {len(det_rows)} detections, {len(THRESHOLDS)} thresholds")

    seconds, metrics = best_of(5, lambda: evaluate_detections(gt, dets, THRESHOLDS))
    print(f"evaluation (evaluate_detections, best of 5): {seconds:.3f} s; mAP {np.round(metrics.mean_average_precision, 4).tolist()}")

    with tempfile.TemporaryDirectory() as directory:
        gt_path, results_path = write_files(Path(directory), gt_rows, det_rows)
        size_mib = results_path.stat().st_size / 2**20
        command = [
            sys.executable, "-m", "tadcli", "eval", "--predictions", str(results_path), "--annotations", str(gt_path),
            "--dataset", "thumos14", "--json", str(Path(directory) / "eval.json"),
        ]  # fmt: skip
        seconds, _ = best_of(3, lambda: subprocess.run(command, check=True, capture_output=True))
        print(f"whole command (python -m tadcli eval ..., results file {size_mib:.1f} MiB, best of 3): {seconds:.3f} s")
        written = json.loads((Path(directory) / "eval.json").read_text())
        assert written["mAP"] == metrics.mean_average_precision.tolist()

    if not args.skip_official:
        from test_eval_official_parity import official_evaluate

        start = time.perf_counter()
        ap, _, _, _ = official_evaluate(gt_rows, det_rows, THRESHOLDS)
        seconds = time.perf_counter() - start
        identical = ap.tobytes() == metrics.average_precision.tobytes()
        print(f"official algorithm (pandas port, once): {seconds:.1f} s; APs bit-identical to ours: {identical}")


if __name__ == "__main__":
    main()

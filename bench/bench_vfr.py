"""Variable frame rate: mAP of the tiny run on its test videos and on VFR copies of them (issue 17, part 2).

The copies keep every frame's presentation time but drop two of every three frames between 4 s and
10 s (8 fps -> 8/3 fps there), as a phone does in the dark. Scored against the real ground truth through
the code of ``tad eval --run`` (:func:`tadcli.inference.evaluate.evaluate_on_records`).

    python bench/bench_vfr.py --work bench/out/vfr

The first call prepares the synthetic dataset of the test fixture ``small_synthetic`` (14 videos, 8 fps),
trains ``tiny`` on it as the fixture ``trained_run`` does (50 epochs, CPU) and writes the copies; later
calls reuse them, so the same command run on an older commit scores the same model and files with the
older reader (the "before" row of BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

SLOW_FROM_S, SLOW_TO_S, KEEP_EVERY = 4.0, 10.0, 3
TINY_OVERRIDES = [
    "input.frames=64",
    "input.augmentation=none",
    "train.warmup_epochs=1",
    "train.num_workers=0",
    "train.epochs=50",
    "train.eval_start_epoch=1000",
]


def prepare_and_train(work: Path) -> None:
    from tadcli.data.synthetic import VIDEO_DIRNAME, write_synthetic_videos
    from tadcli.services.prepare import prepare_dataset
    from tadcli.services.train import TrainRequest, train

    annotations = write_synthetic_videos(
        work / "raw", num_videos=14, num_classes=2, seed=3, height=64, width=64, fps=8,
        video_seconds=(12.0, 16.0), action_seconds=(2.0, 5.0), max_actions_per_video=2,
    )
    report = prepare_dataset("synthetic", annotations, work / "raw" / VIDEO_DIRNAME, work / "data",
                             annotation_format="custom-json", force=True)
    assert report.usable, report.summary()
    train(TrainRequest("tiny", work / "data", work / "run", TINY_OVERRIDES, device="cpu", threads=1))


def write_vfr_copy(source: Path, target: Path) -> None:
    """``source`` with two of every three frames dropped between SLOW_FROM_S and SLOW_TO_S, times kept."""
    import av

    from tadcli.data.synthetic import write_mp4

    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        fps = int(stream.average_rate)
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    slow = range(round(SLOW_FROM_S * fps), round(SLOW_TO_S * fps))
    kept = [i for i in range(len(frames)) if i not in slow or (i - slow.start) % KEEP_EVERY == 0]
    write_mp4(target, [frames[i] for i in kept], fps, times=[i / fps for i in kept])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("bench/out/vfr"))
    args = parser.parse_args()
    work = args.work
    if not (work / "run" / "model.safetensors").is_file():
        prepare_and_train(work)

    from tadcli.data.dataset import VideoRecord
    from tadcli.data.prepared import load_prepared_dataset, records_from_prepared
    from tadcli.inference.evaluate import evaluate_on_records
    from tadcli.inference.loading import load_run_model
    from tadcli.inference.plan import inference_plan

    dataset = load_prepared_dataset(work / "data")
    originals = records_from_prepared(dataset, "test")
    (work / "vfr").mkdir(exist_ok=True)
    for record in originals:
        if not (work / "vfr" / record.path.name).is_file():
            write_vfr_copy(record.path, work / "vfr" / record.path.name)
    copies = [
        dataclasses.replace(VideoRecord.from_video(work / "vfr" / r.path.name, r.video_id), segments=r.segments, labels=r.labels)
        for r in originals
    ]
    config, model = load_run_model(work / "run", "cpu")
    profile = dataset.dataset_profile
    thresholds = config.preset.evaluation.tiou_thresholds or list(profile.tiou_thresholds)
    rows = {}
    for name, records in (("original", originals), ("vfr copy", copies)):
        began = time.perf_counter()
        evaluation = evaluate_on_records(model, records, config.classes, config.preset,
                                         inference_plan(config.preset, profile, "cpu"), thresholds)
        rows[name] = {
            "average_mAP": round(float(evaluation.metrics.average_map), 4),
            "durations": [round(r.duration, 3) for r in records],
            "seconds": round(time.perf_counter() - began, 1),
        }
    print(json.dumps(rows, indent=1))
    ratio = rows["vfr copy"]["average_mAP"] / rows["original"]["average_mAP"]
    print(f"vfr / original average mAP: {ratio:.3f}")


if __name__ == "__main__":
    main()

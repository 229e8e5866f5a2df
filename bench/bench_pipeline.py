"""Throughput of the training data pipeline against decord's raw ``get_batch``.

Writes a 1280x720 30 fps H.264 mp4 (once, into bench/out/), then decodes random training windows of
``--frames`` frames (every ``--frame-stride``-th frame, like THUMOS' 4) three ways:

* raw: ``decord.VideoReader(path).get_batch(indices)``, full-resolution RGB frames, nothing else;
* pipeline: ``TrainWindowDataset[i]``: random truncation, decoding with the decoder scaling frames to
  the 182-pixel short side, RandomResizedCrop to 160x160, flip, RandAugment ops, colour jitter;
  output uint8 [3, F, 160, 160];
* pipeline, scaling in torch: the same, but frames decoded at full resolution and resized by the
  transform (what the pipeline costs without decoder-side scaling);
* evaluation pipeline: ``EvalWindowDataset``, short side 160 in the decoder, centre crop.

Frames per second = frames delivered / wall time, in this process (torch threads as set). Usage:

    python bench/bench_pipeline.py [--frames 128] [--windows 6] [--seconds 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

from tadcli.data.dataset import EvalWindowDataset, TrainWindowDataset, VideoRecord
from tadcli.data.sampling import WindowGeometry
from tadcli.data.synthetic import write_mp4
from tadcli.data.transforms import EvalTransform, TrainTransform

OUT_DIR = Path(__file__).resolve().parent / "out"
HEIGHT, WIDTH, FPS = 720, 1280, 30


def _frames(num_frames: int):
    """A moving gradient with a moving square and light noise: realistic motion for the codec."""
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    base = np.stack([cols * 255 // WIDTH, rows * 255 // HEIGHT, (rows + cols) * 255 // (HEIGHT + WIDTH)], -1)
    noise = rng.integers(0, 12, size=(HEIGHT, WIDTH, 3))
    for index in range(num_frames):
        image = (np.roll(base, 3 * index, axis=1) + np.roll(noise, index, axis=0)).astype(np.uint8)
        top, left = 200 + int(100 * np.sin(index / 20)), (8 * index) % (WIDTH - 160)
        image[top : top + 160, left : left + 160] = (230, 40, 40)
        yield image


def _video(seconds: int) -> Path:
    path = OUT_DIR / f"bench_720p30_{seconds}s.mp4"
    if not path.exists():
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        write_mp4(path.with_suffix(".tmp.mp4"), _frames(seconds * FPS), FPS, codec="libx264")
        path.with_suffix(".tmp.mp4").rename(path)
        print(f"wrote {path} in {time.perf_counter() - started:.1f} s")
    return path


def _records(path: Path, copies: int) -> list[VideoRecord]:
    """The same video ``copies`` times (each index draws its own random window)."""
    record = VideoRecord.from_video(path)
    segments = np.array([[2.0, 5.0], [8.0, 9.5], [12.0, 16.0]])
    return [
        VideoRecord(
            f"bench_{i}",
            record.path,
            record.fps,
            record.num_frames,
            record.duration,
            segments,
            np.zeros(3, dtype=np.int64),
        )
        for i in range(copies)
    ]


def _time(load_one, count: int) -> tuple[float, int]:
    load_one(0)  # open the reader, warm up
    frames, started = 0, time.perf_counter()
    for index in range(count):
        frames += load_one(index)
    return time.perf_counter() - started, frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=128, help="frames per window (F)")
    parser.add_argument("--frame-stride", type=int, default=4, help="video frames between sampled frames")
    parser.add_argument("--windows", type=int, default=6, help="windows timed per variant")
    parser.add_argument("--seconds", type=int, default=20, help="length of the benchmark video")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (a DataLoader worker: 1)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    path = _video(args.seconds)
    records = _records(path, args.windows + 1)
    train_args = dict(
        videos=records,
        window_size=args.frames,
        scale_factor=1,
        frame_stride=args.frame_stride,
        sampling="sliding",
        trunc_thresh=0.75,
        crop_ratio=(0.9, 1.0),
        seed=0,
    )
    pipeline = TrainWindowDataset(**train_args, transform=TrainTransform(160, short_side=182), short_side=182)
    torch_scaling = TrainWindowDataset(**train_args, transform=TrainTransform(160, short_side=182), short_side=None)
    evaluation = EvalWindowDataset(
        WindowGeometry(args.frames, scale_factor=1, frame_stride=args.frame_stride, sampling="sliding", overlap=0.5),
        EvalTransform(160),
        short_side=160,
    )
    evaluation_windows = evaluation.geometry.eval_windows(records[0].num_frames, records[0].fps, records[0].duration)

    from tadcli.data.video import import_decord

    raw_reader = import_decord().VideoReader(str(path))
    windows = [pipeline[i].meta for i in range(args.windows + 1)]  # the same windows for raw decoding

    def raw(index: int) -> int:
        start = int(windows[index].window_start_frame)
        indices = np.minimum(start + args.frame_stride * np.arange(args.frames), records[0].num_frames - 1)
        return len(raw_reader.get_batch(indices.tolist()).asnumpy())

    def from_dataset(dataset):
        return lambda index: dataset[index % len(dataset)].frames.shape[1]

    def from_evaluation(index: int) -> int:
        return evaluation.load(records[0], evaluation_windows[index % len(evaluation_windows)]).frames.shape[1]

    results = {
        "raw decord get_batch (1280x720 RGB)": _time(raw, args.windows),
        "training pipeline (decoder scales to 182, 160x160 out)": _time(from_dataset(pipeline), args.windows),
        "training pipeline, full-res decode + torch resize": _time(from_dataset(torch_scaling), args.windows),
        "evaluation pipeline (decoder scales to 160, centre crop)": _time(from_evaluation, args.windows),
    }
    raw_fps = results["raw decord get_batch (1280x720 RGB)"][1] / results["raw decord get_batch (1280x720 RGB)"][0]
    print(
        f"video {path.name}: {records[0].num_frames} frames; windows of {args.frames} frames, stride "
        f"{args.frame_stride}; {args.windows} windows per row; torch threads {torch.get_num_threads()}; "
        f"{platform.processor() or platform.machine()}"
    )
    print("| variant | frames/s | vs raw |")
    print("|---|---|---|")
    for name, (seconds, frames) in results.items():
        fps = frames / seconds
        print(f"| {name} | {fps:.1f} | {fps / raw_fps:.0%} |")


if __name__ == "__main__":
    main()

"""Video decoders on the real training and evaluation pipelines, and the cost of opening a video (issue 20).

Part ``windows`` (default): frames per second of one 768-frame window at 160 px, the ``small-768`` preset on the
THUMOS14 protocol (768 frames at frame stride 4, so a window spans 3,072 source frames): the training pipeline
(``tadcli.data.pipeline.train_dataset``: random truncation, decoder scaling to the 182-pixel short side,
RandomResizedCrop 160, flip, RandAugment, colour jitter) and the evaluation pipeline (the first sliding window:
short side 160 in the decoder, centre crop), each with every decoder this interpreter has: ``decord`` (whichever
is installed: decord 0.6.0 or decord2) and ``pyav``. Each window opens its video (a fresh reader), as a
DataLoader worker does for a video it has not open. Sources, written once into ``--cache`` with PyAV (libx264,
CRF 23, a key frame every 2 s), seeded: (a) 1280x720 30 fps and (b) 1920x1080 60 fps, 3,200 frames each, a
panning random texture with moving shapes and film-grain noise (not trivially compressible).

Part ``compare``: decord's frames against PyAV's on the sources (grey levels, at the source size and scaled).

Part ``open`` (``--part open``): milliseconds to open a video for reading (``open_video(path, short_side)``)
and to read one tiny training window, and the ``tiny`` training step's parts (``bench_train.step_breakdown``:
batch 2 of 128 frames at 64 px from the default synthetic dataset, each window opening its video), for
comparing the code before and after the open-once change: run it with the tadcli of each commit.

    python bench/bench_decode.py [--part windows|compare|open] [--cache DIR] [--decoders decord pyav]
        [--sources a_720p30 b_1080p60] [--repeats N]

Each ``windows`` row prints as one JSON line, so that rows of different interpreters (decord 0.6.0 and decord2
cannot share one) can be interleaved on a busy machine (BENCHMARKS.md gives the loop).

Frames per second = window frames delivered / wall time, in this process (torch threads as set, decoder threads
its default). The source frames decoded per second are 4x that (frame stride 4).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from tadcli.config.loader import load_preset
from tadcli.config.profiles import get_profile
from tadcli.data.dataset import EvalWindowDataset, TrainWindowDataset, VideoRecord
from tadcli.data.pipeline import train_transform, window_geometry
from tadcli.data.transforms import EvalTransform
from tadcli.data.video import open_video

BENCH_DIR = Path(__file__).resolve().parent
SOURCES = {"a_720p30": (720, 1280, 30), "b_1080p60": (1080, 1920, 60)}
SOURCE_FRAMES = 3200


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"


def decoder_versions() -> dict[str, str]:
    import av

    versions = {"pyav": av.__version__}
    try:
        from tadcli.data.video import import_decord

        versions["decord"] = import_decord().__version__
    except ImportError:
        pass
    return versions


def write_source(path: Path, height: int, width: int, fps: int, num_frames: int) -> Path:
    """A seeded H.264 video: a detailed random texture panning 3 px per frame, three moving discs and film grain
    that changes every frame (16 grain images, each shifted by a random offset), so that the codec has real
    detail to keep (a few Mbit/s, like camera video; printed)."""
    import av

    if path.is_file():
        return path
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, size=(height // 4 + 2, (width + 3 * num_frames) // 4 + 2, 3)).astype(np.float32)
    texture = torch.nn.functional.interpolate(torch.from_numpy(coarse).permute(2, 0, 1)[None], scale_factor=4, mode="bilinear")
    texture = (0.7 * texture[0].permute(1, 2, 0).numpy() + 20).astype(np.uint8)  # [H', W', 3]
    grains = [rng.integers(0, 40, size=(height, width, 3), dtype=np.uint8) for _ in range(16)]
    rows, cols = np.ogrid[0:height, 0:width]
    temporary = path.with_suffix(".partial.mp4")
    with av.open(str(temporary), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "23", "preset": "veryfast", "g": str(2 * fps)})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(num_frames):
            grain = np.roll(grains[index % len(grains)], tuple(rng.integers(0, 64, size=2)), axis=(0, 1))
            image = texture[:height, 3 * index : 3 * index + width] + grain
            for disc in range(3):
                centre_y = height / 2 + height / 3 * np.sin(index / (25 + 10 * disc) + disc)
                centre_x = (index * (4 + 3 * disc) + disc * width / 3) % width
                inside = (rows - centre_y) ** 2 + (cols - centre_x) ** 2 < (height / 10) ** 2
                image[inside] = (220, 60 + 60 * disc, 40)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    temporary.rename(path)
    return path


def record_of(path: Path) -> VideoRecord:
    reader = open_video(path, backend="pyav")
    return VideoRecord("source", path, reader.fps, reader.num_frames, reader.duration, np.zeros((0, 2)), np.zeros(0, np.int64))


def time_windows(source: Path, decoder: str, repeats: int) -> dict:
    """Seconds per training window and per evaluation window of ``small-768`` on THUMOS14, fresh reader each."""
    preset, profile = load_preset("small-768"), get_profile("thumos14")
    geometry = window_geometry(preset, profile)
    record = record_of(source)
    transform = train_transform(preset)
    train_seconds, eval_seconds = [], []
    for repeat in range(repeats):
        dataset = TrainWindowDataset(
            [record], geometry.window_size, geometry.scale_factor, geometry.frame_stride, profile.sampling,
            profile.trunc_thresh, profile.crop_ratio, transform, transform.short_side, seed=repeat, backend=decoder,
        )
        started = time.perf_counter()
        sample = dataset[0]
        train_seconds.append(time.perf_counter() - started)
        assert sample.frames.shape == (3, 768, 160, 160), sample.frames.shape
        evaluation = EvalWindowDataset(geometry, EvalTransform(160), short_side=160, backend=decoder)
        window = geometry.eval_windows(record.num_frames, record.fps, record.duration)[0]
        started = time.perf_counter()
        sample = evaluation.load(record, window)
        eval_seconds.append(time.perf_counter() - started)
        assert sample.frames.shape == (3, 768, 160, 160), sample.frames.shape
    frames = geometry.window_size * geometry.scale_factor
    return {
        "train_window_s": round(statistics.median(train_seconds), 2),
        "train_fps": round(frames / statistics.median(train_seconds), 1),
        "eval_window_s": round(statistics.median(eval_seconds), 2),
        "eval_fps": round(frames / statistics.median(eval_seconds), 1),
    }


def windows_part(args: argparse.Namespace, timed: bool = True) -> dict:
    """Each source: the window timings of each decoder (``timed``) and decord's frames against PyAV's (``--compare``)."""
    args.cache.mkdir(parents=True, exist_ok=True)
    results = {}
    for name in args.sources:
        height, width, fps = SOURCES[name]
        started = time.perf_counter()
        source = write_source(args.cache / f"{name}.mp4", height, width, fps, SOURCE_FRAMES)
        megabits = source.stat().st_size * 8 / 1e6 / (SOURCE_FRAMES / fps)
        print(f"{name}: {source} ({megabits:.1f} Mbit/s, ready in {time.perf_counter() - started:.0f} s)", flush=True)
        for decoder in args.decoders if timed else ():
            label = f"{name} {decoder} {decoder_versions()[decoder]}"
            results[label] = time_windows(source, decoder, args.repeats)
            print(json.dumps({label: results[label]}), flush=True)
        if not timed and "decord" in decoder_versions():
            label = f"{name} decord {decoder_versions()['decord']} vs pyav"
            results[label] = frame_differences(source)
            print(json.dumps({label: results[label]}), flush=True)
    return results


def frame_differences(source: Path, frames: int = 32) -> dict:
    """decord's frames against PyAV's, grey levels: the first ``frames`` frames at frame stride 4, at the source size
    and scaled in the decoder to the 182 and 160-pixel short sides (the training and evaluation pipelines)."""
    indices = np.arange(0, 4 * frames, 4)
    differences = {}
    for short_side in (None, 182, 160):
        decord_frames, pyav_frames = (
            open_video(source, short_side=short_side, backend=decoder).get_frames(indices).float() for decoder in ("decord", "pyav")
        )
        difference = (decord_frames - pyav_frames).abs()
        differences[f"short side {short_side or 'source'}"] = {
            "identical": bool(difference.max() == 0), "mean": round(difference.mean().item(), 3), "max": difference.max().item()
        }
    return differences


def open_part(args: argparse.Namespace) -> dict:
    """Opening a video (ms) and the tiny training step's parts (ms), with the default decoder of this tadcli."""
    sys.path.insert(0, str(BENCH_DIR))
    from bench_train import step_breakdown

    from tadcli.data.prepared import load_prepared_dataset
    from tadcli.services.prepare import prepare_synthetic

    data = args.cache / "synthetic"
    if not (data / "manifest.json").is_file():
        prepare_synthetic(data, num_videos=24, num_classes=4, seed=0)
    paths = [video.path for video in load_prepared_dataset(data).videos.values()]
    open_ms, window_ms = [], []
    for path in paths:
        started = time.perf_counter()
        reader = open_video(path, short_side=64)
        opened = time.perf_counter()
        reader.get_frames(np.arange(0, min(reader.num_frames, 256), 2))  # a tiny window: 128 frames at stride 2
        open_ms.append(1000 * (opened - started))
        window_ms.append(1000 * (time.perf_counter() - started))
    return {
        "backend": reader.backend,
        "open_ms": round(statistics.median(open_ms), 1),
        "open_and_window_ms": round(statistics.median(window_ms), 1),
        "tiny_step_ms": step_breakdown(data, args.steps),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["windows", "compare", "open"], default="windows")
    parser.add_argument("--cache", type=Path, default=BENCH_DIR / "out" / "decode")
    parser.add_argument("--decoders", nargs="+", default=["decord", "pyav"])
    parser.add_argument("--sources", nargs="+", choices=list(SOURCES), default=list(SOURCES))
    parser.add_argument("--repeats", type=int, default=1, help="windows per row (the median is reported)")
    parser.add_argument("--steps", type=int, default=10, help="--part open: tiny training steps timed")
    args = parser.parse_args()
    import tadcli

    print(f"machine: {machine()}; tadcli from {Path(tadcli.__file__).parent}; decoders {decoder_versions()}", flush=True)
    results = open_part(args) if args.part == "open" else windows_part(args, timed=args.part == "windows")
    if args.part == "open":
        print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

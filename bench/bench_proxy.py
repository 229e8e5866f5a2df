"""Proxy videos against raw sources: training-pipeline frames per second, and the `tiny` quickstart.

``pipeline``: frames per second of the training pipeline (decode, the small-768 THUMOS14 augmentation: 182-px
resize, random resized crop to 160, flip, RandAugment, colour jitter) for 768-frame windows at 160 px, read
(a) from a 1280x720 30 fps and (b) from a 1920x1080 60 fps H.264 source, and from their proxies
(``tad prepare --proxy --proxy-preset small-768``: 182 px, 1 frame in 4); and the same for small-768's
evaluation windows (160-px resize, centre crop; what ``tad eval --run`` decodes). The sources are written here with
PyAV (seeded noise texture drifting under moving blocks: not trivially compressible), 3,072 frames each (one
window of small-768, which reads 1 frame in 4). Decoding runs in 2 DataLoader workers (2 cores), one
intra-op thread each, as ``tad train`` runs them. Also reported: the one-off transcoding time.

``tiny``: the quickstart (``tad prepare synthetic`` + ``tad train --preset tiny``, the demo's data and recipe)
from the original videos and from proxies (``--proxy --proxy-preset tiny``), same seed: wall time of each
step and the validation mAP of each run (last epoch).

    python bench/bench_proxy.py pipeline [--workdir /tmp/bench_proxy] [--windows 2]
    python bench/bench_proxy.py tiny [--workdir /tmp/bench_proxy_tiny] [--epochs 60]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SOURCES = {"a": (1280, 720, 30), "b": (1920, 1080, 60)}
SOURCE_FRAMES = 3072  # one small-768 window: 768 frames, 1 in 4


def write_source(path: Path, width: int, height: int, fps: int, frames: int, seed: int = 0) -> None:
    """An H.264 source: a seeded noise texture (amplitude 48) drifting under a smooth gradient and moving blocks."""
    import av

    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 48, (height + 128, width + 128, 3), dtype=np.uint8)
    gradient = np.linspace(0, 160, width, dtype=np.float32)[None, :, None].astype(np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23"}  # x264's default GOP (250), as cameras and downloads
        for index in range(frames):
            dy, dx = (index * 3) % 128, (index * 5) % 128
            image = texture[dy : dy + height, dx : dx + width] + gradient
            for block in range(4):  # moving blocks: the "actions"
                x = (index * (7 + block) + block * width // 4) % (width - 96)
                y = (block * height // 4 + index) % (height - 96)
                image[y : y + 96, x : x + 96] = (60 * block + 40, 200 - 40 * block, 90)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def pipeline_fps(path: Path, frame_step: int, windows: int, workers: int = 2) -> float:
    """Window frames per second of small-768's training pipeline over ``windows`` random windows of ``path``."""
    import torch

    from tadcli.config.loader import load_preset
    from tadcli.config.profiles import get_profile
    from tadcli.data.dataset import VideoRecord
    from tadcli.data.loader import window_loader
    from tadcli.data.pipeline import train_dataset

    preset, profile = load_preset("small-768"), get_profile("thumos14")
    probe = VideoRecord.from_video(path)
    records = [
        VideoRecord(f"w{i}", path, probe.fps, probe.num_frames, probe.duration, np.zeros((0, 2)), np.zeros(0, np.int64))
        for i in range(windows)
    ]
    dataset = train_dataset(records, preset, profile, seed=0, frame_step=frame_step)
    loader = window_loader(dataset, batch_size=1, num_workers=workers, device=torch.device("cpu"), seed=0,
                           single_thread_workers=True)
    started = time.perf_counter()
    frames = sum(batch.frames.shape[2] for batch in loader)
    return frames / (time.perf_counter() - started)


def decoded_list(decoded: list) -> list:
    """The DataLoader's collate of evaluation windows: the decoded windows as they are."""
    return decoded


def eval_fps(path: Path, frame_step: int, windows: int, workers: int = 2) -> float:
    """Window frames per second of small-768's evaluation windows (160-px resize, centre crop) of ``path``: its
    sliding windows (one for these sources) decoded ``windows`` times by ``workers`` processes."""
    import torch

    from tadcli.config.loader import load_preset
    from tadcli.config.profiles import get_profile
    from tadcli.data.dataset import EvalWindow, EvalWindowDataset, VideoRecord
    from tadcli.data.loader import window_loader
    from tadcli.inference.plan import inference_plan

    plan = inference_plan(load_preset("small-768"), get_profile("thumos14"), "cpu", frame_step)
    record = VideoRecord.from_video(path)
    dataset = EvalWindowDataset(plan.geometry, plan.transform, short_side=plan.transform.short_side)
    video_windows = plan.geometry.eval_windows(record.num_frames, record.fps, record.duration)
    requests = [[EvalWindow(0, record, window, last=False)] for window in video_windows] * windows
    loader = window_loader(dataset, batch_sampler=requests, num_workers=workers, device=torch.device("cpu"),
                           collate=decoded_list)
    started = time.perf_counter()
    frames = sum(item.sample.frames.shape[1] for batch in loader for item in batch)
    return frames / (time.perf_counter() - started)


def run_pipeline(workdir: Path, windows: int) -> dict:
    from tadcli.config.profiles import get_profile
    from tadcli.data.proxy import build_proxies, proxy_settings

    workdir.mkdir(parents=True, exist_ok=True)
    settings = proxy_settings(["small-768"], get_profile("thumos14"))
    results = {"settings": {"short_side": settings.short_side, "frame_step": settings.frame_step}}
    for name, (width, height, fps) in SOURCES.items():
        source = workdir / f"source_{name}_{height}p{fps}.mp4"
        if not source.is_file():
            started = time.perf_counter()
            write_source(source, width, height, fps, SOURCE_FRAMES)
            print(f"wrote {source} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        started = time.perf_counter()
        run = build_proxies({name: (source, height)}, workdir / f"proxies_{name}", settings, workers=1)
        transcode = time.perf_counter() - started
        proxy = run.proxies[name]
        raw = pipeline_fps(source, 1, windows)
        proxied = pipeline_fps(proxy.path, settings.frame_step, windows * 4)
        raw_eval = eval_fps(source, 1, windows)
        proxied_eval = eval_fps(proxy.path, settings.frame_step, windows * 4)
        results[name] = {
            "source": f"{width}x{height} {fps} fps, {SOURCE_FRAMES} frames, {source.stat().st_size / 1e6:.1f} MB",
            "proxy": f"{proxy.num_frames} frames at {proxy.fps:g} fps, {proxy.path.stat().st_size / 1e6:.1f} MB",
            "transcode_seconds": round(transcode, 1) if run.made else "reused",
            "raw_fps": round(raw, 1),
            "proxy_fps": round(proxied, 1),
            "speedup": round(proxied / raw, 1),
            "eval_raw_fps": round(raw_eval, 1),
            "eval_proxy_fps": round(proxied_eval, 1),
            "eval_speedup": round(proxied_eval / raw_eval, 1),
        }
        print(json.dumps({name: results[name]}), file=sys.stderr)
    return results


def _timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def run_tiny(workdir: Path, epochs: int) -> dict:
    """The quickstart's data and recipe from originals and from proxies (same seed): times and mAP."""
    workdir.mkdir(parents=True, exist_ok=True)
    results = {}
    for name, extra in (("originals", []), ("proxies", ["--proxy", "--proxy-preset", "tiny"])):
        data, run = workdir / f"data_{name}", workdir / f"run_{name}"
        prepare = _timed(["tad", "prepare", "synthetic", "--out", str(data), "--force", *extra])
        if run.exists():
            subprocess.run(["rm", "-rf", str(run)], check=True)
        train = _timed(["tad", "train", "--preset", "tiny", "--data", str(data), "--out", str(run), "--device", "cpu",
                        "--set", f"train.epochs={epochs}"])
        evaluations = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        last = [e for e in evaluations if e["kind"] == "eval"][-1]
        results[name] = {"prepare_seconds": round(prepare, 1), "train_seconds": round(train, 1),
                         "val_average_mAP": round(last["average_mAP"], 4)}
        print(json.dumps({name: results[name]}), file=sys.stderr)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["pipeline", "tiny"])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--windows", type=int, default=2, help="raw windows (the proxy reads 4 times as many)")
    parser.add_argument("--epochs", type=int, default=60)
    args = parser.parse_args()
    if args.mode == "pipeline":
        results = run_pipeline(args.workdir or Path("/tmp/bench_proxy"), args.windows)
    else:
        results = run_tiny(args.workdir or Path("/tmp/bench_proxy_tiny"), args.epochs)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

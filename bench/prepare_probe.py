"""Speed of `tad prepare`'s parts: reading the real annotation files, and probing videos with 1 and 2
workers and from the cache.

    python bench/prepare_probe.py [--videos 12] [--seconds 10]

Videos are written here with PyAV (480x270, 30 fps, H.264 when available). Annotation files are read
from ../shared/data/annotations when that folder exists.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from tadcli.data.annotations import read_annotations
from tadcli.data.probe import probe_videos

SHARED_ANNOTATIONS = Path(__file__).resolve().parents[2] / "shared" / "data" / "annotations"
ANNOTATION_SOURCES = (
    ("thumos14/thumos14.json", None),
    ("thumos14", None),
    ("activitynet", None),
    ("multithumos/multithumos.json", None),
    ("epic_kitchens_100", "epic-kitchens-verb"),
)


def write_video(path: Path, seconds: float, fps: int = 30, width: int = 480, height: int = 270) -> None:
    rng = np.random.default_rng(0)
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = fps * 2
        base = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        for index in range(int(seconds * fps)):
            image = np.roll(base, index * 3, axis=1)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--videos", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()

    if SHARED_ANNOTATIONS.is_dir():
        for relative, annotation_format in ANNOTATION_SOURCES:
            start = time.perf_counter()
            annotations = read_annotations(SHARED_ANNOTATIONS / relative, annotation_format)
            elapsed = time.perf_counter() - start
            instances = sum(len(video.instances) for video in annotations.videos.values())
            print(
                f"read {relative} ({annotations.format}): {len(annotations.videos)} videos, "
                f"{instances} instances in {elapsed:.2f} s"
            )

    with tempfile.TemporaryDirectory() as folder:
        paths = [Path(folder) / f"video_{index:03d}.mp4" for index in range(args.videos)]
        for path in paths:
            write_video(path, args.seconds)
        for workers in (1, 2):
            start = time.perf_counter()
            run = probe_videos(paths, None, workers)
            elapsed = time.perf_counter() - start
            assert all(probe.readable for probe in run.probes.values())
            print(
                f"probe {len(paths)} videos (480x270, {args.seconds:g} s, 30 fps), {workers} worker(s): "
                f"{elapsed:.2f} s = {len(paths) / elapsed:.1f} videos/s"
            )
        cache = Path(folder) / "probe_cache.json"
        probe_videos(paths, cache, 2)
        start = time.perf_counter()
        run = probe_videos(paths, cache, 2)
        elapsed = time.perf_counter() - start
        print(f"re-run from the cache: {run.from_cache} cached, {run.probed} probed in {elapsed * 1000:.1f} ms")


if __name__ == "__main__":
    main()

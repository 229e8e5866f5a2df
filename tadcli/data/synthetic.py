"""A small synthetic temporal action detection dataset of real mp4 files (``tad prepare synthetic``).

Each video shows a drifting, noisy texture; at random times an action appears for 1-6 s: a
coloured shape with its own motion (a red circle moving right, a green square growing, a blue triangle
rotating, ...). Every class has its own shape, colour and motion, so a small model learns them from
pixels in minutes on a CPU. Videos are encoded with PyAV (H.264 ``yuv420p`` through libx264 when
available, else MPEG-4 Part 2), which both decord and PyAV read.

The annotation file is the ``custom-json`` schema of :mod:`tadcli.data.annotations.custom`, with subsets
``train``, ``val`` and ``test``. Everything is a function of ``seed``: the annotation bytes and the
decoded frames are identical for the same seed (the encoder runs on one thread without lookahead, see
:func:`write_mp4`).

Example:
    >>> annotation_file = write_synthetic_videos("data/synthetic", num_videos=24, num_classes=4, seed=0)
    >>> # videos in data/synthetic/videos/<video>.mp4
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av
import numpy as np

from tadcli.errors import DatasetError

VIDEO_DIRNAME = "videos"
ANNOTATION_FILENAME = "annotations.json"
VARIABLE_RATE_TICKS = 60_000  # timestamp units per second of videos written with their own times (MPEG-4: <= 65535)


def available_codec() -> str:
    """``"libx264"`` when PyAV's FFmpeg has it, else ``"mpeg4"`` (always built in)."""
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def write_mp4(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: int | Fraction,
    codec: str | None = None,
    times: Sequence[float] | None = None,
    rotation: int = 0,
    keyframe_interval: int | None = None,
) -> Path:
    """Encode RGB frames into an mp4 file (``yuv420p``, one key frame per second unless ``keyframe_interval``).

    Args:
        path: the file to write (its directory must exist).
        frames: uint8 arrays ``[H, W, 3]`` (RGB), all the same size; H and W even.
        fps: frames per second (an integer or a fraction such as 30000/1001: timestamps stay exact); the
            nominal rate with ``times``.
        codec: ``"libx264"`` or ``"mpeg4"``; default :func:`available_codec`.
        times: presentation time of each frame in seconds, increasing (a variable frame rate, kept to
            1/60000 s); default ``index / fps``.
        rotation: the display rotation players apply, counter-clockwise degrees (0, 90, 180, 270), stored
            in the stream's display matrix as phones store it; the frames are written as given.

    Returns:
        ``path``.
    """
    path = Path(path)
    codec = codec or available_codec()
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError(f"{path}: no frames to write")
    time_base = Fraction(1, fps) if times is None else Fraction(1, VARIABLE_RATE_TICKS)
    with av.open(str(path), mode="w", format="mp4") as container:  # also for a temporary name
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = first.shape[:2]  # must be set before the first frame is encoded
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = keyframe_interval or max(1, round(fps))
        stream.codec_context.thread_count = 1
        if rotation:
            stream.set_display_rotation(rotation)
        if codec == "libx264":
            # x264's lookahead (rc-lookahead, macroblock tree) gave different frames for the same input
            # in about one run out of ten; without it, and on one thread, the output is reproducible
            stream.options = {
                "preset": "veryfast",
                "crf": "23",
                "x264-params": "threads=1:sliced-threads=0:sync-lookahead=0:rc-lookahead=0:mbtree=0",
            }
        else:
            stream.bit_rate = 2_000_000
        stream.codec_context.time_base = time_base
        for index, image in enumerate(itertools.chain([first], frames)):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index if times is None else round(times[index] * VARIABLE_RATE_TICKS)
            frame.time_base = time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


# ---------------------------------------------------------------------------------------------------
# Action classes: shape x colour x motion


@dataclass(frozen=True)
class ShapeState:
    """Where a shape is in one frame: centre (pixels), radius (pixels), rotation (radians)."""

    x: float
    y: float
    radius: float
    angle: float


def _circle(dx: np.ndarray, dy: np.ndarray, radius: float) -> np.ndarray:
    return dx**2 + dy**2 <= radius**2


def _square(dx: np.ndarray, dy: np.ndarray, radius: float) -> np.ndarray:
    return (np.abs(dx) <= radius) & (np.abs(dy) <= radius)


def _triangle(dx: np.ndarray, dy: np.ndarray, radius: float) -> np.ndarray:
    # inside the three half-planes of an equilateral triangle pointing up (image y grows downwards)
    inside = np.ones_like(dx, dtype=bool)
    for theta in (np.pi / 2, np.pi / 2 + 2 * np.pi / 3, np.pi / 2 + 4 * np.pi / 3):
        inside &= dx * np.cos(theta) - dy * np.sin(theta) <= radius / 2
    return inside


def _ring(dx: np.ndarray, dy: np.ndarray, radius: float) -> np.ndarray:
    distance = np.sqrt(dx**2 + dy**2)
    return (distance <= radius) & (distance >= 0.55 * radius)


def _cross(dx: np.ndarray, dy: np.ndarray, radius: float) -> np.ndarray:
    arm = 0.3 * radius
    return ((np.abs(dx) <= radius) & (np.abs(dy) <= arm)) | ((np.abs(dy) <= radius) & (np.abs(dx) <= arm))


def _diamond(dx: np.ndarray, dy: np.ndarray, radius: float) -> np.ndarray:
    return np.abs(dx) + np.abs(dy) <= radius


def _bar(dx: np.ndarray, dy: np.ndarray, radius: float) -> np.ndarray:
    return (np.abs(dx) <= radius) & (np.abs(dy) <= 0.3 * radius)


def _frame(dx: np.ndarray, dy: np.ndarray, radius: float) -> np.ndarray:
    outline = np.maximum(np.abs(dx), np.abs(dy))
    return (outline <= radius) & (outline >= 0.6 * radius)


def _move(start: tuple[float, float], end: tuple[float, float]) -> Callable[[float, float, float], ShapeState]:
    """Motion along a straight line from ``start`` to ``end`` (fractions of the frame size)."""

    def state(progress: float, size: float, spin: float) -> ShapeState:
        x = start[0] + (end[0] - start[0]) * progress
        y = start[1] + (end[1] - start[1]) * progress
        return ShapeState(x, y, size, 0.0)

    return state


def _grow(progress: float, size: float, spin: float) -> ShapeState:
    return ShapeState(0.5, 0.5, size * (0.3 + 1.0 * progress), 0.0)


def _shrink(progress: float, size: float, spin: float) -> ShapeState:
    return ShapeState(0.5, 0.5, size * (1.3 - 1.0 * progress), 0.0)


def _rotate(progress: float, size: float, spin: float) -> ShapeState:
    return ShapeState(0.5, 0.5, size, spin * 2 * np.pi * progress)


def _pulse(progress: float, size: float, spin: float) -> ShapeState:
    return ShapeState(0.5, 0.5, size * (0.8 + 0.4 * np.sin(6 * np.pi * progress) ** 2), 0.0)


@dataclass(frozen=True)
class ActionClass:
    """One synthetic class: a shape of one colour following one motion."""

    name: str
    shape: Callable[[np.ndarray, np.ndarray, float], np.ndarray]
    colour: tuple[int, int, int]
    motion: Callable[[float, float, float], ShapeState]


ACTION_CLASSES: tuple[ActionClass, ...] = (
    ActionClass("red_circle_moving_right", _circle, (230, 30, 30), _move((0.15, 0.5), (0.85, 0.5))),
    ActionClass("green_square_growing", _square, (30, 220, 30), _grow),
    ActionClass("blue_triangle_rotating", _triangle, (40, 70, 255), _rotate),
    ActionClass("yellow_bar_moving_down", _bar, (240, 230, 20), _move((0.5, 0.15), (0.5, 0.85))),
    ActionClass("magenta_ring_pulsing", _ring, (230, 30, 230), _pulse),
    ActionClass("cyan_cross_moving_left", _cross, (20, 230, 230), _move((0.85, 0.5), (0.15, 0.5))),
    ActionClass("white_diamond_shrinking", _diamond, (250, 250, 250), _shrink),
    ActionClass("orange_frame_moving_up", _frame, (255, 140, 0), _move((0.5, 0.85), (0.5, 0.15))),
)


# ---------------------------------------------------------------------------------------------------
# Videos


@dataclass(frozen=True)
class SyntheticAction:
    """One action instance: frames ``[start_frame, end_frame)`` and its class index."""

    start_frame: int
    end_frame: int
    label: int
    size: float  # radius as a fraction of the short side
    spin: float  # turns over the action (rotating classes)
    offset: tuple[float, float]  # shift of the motion path, fraction of the frame


def _plan_actions(
    rng: np.random.Generator,
    num_frames: int,
    fps: int,
    num_classes: int,
    max_actions: int,
    action_seconds: tuple[float, float],
) -> list[SyntheticAction]:
    """Non-overlapping actions at random times, at least half a second apart."""
    lengths = rng.uniform(*action_seconds, size=rng.integers(1, max_actions + 1))
    lengths = np.maximum(np.round(lengths * fps), 2).astype(int)
    gap = fps // 2
    free = num_frames - int(lengths.sum()) - gap * (len(lengths) + 1)
    if free < 0:  # more action time than the video holds: keep the first ones that fit
        keep = np.cumsum(lengths + gap) + gap <= num_frames
        lengths, free = lengths[keep], num_frames - int(lengths[keep].sum()) - gap * (int(keep.sum()) + 1)
    # split the free frames into len+1 random gaps (stars and bars)
    cuts = np.sort(rng.integers(0, free + 1, size=len(lengths)))
    extra_gaps = np.diff(np.concatenate([[0], cuts]))
    actions, start = [], 0
    for length, extra in zip(lengths.tolist(), extra_gaps.tolist()):
        start += gap + extra
        actions.append(
            SyntheticAction(
                start_frame=start,
                end_frame=start + length,
                label=int(rng.integers(num_classes)),
                size=float(rng.uniform(0.14, 0.22)),
                spin=float(rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.0)),
                offset=(float(rng.uniform(-0.08, 0.08)), float(rng.uniform(-0.08, 0.08))),
            )
        )
        start += length
    return actions


def _background_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth random texture [2H, 2W, 3] (float) to drift across the frame."""
    coarse = rng.uniform(60, 140, size=(height // 8 + 1, width // 8 + 1, 3))
    coarse = 0.5 * coarse + 0.5 * coarse.mean(axis=2, keepdims=True)  # half-saturated: shapes stand out
    fine = np.repeat(np.repeat(coarse, 16, axis=0), 16, axis=1)[: 2 * height, : 2 * width]
    tint = rng.uniform(0.8, 1.0, size=3)  # a muted colour cast per video
    return fine * tint


def _render_video(
    rng: np.random.Generator,
    actions: list[SyntheticAction],
    num_frames: int,
    height: int,
    width: int,
    noise_std: float,
) -> Iterable[np.ndarray]:
    """Frames [H, W, 3] uint8 of one video, one at a time."""
    texture = _background_texture(rng, height, width)
    velocity = rng.uniform(-1.5, 1.5, size=2)  # pixels per frame
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    short = min(height, width)
    active = {frame: action for action in actions for frame in range(action.start_frame, action.end_frame)}
    for frame in range(num_frames):
        shift_y = int(frame * velocity[0]) % height
        shift_x = int(frame * velocity[1]) % width
        image = texture[shift_y : shift_y + height, shift_x : shift_x + width].copy()
        image += rng.normal(0.0, noise_std, size=image.shape)
        action = active.get(frame)
        if action is not None:
            spec = ACTION_CLASSES[action.label]
            progress = (frame - action.start_frame) / max(action.end_frame - action.start_frame - 1, 1)
            state = spec.motion(progress, action.size, action.spin)
            centre_x = (state.x + action.offset[0]) * width
            centre_y = (state.y + action.offset[1]) * height
            cos, sin = np.cos(state.angle), np.sin(state.angle)
            dx, dy = cols - centre_x, rows - centre_y
            # rotate the sampling grid by -angle so the shape turns by +angle
            inside = spec.shape(cos * dx + sin * dy, -sin * dx + cos * dy, state.radius * short)
            image[inside] = spec.colour
        yield np.clip(image, 0, 255).astype(np.uint8)


def write_synthetic_videos(
    out_dir: str | Path,
    num_videos: int = 24,
    num_classes: int = 4,
    seed: int = 0,
    height: int = 96,
    width: int = 128,
    fps: int = 12,
    video_seconds: tuple[float, float] = (20.0, 30.0),
    action_seconds: tuple[float, float] = (1.0, 6.0),
    max_actions_per_video: int = 4,
    noise_std: float = 12.0,
    split: tuple[float, float, float] = (0.6, 0.2, 0.2),
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write a synthetic dataset: mp4 files and a ``custom-json`` annotation file.

    Args:
        out_dir: output directory; videos go to ``out_dir/videos/<video>.mp4``, the annotation file to
            ``out_dir/annotations.json`` (existing files of the same names are replaced).
        num_videos: number of videos (at least 3: every subset gets one).
        num_classes: number of action classes, 1 to ``len(ACTION_CLASSES)`` (8).
        seed: everything (times, classes, shapes, background, noise) is a function of it.
        height, width: frame size in pixels (even numbers).
        fps: frames per second (integer).
        video_seconds: range of video durations (uniform).
        action_seconds: range of action durations (uniform).
        max_actions_per_video: each video gets 1 to this many non-overlapping actions.
        noise_std: standard deviation of the per-pixel Gaussian noise (0-255 scale).
        split: fractions of videos in ``train``, ``val`` and ``test`` (video order is random).
        progress: called as ``progress(videos_written, num_videos)`` before the first video and after each.

    Returns:
        The path of the annotation file.

    Raises:
        DatasetError: an argument is out of range.
    """
    if not 1 <= num_classes <= len(ACTION_CLASSES):
        raise DatasetError(f"synthetic dataset: num_classes must be 1..{len(ACTION_CLASSES)}, got {num_classes}")
    if num_videos < 3:
        raise DatasetError(f"synthetic dataset: num_videos must be at least 3 (train, val, test), got {num_videos}")
    if height % 2 or width % 2 or min(height, width) < 16:
        raise DatasetError(f"synthetic dataset: frame size must be even and at least 16 px, got {height}x{width}")
    if not 0 < action_seconds[0] <= action_seconds[1] < video_seconds[0] <= video_seconds[1]:
        raise DatasetError(
            f"synthetic dataset: need 0 < action_seconds {action_seconds} < video_seconds {video_seconds}"
        )
    out_dir = Path(out_dir)
    video_dir = out_dir / VIDEO_DIRNAME
    video_dir.mkdir(parents=True, exist_ok=True)
    subsets = _assign_subsets(np.random.default_rng([seed, 0]), num_videos, split)
    classes = [spec.name for spec in ACTION_CLASSES[:num_classes]]
    videos = []
    if progress is not None:
        progress(0, num_videos)
    for index in range(num_videos):
        rng = np.random.default_rng([seed, 1, index])
        num_frames = round(rng.uniform(*video_seconds) * fps)
        actions = _plan_actions(rng, num_frames, fps, num_classes, max_actions_per_video, action_seconds)
        name = f"synthetic_{index:04d}"
        write_mp4(video_dir / f"{name}.mp4", _render_video(rng, actions, num_frames, height, width, noise_std), fps)
        videos.append(
            {
                "video": name,
                "subset": subsets[index],
                "duration": num_frames / fps,
                "fps": float(fps),
                "annotations": [
                    {"start": a.start_frame / fps, "end": a.end_frame / fps, "label": classes[a.label]} for a in actions
                ],
            }
        )
        if progress is not None:
            progress(index + 1, num_videos)
    annotation_file = out_dir / ANNOTATION_FILENAME
    temporary = annotation_file.with_suffix(".json.tmp")
    temporary.write_text(json.dumps({"classes": classes, "videos": videos}, indent=1) + "\n")
    os.replace(temporary, annotation_file)
    return annotation_file


def _assign_subsets(rng: np.random.Generator, num_videos: int, split: tuple[float, float, float]) -> list[str]:
    """Subset of each video: ``round(fraction * n)`` videos each for val and test (at least one), rest train."""
    num_val = max(1, round(split[1] * num_videos))
    num_test = max(1, round(split[2] * num_videos))
    num_train = num_videos - num_val - num_test
    if num_train < 1:
        raise DatasetError(f"synthetic dataset: split {split} leaves no training video out of {num_videos}")
    names = np.array(["train"] * num_train + ["val"] * num_val + ["test"] * num_test)
    return rng.permutation(names).tolist()

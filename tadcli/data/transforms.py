"""Spatial transforms of a window of frames, with the same random parameters for every frame (spec §6.4).

A transform works in two steps so that a long window can be decoded and transformed chunk by chunk
with one set of random parameters:

1. ``plan = transform.sample(height, width, rng)``: draw the parameters of one sample (crop box, flip,
   RandAugment ops and colour jitter) for frames of that size; the plan is a list of functions.
2. ``transform.apply(frames, plan)``: run them on uint8 frames ``[T, 3, H, W]`` (any ``T``); every frame
   gets the same crop, flip, ops and colour factors.

Frames are uint8 in and uint8 out (0-255 RGB); normalization happens on the model's device (spec §1.4).
``frames_from_decoder`` turns a reader's ``[T, H, W, 3]`` into ``[T, 3, H, W]`` without a copy (a
channels-last view, which is also the fast layout for torch's uint8 resize).

Training (160 px): short side -> 182, RandomResizedCrop (area 0.08-1, aspect 3/4-4/3), resize to 160x160,
horizontal flip (p 0.5), two RandAugment-style ops, colour jitter. Evaluation: short side -> 160, centre
crop 160. The short-side resize is folded into the crop: the box is drawn in the coordinates of the
resized frame, then cut from the input frame and resized once to the output size. When the reader
already scaled frames to the short side (``open_video(..., short_side=182)``), the box is used as is.

Differences from OpenTAD, on purpose: the signs of the RandAugment ops and the order of the colour jitter
are drawn per sample (OpenTAD draws them once at construction, spec §10); the colour jitter is one
affine colour map per frame (hue as a rotation of the YIQ chroma plane instead of an HSV round trip),
applied in one pass: an order of magnitude faster than four separate uint8 -> float -> uint8 steps.
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode

FrameOp = Callable[[torch.Tensor], torch.Tensor]

# RandAugment-style ops at magnitude 9 of 10 (mmaction2 ``Imgaug`` "default", spec §6.4)
SHEAR_DEGREES = 15.47
TRANSLATE_FRACTION = 0.18
ROTATE_DEGREES = 27.0
POSTERIZE_BITS = 3
SOLARIZE_THRESHOLD = 230.4
ENHANCE_FACTOR = 1.72
CUTOUT_FRACTION = 0.18
CUTOUT_VALUE = 128
AUGMENT_OPS_PER_SAMPLE = 2


def frames_from_decoder(frames: torch.Tensor) -> torch.Tensor:
    """``[T, H, W, 3]`` (decoder layout) -> ``[T, 3, H, W]``, a channels-last view (no copy)."""
    return frames.permute(0, 3, 1, 2)  # [T, H, W, 3] -> [T, 3, H, W]


def _crop_and_resize(frames: torch.Tensor, top: int, left: int, height: int, width: int, size: int) -> torch.Tensor:
    """Cut the box and resize it to ``size x size`` (bilinear, antialiased); no resize when it fits."""
    if (height, width) == (size, size):
        return frames[..., top : top + height, left : left + width]
    return TF.resized_crop(frames, top, left, height, width, [size, size], antialias=True)


def _scale_box(
    box: tuple[float, float, float, float], scale: float, height: int, width: int
) -> tuple[int, int, int, int]:
    """A box ``(top, left, h, w)`` in resized coordinates -> integer box in input coordinates."""
    top, left, box_height, box_width = (round(v / scale) for v in box)
    box_height = max(1, min(box_height, height))
    box_width = max(1, min(box_width, width))
    return min(top, height - box_height), min(left, width - box_width), box_height, box_width


def _short_side_scale(height: int, width: int, short_side: int | None) -> float:
    return 1.0 if short_side is None else short_side / min(height, width)


class SpatialTransform:
    """A transform whose random parameters are drawn once per sample (:meth:`sample`) and applied to
    any number of frames (:meth:`apply`)."""

    def sample(self, height: int, width: int, rng: np.random.Generator) -> list[FrameOp]:
        raise NotImplementedError

    def apply(self, frames: torch.Tensor, plan: list[FrameOp]) -> torch.Tensor:
        """uint8 ``[T, 3, H, W]`` -> uint8 ``[T, 3, crop, crop]``, every frame transformed alike."""
        for op in plan:
            frames = op(frames)
        return frames


class EvalTransform(SpatialTransform):
    """Resize the short side, then centre crop a square (evaluation and frozen-backbone training).

    Args:
        crop_size: output side in pixels (160 or 224).
        short_side: short side the frame is resized to before cropping (default ``crop_size``);
            ``None``: crop the input as it is.
    """

    def __init__(self, crop_size: int = 160, short_side: int | None = None) -> None:
        self.crop_size = crop_size
        self.short_side = crop_size if short_side is None else short_side
        if self.short_side < crop_size:
            raise ValueError(f"short side {self.short_side} is smaller than the crop {crop_size}")

    def sample(self, height: int, width: int, rng: np.random.Generator) -> list[FrameOp]:
        """The (deterministic) plan for frames of ``height x width``; ``rng`` is not used."""
        scale = _short_side_scale(height, width, self.short_side)
        resized_height, resized_width = height * scale, width * scale
        box = (
            (resized_height - self.crop_size) / 2,
            (resized_width - self.crop_size) / 2,
            self.crop_size,
            self.crop_size,
        )
        return [_crop_op(box, scale, height, width, self.crop_size)]


def _crop_op(box: tuple[float, float, float, float], scale: float, height: int, width: int, size: int) -> FrameOp:
    """The op that cuts ``box`` (coordinates of the frame resized by ``scale``) and resizes it to ``size``."""
    top, left, box_height, box_width = _scale_box(box, scale, height, width)
    return functools.partial(_crop_and_resize, top=top, left=left, height=box_height, width=box_width, size=size)


def random_resized_crop_box(
    height: float,
    width: float,
    area_range: tuple[float, float],
    ratio_range: tuple[float, float],
    rng: np.random.Generator,
    attempts: int = 10,
) -> tuple[float, float, float, float]:
    """A RandomResizedCrop box ``(top, left, h, w)`` in a ``height x width`` frame.

    Area fraction uniform in ``area_range``, aspect ratio (w / h) log-uniform in ``ratio_range``; after
    ``attempts`` boxes that do not fit, the centre square of the short side (spec §6.4).
    """
    area = height * width
    log_ratio = (math.log(ratio_range[0]), math.log(ratio_range[1]))
    for _ in range(attempts):
        target_area = area * rng.uniform(*area_range)
        aspect = math.exp(rng.uniform(*log_ratio))
        box_width = round(math.sqrt(target_area * aspect))
        box_height = round(math.sqrt(target_area / aspect))
        if 0 < box_width <= width and 0 < box_height <= height:
            top = rng.integers(0, int(height - box_height) + 1)
            left = rng.integers(0, int(width - box_width) + 1)
            return float(top), float(left), float(box_height), float(box_width)
    side = min(height, width)
    return (height - side) / 2, (width - side) / 2, side, side


# ---------------------------------------------------------------------------------------------------
# RandAugment-style ops: each sampler draws the op's parameters and returns the op


def _affine(frames: torch.Tensor, angle: float, translate: list[float], shear: list[float]) -> torch.Tensor:
    return TF.affine(
        frames,
        angle=angle,
        translate=translate,
        scale=1.0,
        shear=shear,
        interpolation=InterpolationMode.BILINEAR,
        fill=None,
    )


def _sign(rng: np.random.Generator) -> float:
    return 1.0 if rng.random() < 0.5 else -1.0


def _shear_x(rng: np.random.Generator, height: int, width: int) -> FrameOp:
    return functools.partial(_affine, angle=0.0, translate=[0.0, 0.0], shear=[_sign(rng) * SHEAR_DEGREES, 0.0])


def _shear_y(rng: np.random.Generator, height: int, width: int) -> FrameOp:
    return functools.partial(_affine, angle=0.0, translate=[0.0, 0.0], shear=[0.0, _sign(rng) * SHEAR_DEGREES])


def _translate_x(rng: np.random.Generator, height: int, width: int) -> FrameOp:
    shift = _sign(rng) * TRANSLATE_FRACTION * width
    return functools.partial(_affine, angle=0.0, translate=[shift, 0.0], shear=[0.0, 0.0])


def _translate_y(rng: np.random.Generator, height: int, width: int) -> FrameOp:
    shift = _sign(rng) * TRANSLATE_FRACTION * height
    return functools.partial(_affine, angle=0.0, translate=[0.0, shift], shear=[0.0, 0.0])


def _rotate(rng: np.random.Generator, height: int, width: int) -> FrameOp:
    return functools.partial(_affine, angle=_sign(rng) * ROTATE_DEGREES, translate=[0.0, 0.0], shear=[0.0, 0.0])


def _posterize(rng: np.random.Generator, height: int, width: int) -> FrameOp:
    return functools.partial(TF.posterize, bits=POSTERIZE_BITS)


def _solarize(rng: np.random.Generator, height: int, width: int) -> FrameOp:
    return functools.partial(TF.solarize, threshold=SOLARIZE_THRESHOLD)


def _enhance_color(rng: np.random.Generator, height: int, width: int) -> FrameOp:
    return functools.partial(TF.adjust_saturation, saturation_factor=ENHANCE_FACTOR)


def _enhance_contrast(rng: np.random.Generator, height: int, width: int) -> FrameOp:
    return functools.partial(TF.adjust_contrast, contrast_factor=ENHANCE_FACTOR)


def _enhance_brightness(rng: np.random.Generator, height: int, width: int) -> FrameOp:
    return functools.partial(TF.adjust_brightness, brightness_factor=ENHANCE_FACTOR)


def _enhance_sharpness(rng: np.random.Generator, height: int, width: int) -> FrameOp:
    return functools.partial(TF.adjust_sharpness, sharpness_factor=ENHANCE_FACTOR)


def _autocontrast(rng: np.random.Generator, height: int, width: int) -> FrameOp:
    return TF.autocontrast


def _equalize(rng: np.random.Generator, height: int, width: int) -> FrameOp:
    return TF.equalize


def _invert(rng: np.random.Generator, height: int, width: int) -> FrameOp:
    return TF.invert


def _erase(frames: torch.Tensor, top: int, left: int, side: int) -> torch.Tensor:
    frames = frames.clone()
    frames[..., top : top + side, left : left + side] = CUTOUT_VALUE
    return frames


def _cutout(rng: np.random.Generator, height: int, width: int) -> FrameOp:
    side = max(1, round(CUTOUT_FRACTION * min(height, width)))
    centre_y, centre_x = int(rng.integers(0, height)), int(rng.integers(0, width))
    top, left = max(0, centre_y - side // 2), max(0, centre_x - side // 2)
    return functools.partial(_erase, top=top, left=left, side=side)


RANDAUGMENT_OPS: tuple[Callable[[np.random.Generator, int, int], FrameOp], ...] = (
    _shear_x,
    _shear_y,
    _translate_x,
    _translate_y,
    _rotate,
    _posterize,
    _solarize,
    _enhance_color,
    _enhance_contrast,
    _enhance_brightness,
    _enhance_sharpness,
    _autocontrast,
    _equalize,
    _invert,
    _cutout,
)


# ---------------------------------------------------------------------------------------------------
# Colour jitter as one affine colour map per frame.
# Brightness, saturation and hue are linear maps of RGB (3x3 matrices); contrast blends each frame with
# its mean gray level, an offset that depends on the frame. Composed in the sampled order they give
# x' = M x + o_t (M [3, 3] shared, o_t [3] per frame), applied in one pass and clamped to 0-255 once
# (torchvision clamps after every step; results differ only where a step saturates).

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)
# (matrix [3, 3], offsets [T, 3], frame means [T, 3]) -> (matrix, offsets) after one more step
ColourStep = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
ColourMap = tuple[torch.Tensor, torch.Tensor]


def _brightness_step(matrix: torch.Tensor, offset: torch.Tensor, means: torch.Tensor, factor: float) -> ColourMap:
    return factor * matrix, factor * offset


def _contrast_step(matrix: torch.Tensor, offset: torch.Tensor, means: torch.Tensor, factor: float) -> ColourMap:
    gray = torch.tensor(GRAY_WEIGHTS, dtype=torch.float64)
    mean_gray = (means @ matrix.T + offset) @ gray  # [T]: mean gray level of each frame so far
    return factor * matrix, factor * offset + (1 - factor) * mean_gray[:, None]


def _saturation_step(matrix: torch.Tensor, offset: torch.Tensor, means: torch.Tensor, factor: float) -> ColourMap:
    gray = torch.tensor(GRAY_WEIGHTS, dtype=torch.float64)
    blend = factor * torch.eye(3, dtype=torch.float64) + (1 - factor) * gray.expand(3, 3)  # rows: s*e_i + (1-s)*w
    return blend @ matrix, offset @ blend.T


def _hue_step(matrix: torch.Tensor, offset: torch.Tensor, means: torch.Tensor, turns: float) -> ColourMap:
    """Rotate the I/Q chroma plane of YIQ by ``turns`` (luma kept): a hue rotation as a linear map."""
    cos, sin = math.cos(2 * math.pi * turns), math.sin(2 * math.pi * turns)
    rgb_to_yiq = torch.tensor(
        [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=torch.float64
    )
    rotation = torch.tensor([[1.0, 0.0, 0.0], [0.0, cos, -sin], [0.0, sin, cos]], dtype=torch.float64)
    hue = torch.linalg.inv(rgb_to_yiq) @ rotation @ rgb_to_yiq
    return hue @ matrix, offset @ hue.T


def _map_colours(frames: torch.Tensor, steps: list[ColourStep]) -> torch.Tensor:
    """Compose ``steps`` into x' = M x + o_t and apply it to uint8 frames ``[T, 3, H, W]``."""
    means = frames.mean(dim=(-2, -1), dtype=torch.float32).double()  # [T, 3] mean RGB of each frame
    matrix = torch.eye(3, dtype=torch.float64)
    offset = torch.zeros_like(means)
    for step in steps:
        matrix, offset = step(matrix, offset, means)
    mapped = torch.einsum("ij,tjhw->tihw", matrix.float(), frames.float())
    mapped += offset.float()[:, :, None, None]
    return mapped.clamp_(0, 255).round_().to(torch.uint8)


def color_jitter_op(
    rng: np.random.Generator, brightness: float, contrast: float, saturation: float, hue: float
) -> FrameOp:
    """Brightness, contrast and saturation factors uniform in ``[1 - x, 1 + x]``, hue uniform in
    ``[-hue, hue]`` turns, composed in a random order (spec §6.4 ColorJitter)."""
    steps = [
        functools.partial(_brightness_step, factor=rng.uniform(1 - brightness, 1 + brightness)),
        functools.partial(_contrast_step, factor=rng.uniform(1 - contrast, 1 + contrast)),
        functools.partial(_saturation_step, factor=rng.uniform(1 - saturation, 1 + saturation)),
        functools.partial(_hue_step, turns=rng.uniform(-hue, hue)),
    ]
    return functools.partial(_map_colours, steps=[steps[i] for i in rng.permutation(len(steps))])


class TrainTransform(SpatialTransform):
    """Training augmentation (spec §6.4), the same random parameters for every frame of a sample.

    Args:
        crop_size: output side in pixels (160 or 224).
        short_side: short side the frame is resized to before the random crop (182 for 160 px, 256 for
            224 px); ``None``: crop the input as it is.
        area_range: RandomResizedCrop area fraction range.
        ratio_range: RandomResizedCrop aspect ratio (w / h) range, sampled log-uniformly.
        flip_prob: probability of a horizontal flip.
        randaugment: apply ``AUGMENT_OPS_PER_SAMPLE`` distinct RandAugment-style ops per sample.
        color_jitter: apply brightness / contrast / saturation (0.5-1.5) and hue (+-0.1) jitter.
    """

    def __init__(
        self,
        crop_size: int = 160,
        short_side: int | None = 182,
        area_range: tuple[float, float] = (0.08, 1.0),
        ratio_range: tuple[float, float] = (3 / 4, 4 / 3),
        flip_prob: float = 0.5,
        randaugment: bool = True,
        color_jitter: bool = True,
    ) -> None:
        self.crop_size = crop_size
        self.short_side = short_side
        self.area_range = area_range
        self.ratio_range = ratio_range
        self.flip_prob = flip_prob
        self.randaugment = randaugment
        self.color_jitter = color_jitter

    def sample(self, height: int, width: int, rng: np.random.Generator) -> list[FrameOp]:
        """Draw one sample's parameters for frames of ``height x width``; returns the ops in order."""
        scale = _short_side_scale(height, width, self.short_side)
        box = random_resized_crop_box(height * scale, width * scale, self.area_range, self.ratio_range, rng)
        plan = [_crop_op(box, scale, height, width, self.crop_size)]
        if rng.random() < self.flip_prob:
            plan.append(TF.horizontal_flip)
        if self.randaugment:
            chosen = np.sort(rng.choice(len(RANDAUGMENT_OPS), size=AUGMENT_OPS_PER_SAMPLE, replace=False))
            plan.extend(RANDAUGMENT_OPS[i](rng, self.crop_size, self.crop_size) for i in chosen)
        if self.color_jitter:
            plan.append(color_jitter_op(rng, brightness=0.5, contrast=0.5, saturation=0.5, hue=0.1))
        return plan

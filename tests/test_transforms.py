"""Spatial transforms: one set of random parameters for every frame of a sample; uint8 in and out."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF

from tadcli.data import transforms
from tadcli.data.transforms import (
    RANDAUGMENT_OPS,
    EvalTransform,
    TrainTransform,
    color_jitter_op,
    frames_from_decoder,
    random_resized_crop_box,
)


def _moving_square_frames(num_frames: int = 6, height: int = 72, width: int = 96) -> torch.Tensor:
    """uint8 [T, H, W, 3] (decoder layout): a white square that moves right, on a colour gradient."""
    rows, cols = np.mgrid[0:height, 0:width]
    frames = np.zeros((num_frames, height, width, 3), dtype=np.uint8)
    for t in range(num_frames):
        frames[t, ..., 0] = (cols * 255 // width).astype(np.uint8)
        frames[t, ..., 1] = (rows * 255 // height).astype(np.uint8)
        frames[t, ..., 2] = 90
        frames[t, 20:40, 10 + 8 * t : 30 + 8 * t] = 255
    return torch.from_numpy(frames)


def _still_frames(num_frames: int = 5) -> torch.Tensor:
    """The same textured frame repeated: any per-frame difference after a transform is a bug."""
    image = torch.from_numpy(np.random.default_rng(0).integers(0, 256, size=(72, 96, 3), dtype=np.uint8))
    return frames_from_decoder(image.expand(num_frames, -1, -1, -1).contiguous())


def test_train_transform_returns_uint8_square_crops():
    frames = frames_from_decoder(_moving_square_frames())
    transform = TrainTransform(crop_size=32, short_side=36)
    out = transform.apply(frames, transform.sample(72, 96, np.random.default_rng(0)))
    assert out.dtype == torch.uint8 and out.shape == (6, 3, 32, 32)


@pytest.mark.parametrize("op_sampler", RANDAUGMENT_OPS, ids=lambda op: op.__name__)
def test_every_augment_op_treats_all_frames_alike(op_sampler):
    frames = TF.resize(_still_frames(), [32, 32], antialias=True)
    out = op_sampler(np.random.default_rng(3), 32, 32)(frames)
    assert out.dtype == torch.uint8 and out.shape == frames.shape
    assert all(torch.equal(out[0], frame) for frame in out)


def test_whole_train_pipeline_applies_identical_parameters_to_every_frame():
    frames = _still_frames()
    transform = TrainTransform(crop_size=32, short_side=40)
    seen_ops = set()
    for seed in range(40):
        plan = transform.sample(72, 96, np.random.default_rng(seed))
        seen_ops.update(getattr(op, "func", op) for op in plan)
        out = transform.apply(frames, plan)
        assert all(torch.equal(out[0], frame) for frame in out), f"seed {seed}: frames differ"
    assert TF.horizontal_flip in seen_ops and transforms._map_colours in seen_ops


def test_a_flipped_sample_flips_every_frame():
    frames = frames_from_decoder(_moving_square_frames())
    flip = TrainTransform(crop_size=48, short_side=60, flip_prob=1.0, randaugment=False, color_jitter=False)
    keep = TrainTransform(crop_size=48, short_side=60, flip_prob=0.0, randaugment=False, color_jitter=False)
    flipped = flip.apply(frames, flip.sample(72, 96, np.random.default_rng(7)))
    unflipped = keep.apply(frames, keep.sample(72, 96, np.random.default_rng(7)))  # same crop box
    assert torch.equal(flipped, unflipped.flip(-1))
    assert not torch.equal(flipped, unflipped)


def test_chunks_transformed_with_one_plan_equal_the_whole_window():
    frames = frames_from_decoder(_moving_square_frames(num_frames=9))
    transform = TrainTransform(crop_size=32, short_side=40)
    for seed in range(10):
        plan = transform.sample(72, 96, np.random.default_rng(seed))
        whole = transform.apply(frames, plan)
        chunked = torch.cat([transform.apply(frames[i : i + 4], plan) for i in range(0, 9, 4)])
        assert torch.equal(whole, chunked)


def test_random_resized_crop_box_stays_inside_with_the_right_area():
    rng = np.random.default_rng(0)
    for _ in range(300):
        top, left, height, width = random_resized_crop_box(182, 324, (0.08, 1.0), (3 / 4, 4 / 3), rng)
        assert 0 <= top and top + height <= 182 and 0 <= left and left + width <= 324
        assert 0.08 * 182 * 324 * 0.9 <= height * width <= 182 * 324
    # a box that never fits falls back to the centre square of the short side
    assert random_resized_crop_box(10, 20, (5.0, 6.0), (1.0, 1.0), rng) == (0.0, 5.0, 10, 10)


def test_eval_transform_is_a_centre_crop_of_the_short_side_resize():
    frames = frames_from_decoder(_moving_square_frames())
    out = EvalTransform(crop_size=48).apply(frames, EvalTransform(crop_size=48).sample(72, 96, None))
    expected = TF.center_crop(TF.resize(frames, [48], antialias=True), [48, 48])
    assert out.shape == (6, 3, 48, 48) and out.dtype == torch.uint8
    assert (out.float() - expected.float()).abs().mean() < 3  # one resampling instead of two
    # frames already scaled by the decoder to the short side: an exact centre crop, no resampling
    scaled = frames_from_decoder(_moving_square_frames(height=48, width=64))
    exact = EvalTransform(crop_size=48).apply(scaled, EvalTransform(crop_size=48).sample(48, 64, None))
    assert torch.equal(exact, scaled[..., :, 8:56])


def test_colour_jitter_factors_act_like_torchvision():
    frames = torch.from_numpy(np.random.default_rng(1).integers(40, 220, size=(3, 3, 16, 16), dtype=np.uint8))
    pairs = [
        (transforms._brightness_step, "factor", TF.adjust_brightness, 1.3),
        (transforms._contrast_step, "factor", TF.adjust_contrast, 0.6),
        (transforms._saturation_step, "factor", TF.adjust_saturation, 1.4),
    ]
    for step, name, reference, factor in pairs:
        ours = transforms._map_colours(frames, [functools.partial(step, **{name: factor})])
        # torchvision truncates to uint8 where we round: at most one level apart
        assert (ours.int() - reference(frames, factor).int()).abs().max() <= 1, step.__name__
    # a hue rotation keeps gray pixels gray and changes coloured ones
    gray = torch.full((1, 3, 4, 4), 128, dtype=torch.uint8)
    assert torch.equal(transforms._map_colours(gray, [functools.partial(transforms._hue_step, turns=0.1)]), gray)
    red = torch.zeros((1, 3, 4, 4), dtype=torch.uint8)
    red[:, 0] = 200
    assert not torch.equal(transforms._map_colours(red, [functools.partial(transforms._hue_step, turns=0.1)]), red)
    jittered = color_jitter_op(np.random.default_rng(0), 0.5, 0.5, 0.5, 0.1)(frames)
    assert jittered.dtype == torch.uint8 and jittered.shape == frames.shape

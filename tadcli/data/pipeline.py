"""Windows as a preset and a dataset profile define them (spec ``shared/spec/ADATAD.md`` §6.3-§6.4).

The one place where the preset's input section and the profile's sampling rules become a
:class:`~tadcli.data.sampling.WindowGeometry` (:func:`window_geometry`), so training, evaluation and detection
cut the same windows; training's dataset (:func:`train_dataset`) is built here, inference's plan
(:mod:`tadcli.inference.plan`) takes the geometry.
"""

from __future__ import annotations

from collections.abc import Sequence

from tadcli.config.profiles import DatasetProfile
from tadcli.config.schema import Preset
from tadcli.data.dataset import TrainWindowDataset, VideoRecord
from tadcli.data.sampling import WindowGeometry, frame_stride_for
from tadcli.data.transforms import EvalTransform, SpatialTransform, TrainTransform
from tadcli.errors import PresetError

# Short side before the random crop: the spec's 182 for 160 px crops and 256 for 224 px.
TRAIN_SHORT_SIDE = {160: 182, 224: 256}
TRAIN_SHORT_SIDE_RATIO = 182 / 160


def window_geometry(preset: Preset, profile: DatasetProfile, frame_step: int = 1) -> WindowGeometry:
    """The windows of ``preset`` on a dataset of ``profile``.

    ``frame_step``: source frames per frame of the videos read (proxies, :mod:`tadcli.data.proxy`): the frame
    stride is counted in their frames, so that windows cover the same seconds.

    Raises:
        PresetError: the preset's scale factor does not divide the profile's snippet stride, or its frame
            stride is not a multiple of ``frame_step``.
    """
    scale = preset.input.scale_factor
    if preset.input.frame_stride is not None:
        frame_stride = preset.input.frame_stride
    elif profile.snippet_stride is None:
        frame_stride = 1  # resize sampling picks its own frames
    else:
        try:
            frame_stride = frame_stride_for(profile.snippet_stride, scale)
        except ValueError as error:
            raise PresetError(f"preset '{preset.name}' on the {profile.name} protocol: {error}") from None
    if frame_stride % frame_step:
        raise PresetError(
            f"preset '{preset.name}' reads 1 frame in {frame_stride}, not a multiple of the proxies' {frame_step}"
        )
    return WindowGeometry(
        preset.input.detector_length, scale, frame_stride // frame_step, profile.sampling, profile.window_overlap
    )


def train_transform(preset: Preset) -> SpatialTransform:
    """The preset's training augmentation (``input.augmentation``); frozen backbones train on eval frames."""
    size = preset.input.image_size
    if preset.input.augmentation == "none" or preset.adaptation.mode == "frozen":
        return EvalTransform(size)
    full = preset.input.augmentation == "full"
    short_side = TRAIN_SHORT_SIDE.get(size, round(size * TRAIN_SHORT_SIDE_RATIO))
    return TrainTransform(size, short_side=short_side, randaugment=full, color_jitter=full)


def train_dataset(
    records: Sequence[VideoRecord], preset: Preset, profile: DatasetProfile, seed: int, frame_step: int = 1
) -> TrainWindowDataset:
    """One random window per video and epoch (random truncation, or the resized video); ``frame_step``: source
    frames per frame of the records' files (proxies)."""
    geometry = window_geometry(preset, profile, frame_step)
    transform = train_transform(preset)
    return TrainWindowDataset(
        records,
        window_size=geometry.window_size,
        scale_factor=geometry.scale_factor,
        frame_stride=geometry.frame_stride,
        sampling=profile.sampling,
        trunc_thresh=profile.trunc_thresh,
        crop_ratio=profile.crop_ratio,
        transform=transform,
        short_side=getattr(transform, "short_side", None),
        seed=seed,
    )

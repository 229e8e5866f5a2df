"""How a model runs on videos: the :class:`InferencePlan`, built once per model from its preset, the dataset
profile and the device (:func:`inference_plan`), and taken by every inference path
(:mod:`tadcli.inference.engine`: ``tad detect``, ``tad eval --run``, validation during training, ``tad extract``).
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass

import torch

from tadcli.config.profiles import DatasetProfile
from tadcli.config.schema import Preset
from tadcli.data.pipeline import window_geometry
from tadcli.data.sampling import WindowGeometry
from tadcli.data.transforms import EvalTransform
from tadcli.model.build import postprocess_settings
from tadcli.model.postprocess import PostprocessSettings


@dataclass(frozen=True)
class InferencePlan:
    """Everything inference needs besides the model and the videos.

    Attributes:
        geometry: how videos are cut into windows (the preset's input on the profile's protocol).
        transform: the evaluation transform (short side, centre crop of the preset's image size).
        settings: post-processing (the preset's values, the profile's where it leaves them unset).
        device: where the model runs.
        autocast_dtype: the mixed-precision dtype of the forward on CUDA, ``None`` for fp32.
    """

    geometry: WindowGeometry
    transform: EvalTransform
    settings: PostprocessSettings
    device: torch.device
    autocast_dtype: torch.dtype | None

    @property
    def resize(self) -> bool:
        """One resized window per video (ActivityNet), soft-NMS done per window."""
        return self.geometry.sampling == "resize"

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def without_overlap(self) -> InferencePlan:
        """The plan with sliding windows that do not overlap (feature extraction)."""
        return dataclasses.replace(self, geometry=dataclasses.replace(self.geometry, overlap=0.0))


def autocast_dtype(device: torch.device, mixed_precision: bool) -> torch.dtype | None:
    """bf16 (fp16 where bf16 is unsupported) on CUDA when mixed precision is asked for; ``None`` (fp32) elsewhere."""
    if device.type != "cuda" or not mixed_precision:
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def inference_plan(
    preset: Preset, profile: DatasetProfile, device: torch.device | str = "cpu", frame_step: int = 1
) -> InferencePlan:
    """The plan of ``preset``'s model on a dataset of ``profile`` on ``device``; mixed precision per
    ``inference.mixed_precision`` (unset: ``train.mixed_precision``); ``frame_step``: source frames per frame of
    the videos read (a prepared dataset's proxies, :func:`tadcli.data.proxy.proxy_use`).

    Raises:
        PresetError: the preset's scale factor does not divide the profile's snippet stride.
    """
    device = torch.device(device)
    return InferencePlan(
        geometry=window_geometry(preset, profile, frame_step),
        transform=EvalTransform(preset.input.image_size),
        settings=postprocess_settings(preset, profile),
        device=device,
        autocast_dtype=autocast_dtype(device, preset.inference_mixed_precision()),
    )

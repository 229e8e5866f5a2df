"""Models ready for inference: a ``tad`` run's, a released AdaTAD/OpenTAD checkpoint's, or a preset's with its
pretrained backbone (feature extraction). Each is put on its device in eval mode here, once
(:func:`ready_for_inference`); the inference engine takes it as it is."""

from __future__ import annotations

from pathlib import Path

import torch

from tadcli.config.schema import Preset
from tadcli.errors import WeightFormatError
from tadcli.io.rundir import RunConfig, load_weights, read_run_config, run_paths
from tadcli.model.adatad import AdaTAD
from tadcli.model.build import build_model, load_released_adatad


def without_pretrained_weights(preset: Preset) -> Preset:
    """``preset`` with ``backbone.weights`` cleared: the run's own weights replace them, so the
    pretrained file need not exist where the run is used."""
    return preset.model_copy(update={"backbone": preset.backbone.model_copy(update={"weights": None})})


def ready_for_inference(model: AdaTAD, device: torch.device | str) -> AdaTAD:
    """``model`` on ``device``, in eval mode."""
    return model.to(device).eval()


def load_run_model(run_dir: str | Path, device: torch.device | str = "cpu") -> tuple[RunConfig, AdaTAD]:
    """The run's config and its model with the saved (EMA) weights, in eval mode on ``device``.

    Raises:
        RunError: no run, no saved weights, or an unreadable file.
        WeightFormatError: the weights do not fit the model the config describes.
    """
    config = read_run_config(run_dir)
    state = load_weights(run_paths(run_dir).weights)
    model = build_model(without_pretrained_weights(config.preset), num_classes=config.preset.num_detector_classes(len(config.classes)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise WeightFormatError(
            f"{run_paths(run_dir).weights}: does not fit the run's model "
            f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})"
        )
    return config, ready_for_inference(model, device)


def load_checkpoint_model(
    checkpoint: str | Path, preset: Preset, num_classes: int, device: torch.device | str = "cpu"
) -> AdaTAD:
    """A released AdaTAD/OpenTAD detector checkpoint loaded into the model of ``preset``, in eval mode.

    Raises:
        WeightFormatError: not such a checkpoint, or a key or shape that does not fit the preset.
    """
    model = build_model(without_pretrained_weights(preset), num_classes=preset.num_detector_classes(num_classes))
    load_released_adatad(model, checkpoint)
    return ready_for_inference(model, device)


def load_preset_model(preset: Preset, device: torch.device | str = "cpu") -> AdaTAD:
    """The model of ``preset`` with its pretrained backbone weights (``backbone.weights``; random detector), in
    eval mode on ``device``: what extracts features without a run.

    Raises:
        WeightFormatError: the weights file does not fit the backbone.
    """
    return ready_for_inference(build_model(preset, num_classes=1), device)

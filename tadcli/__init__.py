"""tad: end-to-end temporal action detection (AdaTAD) from the command line and from Python.

Everything the ``tad`` command does is a function here::

    import tadcli

    preset = tadcli.load_preset("giant-1536", ["train.epochs=5"])
    backbone = tadcli.load_backbone("vit-small-k400.pth", arch="S", adaptation="tia")
    report = tadcli.prepare_synthetic("data/synthetic")
    scores = tadcli.evaluate_predictions("results.json", "thumos14.json", dataset="thumos14")
    plan = tadcli.profile_memory("giant-1536", gpu="A100-80GB")

The names are imported on first use, so ``import tadcli`` (and ``tad --help``) stays fast: torch is only
loaded when a model function is touched.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_PUBLIC = {
    # presets and dataset profiles
    "load_preset": "tadcli.config.loader",
    "Preset": "tadcli.config.schema",
    "get_profile": "tadcli.config.profiles",
    # model
    "load_backbone": "tadcli.model.backbone",
    "build_backbone": "tadcli.model.backbone",
    "BackboneOptions": "tadcli.model.backbone",
    "build_model": "tadcli.model.build",
    "load_released_adatad": "tadcli.model.build",
    "AdaTAD": "tadcli.model.adatad",
    # trained detectors on raw videos
    "load_detector": "tadcli.inference.detector",
    "Detector": "tadcli.inference.detector",
    "inference_plan": "tadcli.inference.plan",
    "ModelIdentity": "tadcli.io.events",
    "Event": "tadcli.io.events",
    "VideoEvents": "tadcli.io.events",
    # data
    "read_annotations": "tadcli.data.annotations",
    "load_prepared_dataset": "tadcli.data.prepared",
    "read_video_classifier": "tadcli.data.video_classifier",
    # evaluation
    "evaluate_detections": "tadcli.evaluation.detection_map",
    "diagnose": "tadcli.evaluation.diagnosis",
    "diagnosis_ground_truth": "tadcli.evaluation.diagnosis",
    # services: what each subcommand does
    "prepare_dataset": "tadcli.services.prepare",
    "prepare_synthetic": "tadcli.services.prepare",
    "check_dataset": "tadcli.services.prepare",
    "evaluate_predictions": "tadcli.services.eval",
    "evaluate_run": "tadcli.services.eval",
    "TrainRequest": "tadcli.services.train",
    "train": "tadcli.services.train",
    "detect": "tadcli.services.detect",
    "review": "tadcli.services.review",
    "read_events_file": "tadcli.review",
    "write_review_page": "tadcli.review",
    "ReviewVideo": "tadcli.review",
    "extract": "tadcli.services.extract",
    "list_presets": "tadcli.services.presets",
    "show_preset": "tadcli.services.presets",
    "profile_memory": "tadcli.services.profile_memory",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'tadcli' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

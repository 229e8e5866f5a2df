"""Dataset profiles: the evaluation protocol and sampling rules that belong to a dataset, not to a model.

A prepared dataset names its profile; a model preset trains on any dataset because everything
dataset-specific (tIoU thresholds, subsets, soft-NMS settings, windowing) is read from here.
Values follow ``shared/spec/ADATAD.md`` §5.3, §6 and §7 (the official OpenTAD configs).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tadcli.errors import PresetError

THUMOS_TIOU = (0.3, 0.4, 0.5, 0.6, 0.7)
# The official ActivityNet evaluator's thresholds; the 9th value is 0.8999999999999999, kept as numpy makes it.
ACTIVITYNET_TIOU = tuple(float(t) for t in np.linspace(0.5, 0.95, 10))
DENSE_TIOU = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
EPIC_TIOU = (0.1, 0.2, 0.3, 0.4, 0.5)


# The class order of the released THUMOS14 checkpoints: OpenTAD's category_idx.txt (alphabetical), the
# order of tad prepare's classes.txt for THUMOS14 too.
THUMOS14_CLASSES = (
    "BaseballPitch", "BasketballDunk", "Billiards", "CleanAndJerk", "CliffDiving", "CricketBowling",
    "CricketShot", "Diving", "FrisbeeCatch", "GolfSwing", "HammerThrow", "HighJump", "JavelinThrow",
    "LongJump", "PoleVault", "Shotput", "SoccerPenalty", "TennisSwing", "ThrowDiscus", "VolleyballSpiking",
)
# class lists that ship with tad, by dataset name (tad detect --classes thumos14)
SHIPPED_CLASS_LISTS: dict[str, tuple[str, ...]] = {"thumos14": THUMOS14_CLASSES}


class DatasetProfile(BaseModel):
    """The protocol of one dataset family."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str
    tiou_thresholds: tuple[float, ...] = Field(description="tIoU thresholds of the standard mAP")
    train_subset: str = Field(description="subset name that training reads")
    eval_subset: str = Field(description="subset name that evaluation scores")
    sampling: Literal["sliding", "resize"] = Field(
        description="sliding: fixed windows over the video; resize: the whole video resampled to one window"
    )
    snippet_stride: Optional[int] = Field(
        description="raw video frames per detector step (sliding datasets); None for resize datasets"
    )
    fps: Optional[float] = Field(
        default=None, description="fixed fps the videos were re-encoded to; None = read from each video"
    )
    window_overlap: float = Field(default=0.5, description="overlap of evaluation windows")
    trunc_thresh: float = Field(default=0.75, description="min. kept fraction of an action in a training crop")
    crop_ratio: Optional[tuple[float, float]] = Field(default=(0.9, 1.0))
    min_training_fraction: float = Field(
        default=0.0,
        description="training instances no longer than this fraction of their video are dropped "
        "(ActivityNet 0.01: OpenTAD's filter_gt)",
    )
    soft_nms_sigma: float = Field(description="Gaussian soft-NMS sigma: score *= exp(-IoU^2 / sigma)")
    max_segments: int = Field(description="maximum detections kept per video")
    pre_nms_topk: int = Field(default=2000)
    min_score: float = Field(default=0.0)
    voting_threshold: float = Field(default=0.0, description="boundary voting IoU (class-agnostic detectors only)")


PROFILES: dict[str, DatasetProfile] = {
    p.name: p
    for p in (
        DatasetProfile(
            name="thumos14",
            description="THUMOS14: 20 sports classes; trains on the validation videos, scores the test videos",
            tiou_thresholds=THUMOS_TIOU,
            train_subset="training",
            eval_subset="validation",
            sampling="sliding",
            snippet_stride=4,
            trunc_thresh=0.75,
            soft_nms_sigma=0.7,
            max_segments=2000,
        ),
        DatasetProfile(
            name="activitynet",
            description="ActivityNet-1.3: 200 classes, whole videos resized to 192 steps",
            tiou_thresholds=ACTIVITYNET_TIOU,
            train_subset="training",
            eval_subset="validation",
            sampling="resize",
            snippet_stride=None,
            crop_ratio=None,
            min_training_fraction=0.01,
            soft_nms_sigma=0.7,
            max_segments=100,
            min_score=0.001,
            voting_threshold=0.9,
        ),
        DatasetProfile(
            name="charades",
            description="Charades: 157 daily-activity classes, dense overlapping actions, 30 fps",
            tiou_thresholds=DENSE_TIOU,
            train_subset="training",
            eval_subset="testing",
            sampling="sliding",
            snippet_stride=4,
            fps=30.0,
            trunc_thresh=0.5,
            soft_nms_sigma=0.3,
            max_segments=1000,
        ),
        DatasetProfile(
            name="multithumos",
            description="Multi-THUMOS: 65 dense classes on the THUMOS14 videos",
            tiou_thresholds=DENSE_TIOU,
            train_subset="training",
            eval_subset="validation",
            sampling="sliding",
            snippet_stride=4,
            trunc_thresh=0.75,
            soft_nms_sigma=0.5,
            max_segments=8000,
            pre_nms_topk=8000,
        ),
        DatasetProfile(
            name="epic-kitchens",
            description="EPIC-Kitchens-100 verb or noun detection, 30 fps, long windows",
            tiou_thresholds=EPIC_TIOU,
            train_subset="train",
            eval_subset="val",
            sampling="sliding",
            snippet_stride=16,
            fps=30.0,
            trunc_thresh=0.3,
            soft_nms_sigma=0.4,
            max_segments=2000,
            pre_nms_topk=5000,
            min_score=0.001,
        ),
        DatasetProfile(
            name="custom",
            description="your own videos and annotations (README: custom dataset schema)",
            tiou_thresholds=THUMOS_TIOU,
            train_subset="train",
            eval_subset="val",
            sampling="sliding",
            snippet_stride=4,
            soft_nms_sigma=0.7,
            max_segments=2000,
        ),
        DatasetProfile(
            name="synthetic",
            description="the built-in synthetic dataset (tad prepare synthetic): coloured shapes on noise",
            tiou_thresholds=THUMOS_TIOU,
            train_subset="train",
            eval_subset="val",
            sampling="sliding",
            snippet_stride=2,
            soft_nms_sigma=0.7,
            max_segments=200,
        ),
    )
}


# The closed vocabulary of dataset names ('tad prepare DATASET', '--dataset'), built from the table above.
DatasetName = StrEnum("DatasetName", {name.replace("-", "_"): name for name in PROFILES})


def get_profile(name: str) -> DatasetProfile:
    """Return the profile called ``name``; an unknown name is a :class:`PresetError` listing the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(PROFILES)
        raise PresetError(f"unknown dataset profile '{name}' (known: {known})") from None


_CUSTOM_SUBSETS = {"training": "train", "validation": "val", "testing": "test"}
# (profile, annotation format) -> {subset name in the files: subset name of the profile}. THUMOS14 trains
# on its validation videos and scores its test videos (OpenTAD / ActionFormer); Multi-THUMOS likewise.
# ``tad prepare`` renames the subsets with this table, ``tad eval`` finds the evaluation subset with it.
SUBSET_RENAMES: dict[tuple[str, str], dict[str, str]] = {
    ("thumos14", "thumos14-txt"): {"validation": "training", "test": "validation"},
    ("thumos14", "activitynet-json"): {"Validation": "training", "Test": "validation"},
    ("multithumos", "multithumos-json"): {"testing": "validation"},
    ("custom", "custom-csv"): _CUSTOM_SUBSETS,
    ("custom", "custom-json"): _CUSTOM_SUBSETS,
    ("custom", "activitynet-json"): _CUSTOM_SUBSETS,
    ("synthetic", "custom-json"): _CUSTOM_SUBSETS,
}


def subset_renames(profile: str, annotation_format: str) -> dict[str, str]:
    """How the subsets of files in ``annotation_format`` are named in ``profile`` (empty: as they are)."""
    return SUBSET_RENAMES.get((profile, annotation_format), {})

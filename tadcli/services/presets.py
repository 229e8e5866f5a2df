"""`tad presets`: list the shipped presets and show one fully resolved."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

from tadcli.config.loader import load_preset, preset_to_yaml, shipped_preset_names
from tadcli.config.profiles import get_profile


@dataclass(frozen=True)
class PresetSummary:
    """One row of ``tad presets list``."""

    name: str
    dataset: str  # the profile whose recipe it is; "any" for presets meant for every dataset
    backbone: str
    adaptation: str
    frames: int
    image_size: int
    description: str


def list_presets(dataset: Optional[str] = None) -> list[PresetSummary]:
    """Every shipped preset, resolved (inheritance applied), sorted by name.

    Args:
        dataset: keep only the recipes of this dataset profile (``activitynet``, ``charades``, ...).

    Raises:
        PresetError: ``dataset`` is not a dataset profile.
    """
    if dataset is not None:
        get_profile(dataset)
    rows = []
    for name in shipped_preset_names():
        preset = load_preset(name)
        if dataset is not None and preset.dataset != dataset:
            continue
        b = preset.backbone
        backbone = b.size if b.size is not None else f"{b.embed_dim}d x {b.depth}"
        rows.append(
            PresetSummary(
                name=name,
                dataset=preset.dataset or "any",
                backbone=backbone,
                adaptation=preset.adaptation.mode,
                frames=preset.input.frames,
                image_size=preset.input.image_size,
                description=preset.description,
            )
        )
    return rows


def show_preset(name_or_path: str, overrides: Iterable[str] = ()) -> str:
    """The fully resolved preset (defaults, inheritance and overrides applied) as YAML text."""
    return preset_to_yaml(load_preset(name_or_path, overrides))

"""`tad presets`: list the shipped presets and show one fully resolved."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from tadcli.config.loader import load_preset, preset_to_yaml, shipped_preset_names


@dataclass(frozen=True)
class PresetSummary:
    """One row of ``tad presets list``."""

    name: str
    backbone: str
    adaptation: str
    frames: int
    image_size: int
    description: str


def list_presets() -> list[PresetSummary]:
    """Every shipped preset, resolved (inheritance applied), sorted by name."""
    rows = []
    for name in shipped_preset_names():
        preset = load_preset(name)
        b = preset.backbone
        backbone = b.size if b.size is not None else f"{b.embed_dim}d x {b.depth}"
        rows.append(
            PresetSummary(
                name=name,
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

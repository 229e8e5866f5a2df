"""FPNIdentity neck: one channel LayerNorm per pyramid level (spec ``shared/spec/ADATAD.md`` §4.2)."""

from __future__ import annotations

import torch
from torch import nn

from tadcli.model.detector.blocks import ChannelLayerNorm


class FPNIdentity(nn.Module):
    """Normalises each level with its own LayerNorm(D, eps 1e-6); no top-down path, masks unchanged.

    Args:
        channels: feature channels D of every level.
        num_levels: number of pyramid levels.
    """

    def __init__(self, channels: int, num_levels: int) -> None:
        super().__init__()
        self.fpn_norms = nn.ModuleList([ChannelLayerNorm(channels, eps=1e-6) for _ in range(num_levels)])

    def forward(
        self, features: list[torch.Tensor], masks: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        assert len(features) == len(self.fpn_norms), f"got {len(features)} levels, built for {len(self.fpn_norms)}"
        return [norm(x) for norm, x in zip(self.fpn_norms, features)], masks

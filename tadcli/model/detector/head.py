"""ActionFormer's classification and regression head, shared across pyramid levels (spec §4.3)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from tadcli.model.detector.blocks import ConvNormReLU, Scale


class ActionFormerHead(nn.Module):
    """Separate cls / reg towers of masked convs, then per-point class logits and boundary distances.

    Outputs are raw: logits (no sigmoid) and ``ReLU(scale_l * reg)`` distances to the start / end in
    units of the level's stride. Neither is masked; invalid points are dropped by the loss and decoding.

    Args:
        in_channels: channels D of the pyramid features.
        feat_channels: width of the towers (512; 256 for class-agnostic ActivityNet).
        num_classes: number of action classes K (1 = class-agnostic).
        num_levels: pyramid levels (one learnable :class:`Scale` each).
        num_convs: convs per tower.
        kernel_size: kernel of the tower and output convs (odd).
        prior_prob: initial foreground probability; cls bias = -log((1 - p) / p).
    """

    def __init__(
        self,
        in_channels: int,
        feat_channels: int,
        num_classes: int,
        num_levels: int,
        num_convs: int = 2,
        kernel_size: int = 3,
        prior_prob: float = 0.01,
    ) -> None:
        super().__init__()
        assert kernel_size % 2 == 1, f"kernel_size must be odd, got {kernel_size}"
        assert num_convs > 0 or in_channels == feat_channels, (
            f"without tower convs in_channels ({in_channels}) must equal feat_channels ({feat_channels})"
        )
        self.num_classes = num_classes
        self.cls_convs = nn.ModuleList(
            [
                ConvNormReLU(in_channels if i == 0 else feat_channels, feat_channels, kernel_size)
                for i in range(num_convs)
            ]
        )
        self.reg_convs = nn.ModuleList(
            [
                ConvNormReLU(in_channels if i == 0 else feat_channels, feat_channels, kernel_size)
                for i in range(num_convs)
            ]
        )
        self.cls_head = nn.Conv1d(feat_channels, num_classes, kernel_size, padding=kernel_size // 2)
        self.reg_head = nn.Conv1d(feat_channels, 2, kernel_size, padding=kernel_size // 2)
        self.scale = nn.ModuleList([Scale(1.0) for _ in range(num_levels)])
        nn.init.constant_(self.cls_head.bias, -math.log((1 - prior_prob) / prior_prob))

    def forward(
        self, features: list[torch.Tensor], masks: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """features / masks per level ([B, D, T_l], bool [B, 1, T_l]) -> logits [B, T_l, K], offsets [B, T_l, 2]."""
        assert len(features) == len(self.scale), f"got {len(features)} levels, built for {len(self.scale)}"
        cls_logits, offsets = [], []
        for level, (x, mask) in enumerate(zip(features, masks)):
            cls_feat, reg_feat = x, x
            for conv in self.cls_convs:
                cls_feat, _ = conv(cls_feat, mask)
            for conv in self.reg_convs:
                reg_feat, _ = conv(reg_feat, mask)
            # [B, K, T_l] -> [B, T_l, K]
            cls_logits.append(self.cls_head(cls_feat).transpose(1, 2))
            # [B, 2, T_l] -> [B, T_l, 2]
            offsets.append(F.relu(self.scale[level](self.reg_head(reg_feat))).transpose(1, 2))
        return cls_logits, offsets

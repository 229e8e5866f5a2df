"""The ActionFormer detector composed from its parts (spec ``shared/spec/ADATAD.md`` §4).

``ActionFormer(projection, neck, head, point_generator, loss)`` maps backbone features [B, C, T]
to raw per-point outputs; label assignment, losses and decoding are separate steps
(:mod:`~tadcli.model.detector.assignment`, :mod:`~tadcli.model.detector.losses`,
:mod:`tadcli.model.postprocess`). :func:`build_actionformer` builds one from plain numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from tadcli.model.detector.assignment import assign_batch_targets
from tadcli.model.detector.head import ActionFormerHead
from tadcli.model.detector.losses import ActionFormerLoss, DetectorLosses
from tadcli.model.detector.neck import FPNIdentity
from tadcli.model.detector.points import DEFAULT_REGRESSION_RANGES, PointGenerator
from tadcli.model.detector.projection import Conv1DTransformerProj


class DetectorOutput(NamedTuple):
    """Raw outputs for all points of all levels, level 0 first (the same in train and eval mode).

    cls_logits: [B, N, K] class logits (sigmoid gives scores).
    offsets: [B, N, 2] distances to (start, end) in units of each point's stride, >= 0.
    masks: bool [B, N], True where the point lies on a valid (unpadded) step.
    points: [N, 4] rows (position, range_lo, range_hi, stride), position in level-0 grid units.
    """

    cls_logits: torch.Tensor
    offsets: torch.Tensor
    masks: torch.Tensor
    points: torch.Tensor


def max_divisor(strides: Sequence[int], attention_windows: Sequence[int]) -> int:
    """Smallest number every valid sequence length must be a multiple of: max over levels of
    ``stride * (window // 2) * 2`` for local attention, ``stride`` for global attention."""
    return max(s * (w // 2) * 2 if w > 1 else s for s, w in zip(strides, attention_windows))


class ActionFormer(nn.Module):
    """Projection -> FPN neck -> head; also computes the training loss from raw outputs.

    Args:
        projection: the :class:`Conv1DTransformerProj`; its ``max_seq_len`` is the training length T.
        neck: the :class:`FPNIdentity` over the projection's levels.
        head: the :class:`ActionFormerHead`.
        point_generator: strides 1, 2, 4, ... (one per level) and regression ranges.
        loss: the :class:`ActionFormerLoss` (owns the positives normaliser).
        center_sample_radius: label-assignment center radius in strides.
    """

    def __init__(
        self,
        projection: Conv1DTransformerProj,
        neck: FPNIdentity,
        head: ActionFormerHead,
        point_generator: PointGenerator,
        loss: ActionFormerLoss,
        center_sample_radius: float = 1.5,
    ) -> None:
        super().__init__()
        num_levels = projection.num_levels
        assert point_generator.strides == tuple(2**level for level in range(num_levels)), (
            f"point strides {point_generator.strides} do not match the projection's {num_levels} stride-2 levels"
        )
        assert len(neck.fpn_norms) == num_levels and len(head.scale) == num_levels, (
            f"neck ({len(neck.fpn_norms)}) and head ({len(head.scale)}) levels must equal {num_levels}"
        )
        assert head.num_classes == loss.num_classes, f"head has {head.num_classes} classes, loss {loss.num_classes}"
        self.max_div_factor = max_divisor(point_generator.strides, projection.attention_windows)
        assert projection.max_seq_len % self.max_div_factor == 0, (
            f"max_seq_len {projection.max_seq_len} must be divisible by {self.max_div_factor} "
            f"(level strides x attention windows {projection.attention_windows})"
        )
        self.projection = projection
        self.neck = neck
        self.head = head
        self.point_generator = point_generator
        self.loss = loss
        self.center_sample_radius = center_sample_radius

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    @property
    def max_seq_len(self) -> int:
        return self.projection.max_seq_len

    def _pad(self, features: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero-pad shorter inputs to max_seq_len, longer ones to a multiple of max_div_factor (mask False)."""
        length = features.shape[-1]
        if length <= self.max_seq_len:
            padded_length = self.max_seq_len
        else:
            padded_length = -(-length // self.max_div_factor) * self.max_div_factor
        if padded_length == length:
            return features, masks
        return F.pad(features, (0, padded_length - length)), F.pad(masks, (0, padded_length - length), value=False)

    def forward(self, features: torch.Tensor, masks: torch.Tensor | None = None) -> DetectorOutput:
        """features: [B, C, T] backbone features; masks: bool [B, T] (True = valid), None = all valid."""
        if masks is None:
            masks = torch.ones(features.shape[0], features.shape[-1], dtype=torch.bool, device=features.device)
        features, masks = self._pad(features, masks.bool())
        level_features, level_masks = self.projection(features, masks[:, None, :])
        level_features, level_masks = self.neck(level_features, level_masks)
        cls_logits, offsets = self.head(level_features, level_masks)
        points = self.point_generator([x.shape[-1] for x in level_features], device=features.device)
        return DetectorOutput(
            cls_logits=torch.cat(cls_logits, dim=1),
            offsets=torch.cat(offsets, dim=1),
            masks=torch.cat([m[:, 0, :] for m in level_masks], dim=1),
            points=points,
        )

    def compute_loss(
        self,
        outputs: DetectorOutput,
        gt_segments: Sequence[torch.Tensor],
        gt_labels: Sequence[torch.Tensor],
    ) -> DetectorLosses:
        """Assign targets per video and compute the losses.

        Args:
            outputs: this detector's output for the batch.
            gt_segments: per video [M_b, 2] (start, end) in level-0 grid units (M_b may be 0).
            gt_labels: per video [M_b] class indices.
        """
        assert len(gt_segments) == outputs.cls_logits.shape[0], (
            f"{len(gt_segments)} ground-truth sets for a batch of {outputs.cls_logits.shape[0]}"
        )
        cls_targets, reg_targets = assign_batch_targets(
            outputs.points, gt_segments, gt_labels, self.num_classes, self.center_sample_radius
        )
        return self.loss(outputs.cls_logits, outputs.offsets, outputs.masks, outputs.points, cls_targets, reg_targets)


def build_actionformer(
    in_channels: int,
    num_classes: int,
    max_seq_len: int,
    embed_dim: int = 512,
    arch: tuple[int, int, int] = (2, 2, 5),
    num_heads: int = 4,
    attention_window: int | Sequence[int] = -1,
    use_abs_pe: bool = False,
    input_dropout: float = 0.0,
    path_dropout: float = 0.1,
    head_channels: int = 512,
    head_convs: int = 2,
    regression_ranges: Sequence[tuple[float, float]] | None = None,
    center_sample_radius: float = 1.5,
    cls_prior_prob: float = 0.01,
    regression_weight: float = 1.0,
    label_smoothing: float = 0.0,
    focal_alpha: float = 0.25,
    focal_gamma: float = 2.0,
    normalizer_init: float = 100.0,
    normalizer_momentum: float = 0.9,
) -> ActionFormer:
    """An ActionFormer with OpenTAD's defaults (spec §4; per-dataset values in §8).

    Args:
        in_channels: backbone feature channels (the ViT width C).
        num_classes: K (1 = class-agnostic).
        max_seq_len: detector length T.
        embed_dim: projection width D (ActivityNet 256).
        arch: (embedding convs, stem blocks, branch blocks); levels = arch[2] + 1.
        num_heads: projection attention heads.
        attention_window: -1 global (all AdaTAD configs but EPIC), or a local window (EPIC 9), per level or one.
        use_abs_pe: sinusoid position table (ActivityNet, Charades).
        input_dropout: channel dropout on the backbone features.
        path_dropout: drop path in the projection blocks.
        head_channels: head tower width.
        head_convs: convs per head tower.
        regression_ranges: per level; None = the 6-level defaults (required for other level counts).
        center_sample_radius: center sampling radius in strides.
        cls_prior_prob: initial foreground probability of the classifier.
        regression_weight: weight of the DIoU loss.
        label_smoothing: classification label smoothing eps.
        focal_alpha: focal loss alpha.
        focal_gamma: focal loss gamma.
        normalizer_init: initial positives normaliser.
        normalizer_momentum: normaliser EMA momentum.
    """
    num_levels = arch[2] + 1
    if regression_ranges is None:
        assert num_levels == len(DEFAULT_REGRESSION_RANGES), (
            f"{num_levels} levels need explicit regression_ranges (defaults cover {len(DEFAULT_REGRESSION_RANGES)})"
        )
        regression_ranges = DEFAULT_REGRESSION_RANGES
    projection = Conv1DTransformerProj(
        in_channels,
        embed_dim,
        arch=arch,
        num_heads=num_heads,
        attention_window=attention_window,
        max_seq_len=max_seq_len,
        input_dropout=input_dropout,
        path_dropout=path_dropout,
        use_abs_pe=use_abs_pe,
    )
    return ActionFormer(
        projection=projection,
        neck=FPNIdentity(embed_dim, num_levels),
        head=ActionFormerHead(
            embed_dim, head_channels, num_classes, num_levels, num_convs=head_convs, prior_prob=cls_prior_prob
        ),
        point_generator=PointGenerator([2**level for level in range(num_levels)], regression_ranges),
        loss=ActionFormerLoss(
            num_classes,
            regression_weight=regression_weight,
            label_smoothing=label_smoothing,
            focal_alpha=focal_alpha,
            focal_gamma=focal_gamma,
            normalizer_init=normalizer_init,
            normalizer_momentum=normalizer_momentum,
        ),
        center_sample_radius=center_sample_radius,
    )

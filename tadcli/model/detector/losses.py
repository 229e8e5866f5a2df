"""ActionFormer's training losses (spec ``shared/spec/ADATAD.md`` §4.6).

Sigmoid focal loss on the classification logits of all valid points, DIoU loss on the decoded
segments of positive points, both summed and divided by an EMA of the number of positives that
the loss module owns as a buffer (OpenTAD's ``loss_normalizer``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from tadcli.model.detector.decode import decode_segments


def sigmoid_focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """Summed sigmoid focal loss (Lin et al. 2017), computed in float32.

    ``alpha_t * (1 - p_t)^gamma * BCE(logits, targets)`` with ``p_t = p*y + (1-p)(1-y)`` and
    ``alpha_t = alpha*y + (1-alpha)(1-y)``; targets may be soft (label smoothing).

    Args:
        logits: [...] raw scores.
        targets: [...] targets in [0, 1], same shape.
        alpha: weight of positives (negative = no alpha weighting).
        gamma: focusing exponent.
    """
    logits, targets = logits.float(), targets.float()
    prob = torch.sigmoid(logits)
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = bce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss.sum()


def diou_loss(pred_segments: torch.Tensor, target_segments: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Summed 1-D distance-IoU loss ``1 - IoU + (center distance)^2 / (enclosing length)^2``, in float32.

    Args:
        pred_segments: [P, 2] (start, end), start <= end.
        target_segments: [P, 2] (start, end).
        eps: lower bound of the union and of the squared enclosing length.
    """
    pred, target = pred_segments.float(), target_segments.float()
    inter = (torch.minimum(pred[:, 1], target[:, 1]) - torch.maximum(pred[:, 0], target[:, 0])).clamp(min=0)
    union = (pred[:, 1] - pred[:, 0]) + (target[:, 1] - target[:, 0]) - inter
    iou = inter / union.clamp(min=eps)
    enclosing = torch.maximum(pred[:, 1], target[:, 1]) - torch.minimum(pred[:, 0], target[:, 0])
    center_distance = 0.5 * ((pred[:, 0] + pred[:, 1]) - (target[:, 0] + target[:, 1]))
    diou = iou - center_distance**2 / (enclosing**2).clamp(min=eps)
    return (1 - diou).sum()


class LossNormalizer(nn.Module):
    """Running count of positives that divides the losses.

    Training: ``value <- momentum * value + (1 - momentum) * max(num_pos, 1)``, updated before use.
    Eval: ``max(num_pos, 1)`` of the batch, the buffer untouched. The buffer is saved in checkpoints
    (released AdaTAD files: ``rpn_head.loss_normalizer``).

    Args:
        init_value: starting value (100; ActivityNet 200; EPIC 250).
        momentum: EMA momentum (0.9).
    """

    def __init__(self, init_value: float = 100.0, momentum: float = 0.9) -> None:
        super().__init__()
        self.momentum = momentum
        self.register_buffer("value", torch.tensor(float(init_value)))

    def forward(self, num_pos: torch.Tensor) -> torch.Tensor:
        count = num_pos.to(self.value.dtype).clamp(min=1)
        if not self.training:
            return count
        self.value.copy_(self.momentum * self.value + (1 - self.momentum) * count)
        return self.value.clone()


class DetectorLosses(NamedTuple):
    """Loss terms of one step; ``total = classification + weight * regression`` is what to backpropagate."""

    total: torch.Tensor
    classification: torch.Tensor
    regression: torch.Tensor
    num_positives: torch.Tensor


class ActionFormerLoss(nn.Module):
    """Focal + weighted DIoU loss over a batch of raw detector outputs and assigned targets.

    Args:
        num_classes: K.
        regression_weight: weight of the DIoU term (1.0; ActivityNet 2.0; EPIC 0.5).
        label_smoothing: eps; every valid point's target becomes ``y * (1 - eps) + eps / (K + 1)``.
        focal_alpha: focal loss alpha.
        focal_gamma: focal loss gamma.
        normalizer_init: initial value of the positives normaliser.
        normalizer_momentum: EMA momentum of the normaliser.
    """

    def __init__(
        self,
        num_classes: int,
        regression_weight: float = 1.0,
        label_smoothing: float = 0.0,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        normalizer_init: float = 100.0,
        normalizer_momentum: float = 0.9,
    ) -> None:
        super().__init__()
        assert regression_weight > 0, f"regression_weight must be positive, got {regression_weight}"
        self.num_classes = num_classes
        self.regression_weight = regression_weight
        self.label_smoothing = label_smoothing
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.normalizer = LossNormalizer(normalizer_init, normalizer_momentum)

    def forward(
        self,
        cls_logits: torch.Tensor,
        offsets: torch.Tensor,
        masks: torch.Tensor,
        points: torch.Tensor,
        cls_targets: torch.Tensor,
        reg_targets: torch.Tensor,
    ) -> DetectorLosses:
        """
        Args:
            cls_logits: [B, N, K] raw logits of all points of all levels.
            offsets: [B, N, 2] predicted boundary distances in strides.
            masks: bool [B, N], True = valid point.
            points: [N, 4] from :class:`PointGenerator`.
            cls_targets: [B, N, K] multi-hot targets from :func:`assign_batch_targets`.
            reg_targets: [B, N, 2] target boundary distances in strides.
        """
        positives = masks & (cls_targets.sum(dim=-1) > 0)  # [B, N]
        num_positives = positives.sum()
        normalizer = self.normalizer(num_positives)

        targets = cls_targets[masks]  # [V, K] over valid points
        targets = targets * (1 - self.label_smoothing) + self.label_smoothing / (self.num_classes + 1)
        cls_loss = sigmoid_focal_loss(cls_logits[masks], targets, self.focal_alpha, self.focal_gamma) / normalizer

        # Decoding both sides makes the loss scale-invariant; with no positives the sum over an empty
        # selection is 0 and still part of the graph (OpenTAD: 0 * sum(pred)).
        pred_segments = decode_segments(points, offsets.float())[positives]  # [P, 2]
        target_segments = decode_segments(points, reg_targets.float())[positives]
        reg_loss = diou_loss(pred_segments, target_segments) / normalizer

        total = cls_loss + self.regression_weight * reg_loss
        return DetectorLosses(total, cls_loss, reg_loss, num_positives)

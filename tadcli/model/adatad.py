"""AdaTAD end to end: video frames -> ViT (+ adapters) features -> ActionFormer raw outputs.

Spec ``shared/spec/ADATAD.md`` §1.4 (normalize, chunk, ViT, pool, resize to the detector length T,
float32), §4 (detector) and §8 (optimizer parameter groups). ``forward`` returns raw outputs in both
train and eval mode; :meth:`AdaTAD.compute_loss` and :meth:`AdaTAD.detect` are the two ways to use them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from tadcli.model.backbone import VideoBackbone
from tadcli.model.detector.actionformer import ActionFormer, DetectorOutput
from tadcli.model.detector.blocks import AffineDropPath, Scale
from tadcli.model.detector.losses import DetectorLosses
from tadcli.model.postprocess import Detections, PostprocessSettings, detect_batch

# Detector modules whose ``weight`` is decayed; everything else in the detector is not (spec §8).
DECAYED_WEIGHT_MODULES = (nn.Linear, nn.Conv1d)
UNDECAYED_WEIGHT_MODULES = (nn.LayerNorm, nn.GroupNorm)


class AdaTAD(nn.Module):
    """A video backbone and an ActionFormer detector joined by a linear resize to ``detector_length``.

    Args:
        backbone: maps frames [B, 3, F, H, W] (uint8 or normalized) to float features [B, C, F / 2].
        detector: the :class:`ActionFormer`; its ``max_seq_len`` should equal ``detector_length``.
        detector_length: T, the number of detector steps the features are resized to.

    Example:
        >>> model = build_model(load_preset("tiny"), num_classes=4)  # tadcli.model.build, tadcli.config.loader
        >>> outputs = model(batch.frames, batch.masks)  # a WindowBatch: uint8 [B, 3, 128, 64, 64], bool [B, 128]
        >>> losses = model.compute_loss(outputs, batch.gt_segments, batch.gt_labels)  # training
        >>> windows = model.detect(outputs, settings, apply_nms=False)  # eval: per-window grid-unit detections
    """

    def __init__(self, backbone: VideoBackbone, detector: ActionFormer, detector_length: int) -> None:
        super().__init__()
        assert detector.max_seq_len == detector_length, (
            f"detector max_seq_len {detector.max_seq_len} differs from detector_length {detector_length}"
        )
        self.backbone = backbone
        self.detector = detector
        self.detector_length = detector_length

    def extract_features(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 (0-255) or already-normalized float frames [B, 3, F, H, W] -> float32 features [B, C, T].

        uint8 frames are normalized by the backbone, a chunk group at a time (never the whole float window).
        """
        features = self.backbone(frames)  # [B, C, F/2]
        # [B, C, F/2] -> [B, C, T]; always applied (identity when F/2 == T), spec §1.4 step 5
        features = F.interpolate(features, size=self.detector_length, mode="linear", align_corners=False)
        return features.float()

    def forward(self, frames: torch.Tensor, masks: torch.Tensor | None = None) -> DetectorOutput:
        """Raw detector outputs.

        Args:
            frames: uint8 RGB 0-255 (normalized on the frames' device) or normalized float, [B, 3, F, H, W];
                F a multiple of 16. Move uint8 frames to the model's device first.
            masks: bool [B, T] (True = real video, False = padding), None = all valid.
        """
        return self.detector(self.extract_features(frames), masks)

    def compute_loss(
        self,
        outputs: DetectorOutput,
        gt_segments: Sequence[torch.Tensor],
        gt_labels: Sequence[torch.Tensor],
    ) -> DetectorLosses:
        """Training losses; ``gt_segments`` per video [M_b, 2] in detector grid units, ``gt_labels`` [M_b]."""
        return self.detector.compute_loss(outputs, gt_segments, gt_labels)

    @torch.no_grad()
    def detect(self, outputs: DetectorOutput, settings: PostprocessSettings, apply_nms: bool) -> list[Detections]:
        """Per-sample detections in detector grid units (see :func:`tadcli.model.postprocess.detect_batch`).

        ``apply_nms``: True for resized whole videos; False for sliding windows, whose soft-NMS runs
        per video after conversion to seconds (:func:`tadcli.model.postprocess.merge_windows`).
        """
        return detect_batch(outputs, settings, apply_nms)


def _split_detector_parameters(detector: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """Trainable detector parameters -> (decayed: Linear/Conv1d weights, undecayed: biases, norms, scales)."""
    decay, no_decay = [], []
    for module in detector.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            decayed_weight = name == "weight" and isinstance(module, DECAYED_WEIGHT_MODULES)
            norm_weight = name == "weight" and isinstance(module, UNDECAYED_WEIGHT_MODULES)
            learned_scale = name == "scale" and isinstance(module, (Scale, AffineDropPath))
            assert decayed_weight or norm_weight or learned_scale or name == "bias", (
                f"detector parameter {name!r} of {type(module).__name__} has no decay rule"
            )
            (decay if decayed_weight else no_decay).append(param)
    return decay, no_decay


def optimizer_param_groups(
    model: AdaTAD, head_lr: float, adapter_lr: float, backbone_lr: float, weight_decay: float
) -> list[dict]:
    """AdamW parameter groups of spec §8, each with ``name``, ``params``, ``lr`` and ``weight_decay``.

    - ``detector_decay``: detector Linear/Conv1d weights, ``head_lr``, ``weight_decay``.
    - ``detector_no_decay``: detector biases, LayerNorm weights, Scale / AffineDropPath scales, ``head_lr``, 0.
    - ``adapter``: every trainable adapter tensor (weights, biases, gamma), ``adapter_lr``, ``weight_decay``.
    - ``backbone``: trainable ViT parameters (full fine-tuning only), ``backbone_lr``, ``weight_decay``.

    Empty groups are left out. The groups partition the parameters that require grad (asserted).
    """
    decay, no_decay = _split_detector_parameters(model.detector)
    backbone_groups = model.backbone.param_groups()
    groups = [
        {"name": "detector_decay", "params": decay, "lr": head_lr, "weight_decay": weight_decay},
        {"name": "detector_no_decay", "params": no_decay, "lr": head_lr, "weight_decay": 0.0},
        {
            "name": "adapter",
            "params": [p for _, p in backbone_groups["adapter"]],
            "lr": adapter_lr,
            "weight_decay": weight_decay,
        },
        {
            "name": "backbone",
            "params": [p for _, p in backbone_groups["backbone"]],
            "lr": backbone_lr,
            "weight_decay": weight_decay,
        },
    ]
    groups = [group for group in groups if group["params"]]
    grouped = [id(p) for group in groups for p in group["params"]]
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert len(grouped) == len(set(grouped)), "a parameter is in two optimizer groups"
    assert set(grouped) == trainable, (
        f"optimizer groups cover {len(set(grouped))} parameters but {len(trainable)} require grad"
    )
    return groups
